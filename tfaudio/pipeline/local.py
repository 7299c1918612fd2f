"""Embedding a dataset on this machine, through the embedding store, in memory that does not grow.

The run: hash the clips (`plan_embedding`), read what the store holds, then embed the rest as
work units (`pipeline.units`: a clip, or a window of a long one) in batches of similar length
bounded by total audio, decoded one batch ahead in a background thread. Each clip's windows are
pooled as they come (`FramePool`), so an hour-long file costs the memory of one window.

Nothing computed is lost for long: vectors go to the store every `flush_every` clips or
`flush_seconds` seconds, whichever comes first, and on SIGINT / SIGTERM before the process
exits; a `kill -9` loses at most that much. Vectors that are not finite are refused (the clip
is reported as skipped, naming the file) and never stored.

`embed_dataset` returns the vectors (an `EmbeddingTable`); `embed_to_folder` streams them to
sharded files (`pipeline.writer`) instead, for archives whose vectors do not fit in memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio.data.audio import AudioError, info
from tfaudio.data.batches import iter_window_batches
from tfaudio.data.dataset import Dataset, Problem
from tfaudio.data.windows import WINDOW_SECONDS
from tfaudio.errors import TfaudioError
from tfaudio.frontend.window_pooling import FramePool
from tfaudio.models.base import POOLING, Representation
from tfaudio.pipeline.table import EmbeddingTable, EmbedStats
from tfaudio.pipeline.units import embed_windows, plan_clip, prepare_windows
from tfaudio.pipeline.writer import SHARD_BYTES, OutputWriter, output_folder, output_stamp
from tfaudio.store import (
    _SKIPPED,
    _STAMP,
    FRAMES,
    MANIFEST,
    EmbeddingStore,
    hash_clips,
    read_output_file,
    representation_key,
)
from tfaudio.store.formats import format_of

#: Clips looked up in the store at once (bounds the memory of a cached re-run's output).
_LOOKUP_CHUNK = 4096


@dataclass(frozen=True)
class EmbedConfig:
    """How `embed_dataset` walks a dataset.

    pooling: one of POOLING, "frames", or None for the representation's default.
    batch_size: most work units (clips or windows) per batch; batch_seconds: most audio per
        batch, padding included (the largest built-in network holds ~58 bytes per sample while it runs: 240 s ~ 0.9 GB).
    window_seconds: clips longer than this are embedded in windows of about this length.
    max_duration: seconds of each clip to use (None: all). strict: stop at the first bad file.
    flush_every / flush_seconds: clips / seconds between store writes (what a crash can lose).
    """

    pooling: str | None = None
    batch_size: int = 32
    max_duration: float | None = None
    strict: bool = False
    flush_every: int = 256
    flush_seconds: float = 30.0
    workers: int = 4
    window_seconds: float = WINDOW_SECONDS
    batch_seconds: float = 240.0


class NonFiniteVectors(TfaudioError, ValueError):
    """A representation gave NaN or infinite values for a clip (with strict=True)."""


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


def embedding_identity(representation: Representation, config: EmbedConfig = EmbedConfig()) -> tuple[str, dict, str]:
    """(pooling, identity, store key) of a run: what its vectors are, without touching the data."""
    pooling = config.pooling or representation.default_pooling
    if pooling not in (*POOLING, FRAMES):
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {(*POOLING, FRAMES)}")
    identity = representation.identity()
    return pooling, identity, representation_key(identity, pooling, decoding(representation, config))


def decoding(representation: Representation, config: EmbedConfig) -> dict:
    return {"sample_rate": representation.sample_rate, "max_duration": config.max_duration, "mix": "mean"}


def plan_embedding(dataset: Dataset, representation: Representation, config: EmbedConfig = EmbedConfig()) -> EmbedPlan:
    """Hash the clips and name the store key; cheap (no model is loaded, no audio decoded)."""
    pooling, identity, key = embedding_identity(representation, config)
    hashes = tuple(hash_clips(dataset.clips, config.workers))
    rows = [(dataset.relative(c), c.label, c.fold, c.group, h) for c, h in zip(dataset.clips, hashes)]
    return EmbedPlan(pooling, identity, decoding(representation, config), key, hashes, output_stamp(key, rows))


def current_output(path: str | os.PathLike, plan: EmbedPlan) -> list[Problem] | None:
    """The skipped clips recorded in `path` if it was written for exactly this plan (so it is
    up to date), else None. path: a single output file (`EmbeddingTable.write`; reads
    its schema's metadata) or a folder of `embed_to_folder` (reads its manifest, which must say
    the run completed). Either way every file is read back and checked (`formats.check_rows`):
    an output with a missing, unreadable or wrong part is not up to date, so it is rewritten."""
    path = Path(path)
    if path.is_dir():
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            if not manifest.get("complete") or manifest.get("stamp") != plan.stamp:
                return None
            for shard in manifest["shards"]:
                read_output_file(path / shard["name"], manifest.get("dim"), shard.get("rows"))
            return [Problem(file, reason) for file, reason in manifest.get("skipped", [])]
        except (OSError, ValueError, KeyError, TypeError):  # DamagedOutput is a ValueError
            return None
    if not path.is_file():
        return None
    try:
        metadata = format_of(path).read(path, []).schema.metadata or {}  # the stamp alone: cheap
        if metadata.get(_STAMP) != plan.stamp.encode():
            return None
        read_output_file(path)
        return [Problem(file, reason) for file, reason in json.loads(metadata.get(_SKIPPED, b"[]"))]
    except (OSError, ValueError):  # not an output file, or a damaged one
        return None


def embed_dataset(
    dataset: Dataset,
    representation: Representation,
    store: EmbeddingStore | None = None,
    config: EmbedConfig = EmbedConfig(),
    progress: Callable[[int], None] | None = None,
    plan: EmbedPlan | None = None,
) -> EmbeddingTable:
    """Vectors of every clip: from the store when it has them, computed in batches otherwise.

    Unreadable clips are skipped and reported (or raise when strict). plan: from
    `plan_embedding` with the same arguments, to avoid hashing twice.
    """
    start = time.perf_counter()
    plan = plan or plan_embedding(dataset, representation, config)
    stats = EmbedStats(clips=len(dataset))
    vectors: dict[int, np.ndarray] = dict(_vectors(dataset, representation, store, config, plan, stats, progress))
    rows = sorted(vectors)
    ordered = [vectors[i] for i in rows]
    if plan.pooling != FRAMES:
        ordered = np.stack(ordered) if ordered else np.zeros((0, representation.pooled_dim(plan.pooling)), np.float32)
    stats.seconds = time.perf_counter() - start
    clips = tuple(dataset.clips[i] for i in rows)
    return EmbeddingTable(representation.name, plan.pooling, dataset, clips, ordered, stats, plan.stamp)


def embed_to_folder(
    dataset: Dataset,
    representation: Representation,
    out: str | os.PathLike,
    store: EmbeddingStore | None = None,
    config: EmbedConfig = EmbedConfig(),
    progress: Callable[[int], None] | None = None,
    plan: EmbedPlan | None = None,
    file_format: str = "parquet",
    shard_bytes: int = SHARD_BYTES,
) -> tuple[Path, EmbedStats]:
    """Like `embed_dataset`, but the vectors stream into shards under `out` as they come
    (`out/<model>/part-NNNNN.parquet` + `_manifest.json`, `<model>_frames/` for frames), in
    completion order; nothing is kept in memory. file_format: "parquet" or "tfrecord"; shard_bytes:
    vector bytes per shard. Returns the output folder and the run's stats."""
    start = time.perf_counter()
    plan = plan or plan_embedding(dataset, representation, config)
    stats = EmbedStats(clips=len(dataset))
    dim = representation.dim if plan.pooling == FRAMES else representation.pooled_dim(plan.pooling)
    manifest = {
        "model": representation.name, "pooling": plan.pooling, "dim": dim, "key": plan.key, "stamp": plan.stamp,
        "identity": plan.identity, "decode": plan.decode, "frame_hop_seconds": representation.frame_hop_seconds,
    }
    writer = OutputWriter(out, manifest, file_format=file_format, shard_bytes=shard_bytes)
    for position, vector in _vectors(dataset, representation, store, config, plan, stats, progress):
        clip = dataset.clips[position]
        meta = {"file": dataset.relative(clip), "label": clip.label, "fold": clip.fold, "group": clip.group,
                "audio_sha256": plan.hashes[position]}
        writer.add(meta, vector)
    folder = writer.close([(p.path, p.reason) for p in stats.skipped])
    stats.seconds = time.perf_counter() - start
    return folder, stats


