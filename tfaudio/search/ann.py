"""Approximate nearest neighbours: one usearch HNSW graph per vector shard, searched together.

A shard's graph is keyed by the row of the vector in its shard (0..rows-1), so a shard kept from
an earlier build keeps its graph whatever its place in the index (a global id is the shard's first
id plus the row). Graphs are built from the shard's float32 unit vectors in blocks (memory of one
block beyond the graph itself), stored in the quantization asked for (f16 by default: half of
float32's memory, cosine within ~1e-3), written under a temporary name and renamed into place.
They are opened as memory-mapped views: opening costs nothing, and pages load as searches touch them.

Parameters (measured on 2 cores, `benchmarks/search.py`, docs/search.md): connectivity 16 keeps
the graph at ~150 bytes a vector beside the vectors' 2 KB (f16, 1024-d); expansion_add 128 builds
a graph at about half the cost of embedding the audio; with expansion_search 256 and 100
candidates re-ranked exactly, recall@10 was 0.977 on 300 k clustered vectors. The graph only
proposes candidates: scores always come from the float32 vectors, so a damaged or poor graph
costs recall, never wrong numbers.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: usearch scalar kinds the graph may store vectors as.
QUANTIZATIONS = ("f32", "f16", "bf16", "i8")
#: Rows added to a graph at once.
_ADD_BLOCK = 16384
#: Bytes at each end of a graph file that its digest covers (with the size).
_DIGEST_BYTES = 1 << 20


@dataclass(frozen=True)
class AnnParams:
    """usearch HNSW parameters: connectivity (edges a node keeps), expansion_add (candidates
    kept while inserting), expansion_search (candidates kept while searching; at least k)."""

    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 256


def build_graph(vectors: np.ndarray, path: Path, quantization: str, params: AnnParams, progress=None) -> dict:
    """Build the graph of float32 [rows, dim] unit vectors (a memory map is fine) and write it
    to `path` (temporary name, then rename). progress(rows) after each block. Returns what the
    header records of it: file name, size, digest."""
    from usearch.index import Index

    index = Index(ndim=vectors.shape[1], metric="cos", dtype=quantization, connectivity=params.connectivity,
                  expansion_add=params.expansion_add, expansion_search=params.expansion_search)
    for first in range(0, len(vectors), _ADD_BLOCK):
        block = np.ascontiguousarray(vectors[first : first + _ADD_BLOCK], dtype=np.float32)
        index.add(np.arange(first, first + len(block), dtype=np.uint64), block)
        if progress:
            progress(len(block))
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        index.save(str(temporary))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return {"ann": path.name, "ann_bytes": path.stat().st_size, "ann_digest": file_digest(path)}


def open_graph(path: Path, params: AnnParams):
    """The graph at `path` as a memory-mapped usearch Index (raises ValueError / RuntimeError /
    OSError when it cannot be read)."""
    from usearch.index import Index

    index = Index.restore(str(path), view=True)
    if index is None:
        raise ValueError(f"{path}: not a usearch index")
    index.expansion_search = params.expansion_search
    return index


def file_digest(path: Path) -> str:
    """sha256 of a file's size, first and last MiB: catches truncation and a damaged header or
    tail at open without reading gigabytes (the graph never decides a score, see the module)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_DIGEST_BYTES))
        if size > _DIGEST_BYTES:
            handle.seek(max(size - _DIGEST_BYTES, _DIGEST_BYTES))
            digest.update(handle.read())
    return digest.hexdigest()


def search_graphs(graphs, queries: np.ndarray, k: int, expansion: int | None = None):
    """Search several graphs together.

    graphs: (first id, rows, usearch Index) per shard; queries: float32 [q, dim] unit vectors.
    Returns (ids int64 [q, k], -1 where fewer than k were found; cosine similarity float32
    [q, k], -inf there), best first across all graphs.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    found_ids, found_scores = [], []
    for first, rows, index in graphs:
        if expansion is not None:
            index.expansion_search = max(expansion, k)
        matches = index.search(queries, k)
        keys = np.asarray(matches.keys, dtype=np.int64).reshape(len(queries), -1)
        distances = np.asarray(matches.distances, dtype=np.float32).reshape(len(queries), -1)
        # one query gives a `Matches` (no counts: its keys are the ones found), several a `BatchMatches`
        counts = np.asarray(getattr(matches, "counts", keys.shape[1])).reshape(len(queries))
        valid = (np.arange(keys.shape[1])[None, :] < counts[:, None]) & (keys >= 0) & (keys < rows)
        found_ids.append(np.where(valid, keys + first, -1))
        found_scores.append(np.where(valid, 1.0 - distances, -np.inf).astype(np.float32))
    return merge_top_k(found_ids, found_scores, k, len(queries))


def merge_top_k(ids: list[np.ndarray], scores: list[np.ndarray], k: int, queries: int):
    """The best k of several (ids [q, *], scores [q, *]) lists, best first, -1 / -inf padded."""
    if not ids:
        return np.full((queries, k), -1, np.int64), np.full((queries, k), -np.inf, np.float32)
    all_ids, all_scores = np.concatenate(ids, axis=1), np.concatenate(scores, axis=1)
    if all_ids.shape[1] < k:
        pad = k - all_ids.shape[1]
        all_ids = np.pad(all_ids, ((0, 0), (0, pad)), constant_values=-1)
        all_scores = np.pad(all_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_ids, order, axis=1), np.take_along_axis(all_scores, order, axis=1)
