"""Output folders of the Beam pipeline on any filesystem: shards written through the local
writer, earlier output found for resuming (in any output format: each shard is read by the
format its suffix names, `tfaudio.store.formats`), and the final step that names the shards in
the manifest and publishes the folder.

Local folders go through `tfaudio.pipeline.writer` as they are (atomic renames); on a Beam
filesystem (gs://, s3://, ...) each file is written locally by the same functions and uploaded
(an object appears whole when its upload closes), and publishing copies the work folder's files
over the final folder's, which is not atomic there: the manifest is written last.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tfaudio.pipeline import writer
from tfaudio.pipeline.sources import is_remote
from tfaudio.store import FRAMES, MANIFEST
from tfaudio.store.formats import format_of, is_vector_column

#: Name of the dead-letter file beside the shards: one JSON object per unreadable clip.
DEAD_LETTER = "_dead_letter.jsonl"
#: The clip listing a run reads (one JSON array per line), written by the driver into the work folder.
CLIPS = "_clips.jsonl"
#: digest -> shard of an earlier output holding its vectors (one JSON pair per line), for resuming.
EARLIER = "_earlier.jsonl"
#: The representation key of a work folder, so a resumed run reuses only its own shards.
KEY_FILE = "_key"
#: Clips the driver could not hand to the workers (dead letters written before the run).
REFUSED = "_refused.jsonl"
#: The clips a finished run could not account for (written instead of publishing the output).
UNACCOUNTED = "_unaccounted.json"


def join(folder: str, *names: str) -> str:
    return posixpath.join(folder, *names) if is_remote(folder) else os.path.join(folder, *names)


def _filesystems():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def exists(path: str) -> bool:
    return _filesystems().exists(path) if is_remote(path) else os.path.exists(path)


def read_bytes(path: str) -> bytes:
    if not is_remote(path):
        return Path(path).read_bytes()
    with _filesystems().open(path) as stream:
        return stream.read()


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file: atomically (temporary name and rename) here, one upload there."""
    if is_remote(path):
        with _filesystems().create(path) as stream:
            stream.write(data)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    Path(temporary).write_bytes(data)
    os.replace(temporary, path)


def listing(folder: str, pattern: str) -> list[str]:
    """Paths in `folder` (not below it) matching a glob pattern, sorted."""
    if not is_remote(folder):
        return sorted(str(p) for p in Path(folder).glob(pattern))
    (result,) = _filesystems().match([join(folder, pattern)])
    return sorted(m.path for m in result.metadata_list)


def delete(paths: list[str]) -> None:
    remote = [p for p in paths if is_remote(p)]
    if remote:
        _filesystems().delete(remote)
    for path in paths:
        if not is_remote(path):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                Path(path).unlink(missing_ok=True)


def output_folder(out: str, model: str, pooling: str) -> str:
    """`writer.output_folder` for local folders and Beam filesystem URLs alike."""
    return join(out.rstrip("/") if is_remote(out) else out, writer.folder_name(model, pooling))


def write_rows(folder: str, name: str, rows: list, pooling: str, frame_hop_seconds: float, file_format: str) -> dict:
    """Rows (clip key, vector) -> one shard `name` in `folder`, as the local writer writes one:
    {"name", "rows" (table rows), "ids" ((position, digest) per clip, for the final step)}."""
    columns = {name: [key[i] for key, _ in rows] for i, name in enumerate(_KEY_COLUMNS, start=2)}
    vectors = [vector for _, vector in rows]
    starts = [writer.clip_frame_starts(len(v), frame_hop_seconds) for v in vectors] if pooling == FRAMES else None
    table = writer.rows_table(columns, vectors, pooling, starts)
    if is_remote(folder):
        with tempfile.TemporaryDirectory(prefix="tfaudio-shard-") as local:
            write_bytes(join(folder, name), Path(writer.write_shard(local, name, table, file_format)).read_bytes())
    else:
        writer.write_shard(folder, name, table, file_format)
    return {"name": name, "rows": table.num_rows, "ids": [(key[0], key[6]) for key, _ in rows]}


# Output columns at places 2.. of a clip key (position, path, file, label, fold, group, audio_sha256).
_KEY_COLUMNS = ("file", "label", "fold", "group", "audio_sha256")


def publish(work: str, final: str) -> None:
    """Put the finished work folder in place of the final one: `writer.publish` for local
    folders; on a Beam filesystem the old files are deleted and the new ones renamed, the
    manifest last (object stores have no folder rename)."""
    if not is_remote(work):
        writer.publish(Path(work), Path(final))
        return
    filesystems = _filesystems()
    old = listing(final, "*") if exists(join(final, MANIFEST)) else []
    delete(old)
    names = [os.path.basename(p) for p in listing(work, "*")]
    names.sort(key=lambda n: n == MANIFEST)
    filesystems.rename([join(work, n) for n in names], [join(final, n) for n in names])
    delete([work])


