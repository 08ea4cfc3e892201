"""The command line behind ``run.py`` (ZenML-aware, unlike the ``collabops`` library)."""
