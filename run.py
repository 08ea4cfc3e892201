#!/usr/bin/env python
"""collabops' one entry point. ``python run.py --help`` lists the commands."""

import os
import sys

# Nothing here reaches the internet: no analytics, before ZenML is imported.
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")

from cli.main import main

if __name__ == "__main__":
    sys.exit(main())
