"""A search index on disk, opened for reading: `SearchIndex`, its layout, its errors, its lock.

    INDEX/index.json                 the header: what the index is and which shards make it
    INDEX/shards/<name>.windows.parquet   one row per vector: file, sha256, start, end (seconds)
    INDEX/shards/<name>.files.parquet     one row per file: file, sha256, size, mtime_ns, windows
    INDEX/shards/<name>.f32          the vectors: float32 [rows, dim], unit L2 norm, raw (memory-mapped)
    INDEX/shards/<name>.usearch      the shard's HNSW graph (absent for an exact-only index)
    INDEX/embeddings/<model>_frames/ the frame-level output the build made (`tfaudio embed --frames`)
    INDEX/.lock                      held (flock) by the build that is running, if any
    INDEX/quarantine/                damaged graphs moved aside

A generation is the set of shards the header names. Shards are never changed once written, and
a build writes its new ones beside the old, then swaps the header by rename: a reader sees the
previous generation whole or the next one whole, and a build killed at any point (or stopped by
a full disk) leaves the previous header and every shard it names. Vector ids are 0..n-1 in the
order of the header's shards; a shard's first id is the sum of the rows before it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tfaudio.errors import TfaudioError, TfaudioWarning
from tfaudio.search.ann import AnnParams, build_graph, file_digest, merge_top_k, open_graph, search_graphs

FORMAT = "tfaudio-index/1"
HEADER = "index.json"
SHARDS = "shards"
EMBEDDINGS = "embeddings"
LOCK = ".lock"
QUARANTINE = "quarantine"


class SearchIndexError(TfaudioError):
    """An index that cannot be used as it is (not an index, another format, damaged, being
    built by someone else); the message names the path and what to do."""


class IndexWarning(TfaudioWarning):
    """Something in an index needed repair (a damaged graph rebuilt); the message names it."""


def shown(path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# -- the lock ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def build_lock(index: Path) -> Iterator[None]:
    """Hold INDEX/.lock for a build (an flock: the kernel lets go when the process dies, even by
    kill -9). SearchIndexError at once when another build holds it."""
    index.mkdir(parents=True, exist_ok=True)
    handle = open(index / LOCK, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SearchIndexError(f"{shown(index)}: another build of this index is running; wait for it to "
                                   "finish") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def build_running(index: Path) -> bool:
    """Whether a build holds INDEX/.lock now."""
    try:
        handle = open(index / LOCK)
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


# -- the header -------------------------------------------------------------------------------------


def read_header(index: Path) -> dict:
    """The header of the index at `index`; SearchIndexError (one line) when there is none or it
    cannot be read."""
    path = index / HEADER
    if not index.is_dir():
        raise SearchIndexError(f"{shown(index)}: no such index (build one with tfaudio index build)")
    try:
        text = path.read_text()
    except FileNotFoundError:
        note = " (the first build is running)" if build_running(index) else ""
        raise SearchIndexError(f"{shown(index)}: not a tfaudio index: no {HEADER}{note}") from None
    except OSError as err:
        raise SearchIndexError(f"{shown(path)}: cannot be read ({err.strerror})") from None
    try:
        header = json.loads(text)
        fmt = header["format"]
    except (ValueError, KeyError, TypeError):
        raise SearchIndexError(f"{shown(path)}: damaged index header (not the JSON a build writes); rebuild "
                               "the index with tfaudio index build") from None
    if fmt != FORMAT:
        raise SearchIndexError(f"{shown(index)}: index format {fmt!r}, this tfaudio reads {FORMAT!r}; rebuild "
                               "it with tfaudio index build")
    return header


def write_header(index: Path, header: dict) -> None:
    """Publish `header` (temporary name, fsync, rename): the moment a generation becomes current."""
    temporary = index / f".{HEADER}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(temporary, "w") as handle:
            json.dump(header, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, index / HEADER)
    finally:
        temporary.unlink(missing_ok=True)


def shard_path(index: Path, name: str, kind: str) -> Path:
    """A shard's file: kind "windows" / "files" (.parquet), "vectors" (.f32), "ann" (.usearch)."""
    suffix = {"windows": ".windows.parquet", "files": ".files.parquet", "vectors": ".f32", "ann": ".usearch"}[kind]
    return index / SHARDS / f"{name}{suffix}"


