"""`tfaudio features`: the hand-crafted feature table of a whole dataset, one row per clip.

It walks the dataset as `tfaudio embed` does: clips, and windows of long ones, in batches of
similar length bounded by total audio, decoded one batch ahead; a long clip's windows are pooled
as they come, so an hour-long file costs the memory of one window.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tfaudio.data.audio import AudioError
from tfaudio.data.batches import iter_window_batches
from tfaudio.data.dataset import Dataset, Problem
from tfaudio.data.windows import WINDOW_SECONDS, kept_frames, plan_windows
from tfaudio.frontend.window_pooling import FramePool
from tfaudio.models.handcrafted.config import HandcraftedParams, feature_names
from tfaudio.models.handcrafted.model import HandcraftedRepresentation
from tfaudio.outputs import replacing


@dataclass(frozen=True)
class ExtractConfig:
    """How `extract` walks a dataset.

    max_duration: seconds of each clip to use (None: all of it); strict: stop at the first
    unreadable file instead of skipping it; workers: decoding threads. batch_size / batch_seconds:
    most clips or windows / seconds of audio per batch; window_seconds: longer clips are
    computed in windows of about this length.
    """

    batch_size: int = 32
    max_duration: float | None = None
    strict: bool = False
    workers: int = 4
    batch_seconds: float = 240.0
    window_seconds: float = WINDOW_SECONDS


@dataclass(frozen=True)
class FeatureTable:
    """frame: one row per readable clip: file, label, fold, group, then `feature_columns`.
    skipped: the clips that could not be decoded, with the reason."""

    frame: pd.DataFrame
    feature_columns: tuple[str, ...]
    skipped: tuple[Problem, ...]

    @property
    def matrix(self) -> np.ndarray:
        """float32 [clips, features]."""
        return self.frame[list(self.feature_columns)].to_numpy(np.float32)

    def write(self, path: str | os.PathLike) -> Path:
        """Write `frame` to `path` as Parquet (a .parquet name) or CSV (any other), whole or
        not at all: an earlier table there stays as it was if the write fails."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as temporary:
            if path.suffix.lower() == ".parquet":
                self.frame.to_parquet(temporary, index=False)
            else:
                self.frame.to_csv(temporary, index=False)
        return path


def extract(
    dataset: Dataset,
    params: HandcraftedParams = HandcraftedParams(),
    config: ExtractConfig = ExtractConfig(),
    progress: Callable[[int], None] | None = None,
) -> FeatureTable:
    """The baseline vector of every clip: per-frame features in one TensorFlow graph, pooled
    (mean and standard deviation) over each clip's own frames, so padding never enters them.
    """
    model = HandcraftedRepresentation(params)
    skipped: list[Problem] = []
    pools: dict[int, list] = {}  # position -> [FramePool, windows still to come]
    failed: set[int] = set()
    vectors: dict[int, np.ndarray] = {}

    def plan(position: int):
        return plan_windows(dataset.clips[position].path, model.window_geometry, sample_rate=params.sample_rate,
                            window_seconds=config.window_seconds, position=position, duration=config.max_duration)

    def prepare(windows):
        if len(windows) == 1:
            return windows
        state = model.clip_state(windows)  # the loudest frame of the whole clip
        return [window.with_clip_state(state) for window in windows]

    def on_error(err: AudioError, position: int) -> None:
        failed.add(position)
        pools.pop(position, None)
        skipped.append(Problem(err.path, err.problem))
        if progress:
            progress(1)

    batches = iter_window_batches(
        range(len(dataset.clips)), plan, max_samples=int(config.batch_seconds * params.sample_rate),
        max_windows=config.batch_size, on_error=None if config.strict else on_error, prepare=prepare,
        workers=config.workers,
    )
    for batch in batches:
        out = model.window_frames(batch.waveforms, batch.lengths, [w.clip_state for w in batch.windows])
        for row, window in enumerate(batch.windows):
            if window.position in failed:
                continue
            entry = pools.setdefault(window.position, [FramePool("mean+std"), window.count])
            entry[0].add(kept_frames(window, out.embeddings[row][out.mask[row]]), window.index)
            entry[1] -= 1
            if not entry[1]:
                vector = pools.pop(window.position)[0].result()
                if np.isfinite(vector).all():
                    vectors[window.position] = vector
                else:  # extreme samples overflow the spectra: a row of NaN helps nobody
                    skipped.append(Problem(window.path, "its features are not finite (NaN or inf): its samples "
                                                        "may be extreme"))
                if progress:
                    progress(1)
    order = sorted(vectors)
    names = tuple(feature_names(params))
    clips = [dataset.clips[i] for i in order]
    frame = pd.DataFrame(
        {
            "file": [dataset.relative(c) for c in clips],
            "label": [c.label for c in clips],
            "fold": pd.array([c.fold for c in clips], dtype="Int64"),
            "group": [c.group for c in clips],
        }
    )
    values = np.stack([vectors[i] for i in order]) if order else np.zeros((0, len(names)), np.float32)
    frame = pd.concat([frame, pd.DataFrame(values, columns=list(names))], axis=1)
    return FeatureTable(frame=frame, feature_columns=names, skipped=tuple(skipped))
