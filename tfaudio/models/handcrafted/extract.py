"""`tfaudio features`: the hand-crafted feature table of a whole dataset, one row per clip."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf

from tfaudio.data.audio import AudioError
from tfaudio.data.batches import iter_batches
from tfaudio.data.dataset import Dataset, Problem
from tfaudio.models.handcrafted.config import HandcraftedParams, feature_names
from tfaudio.models.handcrafted.model import _graph


@dataclass(frozen=True)
class ExtractConfig:
    """How `extract` walks a dataset.

    max_duration: seconds of each clip to use (None: all of it); strict: stop at the first
    unreadable file instead of skipping it; workers: decoding threads.
    """

    batch_size: int = 32
    max_duration: float | None = None
    strict: bool = False
    workers: int = 4


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


def extract(
    dataset: Dataset,
    params: HandcraftedParams = HandcraftedParams(),
    config: ExtractConfig = ExtractConfig(),
    progress: Callable[[int], None] | None = None,
) -> FeatureTable:
    """The baseline vector of every clip, computed in batches in one TensorFlow graph.

    Clips are decoded in background threads while the previous batch runs; padded batches
    carry per-clip lengths, so padding never enters the statistics.
    """
    run = _graph(params)
    skipped: list[Problem] = []

    def on_error(err: AudioError) -> None:
        skipped.append(Problem(err.path, err.problem))
        if progress:
            progress(1)

    order, vectors = [], []
    batches = iter_batches(
        dataset.clips,
        params.sample_rate,
        config.batch_size,
        max_duration=config.max_duration,
        on_error=None if config.strict else on_error,
        workers=config.workers,
    )
    for batch in batches:
        vectors.append(run(tf.constant(batch.waveforms), tf.constant(batch.lengths)).numpy())
        order.extend(batch.indices.tolist())
        if progress:
            progress(len(batch.indices))
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
    values = np.concatenate(vectors) if vectors else np.zeros((0, len(names)), np.float32)
    frame = pd.concat([frame, pd.DataFrame(values, columns=list(names))], axis=1)
    return FeatureTable(frame=frame, feature_columns=names, skipped=tuple(skipped))
