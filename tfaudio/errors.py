"""The base of every error tfaudio raises for its user (the lowest layer: imports nothing from tfaudio)."""

from __future__ import annotations


class TfaudioError(Exception):
    """A problem the user can fix: a file that cannot be read, a dataset too small to split, weights
    that are missing while offline, an option that does not fit the data.

    Its message is meant for that user, not for a programmer: it names the file or the input, says
    what was wrong with it and what to do about it. The `tfaudio` command prints it as one
    `Error: <message>` with exit status 1 and no traceback; anything else that escapes a command is
    a bug in tfaudio and keeps its traceback.

    Each kind of problem subclasses it, and keeps a built-in base where callers relied on one
    (`class AutoencoderError(TfaudioError, ValueError)`), so `except ValueError` and
    `except OSError` go on catching what they caught before.
    """


class TfaudioWarning(UserWarning):
    """Something the user should know that did not stop the work: a clip too short to analyse, a
    damaged cache shard moved aside, a perplexity clamped to the number of clips. The `tfaudio`
    command prints each distinct one as a `warning: ...` line on stderr when the command ends."""
