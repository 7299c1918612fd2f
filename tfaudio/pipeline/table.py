"""What an embedding run gives back: the vectors of a dataset's clips, and what the run did."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.data.dataset import Clip, Dataset, Problem
from tfaudio.outputs import replacing
from tfaudio.store import _SKIPPED, _STAMP, FRAMES
from tfaudio.store.formats import output_format

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class EmbedStats:
    """What one `embed_dataset` run did."""

    clips: int = 0
    cached: int = 0
    computed: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    skipped: list[Problem] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # damaged store shards moved aside


@dataclass(frozen=True)
class EmbeddingTable:
    """Vectors of the readable clips of a dataset, in dataset order.

    clips: the clips embedded; vectors: float32 [clips, dim], or for pooling "frames" a list
    of float32 [frames, dim]. `frame()` / `to_frame()` give pandas views.
    """

    representation: str
    pooling: str
    dataset: Dataset
    clips: tuple[Clip, ...]
    vectors: np.ndarray | list
    stats: EmbedStats
    stamp: str = ""

    def columns(self) -> dict[str, list]:
        """file (relative to the dataset), label, fold, group per clip."""
        return {
            "file": [self.dataset.relative(c) for c in self.clips],
            "label": [c.label for c in self.clips],
            "fold": [c.fold for c in self.clips],
            "group": [c.group for c in self.clips],
        }

    def frame(self) -> pd.DataFrame:
        """One row per clip: file, label, fold, group."""
        import pandas as pd

        table = pd.DataFrame(self.columns())
        table["fold"] = pd.array(table["fold"], dtype="Int64")
        return table

    def to_frame(self) -> pd.DataFrame:
        """`frame()` plus one column per dimension (e0000, e0001, ...), for pooled vectors."""
        import pandas as pd

        if self.pooling == FRAMES:
            raise ValueError("frame-level embeddings have no fixed width; use .vectors")
        names = [f"e{i:04d}" for i in range(self.vectors.shape[1])]
        return pd.concat([self.frame(), pd.DataFrame(self.vectors, columns=names)], axis=1)

    def write(self, path: str | os.PathLike, file_format: str = "parquet") -> None:
        """Write the table as one file of `file_format` (`tfaudio.store.formats`; a format that
        writes single files), whole or not at all: an interrupted write never clobbers the last
        output. Its schema metadata carries the run's stamp and skipped clips."""
        with replacing(path) as temporary:
            output_format(file_format).write(temporary, self.to_arrow())

    def to_arrow(self):
        """The rows as a pyarrow Table: pooled vectors as columns e0000...; frames as list
        columns (frames: count, vector: the [frames, dim] matrix flattened row by row)."""
        import pyarrow as pa

        columns = self.columns()
        arrays = {
            "file": pa.array(columns["file"], pa.string()),
            "label": pa.array(columns["label"], pa.string()),
            "fold": pa.array(columns["fold"], pa.int64()),
            "group": pa.array(columns["group"], pa.string()),
        }
        if self.pooling == FRAMES:
            arrays["frames"] = pa.array([v.shape[0] for v in self.vectors], pa.int64())
            arrays["vector"] = pa.array([v.ravel() for v in self.vectors], pa.list_(pa.float32()))
        else:
            # Column-wise from numpy: far faster than pandas' conversion of a wide frame.
            matrix = np.asarray(self.vectors, np.float32)
            for i in range(matrix.shape[1]):
                arrays[f"e{i:04d}"] = pa.array(matrix[:, i])
        skipped = json.dumps([[p.path, p.reason] for p in self.stats.skipped])
        return pa.table(arrays).replace_schema_metadata({_STAMP: self.stamp.encode(), _SKIPPED: skipped.encode()})
