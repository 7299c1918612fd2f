"""The search index at scale: build rate, memory and disk per vector for each quantization, query
latency (approximate with exact re-ranking, and exact), and recall@10 of approximate against exact.

Two sets of unit vectors of 1024 dimensions: "real" (YAMNet frames of ../shared/datasets/esc10,
each repeated with Gaussian noise until the count is reached: clustered, as an archive is) and
"random" (Gaussian directions: no structure at all, the hardest case for a graph). Queries are
fresh noisy copies of real frames (real set) or fresh random directions (random set).

Both sides run on the same vectors, here, one after the other: the graphs are built and searched
by `tfaudio.search.ann` (what `tfaudio index build` and `SearchIndex.approximate` run); exact
search is `tfaudio.search.exact.exact_top_k` (a plain numpy matmul over blocks when it is
absent). The approximate side asks for --candidates ids and re-ranks them on the float32
vectors, as `tfaudio search` does; its top-10 scores are checked against the exact ones.
Latencies are one query at a time, after 3 warm-up queries: p50 and p99.

    python benchmarks/search.py                       # 1 M vectors (about an hour on 2 idle cores)
    python benchmarks/search.py --vectors 200000 --sets real --quantizations f16,i8
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DIM = 1024
#: Seconds of audio per YAMNet window, and the embedding speed it is compared with when not measured.
WINDOW_SECONDS, YAMNET_REAL_TIME = 0.48, 550.0


def real_frames() -> np.ndarray:
    """YAMNet frames of ESC-10, float32 [n, 1024], unit norm (without the recordings, 4000
    random directions stand in as cluster centres)."""
    data = SHARED / "datasets" / "esc10"
    if not data.exists():
        rng = np.random.default_rng(1)
        return _unit(rng.standard_normal((4000, DIM)).astype(np.float32))
    os.environ.setdefault("TFAUDIO_MODELS", str(SHARED / "models"))
    from tfaudio.pipeline.local import EmbedConfig
    from tfaudio.pipeline.run import RunSettings, run_embedding
    from tfaudio.store import MANIFEST

    with tempfile.TemporaryDirectory() as tmp:
        settings = RunSettings(store=str(Path(tmp) / "store"))
        summary = next(iter(run_embedding(data, ["yamnet"], Path(tmp) / "out", EmbedConfig(pooling="frames"),
                                          settings)))
        import json

        import pyarrow.parquet as pq

        folder = Path(summary.output)
        shards = json.loads((folder / MANIFEST).read_text())["shards"]
        tables = [pq.read_table(folder / s["name"]) for s in shards]
        columns = [c for c in tables[0].column_names if c[:1] == "e" and c[1:].isdigit()]
        frames = np.concatenate([np.stack([t.column(c).to_numpy() for c in columns], axis=1) for t in tables])
    return _unit(frames.astype(np.float32))


def embedding_speed(clips: int) -> float | None:
    """YAMNet's x real time here and now (frames, float32), after a warm-up batch: what building
    an index is compared with, measured under the same load. None without ESC-10."""
    data = SHARED / "datasets" / "esc10"
    if not data.exists():
        return None
    os.environ.setdefault("TFAUDIO_MODELS", str(SHARED / "models"))
    from dataclasses import replace

    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.registry import get
    from tfaudio.pipeline.local import EmbedConfig, embed_dataset
    from tfaudio.store import EmbeddingStore

    dataset = load_dataset(data, labelled=False)
    model = get("yamnet")
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddingStore(Path(tmp) / "store")
        embed_dataset(replace(dataset, clips=dataset.clips[:8]), model, store, EmbedConfig(pooling="frames"))
        table = embed_dataset(replace(dataset, clips=dataset.clips[8 : 8 + clips]), model, store,
                              EmbedConfig(pooling="frames"))
    return table.stats.audio_seconds / table.stats.seconds


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def noisy(base: np.ndarray, count: int, noise: float, seed: int, out: np.ndarray | None = None) -> np.ndarray:
    """`count` unit vectors: random rows of `base` plus Gaussian noise of norm ~`noise`."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, base.shape[1]), np.float32) if out is None else out
    for first in range(0, count, 65536):
        n = min(65536, count - first)
        block = base[rng.integers(0, len(base), n)] + rng.standard_normal((n, base.shape[1]), np.float32) * (
            noise / np.sqrt(base.shape[1]))
        out[first : first + n] = _unit(block)
    return out


def exact(vectors: np.ndarray, queries: np.ndarray, k: int):
    try:
        from tfaudio.search.exact import exact_top_k
    except ImportError:
        exact_top_k = None
    if exact_top_k is not None:
        return exact_top_k(vectors, queries, k)
    ids, scores = [], []
    for first in range(0, len(vectors), 65536):
        sims = queries @ np.asarray(vectors[first : first + 65536]).T
        top = np.argsort(-sims, axis=1)[:, :k]
        ids.append(top + first)
        scores.append(np.take_along_axis(sims, top, axis=1))
    ids, scores = np.concatenate(ids, axis=1), np.concatenate(scores, axis=1)
    order = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


