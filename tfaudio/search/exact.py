"""Exact search: every indexed vector scored against the query, in batched matrix products.

The first-class path beside the approximate graph: small indexes are searched this way, `--exact`
asks for it, score functions the graph cannot serve (several queries, negative examples) rank the
whole index with it, and the benchmark measures the graph's recall against it.

Vectors come in chunks (`SearchIndex.chunks`, memory-mapped float32 unit vectors), so memory stays
one chunk's products whatever the index's size. Each chunk is multiplied by all query vectors at
once (float32 GEMM through numpy's BLAS), and only its best rows are kept.

bfloat16 (`precision="bfloat16"`; "auto" picks it on CPUs with AMX from `BF16_MIN_QUERIES`
query vectors on): the chunk's products run in bfloat16 (TensorFlow / oneDNN), and every row whose
bfloat16 score comes within `BF16_MARGIN` (times the score function's sensitivity) of the running
k-th best is re-scored in float32. For unit vectors the bfloat16 rounding of both operands and of
the product moves a cosine by at most 3u + u^2 (u = 2^-8, bfloat16's unit roundoff) ~= 0.0118, so
no row the float32 ranking keeps can be missed, and the results are the float32 results: same ids,
same scores up to float32 summation order (~1e-7), ties broken by id.

Why "auto" stays float32 on AVX512-BF16 without AMX (these 2-core machines): a query's few
vectors make the products memory-bound (every float32 row is read either way, and converting it to
bfloat16 costs as much as the float32 product), and even with 256 query vectors TensorFlow's
bfloat16 search, conversion and re-scoring included, measured slower than numpy's float32 one here
(2.5-3.2 s against 1.9 s over 131k x 1024 rows; the machines were shared, so the ratio is rough).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

#: Largest change bfloat16 rounding makes to the cosine of two unit vectors (see the module doc),
#: with room for float32 accumulation.
BF16_MARGIN = 3 * 2.0**-8 + 2.0**-16 + 1e-4
#: "auto" runs bfloat16 products (on AMX) from this many query vectors on; below, memory-bound.
BF16_MIN_QUERIES = 128
#: Rows scored at a time.
CHUNK_ROWS = 65536

ScoreFn = Callable[[np.ndarray], np.ndarray]


def _chunks(source, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first id, float32 [n, dim]) of a SearchIndex (its `chunks`), an array float32 [n, dim],
    or an iterable of such pairs already."""
    if hasattr(source, "chunks"):
        yield from source.chunks(rows)
    elif isinstance(source, np.ndarray):
        for first in range(0, len(source), rows):
            yield first, source[first : first + rows]
    else:
        yield from source


def resolve_precision(precision: str, queries: int) -> str:
    """"float32" or "bfloat16" for `precision` ("auto", "float32", "bfloat16") and this many query vectors."""
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"precision must be auto, float32 or bfloat16, not {precision!r}")
    if precision != "auto":
        return precision
    if queries < BF16_MIN_QUERIES:
        return "float32"
    from tfaudio.runtime import detect_hardware

    return "bfloat16" if detect_hardware(gpus=False).amx else "float32"


def _bf16_products(chunk: np.ndarray, queries_bf16) -> np.ndarray:
    """float32 [n, dim] x bfloat16 tensor [q, dim] -> float32 [n, q] (products in bfloat16)."""
    from tfaudio.quiet import tf

    rows = tf.cast(tf.convert_to_tensor(np.ascontiguousarray(chunk, np.float32)), tf.bfloat16)
    return tf.cast(tf.matmul(rows, queries_bf16, transpose_b=True), tf.float32).numpy()


