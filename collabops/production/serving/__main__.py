"""``python -m collabops.production.serving --bundle DIR --keys-dir DIR [--port N] [--workers N] ...``."""

from collabops.production.serving.process import main

if __name__ == "__main__":
    main()