def percentiles(seconds: list[float]) -> tuple[float, float]:
    values = np.array(seconds[3:]) * 1000  # after 3 warm-up queries
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def run_set(name: str, vectors: np.ndarray, queries: np.ndarray, quantizations, params, candidates: int, tmp: Path,
            embed_speed: float):
    from tfaudio.search.ann import build_graph, open_graph, search_graphs

    n = len(vectors)
    truth_ids, truth_scores = exact(vectors, queries, 10)
    exact_times = []
    for query in queries:
        start = time.perf_counter()
        exact(vectors, query[None], 10)
        exact_times.append(time.perf_counter() - start)
    e50, e99 = percentiles(exact_times)
    embed_speed = embed_speed or YAMNET_REAL_TIME
    embed_seconds = n * WINDOW_SECONDS / embed_speed
    print(f"\n{name}: {n} vectors x {DIM}, {len(queries)} queries; exact search p50 {e50:.0f} ms, p99 {e99:.0f} ms; "
          f"embedding this much audio ({n * WINDOW_SECONDS / 3600:.0f} h) takes ~{embed_seconds:.0f} s at "
          f"{embed_speed:.0f}x real time")
    print(f"{'quant':>5} {'build s':>8} {'vec/s':>7} {'build/embed':>11} {'graph B/vec':>11} {'loaded B/vec':>12} "
          f"{'disk B/vec':>10} {'approx p50 ms':>13} {'p99 ms':>7} {'recall@10':>9}")
    for quantization in quantizations:
        path = tmp / f"{name}-{quantization}.usearch"
        start = time.perf_counter()
        build_graph(vectors, path, quantization, params)
        built = time.perf_counter() - start
        from usearch.index import Index

        loaded = Index.restore(str(path))  # a copy in memory, as usearch counts it (searches map the file instead)
        ram = loaded.memory_usage / n
        del loaded
        graph = open_graph(path, params)
        mapped = path.stat().st_size / n  # what searching a memory-mapped view holds in RAM at most
        disk = mapped + DIM * 4  # the graph beside the float32 vectors
        hits, times = [], []
        for row, query in enumerate(queries):
            start = time.perf_counter()
            ids, _ = search_graphs([(0, n, graph)], query[None], candidates)
            ids = ids[0][ids[0] >= 0]
            scores = np.asarray(vectors[np.sort(ids)]) @ query
            order = np.argsort(-scores)[:10]
            top, top_scores = np.sort(ids)[order], scores[order]
            times.append(time.perf_counter() - start)
            hits.append(len(set(top) & set(truth_ids[row])) / 10)
            same = np.isin(top, truth_ids[row])
            expected = dict(zip(truth_ids[row], truth_scores[row]))
            assert np.allclose(top_scores[same], [expected[i] for i in top[same]], atol=2e-2), "scores disagree"
        p50, p99 = percentiles(times)
        print(f"{quantization:>5} {built:8.1f} {n / built:7.0f} {built / embed_seconds:11.2f} {mapped:11.0f} "
              f"{ram:12.0f} {disk:10.0f} {p50:13.2f} {p99:7.2f} {np.mean(hits):9.3f}")
        del graph
        path.unlink()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=53)
    parser.add_argument("--quantizations", default="f16,i8")
    parser.add_argument("--sets", default="real,random")
    parser.add_argument("--candidates", type=int, default=100, help="Approximate ids re-ranked exactly.")
    parser.add_argument("--connectivity", type=int, default=16)
    parser.add_argument("--expansion-add", type=int, default=128)
    parser.add_argument("--expansion-search", type=int, default=256)
    parser.add_argument("--frames", type=Path, help="A .npy of real frames [n, 1024] instead of embedding ESC-10.")
    parser.add_argument("--noise", type=float, default=0.6, help="Norm of the noise added to real frames.")
    parser.add_argument("--embed-clips", type=int, default=80, help="ESC-10 clips timed to measure YAMNet's "
                        "speed here (0: assume 550x real time).")
    args = parser.parse_args(argv)
    from tfaudio.search.ann import AnnParams

    params = AnnParams(args.connectivity, args.expansion_add, args.expansion_search)
    print(f"ANN: connectivity {params.connectivity}, expansion add {params.expansion_add} / search "
          f"{params.expansion_search}; {args.candidates} candidates re-ranked exactly")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.sets.split(","):
            vectors = np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", np.float32, (args.vectors, DIM))
            if name == "real":
                base = _unit(np.load(args.frames)) if args.frames else real_frames()
                noisy(base, args.vectors, args.noise, seed=2, out=vectors)
                queries = noisy(base, args.queries, args.noise, seed=3)
                print(f"real: {len(base)} YAMNet frames of ESC-10, mixed with noise of norm {args.noise}")
            else:
                rng = np.random.default_rng(4)
                for first in range(0, args.vectors, 65536):
                    count = min(65536, args.vectors - first)
                    vectors[first : first + count] = _unit(rng.standard_normal((count, DIM), np.float32))
                queries = _unit(rng.standard_normal((args.queries, DIM), np.float32))
            vectors.flush()
            speed = embedding_speed(args.embed_clips) if args.embed_clips else None
            run_set(name, vectors, queries, args.quantizations.split(","), params, args.candidates, tmp,
                    speed)
            del vectors


if __name__ == "__main__":
    main()
