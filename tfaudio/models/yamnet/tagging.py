"""`tfaudio tag`: YAMNet's class scores of files of any length, window by window.

A file is read in windows of YAMNet's geometry (`tfaudio.data.windows`), each window's patches
scored and handed on before the next is decoded, so an hour-long file costs the memory of one
window; the patches are those of the whole file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tfaudio.data.windows import WINDOW_SECONDS, iter_clip_windows, kept_frames, plan_windows
from tfaudio.runtime import precision_scope


@dataclass(frozen=True)
class FileScores:
    """One file's scores: seconds (its length at YAMNet's rate) and `blocks`, an iterator of
    float32 [patches, classes] in time order (patch i starts at i * frame_hop_seconds)."""

    path: str
    seconds: float
    blocks: Iterator[np.ndarray]


def score_file(path: str | os.PathLike, yamnet, window_seconds: float = WINDOW_SECONDS,
               precision: str = "float32") -> FileScores:
    """YAMNet's scores of every patch of `path` (raises `AudioError` before any block if the file
    has no usable header; decoding errors surface while iterating).

    yamnet: a loaded `YamnetRepresentation` (`registry.get("yamnet").loaded()`); precision: the
    network's (`tfaudio.runtime.precision_scope`).
    """
    windows = plan_windows(str(path), yamnet.window_geometry, sample_rate=yamnet.sample_rate,
                           window_seconds=window_seconds)
    last = windows[-1]
    seconds = (last.read_start + last.length) / yamnet.sample_rate

    def blocks() -> Iterator[np.ndarray]:
        for window, samples in iter_clip_windows(windows):
            with precision_scope(precision):
                out = yamnet.model.embed(samples[np.newaxis], np.array([len(samples)], np.int32))
            yield kept_frames(window, out.scores[0][out.patch_mask[0]])

    return FileScores(str(path), seconds, blocks())
