"""The `tfaudio` command line: `main.py` holds the group (the `tfaudio` entry point), `common.py`
what every command shares, and each other module one group of commands."""
