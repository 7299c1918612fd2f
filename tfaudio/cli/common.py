"""Pieces every `tfaudio` command module shares (kept apart from `tfaudio.cli` so command
modules can import them without importing the command group itself)."""

from __future__ import annotations

import functools
import sys

import click

from tfaudio.comparison.run import CompareError
from tfaudio.data.audio import AudioError
from tfaudio.data.dataset import DatasetError


def friendly_errors(command):
    """Turn the errors a user can cause into one-line messages instead of stack traces."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (AudioError, DatasetError, CompareError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None

    return wrapper


def progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, disable=total < 2, dynamic_ncols=True)
