"""`python -m tfaudio.cli` runs the `tfaudio` command."""

from tfaudio.cli.main import run

run()
