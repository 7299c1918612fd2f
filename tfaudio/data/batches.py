"""Decoded batches of a dataset's clips: zero-padded waveforms with their lengths."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.data.audio import AudioError, fix_length, load
from tfaudio.data.dataset import Clip

if TYPE_CHECKING:  # pandas is imported where a summary is built, not for every dataset read
    pass


@dataclass(frozen=True)
class Batch:
    """Decoded clips, zero-padded to the longest one.

    indices: int64 [batch] positions in the clip list; waveforms: float32 [batch, samples];
    lengths: int32 [batch] real samples per clip.
    """

    indices: np.ndarray
    waveforms: np.ndarray
    lengths: np.ndarray


def iter_batches(
    clips: Sequence[Clip],
    sample_rate: int = 16000,
    batch_size: int = 32,
    *,
    max_duration: float | None = None,
    min_duration: float | None = None,
    on_error: Callable[[AudioError], None] | None = None,
    workers: int = 4,
) -> Iterator[Batch]:
    """Decode clips in parallel threads and yield them in order, `batch_size` at a time.

    A clip that fails to decode is passed to on_error and left out of its batch; without
    on_error the AudioError propagates (fail fast).
    """

    def decode(clip: Clip):
        try:
            return load(clip.path, sample_rate, duration=max_duration, min_duration=min_duration), None
        except AudioError as err:
            return None, err

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(clips), batch_size):
            part = clips[start : start + batch_size]
            decoded = list(pool.map(decode, part))
            keep, waves = [], []
            for offset, (wave, err) in enumerate(decoded):
                if err is not None:
                    if on_error is None:
                        raise err
                    on_error(err)
                    continue
                keep.append(start + offset)
                waves.append(wave)
            if not waves:
                continue
            lengths = np.array([w.shape[0] for w in waves], dtype=np.int32)
            padded = np.stack([fix_length(w, int(lengths.max())) for w in waves])
            yield Batch(np.array(keep, dtype=np.int64), padded, lengths)
