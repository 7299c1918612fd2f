"""Sharded embedding outputs, written as the vectors come: memory does not grow with the archive.

Layout (`tfaudio embed --out DIR`), read back by `tfaudio.store.read_embeddings`:

    DIR/<model>/part-00000.parquet ...   (DIR/<model>_frames/ for frame-level rows)
    DIR/<model>/_manifest.json           shards, representation identity, skipped files, stamp

Pooled rows: file, label, fold, group, audio_sha256, e0000, e0001, ...; frame rows add `frame`
(its index in the clip) and `start` (seconds) before the vector columns. Each shard is written
by its output format (`tfaudio.store.formats`: `part-NNNNN.parquet`, or `.tfrecord` files of
`tf.train.Example`s with the same fields).

Nothing is written in place: shards go to `DIR/.<model>.partial/` (each one a temporary name
renamed when whole, the manifest rewritten after each so an interrupted run's output can be
inspected), and `close()` swaps the finished folder in for the previous output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tfaudio.store import FRAMES, MANIFEST, output_name
from tfaudio.store.formats import output_format

MANIFEST_FORMAT = "tfaudio-embeddings/1"
#: Bytes of vectors per shard.
SHARD_BYTES = 64 << 20


def folder_name(model: str, pooling: str) -> str:
    """The name of a model's output folder: `<model>`, or `<model>_frames` for frame rows."""
    return output_name(model) + ("_frames" if pooling == FRAMES else "")


def output_folder(out: str | os.PathLike, model: str, pooling: str) -> Path:
    """Where `OutputWriter` puts a model's output inside `out`."""
    return Path(out) / folder_name(model, pooling)


def output_stamp(key: str, rows: Iterable[tuple]) -> str:
    """A digest of the store key and every output row (file, label, fold, group, audio sha256 or
    None), in dataset order: an output carrying the same stamp holds exactly what a run would write."""
    lines = ["\t".join(str(value) for value in row) for row in rows]
    # surrogateescape: a file or class name that is not UTF-8 hashes as its bytes on disk
    return hashlib.sha256("\n".join([key, *lines]).encode("utf-8", "surrogateescape")).hexdigest()


def manifest_for(*, model: str, pooling: str, dim: int, key: str, identity: dict, frame_hop_seconds: float,
                 stamp: str, shards: list[dict], skipped: list, file_format: str = "parquet",
                 complete: bool = True, **extra) -> dict:
    """The `_manifest.json` of an output (the same fields whichever runner wrote it)."""
    return {"format": MANIFEST_FORMAT, "file_format": file_format, "model": model, "pooling": pooling,
            "dim": dim, "key": key, "stamp": stamp, "representation": identity,
            "frame_hop_seconds": frame_hop_seconds, **extra, "shards": shards, "skipped": skipped,
            "complete": complete}


def rows_table(columns: dict[str, Sequence], vectors: Sequence[np.ndarray], pooling: str,
               starts: Sequence[np.ndarray] | None = None):
    """One shard's pyarrow table.

    columns: per clip lists "file", "label", "fold", "group", "audio_sha256"; vectors: per clip
    float32 [dim], or for pooling "frames" float32 [frames, dim], which become one row per frame
    with its index `frame` and `start` in seconds (starts: float [frames] per clip).
    """
    import pyarrow as pa

    names = ("file", "label", "fold", "group", "audio_sha256")
    if pooling == FRAMES:
        counts = [len(v) for v in vectors]
        repeat = np.repeat(np.arange(len(counts)), counts)
        values = {name: [columns[name][i] for i in repeat] for name in names}
        matrix = np.concatenate([np.asarray(v, np.float32).reshape(len(v), -1) for v in vectors]) if vectors else None
    else:
        values = {name: list(columns[name]) for name in names}
        matrix = np.stack([np.asarray(v, np.float32) for v in vectors]) if vectors else None
    table = {name: pa.array(values[name], pa.int64() if name == "fold" else pa.string()) for name in names}
    if pooling == FRAMES:
        table["frame"] = pa.array(np.concatenate([np.arange(n) for n in counts]) if counts else [], pa.int64())
        table["start"] = pa.array(np.concatenate([np.asarray(s, np.float64) for s in starts]) if counts else [],
                                  pa.float64())
    for i in range(0 if matrix is None else matrix.shape[1]):  # column-wise from numpy: fast
        table[f"e{i:04d}"] = pa.array(matrix[:, i])
    return pa.table(table)


