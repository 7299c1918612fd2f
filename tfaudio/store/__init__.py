"""The embedding store, and the embedding outputs on disk.

* this module: the cache of vectors (`EmbeddingStore`, below) and `read_embeddings`, which reads
  an output of `tfaudio embed --out DIR` back;
* `formats.py`: the one table of output formats (name, suffix, writer, reader) that every writer
  and reader of outputs goes through;
* `maintenance.py`: `tfaudio store info | compact | gc`.

The cache: every vector computed once, kept safe, found without reading it all.

Vectors are keyed by (audio content hash, representation key). The representation key is a
digest of everything that determines the numbers: the backend's `identity()` (model, weights
digest, front-end parameters, layer), the pooling, and how the audio was decoded. Each key has
a folder of Parquet shards:

    <root>/<key>/identity.json              what the key stands for (human-readable)
    <root>/<key>/part-<time>-<id>.parquet   columns audio_sha256, frames, vector (list<float>)
    <root>/<key>/_index.parquet             sha256 (32 bytes) -> (shard, row), for the shards it covers
    <root>/<key>/quarantine/                shards that could not be read or held a wrong vector, moved aside

A shard is written to a temporary name and renamed into place, so a crash leaves either a
whole shard or none, and an interrupted run resumes by computing only the hashes that no shard
holds yet. The index is a cache of the shards, never the truth: a lookup reads it (one column
of hashes, a few MB for 100,000 vectors), reads the hash column of the few shards written since
it was last rebuilt, then only the row groups that hold the wanted rows. So a cached re-run
costs what it asks for, not what the store holds. Shards written by concurrent runs are found
by listing the folder, so two writers never lose each other's vectors. What is read is checked:
a shard that does not parse, or that holds a vector of the wrong length or with a value that is
not finite, is damaged: it is reported by path, moved to quarantine/ and its clips are
recomputed. A damaged identity.json is reported and written again by the next run that stores
vectors under the key.

`tfaudio store info | compact | gc` (`tfaudio.store.maintenance`) show and tidy the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tfaudio.assets import sha256_of, tfaudio_home
from tfaudio.data.dataset import Clip
from tfaudio.errors import TfaudioWarning
from tfaudio.store.formats import FORMATS, DamagedOutput, check_rows, format_of

#: A pooling name, or "frames" for the frame-level embeddings themselves.
FRAMES = "frames"


# Parquet schema metadata of written tables: the plan's stamp and the clips skipped.
_STAMP, _SKIPPED = b"tfaudio.stamp", b"tfaudio.skipped"

_INDEX = "_index.parquet"
_QUARANTINE = "quarantine"
#: Shards the index may miss before a lookup rebuilds it (each costs one hash column read).
REINDEX_AFTER = 8
#: Bytes of vectors per Parquet row group: what a lookup reads to get one row.
ROW_GROUP_BYTES = 1 << 20
#: Bytes of vectors per shard written by `compact`.
COMPACT_SHARD_BYTES = 128 << 20
#: Sharded outputs (`tfaudio embed --out DIR`): DIR/<output_name(model)>/ holds shards and this.
MANIFEST = "_manifest.json"


class StoreWarning(TfaudioWarning):
    """Something in the store needed repair (a damaged shard moved aside); the message names it."""


def default_root() -> Path:
    """<tfaudio home>/embeddings: see `tfaudio.assets.tfaudio_home`."""
    return tfaudio_home() / "embeddings"


def representation_key(identity: dict, pooling: str, decode: dict) -> str:
    """16 hex digits naming one (representation, pooling, decoding) combination."""
    blob = json.dumps({"identity": identity, "pooling": pooling, "decode": decode}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class EmbeddingStore:
    """Parquet shards under `root` (default: `default_root()`).

    on_problem: called with a message when a damaged shard is moved aside (default: a
    StoreWarning); `quarantined` lists the shards moved aside by this object.
    """

    def __init__(self, root: str | os.PathLike | None = None, on_problem: Callable[[str], None] | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.on_problem = on_problem or (lambda message: warnings.warn(StoreWarning(message), stacklevel=3))
        self.quarantined: list[Path] = []

    def _folder(self, key: str) -> Path:
        return self.root / key

    def keys(self) -> list[str]:
        """The representation keys held, sorted."""
        return sorted(p.parent.name for p in self.root.glob("*/identity.json"))

    # -- reading -------------------------------------------------------------------------------

    def lookup(self, key: str, hashes: Iterable[str], dim: int | None = None) -> dict[str, np.ndarray]:
        """The stored vectors among `hashes`: hash -> float32 [dim] (or [frames, dim]).

        dim: the values each vector (each frame, for frame-level keys) must have; None: the
        length most of the vectors read have. A shard holding a vector of another length or a
        value that is not finite is moved aside (`quarantined`) and its vectors are not served,
        so the clips are recomputed.
        """
        folder = self._folder(key)
        wanted = set(hashes)
        if not wanted or not folder.is_dir():
            return {}
        _touch(folder)
        read: dict[str, dict[str, np.ndarray]] = {}
        for shard, rows in self._locate(folder, wanted).items():
            try:
                read[shard] = _read_rows(folder / shard, rows)
            except FileNotFoundError:  # compacted or collected meanwhile: found again next time
                continue
            except Exception as err:  # noqa: BLE001 - any unreadable shard is moved aside, not fatal
                self._quarantine(folder / shard, err)
        expected = dim if dim is not None else common_width(v for vectors in read.values() for v in vectors.values())
        found: dict[str, np.ndarray] = {}
        for shard, vectors in read.items():
            problem = next(filter(None, (vector_problem(v, expected) for v in vectors.values())), None)
            if problem:
                self._quarantine(folder / shard, ValueError(problem))
            else:
                found.update(vectors)
        return found

    def contains(self, key: str, hashes: Iterable[str]) -> set[str]:
        """The hashes among `hashes` that the store holds for `key` (reads the index, no vectors)."""
        folder = self._folder(key)
        wanted = set(hashes)
        if not wanted or not folder.is_dir():
            return set()
        return {digest for rows in self._locate(folder, wanted).values() for _, digest in rows}

    def _locate(self, folder: Path, wanted: set[str]) -> dict[str, list[tuple[int, str]]]:
        """shard name -> [(row, hash)] for the wanted hashes; each hash once, from its oldest shard."""
        import pyarrow as pa
        import pyarrow.compute as pc

        index = self._index(folder)
        keys = pa.array([key for key in map(_digest_bytes, sorted(wanted)) if key], pa.binary(32))
        matches = index.filter(pc.is_in(index.column("digest"), value_set=keys))
        located: dict[str, list[tuple[int, str]]] = {}
        seen: set[bytes] = set()
        order = sorted(zip(matches.column("shard").to_pylist(), matches.column("row").to_pylist(),
                           matches.column("digest").to_pylist()))
        for shard, row, key in order:
            if key not in seen:
                seen.add(key)
                located.setdefault(shard, []).append((row, key.hex()))
        return located

    def _index(self, folder: Path):
        """The index table (digest: 32 bytes, shard, row) of every readable shard in `folder`.

        Reads `_index.parquet`, drops entries of shards that are gone, adds the shards it does
        not cover by reading their hash column, and rewrites it when it missed REINDEX_AFTER
        shards or more (atomically: concurrent rewrites each leave a valid index).
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        shards = sorted(p.name for p in folder.glob("part-*.parquet"))
        index = _index_table([], "")
        if (folder / _INDEX).exists():
            try:
                index = pq.read_table(folder / _INDEX, read_dictionary=["shard"])
                index = index.cast(_index_table([], "").schema)
            except Exception as err:  # noqa: BLE001 - the index is a cache: rebuilt from the shards
                self.on_problem(f"{folder / _INDEX}: unreadable index ({err}); rebuilding it from the shards")
                index = _index_table([], "")
        covered = _shards_in(index)
        stale = bool(covered - set(shards))
        if stale:
            keep = pc.is_in(index.column("shard").cast(pa.string()), value_set=pa.array(shards, pa.string()))
            index = index.filter(keep)
        missing = [name for name in shards if name not in covered]
        parts = [index]
        for name in missing:
            try:
                digests = pq.read_table(folder / name, columns=["audio_sha256"]).column("audio_sha256")
            except FileNotFoundError:
                stale = True
                continue
            except Exception as err:  # noqa: BLE001 - a damaged shard is moved aside
                self._quarantine(folder / name, err)
                stale = True
                continue
            parts.append(_index_table(digests.to_pylist(), name))
        index = pa.concat_tables(parts).unify_dictionaries() if len(parts) > 1 else index
        if stale or len(missing) >= REINDEX_AFTER:
            try:
                _atomic_write_table(folder / _INDEX, index)
            except OSError:  # a read-only store still answers lookups
                pass
        return index

    def _quarantine(self, path: Path, err: Exception) -> None:
        target = path.parent / _QUARANTINE / path.name
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
        except FileNotFoundError:
            return  # another process moved it first
        except OSError:
            target = path  # cannot move it (read-only store): still skip it
        self.quarantined.append(target)
        detail = _first_line(err)
        self.on_problem(f"{path}: damaged shard ({detail}); moved to {target}, its clips will be recomputed")

    # -- writing -------------------------------------------------------------------------------

    def add(self, key: str, identity: dict, hashes: Sequence[str], vectors: Sequence[np.ndarray], frames: bool = False):
        """Write one shard atomically. vectors: float32 [dim] each, or [frames, dim] when frames.

        Raises ValueError for a non-finite vector (nothing is written): a NaN cached is a NaN
        served forever after.
        """
        arrays = [np.asarray(v, np.float32) for v in vectors]
        bad = [h for h, v in zip(hashes, arrays) if not np.isfinite(v).all()]
        if bad:
            raise ValueError(f"refusing to store non-finite vectors (NaN or inf) for audio {', '.join(bad[:3])}")
        if not arrays:
            return
        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        about = folder / "identity.json"
        if read_identity(about) is None:  # missing, or damaged: written (again)
            _atomic_write(about, json.dumps(identity, indent=2, sort_keys=True, default=str).encode())
        _write_shard(folder, list(hashes), arrays, frames)


