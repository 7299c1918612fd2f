"""Sound and pictures of recordings for the app: a span as a 16-bit WAV and as a log-mel PNG.

The same choices as the static results page (tfaudio.search.page): 16 kHz mono WAV (every
browser plays it, and it is what the models heard), hits played with CONTEXT seconds on each
side, the spectrogram from the models' own front end (tfaudio.frontend.LogMel) scaled to its
peak in the magma colour map. Spans are checked here (finite, inside the file, at most
MAX_SPAN seconds) so no request can make the server decode an archive's worth of audio.
Recent answers are cached: a grid asks for each hit's picture once per page load.
"""

from __future__ import annotations

import functools
import math
import os
import threading

import numpy as np

from tfaudio.app.errors import AppError
from tfaudio.search.page import CONTEXT, MAX_SECONDS, wav_bytes
from tfaudio.search.page import spectrogram_png as page_spectrogram

RATE = 16000
#: The longest span one request may decode (a hit with its context, or the query view).
MAX_SPAN = 60.0
#: Picture sizes, pixels (width: time, height: mel bands): a hit's thumbnail and the query view.
SIZES = {"thumb": (240, 64), "wide": (960, 128)}
_FRONT_END = threading.Lock()  # one Keras layer call at a time (it builds itself on first use)


def clip_span(start: float, end: float, duration: float) -> tuple[float, float]:
    """[offset, end] seconds a hit [start, end] is played and drawn with: CONTEXT on each side,
    inside the file, at most MAX_SECONDS + 2 CONTEXT long."""
    offset = max(0.0, start - CONTEXT)
    stop = min(end + CONTEXT, duration, offset + MAX_SECONDS + 2 * CONTEXT)
    return offset, max(stop, offset + 0.05)


def parse_span(start, end) -> tuple[float, float]:
    """Query-string times -> (start, end) seconds; AppError 400 when not numbers, reversed or too long."""
    try:
        low, high = float(start), float(end)
    except (TypeError, ValueError):
        raise AppError("start and end must be numbers of seconds") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < high):
        raise AppError("start and end must be finite seconds with 0 <= start < end")
    if high - low > MAX_SPAN + 1e-6:
        raise AppError(f"at most {MAX_SPAN:g} s at a time")
    return low, high


def duration(path: str) -> float:
    """Seconds of audio in `path` (its header); AudioError (a TfaudioError) when unreadable."""
    from tfaudio.data.audio import info

    return info(path).duration


@functools.lru_cache(maxsize=64)
def _samples(path: str, start: float, end: float, stamp: tuple) -> np.ndarray:
    from tfaudio.data.audio import load

    return load(path, RATE, offset=start, duration=end - start, min_duration=0.05)


def samples(path: str, start: float, end: float) -> np.ndarray:
    """float32 [samples] at 16 kHz mono of [start, end] seconds of `path`; AppError 404 when the
    file is gone or unreadable."""
    from tfaudio.errors import TfaudioError

    try:
        stat = os.stat(path)
        return _samples(path, start, end, (stat.st_size, stat.st_mtime_ns))
    except (TfaudioError, OSError):
        raise AppError("the recording is missing or cannot be read any more", 404) from None


def wav(waveform: np.ndarray) -> bytes:
    """float32 [samples] at 16 kHz -> a 16-bit PCM WAV file's bytes (as the search page plays)."""
    return wav_bytes(waveform)


def spectrogram_png(waveform: np.ndarray, size: tuple[int, int]) -> bytes:
    """float32 [samples] at 16 kHz -> PNG [size] of its log-mel, drawn as the search page draws it."""
    with _FRONT_END:
        return page_spectrogram(waveform, size)


@functools.lru_cache(maxsize=256)
def _picture(path: str, start: float, end: float, size: tuple[int, int], stamp: tuple) -> bytes:
    return spectrogram_png(_samples(path, start, end, stamp), size)


def picture(path: str, start: float, end: float, size: str) -> bytes:
    """The spectrogram PNG of [start, end] of `path` at SIZES[size]; AppError as `samples`."""
    from tfaudio.errors import TfaudioError

    if size not in SIZES:
        raise AppError(f"size must be one of {', '.join(SIZES)}")
    try:
        stat = os.stat(path)
        return _picture(path, start, end, SIZES[size], (stat.st_size, stat.st_mtime_ns))
    except (TfaudioError, OSError):
        raise AppError("the recording is missing or cannot be read any more", 404) from None
