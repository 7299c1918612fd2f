"""Embedding throughput: audio seconds embedded per wall-clock second, decoding included.

Measured side by side in one run, on the same clips, each side a median over --repeats runs
after a warm-up (the sides interleave, so load from other processes falls on all of them):

  YAMNet
    (a) the course notebook's way: librosa.load per file, one graph call per clip;
    (b) tfaudio's decoding, the same graph one clip per call;
    (c) tfaudio batched, float32: `embed_dataset` into an empty embedding store;
    (d) tfaudio batched, bfloat16: the same with `with_precision(..., "bfloat16")`;
    and the fraction of the float32 and bfloat16 matmul bounds (a 2048^2 matmul timed in the
    same run) that (c) and (d) reach: YAMNet costs 0.29 GFLOP per audio second (69.2 M
    multiply-adds per 0.96 s patch, a patch every 0.48 s).
  Wav2Vec2-base (random weights: the speed of the trained model) batched, float32 and bfloat16.

Before a ratio is printed the sides are checked: (a), (b) and (c) give the same clip vectors
(to 1e-4); bfloat16 gives every clip vector (YAMNet) within cosine 0.999 of float32, and
every frame of the random Wav2Vec2 within 0.998 (see `report`). Wall time is what a user
waits; CPU time (this process and its threads) is printed beside it because these machines
are shared: other processes stretch wall time, not CPU time.

    python benchmarks/embed_throughput.py                 # ESC-10 from ../shared when present
    python benchmarks/embed_throughput.py --clips 64      # fewer clips, quicker
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SR = 16000
YAMNET_GFLOP_PER_AUDIO_SECOND = 2 * 69.2e-3 / 0.48


def load_clips(data: Path, count: int, tmp: Path):
    """The first `count` clips of ESC-10 when present, else generated 5 s clips: a Dataset."""
    from tfaudio.data.dataset import load_dataset

    if not (data / "audio").is_dir():
        from tfaudio.data.synth import SynthConfig, make_dataset

        data = make_dataset(tmp / "synth", SynthConfig(clips_per_class=max(1, count // 4), duration=5.0))
    dataset = load_dataset(data)
    return dataclasses.replace(dataset, clips=dataset.clips[:count])


def timed(run: Callable[[], np.ndarray]) -> tuple[float, float, np.ndarray]:
    """(wall seconds, CPU seconds of this process, what run returned)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def measure(sides: dict[str, Callable[[], np.ndarray]], repeats: int) -> dict[str, tuple[float, float, np.ndarray]]:
    """Per side (median wall s, median CPU s, last output): one warm-up run each (traces,
    graph rewrites, file caches), then `repeats` rounds of every side in turn."""
    for run in sides.values():
        run()
    times: dict[str, list] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            times[name].append(timed(run))
    return {name: (statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs), runs[-1][2])
            for name, runs in times.items()}


def matmul_sides(size: int = 2048, calls: int = 5) -> dict[str, Callable[[], np.ndarray]]:
    """A float32 and a bfloat16 [size, size] matmul, `calls` per run: the compute bounds."""
    import tensorflow as tf

    product = tf.function(lambda x, y: tf.matmul(x, y))
    sides = {}
    for dtype in (tf.float32, tf.bfloat16):
        a, b = (tf.cast(tf.random.stateless_normal([size, size], seed=(i, 0)), dtype) for i in (1, 2))
        sides[f"matmul {dtype.name}"] = lambda a=a, b=b: [product(a, b).numpy() for _ in range(calls)][-1]
    return sides


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def yamnet_sides(dataset, weights: Path | None, batch_size: int, store_root: Path) -> dict[str, Callable[[], np.ndarray]]:
    """The four YAMNet sides, each returning mean-pooled clip vectors float32 [clips, 1024]."""
    import librosa

    from tfaudio.data.batches import iter_batches
    from tfaudio.models.precision import with_precision
    from tfaudio.models.yamnet.model import YamnetRepresentation
    from tfaudio.pipeline.local import EmbedConfig, embed_dataset
    from tfaudio.store import EmbeddingStore

    representation = YamnetRepresentation(weights)
    model = representation.model
    paths = [clip.path for clip in dataset.clips]
    runs = iter(range(10**9))

    def pooled(out, row: int = 0) -> np.ndarray:
        return out.embeddings[row][out.patch_mask[row]].mean(axis=0)

    def notebook():
        vectors = []
        for path in paths:
            wave, _ = librosa.load(path, sr=SR)  # the notebook: decode (and resample) per file, mono
            vectors.append(pooled(model.embed(wave[np.newaxis])))
        return np.stack(vectors)

    def per_clip():
        return np.stack([pooled(model.embed(b.waveforms, b.lengths)) for b in iter_batches(dataset.clips, SR, 1)])

    def batched(which):
        def run():
            store = EmbeddingStore(store_root / f"run{next(runs)}")  # empty: every clip computed
            return embed_dataset(dataset, which, store, EmbedConfig(batch_size=batch_size)).vectors
        return run

    return {
        "(a) notebook: librosa.load + 1 clip/call": notebook,
        "(b) tfaudio decode, 1 clip/call": per_clip,
        "(c) tfaudio batched float32": batched(representation),
        "(d) tfaudio batched bfloat16": batched(with_precision(representation, "bfloat16")),
    }


