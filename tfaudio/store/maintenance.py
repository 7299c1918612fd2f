"""Seeing and tidying the embedding store: `tfaudio store info | compact | gc`."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tfaudio.store import (
    _INDEX,
    _QUARANTINE,
    COMPACT_SHARD_BYTES,
    EmbeddingStore,
    _atomic_write_table,
    _index_table,
    _write_shard,
    common_width,
    read_identity,
    vector_problem,
)

#: What `info` shows as the model of a key whose identity.json cannot be read.
DAMAGED_IDENTITY = "(identity damaged)"


@dataclass(frozen=True)
class KeyInfo:
    """One representation key of a store: what it is and what it holds."""

    key: str
    model: str
    pooling: str
    shards: int
    vectors: int
    bytes: int
    quarantined: int
    last_used: float  # seconds since the epoch


def info(store: EmbeddingStore) -> list[KeyInfo]:
    """Every key of the store with its size (reads the indexes, rebuilding stale ones). A key
    whose identity.json is damaged is listed with the model DAMAGED_IDENTITY and reported
    through the store's on_problem; its vectors stay usable (they are found by the key)."""
    import pyarrow.compute as pc

    rows = []
    for key in store.keys():
        folder = store._folder(key)
        about = read_identity(folder / "identity.json")
        if about is None:
            store.on_problem(f"{folder / 'identity.json'}: damaged (not a JSON object); key {key} is listed "
                             "without its model, and the next run that stores vectors under it writes it again")
            about = {"model": DAMAGED_IDENTITY}
        index = store._index(folder)
        shards = list(folder.glob("part-*.parquet"))
        rows.append(KeyInfo(
            key=key,
            model=str(about.get("model") or about.get("name") or "?"),
            pooling=str(about.get("pooling", "?")),
            shards=len(shards),
            vectors=pc.count_distinct(index.column("digest")).as_py() if index.num_rows else 0,
            bytes=sum(_size(p) for p in shards),
            quarantined=len(list((folder / _QUARANTINE).glob("*"))),
            last_used=(folder / "identity.json").stat().st_mtime,
        ))
    return rows


def compact(store: EmbeddingStore, keys: Sequence[str] = ()) -> dict[str, tuple[int, int]]:
    """Merge each key's shards into few large ones (duplicates dropped, oldest first kept) and
    index them: key -> (shards before, shards after). Safe beside a running embed: only the
    shards listed at the start are replaced, after their successors are in place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = {}
    for key in keys or store.keys():
        folder = store._folder(key)
        old = sorted(folder.glob("part-*.parquet"))
        if len(old) <= 1:
            done[key] = (len(old), len(old))
            continue
        seen: set[str] = set()
        new, pending, size, frames = [], [], 0, False
        width = common_width(first for first in map(_first_vector, old) if first is not None)
        for path in old:
            try:
                table = pq.read_table(path)
                rows = _rows(table)
                problem = next(filter(None, (vector_problem(vector, width) for _, vector in rows)), None)
                if problem:
                    raise ValueError(problem)
            except Exception as err:  # noqa: BLE001 - moved aside like in a lookup
                store._quarantine(path, err)
                continue
            for digest, vector in rows:
                if digest in seen:
                    continue
                seen.add(digest)
                frames = vector.ndim == 2
                pending.append((digest, vector))
                size += vector.nbytes
                if size >= COMPACT_SHARD_BYTES:
                    new.append(_write_shard(folder, [d for d, _ in pending], [v for _, v in pending], frames, "c"))
                    pending, size = [], 0
        if pending:
            new.append(_write_shard(folder, [d for d, _ in pending], [v for _, v in pending], frames, "c"))
        index = [pq.read_table(folder / name, columns=["audio_sha256"]).column("audio_sha256").to_pylist()
                 for name in new]
        _atomic_write_table(folder / _INDEX, pa.concat_tables(
            [_index_table([], ""), *(_index_table(d, name) for d, name in zip(index, new))]).unify_dictionaries())
        for path in old:
            path.unlink(missing_ok=True)
        done[key] = (len(old), len(new))
    return done


def gc(store: EmbeddingStore, *, keys: Sequence[str] = (), unused_days: float | None = None,
       quarantined: bool = False, dry_run: bool = False) -> list[tuple[Path, int]]:
    """Delete what the store no longer needs; returns (path, bytes) of what was (or would be) removed.

    Always: temporary files an interrupted write left (older than an hour, so never a live
    write's). quarantined: the damaged shards moved aside. keys / unused_days: whole keys, named
    or not used by a lookup for that many days.
    """
    removed: list[tuple[Path, int]] = []
    now = time.time()
    for key in store.keys():
        folder = store._folder(key)
        unused = unused_days is not None and now - (folder / "identity.json").stat().st_mtime > unused_days * 86400
        if key in keys or unused:
            removed += [(p, _size(p)) for p in sorted(folder.rglob("*")) if p.is_file()]
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
            continue
        doomed = [p for p in folder.glob(".*.tmp") if now - p.stat().st_mtime > 3600]
        if quarantined:
            doomed += sorted((folder / _QUARANTINE).glob("*"))
        for path in doomed:
            removed.append((path, _size(path)))
            if not dry_run:
                path.unlink(missing_ok=True)
    return removed


def _rows(table) -> list[tuple[str, object]]:
    """(audio sha256, vector float32 [dim] or [frames, dim]) per row of a shard's table."""
    counts = table.column("frames").to_numpy()
    vectors = table.column("vector").to_numpy(zero_copy_only=False)
    return [(digest, vector.reshape(int(count), -1) if count >= 0 else vector)
            for digest, count, vector in zip(table.column("audio_sha256").to_pylist(), counts, vectors)]


def _first_vector(path: Path):
    """The first vector of a shard (reading its first row group), or None if it cannot be read:
    what `compact` takes the key's vector length from, by majority."""
    import pyarrow.parquet as pq

    try:
        rows = _rows(pq.ParquetFile(path).read_row_group(0, columns=["audio_sha256", "frames", "vector"]))
    except Exception:  # noqa: BLE001 - the shard is quarantined when compact reads it
        return None
    return rows[0][1] if rows else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