def read_identity(path: Path) -> dict | None:
    """A key's identity.json, or None when it is missing or damaged (not a JSON object)."""
    try:
        about = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return about if isinstance(about, dict) else None


def vector_problem(vector: np.ndarray, width: int | None) -> str | None:
    """Why a vector read back (float32 [dim], or [frames, dim]) cannot be served, or None.

    width: the values it (each of its frames) must have; None: any."""
    if vector.size == 0:
        return "an empty vector"
    if width is not None and vector.shape[-1] != width:
        return f"a vector of {vector.shape[-1]} values where {width} are expected"
    if not np.isfinite(vector).all():
        return "a vector with values that are not finite (NaN or inf)"
    return None


def common_width(vectors: Iterable[np.ndarray]) -> int | None:
    """The length (per frame) that most of `vectors` have; None for none."""
    counts: dict[int, int] = {}
    for vector in vectors:
        counts[vector.shape[-1]] = counts.get(vector.shape[-1], 0) + 1
    return max(counts, key=counts.get) if counts else None


# -- reading embedding outputs (`tfaudio embed --out DIR`) ---------------------------------------


def output_name(model: str) -> str:
    """A file or folder name for a model name such as hf:facebook/wav2vec2-base."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)


def read_embeddings(path: str | os.PathLike, model: str | None = None, *, frames: bool = False,
                    batches: bool = False):
    """An embedding output as a pandas DataFrame, or with batches=True an iterator of
    pyarrow RecordBatches (memory of one batch).

    path: an output folder with model (it holds `<model>/` shards or a single `<model>.parquet`;
    frames: the frame-level output `<model>_frames`), a sharded folder itself (with
    `_manifest.json`), or a single output file. Files of every format of `formats.FORMATS` are
    read (TFRecord shards too). Sharded outputs are read through their manifest, so shards of
    an unfinished run that the manifest does not name are never mixed in. Every file read is
    checked (`formats.check_rows`: the manifest's vector length and row count, finite values):
    a damaged one raises `formats.DamagedOutput` naming it.
    """
    path = Path(path)
    if model is not None:
        name = output_name(model) + ("_frames" if frames else "")
        candidates = [path / name, *(path / f"{name}{fmt.suffix}" for fmt in FORMATS.values() if fmt.single_file)]
        found = next((c for c in candidates if (c / MANIFEST).exists() or c.is_file()), None)
        if found is None:
            looked = " and ".join([f"{name}/{MANIFEST}", *(c.name for c in candidates[1:])])
            raise FileNotFoundError(f"no {name} output in {path} (looked for {looked})")
        path = found
    if path.is_file():
        return _read_files([(path, None)], batches)
    if not (path / MANIFEST).exists():
        raise FileNotFoundError(f"{path}: neither an output file nor a sharded output (no {MANIFEST})")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        parts = [(path / shard["name"], shard.get("rows")) for shard in manifest["shards"]]
        dim = manifest.get("dim")
    except (ValueError, KeyError, TypeError) as err:
        raise DamagedOutput(path / MANIFEST, f"not a manifest: {err}") from None
    return _read_files(parts, batches, dim)


def _read_files(parts: list[tuple[Path, int | None]], batches: bool, dim: int | None = None):
    """Output files (each read by the format its suffix names) with the rows each should hold
    (None: any) as one DataFrame, or batches; each checked by `formats.check_rows`."""
    import pyarrow as pa

    if batches:
        return (batch for path, _ in parts for batch in _checked_batches(path, dim))
    tables = [read_output_file(path, dim, rows) for path, rows in parts]
    if not tables:
        return pa.table({}).to_pandas()
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def read_output_file(path: Path, dim: int | None = None, rows: int | None = None):
    """One output file as a pyarrow Table, checked (`formats.check_rows`); DamagedOutput naming
    it when it cannot be read or holds wrong rows."""
    try:
        table = format_of(path).read(path, None)
    except FileNotFoundError:
        raise DamagedOutput(path, "the file is missing") from None
    except Exception as err:  # noqa: BLE001 - pyarrow and TensorFlow raise many kinds for a damaged file
        raise DamagedOutput(path, _first_line(err)) from None
    check_rows(table, path, dim, rows)
    return table


def _checked_batches(path: Path, dim: int | None):
    try:
        for batch in format_of(path).batches(path):
            check_rows(batch, path, dim)
            yield batch
    except DamagedOutput:
        raise
    except Exception as err:  # noqa: BLE001 - as in read_output_file
        raise DamagedOutput(path, _first_line(err)) from None


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def hash_clips(clips: Sequence[Clip], workers: int = 4) -> list[str | None]:
    """sha256 per clip file (None where the file cannot be read)."""

    def digest(clip: Clip) -> str | None:
        try:
            return sha256_of(clip.path)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(digest, clips))


def _read_rows(path: Path, rows: list[tuple[int, str]]) -> dict[str, np.ndarray]:
    """hash -> vector for the (row, hash) pairs of one shard, reading only their row groups."""
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    starts = np.cumsum([0] + [handle.metadata.row_group(i).num_rows for i in range(handle.num_row_groups)])
    group_of = {row: int(np.searchsorted(starts, row, side="right")) - 1 for row, _ in rows}
    groups = sorted(set(group_of.values()))
    table = handle.read_row_groups(groups, columns=["frames", "vector"])
    placed = dict(zip(groups, np.cumsum([0] + [starts[g + 1] - starts[g] for g in groups])))  # group -> table row
    frames = table.column("frames").to_numpy()
    vectors = table.column("vector").combine_chunks()
    flat, offsets = vectors.values.to_numpy(), vectors.offsets.to_numpy()
    found = {}
    for row, digest in rows:
        local = int(placed[group_of[row]] + row - starts[group_of[row]])
        array = flat[offsets[local] : offsets[local + 1]]
        found[digest] = array.reshape(int(frames[local]), -1) if frames[local] >= 0 else array
    return found


def _touch(folder: Path) -> None:
    """Mark a key used now (what `gc --unused-days` goes by)."""
    try:
        os.utime(folder / "identity.json")
    except OSError:
        pass


def _digest_bytes(text: str) -> bytes | None:
    """A sha256 hex digest as its 32 bytes (None for anything else: it cannot be stored)."""
    try:
        key = bytes.fromhex(text)
    except (TypeError, ValueError):
        return None
    return key if len(key) == 32 else None


def _index_table(digests: list[str], shard: str):
    """Index rows of one shard: digest (sha256 as 32 bytes), shard (dictionary-encoded), row."""
    import pyarrow as pa

    names = pa.array([shard] * len(digests), pa.string()).dictionary_encode()
    return pa.table({"digest": pa.array([bytes.fromhex(d) for d in digests], pa.binary(32)),
                     "shard": names.cast(pa.dictionary(pa.int32(), pa.string())),
                     "row": pa.array(np.arange(len(digests)), pa.int32())})


def _shards_in(index) -> set[str]:
    """The shard names an index table has rows for."""
    import pyarrow.compute as pc

    return {name for chunk in index.column("shard").chunks
            for name in chunk.dictionary.take(pc.unique(chunk.indices)).to_pylist()}


def _write_shard(folder: Path, hashes: list[str], arrays: list[np.ndarray], frames: bool, tag: str = "") -> str:
    """One shard, row groups of about ROW_GROUP_BYTES; returns its name."""
    import pyarrow as pa

    table = pa.table(
        {
            "audio_sha256": pa.array(hashes, pa.string()),
            "frames": pa.array([v.shape[0] if frames else -1 for v in arrays], pa.int64()),
            "vector": pa.array([v.ravel() for v in arrays], pa.list_(pa.float32())),
        }
    )
    name = f"part-{time.time_ns()}-{tag}{uuid.uuid4().hex[:8]}.parquet"
    _atomic_write_table(folder / name, table, _rows_per_group(table))
    return name


def _rows_per_group(table) -> int:
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    return max(1, ROW_GROUP_BYTES // per_row)


def _atomic_write_table(path: Path, table, row_group_size: int | None = None) -> None:
    import pyarrow.parquet as pq

    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, temporary, row_group_size=row_group_size)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
