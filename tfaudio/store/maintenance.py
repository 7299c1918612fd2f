"""Seeing and tidying the embedding store: `tfaudio store info | compact | gc`."""

from __future__ import annotations

import json
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
)


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
    """Every key of the store with its size (reads the indexes, rebuilding stale ones)."""
    import pyarrow.compute as pc

    rows = []
    for key in store.keys():
        folder = store._folder(key)
        about = json.loads((folder / "identity.json").read_text())
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
        for path in old:
            try:
                table = pq.read_table(path)
            except Exception as err:  # noqa: BLE001 - moved aside like in a lookup
                store._quarantine(path, err)
                continue
            counts = table.column("frames").to_numpy()
            for digest, count, vector in zip(table.column("audio_sha256").to_pylist(), counts,
                                             table.column("vector").to_numpy(zero_copy_only=False)):
                if digest in seen:
                    continue
                seen.add(digest)
                frames = count >= 0
                pending.append((digest, vector.reshape(int(count), -1) if frames else vector))
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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