def _best(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of (ids, scores) 1-D, highest score first, ties by lower id."""
    if len(ids) > k:
        # Keep every row tied with the k-th score, so the tie-break below sees all of them.
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]


class _TopK:
    """The running k best rows of one score column."""

    def __init__(self, k: int):
        self.k = k
        self.ids = np.zeros(0, np.int64)
        self.scores = np.zeros(0, np.float32)

    @property
    def floor(self) -> float:
        """The k-th best score so far (-inf until k rows were seen)."""
        return float(self.scores[-1]) if len(self.scores) == self.k else -np.inf

    def offer(self, ids: np.ndarray, scores: np.ndarray) -> None:
        self.ids, self.scores = _best(np.concatenate([self.ids, ids]), np.concatenate([self.scores, scores]), self.k)


def exact_top_k(
    source,
    queries: np.ndarray,
    k: int,
    *,
    score: ScoreFn | None = None,
    sensitivity: float = 1.0,
    precision: str = "auto",
    exclude: np.ndarray | None = None,
    rows: int = CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact k best indexed vectors.

    source: a SearchIndex, an array float32 [n, dim] of unit vectors, or an iterable of
    (first id, float32 [rows, dim]) in id order. queries: float32 [q, dim], unit norm.
    score: None ranks each query vector on its own: returns (ids int64 [q, k], cosine float32
    [q, k]), padded with -1 / -inf when the index has fewer than k vectors (as
    `SearchIndex.approximate` returns them). A score function float32 [n, q] cosines -> float32
    [n] ranks the vectors by one combined score: returns (ids int64 [<= k], scores float32 [<= k]).
    sensitivity: the most the score function's output moves when every cosine moves by at most
    1 (1 for a max or a mean), which widens the bfloat16 margin. exclude: bool [n], True for ids
    never to return (a query's own windows). Highest first; equal scores by id.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or k < 1:
        raise ValueError(f"queries must be [q, dim] and k >= 1, got shape {queries.shape} and k={k}")
    precision = resolve_precision(precision, len(queries))
    columns = 1 if score is not None else len(queries)
    tops = [_TopK(k) for _ in range(columns)]
    margin = BF16_MARGIN * (sensitivity if score is not None else 1.0)
    queries_bf16 = None
    if precision == "bfloat16":
        from tfaudio.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
        from tfaudio.quiet import tf

        queries_bf16 = tf.cast(tf.convert_to_tensor(queries), tf.bfloat16)

    def exact(chunk: np.ndarray, picked: np.ndarray | None) -> np.ndarray:
        """float32 scores [rows, columns] of the chunk's rows `picked` (None: all)."""
        products = np.asarray(chunk if picked is None else chunk[picked], dtype=np.float32) @ queries.T
        return score(products)[:, np.newaxis] if score is not None else products

    for first, chunk in _chunks(source, rows):
        ids = first + np.arange(len(chunk), dtype=np.int64)
        if exclude is not None and exclude[first : first + len(chunk)].any():
            kept = ~exclude[first : first + len(chunk)]
            ids, chunk = ids[kept], np.asarray(chunk)[kept]
            if not len(ids):
                continue
        if queries_bf16 is None:
            scores = exact(chunk, None)
            for column, top in enumerate(tops):
                top.offer(ids, scores[:, column])
            continue
        rough = _bf16_products(chunk, queries_bf16)
        rough = score(rough)[:, np.newaxis] if score is not None else rough
        wanted = np.zeros(len(chunk), bool)
        for column, top in enumerate(tops):
            # Rows that could be among the k best: a row of the chunk's float32 top k is within
            # 2 margins of its bfloat16 k-th score (k rows have float32 scores within 1 margin
            # below theirs), and a row that beats the running float32 k-th is within 1 below it.
            values = rough[:, column]
            own_kth = np.partition(values, max(len(values) - k, 0))[max(len(values) - k, 0)]
            wanted |= values >= max(own_kth - 2 * margin, top.floor - margin)
        picked = np.flatnonzero(wanted)
        scores = exact(chunk, picked)  # one float32 product for the rows any column wants
        for column, top in enumerate(tops):
            top.offer(ids[picked], scores[:, column])
    if score is not None:
        return tops[0].ids, tops[0].scores
    found = np.full((columns, k), -1, np.int64)
    similarities = np.full((columns, k), -np.inf, np.float32)
    for column, top in enumerate(tops):
        found[column, : len(top.ids)] = top.ids
        similarities[column, : len(top.ids)] = top.scores
    return found, similarities


def recall_at_k(approximate_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over queries of |approximate top k ∩ exact top k| / |exact top k| (-1 pads ignored);
    int64 [q, k] each."""
    recalls = []
    for found, truth in zip(np.asarray(approximate_ids), np.asarray(exact_ids)):
        truth = set(truth[truth >= 0].tolist())
        if truth:
            recalls.append(len(truth & set(found[found >= 0].tolist())) / len(truth))
    return float(np.mean(recalls)) if recalls else 1.0