def open_vectors(index: Path, shard: dict, dim: int) -> np.ndarray:
    """A shard's vectors memory-mapped, float32 [rows, dim]; SearchIndexError when the file is
    missing or not the size the header says."""
    path = shard_path(index, shard["name"], "vectors")
    expected = shard["rows"] * dim * 4
    try:
        size = path.stat().st_size
    except OSError:
        raise SearchIndexError(f"{shown(path)}: missing; rebuild the index with tfaudio index build") from None
    if size != expected:
        raise SearchIndexError(f"{shown(path)}: {size} bytes where the header says {expected} (damaged); rebuild "
                               "the index with tfaudio index build")
    if not shard["rows"]:
        return np.zeros((0, dim), np.float32)
    return np.memmap(path, dtype=np.float32, mode="r", shape=(shard["rows"], dim))


class SearchIndex:
    """An index opened for searching (see the module for its layout).

    windows: pandas DataFrame, index = id 0..n-1, columns file (str), sha256 (str), start, end
    (float seconds). has_approximate: the index has ANN graphs (small ones are exact only).
    """

    def __init__(self, path: Path, header: dict, windows, vectors: list[np.ndarray], graphs: list):
        self.path = path
        self.header = header
        self.model: str = header["model"]
        self.precision: str = header["precision"]
        self.hop: float = header["hop"]
        self.dim: int = header["dim"]
        self.quantization: str = header["quantization"]
        self.identity: dict = header["identity"]
        self.windows = windows
        self._vectors = vectors
        self._firsts = np.cumsum([0] + [len(v) for v in vectors])
        self._graphs = graphs
        self.has_approximate = bool(graphs)
        self._representation = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> SearchIndex:
        """Open the index at `path`. SearchIndexError: not an index, another format version,
        damaged beyond repair. A damaged graph is moved to INDEX/quarantine/ and rebuilt from
        the stored vectors (an IndexWarning says so)."""
        import pandas as pd

        path = Path(path)
        header = read_header(path)
        vectors = [open_vectors(path, shard, header["dim"]) for shard in header["shards"]]
        tables = []
        for shard, rows in zip(header["shards"], vectors):
            table = _read_table(shard_path(path, shard["name"], "windows"), ["file", "sha256", "start", "end"])
            if len(table) != len(rows):
                raise SearchIndexError(f"{shown(shard_path(path, shard['name'], 'windows'))}: {len(table)} rows for "
                                       f"{len(rows)} vectors (damaged); rebuild the index")
            tables.append(table)
        columns = {"file": pd.Series(dtype=str), "sha256": pd.Series(dtype=str), "start": pd.Series(dtype=float),
                   "end": pd.Series(dtype=float)}
        windows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns)
        graphs = []
        if header.get("ann"):
            params = AnnParams(**header["ann"])
            first = 0
            for shard, rows in zip(header["shards"], vectors):
                graphs.append((first, len(rows), _graph(path, header, shard, rows, params)))
                first += len(rows)
        return cls(path, header, windows, vectors, graphs)

    @property
    def building(self) -> bool:
        """Whether a build of this index is running now (this object still reads the generation
        it opened)."""
        return build_running(self.path)

    def __len__(self) -> int:
        return int(self._firsts[-1])

    def vectors(self, ids) -> np.ndarray:
        """float32 [len(ids), dim], unit L2 norm, of the vectors with these ids."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexError(f"vector ids must be in 0..{len(self) - 1}")
        out = np.empty((len(ids), self.dim), np.float32)
        shard = np.searchsorted(self._firsts, ids, side="right") - 1
        for s in np.unique(shard):
            rows = shard == s
            out[rows] = self._vectors[s][ids[rows] - self._firsts[s]]
        return out

    def chunks(self, rows: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """(first id, float32 [n <= rows, dim] unit vectors): every vector, in id order."""
        for first, vectors in zip(self._firsts, self._vectors):
            for begin in range(0, len(vectors), rows):
                yield int(first + begin), np.asarray(vectors[begin : begin + rows])

    def approximate(self, queries, k: int, expansion: int | None = None):
        """The k nearest vectors of each query by the ANN graphs of every shard together.

        queries: float32 [q, dim] unit vectors. Returns (ids int64 [q, k], -1 where fewer were
        found; cosine similarity float32 [q, k], -inf there), best first. Call it with k larger
        than the hits wanted (e.g. 10x) and re-rank the candidates on `vectors(ids)`: the
        graph's quantized scores only propose. An index without graphs answers exactly.
        expansion: candidates kept while searching (default: the index's expansion_search).
        """
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self._graphs:
            return search_graphs(self._graphs, queries, k, expansion)
        ids, scores = [], []
        for first, block in self.chunks():
            sims = block @ queries.T  # [n, q]
            top = np.argsort(-sims, axis=0)[:k].T  # [q, <=k]
            ids.append(top + first)
            scores.append(np.take_along_axis(sims.T, top, axis=1))
        return merge_top_k(ids, scores, k, len(queries))

    def representation(self):
        """The registry's model at the index's precision, refused (one line) when its identity is
        no longer the one the index was built with."""
        if self._representation is None:
            from tfaudio.models.precision import with_precision
            from tfaudio.models.registry import get
            from tfaudio.pipeline.local import EmbedConfig, embedding_identity
            from tfaudio.store import FRAMES

            model = with_precision(get(self.model), self.precision, warn=False)
            _, _, key = embedding_identity(model, EmbedConfig(pooling=FRAMES))
            if key != self.header["key"]:
                raise SearchIndexError(f"{shown(self.path)}: built with another {self.model} (other weights or "
                                       "tfaudio version) than the one here now; rebuild the index with tfaudio index "
                                       "build")
            self._representation = model
        return self._representation

    def embed(self, path, start: float | None = None, end: float | None = None):
        """A file's windows embedded exactly as the build embedded indexed files (same model,
        weights, precision, windows and hop), optionally only those inside [start, end] seconds
        (a region shorter than a window gets the window that overlaps it most).

        Returns (vectors float32 [m, dim] unit norm, starts float64 [m], ends float64 [m]) in
        the file's own time. Raises a one-line TfaudioError naming the file for unreadable audio.
        """
        from tfaudio.data.audio import info
        from tfaudio.data.dataset import Clip, Dataset
        from tfaudio.pipeline.local import EmbedConfig, embed_dataset
        from tfaudio.search.windows import WindowSpec, file_windows
        from tfaudio.store import FRAMES, EmbeddingStore

        path = Path(path)
        model = self.representation()
        duration = info(path).duration  # an unreadable file: AudioError naming it
        dataset = Dataset(root=path.parent.resolve(), clips=(Clip(path.resolve(), None),), classes=(), source="query")
        store = EmbeddingStore(self.header.get("store"))
        table = embed_dataset(dataset, model, store, EmbedConfig(pooling=FRAMES, strict=True))
        if not table.vectors:
            problem = table.stats.skipped[0].reason if table.stats.skipped else "gave no frames"
            raise SearchIndexError(f"{shown(path)}: {problem}")
        spec = WindowSpec(self.header["frame_hop"], self.header["frame_span"], self.header["frames_per_window"])
        vectors, starts, ends = file_windows(table.vectors[0], spec, duration)
        if start is None and end is None:
            return vectors, starts, ends
        low, high = start or 0.0, duration if end is None else end
        inside = (starts >= low - 1e-6) & (ends <= high + 1e-6)
        if not inside.any():
            overlap = np.minimum(ends, high) - np.maximum(starts, low)
            if not len(overlap) or overlap.max() <= 0:
                raise SearchIndexError(f"{shown(path)}: no window of the file overlaps {low:g}-{high:g} s")
            inside = np.arange(len(starts)) == int(np.argmax(overlap))
        return vectors[inside], starts[inside], ends[inside]

    def missing_files(self) -> list[str]:
        """Indexed files that are gone, or whose content changed since the build (size, else
        modification time then content hash, differ)."""
        from tfaudio.assets import sha256_of

        gone = []
        for shard in self.header["shards"]:
            files = _read_table(shard_path(self.path, shard["name"], "files"), ["file", "sha256", "size", "mtime_ns"])
            for file, digest, size, mtime in files.itertuples(index=False):
                try:
                    stat = os.stat(file)
                except OSError:
                    gone.append(file)
                    continue
                if stat.st_size != size or (stat.st_mtime_ns != mtime and sha256_of(file) != digest):
                    gone.append(file)
        return gone


def _read_table(path: Path, columns: list[str]):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns).to_pandas()
    except (OSError, ValueError) as err:
        raise SearchIndexError(f"{shown(path)}: cannot be read ({str(err).splitlines()[0]}); rebuild the index with "
                               "tfaudio index build") from None


def _graph(index: Path, header: dict, shard: dict, vectors: np.ndarray, params: AnnParams):
    """A shard's graph, checked (size and digest) and opened; a damaged one is quarantined and
    rebuilt from the shard's vectors, written back unless a build holds the index (then kept in
    memory for this reader only)."""
    path = shard_path(index, shard["name"], "ann")
    problem = None
    try:
        if path.stat().st_size != shard.get("ann_bytes") or file_digest(path) != shard.get("ann_digest"):
            problem = "does not match the header (damaged)"
        else:
            return open_graph(path, params)
    except FileNotFoundError:
        problem = "is missing"
    except (OSError, ValueError, RuntimeError) as err:
        problem = f"cannot be read ({err})"
    moved = _quarantine(index, path)
    where = f"; moved to {shown(moved)}" if moved else ""
    warnings.warn(IndexWarning(f"{shown(path)}: the ANN graph {problem}{where}; rebuilt from the stored vectors"),
                  stacklevel=3)
    if not build_running(index):
        with contextlib.suppress(OSError, SearchIndexError), build_lock(index):  # a build may start meanwhile
            info = build_graph(vectors, path, header["quantization"], params)
            if _record_graph(index, shard["name"], info):
                return open_graph(path, params)
    return _memory(vectors, header, params)


def _record_graph(index: Path, name: str, info: dict) -> bool:
    """Put a rebuilt graph's size and digest into the header (the build lock is held); False
    when the current header no longer names the shard (a build published since)."""
    header = read_header(index)
    for shard in header["shards"]:
        if shard["name"] == name:
            shard.update(info)
            write_header(index, header)
            return True
    return False


def _memory(vectors: np.ndarray, header: dict, params: AnnParams):
    """A graph built in memory only (the index cannot be written now)."""
    from usearch.index import Index

    graph = Index(ndim=header["dim"], metric="cos", dtype=header["quantization"], connectivity=params.connectivity,
                  expansion_add=params.expansion_add, expansion_search=params.expansion_search)
    graph.add(np.arange(len(vectors), dtype=np.uint64), np.asarray(vectors))
    return graph


def _quarantine(index: Path, path: Path) -> Path | None:
    """Move a damaged file into INDEX/quarantine/ (None when it is not there or cannot move)."""
    if not path.exists():
        return None
    target = index / QUARANTINE / f"{path.name}.{uuid.uuid4().hex[:8]}"
    try:
        target.parent.mkdir(exist_ok=True)
        shutil.move(path, target)
    except OSError as err:
        if err.errno in (errno.EROFS, errno.EACCES):
            return None
        raise
    return target