def shard_name(number: int | str, file_format: str) -> str:
    """`part-<number>` with the suffix of `file_format` (a name of `tfaudio.store.formats.FORMATS`)."""
    return f"part-{number}{output_format(file_format).suffix}"


def write_shard(folder: str | os.PathLike, name: str, table, file_format: str = "parquet") -> str:
    """Write one shard atomically (temporary name, then rename) in `file_format`; returns its path."""
    folder = Path(folder)
    temporary = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        output_format(file_format).write(temporary, table)
        os.replace(temporary, folder / name)
    finally:
        temporary.unlink(missing_ok=True)
    return str(folder / name)


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write `_manifest.json` atomically."""
    temporary = folder / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        temporary.write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(temporary, folder / MANIFEST)
    finally:
        temporary.unlink(missing_ok=True)


def clip_frame_starts(count: int, frame_hop_seconds: float) -> np.ndarray:
    """float64 [count]: the start of each frame of a whole clip, in seconds, on the model's frame
    grid (what a clip's frames read back from the store are given)."""
    return np.arange(count) * frame_hop_seconds


def publish(partial: Path, folder: Path) -> None:
    """Put the finished output `partial` in place of `folder` (the old one is removed after)."""
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(folder, old)
    os.replace(partial, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class OutputWriter:
    """Streams one model's output rows into shards, then publishes the folder.

    manifest: what the manifest says besides its shards and skipped files (model, pooling, dim,
    key, stamp, representation, frame_hop_seconds). Rows are buffered up to SHARD_BYTES.
    """

    def __init__(self, out: str | os.PathLike, manifest: dict, *, file_format: str = "parquet",
                 shard_bytes: int = SHARD_BYTES):
        output_format(file_format)  # a ValueError naming the formats, before anything is written
        self.folder = output_folder(out, manifest["model"], manifest["pooling"])
        self.partial = self.folder.with_name(f".{self.folder.name}.partial")
        shutil.rmtree(self.partial, ignore_errors=True)  # an interrupted run's: the store kept its work
        self.partial.mkdir(parents=True)
        self.file_format = file_format
        self.shard_bytes = shard_bytes
        self.manifest = manifest_for(**manifest, file_format=file_format, shards=[], skipped=[], complete=False)
        self._rows: list[tuple[dict, np.ndarray]] = []
        self._bytes = 0

    def add(self, meta: dict, vector: np.ndarray) -> None:
        """One clip: meta (file, label, fold, group, audio_sha256) and its vector (float32 [dim])
        or, for frame-level output, its frames (float32 [frames, dim])."""
        self._rows.append((meta, vector))
        self._bytes += vector.nbytes
        if self._bytes >= self.shard_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one shard (and the manifest naming it)."""
        if not self._rows:
            return
        columns = {name: [meta[name] for meta, _ in self._rows] for name in self._rows[0][0]}
        vectors = [vector for _, vector in self._rows]
        hop = self.manifest["frame_hop_seconds"]
        starts = [clip_frame_starts(len(v), hop) for v in vectors] if self.manifest["pooling"] == FRAMES else None
        table = rows_table(columns, vectors, self.manifest["pooling"], starts)
        name = shard_name(f"{len(self.manifest['shards']):05d}", self.file_format)
        write_shard(self.partial, name, table, self.file_format)
        self.manifest["shards"].append({"name": name, "rows": table.num_rows})
        write_manifest(self.partial, self.manifest)
        self._rows, self._bytes = [], 0

    def close(self, skipped: Sequence[tuple[str, str]]) -> Path:
        """Write what is left, the complete manifest (with the skipped files), and publish."""
        self.flush()
        self.manifest["skipped"] = [list(p) for p in skipped]
        self.manifest["complete"] = True
        write_manifest(self.partial, self.manifest)
        publish(self.partial, self.folder)
        return self.folder
