"""Embedding a dataset on this machine, through the embedding store."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.data.audio import AudioError
from tfaudio.data.batches import iter_batches
from tfaudio.data.dataset import Clip, Dataset, Problem
from tfaudio.models.base import POOLING, Representation
from tfaudio.store import _SKIPPED, _STAMP, FRAMES, EmbeddingStore, hash_clips, representation_key

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class EmbedConfig:
    """How `embed_dataset` walks a dataset.

    pooling: one of POOLING, "frames", or None for the representation's default.
    max_duration: seconds of each clip to use (None: all). strict: stop at the first bad file.
    flush_every: clips between shard writes (what an interruption can lose at most).
    """

    pooling: str | None = None
    batch_size: int = 32
    max_duration: float | None = None
    strict: bool = False
    flush_every: int = 256
    workers: int = 4


@dataclass
class EmbedStats:
    """What one `embed_dataset` run did."""

    clips: int = 0
    cached: int = 0
    computed: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    skipped: list[Problem] = field(default_factory=list)


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

    def write_parquet(self, path: str | os.PathLike) -> None:
        """Write the table: pooled vectors as columns e0000...; frames as list columns
        (frames: count, vector: the [frames, dim] matrix flattened row by row)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

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
        metadata = {_STAMP: self.stamp.encode(), _SKIPPED: skipped.encode()}
        pq.write_table(pa.table(arrays).replace_schema_metadata(metadata), path)


@dataclass(frozen=True)
class EmbedPlan:
    """What an embedding run will produce, known before anything is decoded or loaded.

    key: the store key; hashes: each clip's content sha256 (None if unreadable); stamp: a
    digest of the key and every output row (file, label, fold, group, content), so an output
    file carrying the same stamp already holds exactly what the run would write.
    """

    pooling: str
    identity: dict
    decode: dict
    key: str
    hashes: tuple[str | None, ...]
    stamp: str


def plan_embedding(dataset: Dataset, representation: Representation, config: EmbedConfig = EmbedConfig()) -> EmbedPlan:
    """Hash the clips and name the store key; cheap (no model is loaded, no audio decoded)."""
    pooling = config.pooling or representation.default_pooling
    if pooling not in (*POOLING, FRAMES):
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {(*POOLING, FRAMES)}")
    identity = representation.identity()
    decode = {"sample_rate": representation.sample_rate, "max_duration": config.max_duration, "mix": "mean"}
    key = representation_key(identity, pooling, decode)
    hashes = tuple(hash_clips(dataset.clips, config.workers))
    rows = [f"{dataset.relative(c)}\t{c.label}\t{c.fold}\t{c.group}\t{h}" for c, h in zip(dataset.clips, hashes)]
    stamp = hashlib.sha256("\n".join([key, *rows]).encode()).hexdigest()
    return EmbedPlan(pooling, identity, decode, key, hashes, stamp)


def current_output(path: str | os.PathLike, plan: EmbedPlan) -> list[Problem] | None:
    """The skipped clips recorded in `path` if it was written by `EmbeddingTable.write_parquet`
    for exactly this plan (so it is up to date), else None. Reads only the file's schema."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):  # missing, or not a Parquet file
        return None
    if metadata.get(_STAMP) != plan.stamp.encode():
        return None
    return [Problem(file, reason) for file, reason in json.loads(metadata.get(_SKIPPED, b"[]"))]


def embed_dataset(
    dataset: Dataset,
    representation: Representation,
    store: EmbeddingStore | None = None,
    config: EmbedConfig = EmbedConfig(),
    progress: Callable[[int], None] | None = None,
    plan: EmbedPlan | None = None,
) -> EmbeddingTable:
    """Vectors of every clip: from the store when it has them, computed in batches otherwise.

    Computed vectors are written to the store every `flush_every` clips, so an interrupted
    run keeps its work. Unreadable clips are skipped and reported (or raise when strict).
    plan: from `plan_embedding` with the same arguments, to avoid hashing twice.
    """
    start = time.perf_counter()
    plan = plan or plan_embedding(dataset, representation, config)
    pooling, identity, decode, key, hashes = plan.pooling, plan.identity, plan.decode, plan.key, plan.hashes
    store = store or EmbeddingStore()
    stats = EmbedStats(clips=len(dataset))

    vectors: dict[str, np.ndarray] = store.lookup(key, [h for h in hashes if h])
    todo = [i for i, h in enumerate(hashes) if h not in vectors]
    stats.cached = len(dataset) - len(todo)
    if progress and stats.cached:
        progress(stats.cached)

    def on_error(err: AudioError) -> None:
        stats.skipped.append(Problem(err.path, err.problem))
        if progress:
            progress(1)

    pending_hashes: list[str] = []
    pending_vectors: list[np.ndarray] = []

    def flush() -> None:
        if pending_hashes:
            store.add(key, {**identity, "pooling": pooling, "decode": decode}, pending_hashes, pending_vectors, pooling == FRAMES)
            pending_hashes.clear()
            pending_vectors.clear()

    todo_clips = [dataset.clips[i] for i in todo]
    batches = iter_batches(
        todo_clips,
        representation.sample_rate,
        config.batch_size,
        max_duration=config.max_duration,
        on_error=None if config.strict else on_error,
        workers=config.workers,
    )
    try:
        for batch in batches:
            if pooling == FRAMES:
                out = representation.frames(batch.waveforms, batch.lengths)
                computed = [out.embeddings[row][out.mask[row]] for row in range(len(batch.indices))]
            else:
                computed = list(representation.embed(batch.waveforms, batch.lengths, pooling))
            for row, position in enumerate(batch.indices):
                digest = hashes[todo[position]]
                vectors[digest] = computed[row]
                pending_hashes.append(digest)
                pending_vectors.append(computed[row])
            stats.computed += len(batch.indices)
            stats.audio_seconds += float(batch.lengths.sum()) / representation.sample_rate
            if progress:
                progress(len(batch.indices))
            if len(pending_hashes) >= config.flush_every:
                flush()
    finally:
        flush()  # keep what was computed, even when the run is interrupted

    skipped_paths = {p.path for p in stats.skipped}
    for i, digest in enumerate(hashes):
        if digest is None and str(dataset.clips[i].path) not in skipped_paths:
            stats.skipped.append(Problem(str(dataset.clips[i].path), "cannot be read"))
    rows = [i for i, h in enumerate(hashes) if h is not None and h in vectors]
    ordered = [vectors[hashes[i]] for i in rows]
    if pooling != FRAMES:
        ordered = np.stack(ordered) if ordered else np.zeros((0, representation.pooled_dim(pooling)), np.float32)
    stats.seconds = time.perf_counter() - start
    clips = tuple(dataset.clips[i] for i in rows)
    return EmbeddingTable(representation.name, pooling, dataset, clips, ordered, stats, plan.stamp)