def expected_output(out: str | os.PathLike, representation: Representation, plan: EmbedPlan) -> Path:
    """The folder `embed_to_folder` writes for this plan inside `out`."""
    return output_folder(out, representation.name, plan.pooling)


def _vectors(dataset, representation, store, config, plan, stats, progress) -> Iterator[tuple[int, np.ndarray]]:
    """(clip position, vector) for every clip that has one: cached ones first, then computed.

    Fills `stats` as it goes (skipped clips included). Computed vectors go to the store in
    flushes (by count, by time, and on the way out, also on SIGINT / SIGTERM).
    """
    store = store if store is not None else EmbeddingStore()
    hashes = plan.hashes
    # The values per vector (per frame) a stored vector must have to be served.
    width = representation.dim if plan.pooling == FRAMES else representation.pooled_dim(plan.pooling)
    todo: list[int] = []
    readable = [i for i, h in enumerate(hashes) if h is not None]
    for begin in range(0, len(readable), _LOOKUP_CHUNK):
        chunk = readable[begin : begin + _LOOKUP_CHUNK]
        found = store.lookup(plan.key, [hashes[i] for i in chunk], width)
        for i in chunk:
            if hashes[i] in found:
                stats.cached += 1
                yield i, found[hashes[i]]
            else:
                todo.append(i)
        if progress and len(found):
            progress(sum(hashes[i] in found for i in chunk))
    for i, digest in enumerate(hashes):
        if digest is None:  # the file could not even be read to hash it
            stats.skipped.append(Problem(str(dataset.clips[i].path), _unreadable(dataset.clips[i].path)))
            if progress:
                progress(1)
    flusher = _Flusher(store, plan, config)
    duplicates: dict[str, list[int]] = {}  # the same audio under several names is computed once
    unique = []
    for i in todo:
        if hashes[i] in duplicates:
            duplicates[hashes[i]].append(i)
        else:
            duplicates[hashes[i]] = [i]
            unique.append(i)
    try:
        with _flush_on_termination():
            for position, vector, seconds in _compute(dataset, representation, plan, config, unique, stats, progress):
                flusher.add(hashes[position], vector)
                stats.audio_seconds += seconds
                for same in duplicates.pop(hashes[position]):
                    stats.computed += 1
                    if same != position and progress:
                        progress(1)
                    yield same, vector
    finally:
        flusher.flush()  # keep what was computed, even when the run is interrupted
        stats.quarantined.extend(str(p) for p in store.quarantined)
    for first, *others in duplicates.values():  # copies of a clip that was skipped
        for same in others:
            stats.skipped.append(Problem(str(dataset.clips[same].path), f"same audio as {dataset.clips[first].path}, "
                                                                         "which was skipped"))
            if progress:
                progress(1)