def wav2vec2_sides(dataset, batch_size: int, folder: Path) -> dict[str, Callable[[], np.ndarray]]:
    """Wav2Vec2-base (random weights saved to folder) batched in float32 and bfloat16, each
    returning every valid frame float32 [frames, 768]. Frames, not clip means, are compared:
    with random weights a clip's frames nearly cancel in the mean, so the mean's cosine shows
    the cancellation more than the precision (frames min 0.9994, their means 0.9989)."""
    from tfaudio.data.batches import iter_batches
    from tfaudio.models.precision import with_precision
    from tfaudio.models.wav2vec2.model import Wav2Vec2, Wav2Vec2Params, keep_keras_3

    with keep_keras_3():
        from transformers import TFWav2Vec2Model, Wav2Vec2Config, Wav2Vec2FeatureExtractor

        network = TFWav2Vec2Model(Wav2Vec2Config())  # the base architecture
        network(network.dummy_inputs)  # create the weights before saving
        network.save_pretrained(folder)
        Wav2Vec2FeatureExtractor().save_pretrained(folder)
    representation = Wav2Vec2(Wav2Vec2Params(model=str(folder)))
    batches = list(iter_batches(dataset.clips, SR, batch_size))  # decoded once: the network is timed

    def run(which):
        def embed():
            frames = [which.frames(batch.waveforms, batch.lengths) for batch in batches]
            return np.concatenate([out.embeddings[out.mask] for out in frames])  # valid frames [n, 768]
        return embed

    return {"Wav2Vec2-base batched float32": run(representation),
            "Wav2Vec2-base batched bfloat16": run(with_precision(representation, "bfloat16"))}


def report(results, audio_seconds: float, reference: str, bfloat16: str, gflops: dict[str, float] | None = None,
           unit: str = "clip-vector"):
    """Print each side's throughput, then the checked ratios (outputs are rows of `unit`s)."""
    for name, (wall, cpu, _) in results.items():
        line = f"  {name:42s} {audio_seconds / wall:8.1f} x real time   ({audio_seconds / cpu:7.1f} per CPU second)"
        if gflops:
            dtype = "bfloat16" if "bfloat16" in name else "float32"
            bound = gflops[dtype] / YAMNET_GFLOP_PER_AUDIO_SECOND
            if "batched" in name:
                line += f"   {100 * audio_seconds / wall / bound:4.0f} % of the {dtype} bound ({bound:.0f}x)"
        print(line)
    exact = results[reference][2]
    for name, (_, _, vectors) in results.items():
        if name in (reference, bfloat16):
            continue
        difference = float(np.abs(vectors - exact).max())
        if difference > 1e-4:
            raise SystemExit(f"{name} differs from {reference} by {difference:.2g}: no ratio printed")
    # Clip vectors (YAMNet): every one within cosine 0.999. Wav2Vec2 frames: within 0.998. With
    # random weights its frames collapse onto one common vector (their spread is ~5 % of their
    # size), and rounding moves that vector by a clip-wide constant, so every frame of a clip
    # shares one cosine, 0.9985-0.9999 on ESC-10 (measured), where trained weights would not.
    cosine = cosines(results[bfloat16][2], exact)
    low, p1 = float(cosine.min()), float(np.percentile(cosine, 1))
    close = low >= (0.999 if unit == "clip-vector" else 0.998)
    summary = f"bfloat16 {unit} cosine to float32: min {low:.5f}, 1st percentile {p1:.5f}, median {np.median(cosine):.6f}"
    if not close:
        raise SystemExit(f"{summary}: not close enough, no ratio printed")
    print(f"  checked: float32 sides equal to {1e-4:g}; {summary}")
    for name, (wall, cpu, _) in results.items():
        if name != reference:
            print(f"  {name}: {results[reference][0] / wall:.2f}x the throughput of {reference} "
                  f"({results[reference][1] / cpu:.2f}x per CPU second)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "esc10")
    parser.add_argument("--clips", type=int, default=128, help="clips for YAMNet (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side after a warm-up (median shown)")
    parser.add_argument("--skip-wav2vec2", action="store_true", help="YAMNet only")
    parser.add_argument("--wav2vec2-clips", type=int, default=8, help="clips for Wav2Vec2 (it is ~50x slower)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfaudio.quiet import import_tensorflow_quietly
    from tfaudio.runtime import detect_hardware, precision_advice

    import_tensorflow_quietly()
    hardware = detect_hardware()
    print(f"{hardware.cpu}, {len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"  {precision_advice(hardware)}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset = load_clips(args.data, args.clips, tmp)
        weights = SHARED / "models" / "yamnet" / "yamnet.h5"
        sides = {**matmul_sides(), **yamnet_sides(dataset, weights if weights.exists() else None, args.batch_size,
                                                    tmp / "store")}
        results = measure(sides, args.repeats)
        gflops = {name.split()[-1]: 5 * 2 * 2048**3 / results.pop(name)[0] / 1e9
                  for name in ("matmul float32", "matmul bfloat16")}
        from tfaudio.data.audio import load

        audio = sum(len(load(c.path, SR)) for c in dataset.clips) / SR
        print(f"YAMNet, {len(dataset)} clips, {audio:.0f} s of audio, batches of {args.batch_size}, "
              f"medians of {args.repeats}; matmul {gflops['float32']:.0f} GFLOP/s float32, "
              f"{gflops['bfloat16']:.0f} bfloat16 ({gflops['bfloat16'] / gflops['float32']:.2f}x)")
        report(results, audio, "(c) tfaudio batched float32", "(d) tfaudio batched bfloat16", gflops)
        if not args.skip_wav2vec2:
            subset = dataclasses.replace(dataset, clips=dataset.clips[: args.wav2vec2_clips])
            results = measure(wav2vec2_sides(subset, args.batch_size, tmp / "w2v"), args.repeats)
            audio = sum(len(load(c.path, SR)) for c in subset.clips) / SR
            print(f"Wav2Vec2-base (random weights), {len(subset)} clips, {audio:.0f} s of audio, medians of {args.repeats}")
            report(results, audio, "Wav2Vec2-base batched float32", "Wav2Vec2-base batched bfloat16", unit="frame")


if __name__ == "__main__":
    main()