@contextlib.contextmanager
def local_file(path: str) -> Iterator[Path]:
    """`path` as a local file for a format's reader: itself, or a temporary copy of a remote one."""
    if not is_remote(path):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="tfaudio-shard-") as folder:
        local = Path(folder) / posixpath.basename(path)
        local.write_bytes(read_bytes(path))
        yield local


def read_shard(path: str, columns: list[str] | None = None):
    """One shard of an output (any format, any filesystem) as a pyarrow table."""
    with local_file(path) as local:
        return format_of(path).read(local, columns)


def read_shard_vectors(path: str, digests: set[str], pooling: str) -> dict[str, np.ndarray]:
    """digest -> vector (float32 [dim], or [frames, dim] for frame rows) for the wanted digests
    found in one shard of an earlier output; the first row of a digest wins."""
    table = read_shard(path)
    names = [n for n in table.column_names if is_vector_column(n)]
    digest_column = table.column("audio_sha256").to_pylist()
    matrix = np.stack([table.column(n).to_numpy() for n in names], axis=1).astype(np.float32)
    found: dict[str, list[np.ndarray]] = {}
    first_file: dict[str, str] = {}
    files = table.column("file").to_pylist()
    for row, digest in enumerate(digest_column):
        if digest not in digests:
            continue
        if pooling != FRAMES:
            found.setdefault(digest, [matrix[row]])
        elif first_file.setdefault(digest, files[row]) == files[row]:  # frames of one clip only
            found.setdefault(digest, []).append(matrix[row])
    return {d: (np.stack(v) if pooling == FRAMES else v[0]) for d, v in found.items()}


def earlier_sources(final: str, work_folders: list[str], key: str) -> dict[str, str]:
    """digest -> the shard holding its vectors, over the earlier output of this representation
    key (the final folder when its manifest has the key, and interrupted runs' work folders)."""
    shards = []
    manifest = join(final, MANIFEST)
    if exists(manifest) and json.loads(read_bytes(manifest)).get("key") == key:
        shards += [join(final, s["name"]) for s in json.loads(read_bytes(manifest))["shards"]]
    for folder in work_folders:
        marker = join(folder, KEY_FILE)
        if exists(marker) and read_bytes(marker).decode().strip() == key:
            shards += listing(folder, "part-*")
    sources: dict[str, str] = {}
    for shard in shards:
        try:
            digests = read_shard(shard, ["audio_sha256"]).column(0).to_pylist()
        except Exception:  # noqa: BLE001 - a shard cut short by a crash, whatever its reader raises: recomputed
            continue
        for digest in digests:
            sources.setdefault(digest, shard)
    return sources


class RowShards:
    """Rows (clip key, vector) buffered into shards of a work folder, each shard written once its
    vectors reach `shard_bytes` or its first row is `flush_seconds` old, whichever comes first:
    a killed run loses at most that much of a worker's work (the local runner flushes its store
    on the same clock). Names carry a random id per instance, so workers and retried bundles
    never overwrite each other's shards.
    """

    def __init__(self, folder: str, pooling: str, frame_hop_seconds: float, file_format: str,
                 flush_seconds: float, shard_bytes: int = writer.SHARD_BYTES):
        self.folder, self.pooling, self.hop, self.format = folder, pooling, frame_hop_seconds, file_format
        self.flush_seconds, self.shard_bytes = flush_seconds, shard_bytes
        self.prefix = uuid.uuid4().hex[:8]
        self.count = 0
        self.rows: list = []
        self.bytes = 0
        self.since = 0.0

    def add(self, key: tuple, vector: np.ndarray) -> list[dict]:
        """Buffer one row; the descriptors of the shards this wrote (none or one)."""
        if not self.rows:
            self.since = time.monotonic()
        self.rows.append((key, vector))
        self.bytes += vector.nbytes
        return self.flush() if self.bytes >= self.shard_bytes else self.due()

    def due(self) -> list[dict]:
        """Write the buffered rows if the oldest has waited `flush_seconds`; the descriptors written."""
        return self.flush() if self.rows and time.monotonic() - self.since >= self.flush_seconds else []

    def flush(self) -> list[dict]:
        """Write the buffered rows as one shard: [its descriptor] ([] when nothing was buffered)."""
        if not self.rows:
            return []
        name = writer.shard_name(f"{self.prefix}-{self.count:05d}", self.format)
        written = write_rows(self.folder, name, self.rows, self.pooling, self.hop, self.format)
        self.count += 1
        self.rows, self.bytes = [], 0
        return [written]