def _unreadable(path) -> str:
    """Why a file that could not be hashed cannot be used (its header's complaint if any)."""
    try:
        info(path)
    except AudioError as err:
        return err.problem
    return "cannot be read"


def _compute(dataset, representation, plan, config, positions, stats, progress):
    """(position, vector, audio seconds) for each clip at `positions` that embeds cleanly."""
    rate = representation.sample_rate
    pools: dict[int, list] = {}  # position -> [FramePool, windows still to come, samples]
    failed: set[int] = set()

    def plan_item(position: int):
        return plan_clip(str(dataset.clips[position].path), representation, digest=plan.hashes[position],
                         position=position, window_seconds=config.window_seconds,
                         max_duration=config.max_duration)

    def prepare(windows):
        return prepare_windows(representation, windows)

    def skip(position: int, reason: str) -> None:
        failed.add(position)
        pools.pop(position, None)
        stats.skipped.append(Problem(str(dataset.clips[position].path), reason))
        if progress:
            progress(1)

    def on_error(err: AudioError, position: int) -> None:
        skip(position, err.problem)

    batches = iter_window_batches(
        positions, plan_item, max_samples=int(config.batch_seconds * rate), max_windows=config.batch_size,
        on_error=None if config.strict else on_error, prepare=prepare, workers=config.workers,
    )
    for batch in batches:
        outputs = embed_windows(representation, batch)
        for row, (window, frames) in enumerate(zip(batch.windows, outputs)):
            if window.position in failed:
                continue
            entry = pools.setdefault(window.position, [FramePool(plan.pooling), window.count, 0])
            entry[0].add(frames, window.index)
            entry[1] -= 1
            if window.stop is None:  # the last window: the clip's length is now known
                entry[2] = window.read_start + int(batch.lengths[row])
            if entry[1]:
                continue
            del pools[window.position]
            try:
                vector = entry[0].result()
            except ValueError as err:  # no valid frame
                skip(window.position, str(err))
                continue
            if not np.isfinite(vector).all():
                reason = ("the model gave non-finite values (NaN or inf) for this clip; nothing was cached "
                          "(its samples may be extreme)")
                if config.strict:
                    raise NonFiniteVectors(f"{dataset.clips[window.position].path}: {reason}")
                skip(window.position, reason)
                continue
            if progress:
                progress(1)
            yield window.position, vector, entry[2] / rate


class _Flusher:
    """Computed vectors waiting for the store: written every `flush_every` clips or
    `flush_seconds` seconds, whichever comes first."""

    def __init__(self, store: EmbeddingStore, plan: EmbedPlan, config: EmbedConfig):
        self.store, self.plan, self.config = store, plan, config
        self.hashes: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.since = time.monotonic()

    def add(self, digest: str, vector: np.ndarray) -> None:
        self.hashes.append(digest)
        self.vectors.append(vector)
        if len(self.hashes) >= self.config.flush_every or time.monotonic() - self.since >= self.config.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if self.hashes:
            plan = self.plan
            about = {**plan.identity, "pooling": plan.pooling, "decode": plan.decode}
            self.store.add(plan.key, about, self.hashes, self.vectors, plan.pooling == FRAMES)
            self.hashes, self.vectors = [], []
        self.since = time.monotonic()


@contextlib.contextmanager
def _flush_on_termination():
    """SIGTERM becomes SystemExit(143) while embedding, so the `finally` that flushes runs (SIGINT
    already raises KeyboardInterrupt). Only in the main thread, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
