"""Embedding throughput: audio seconds embedded per wall-clock second, decoding included.

Measured side by side in one run, on the same clips:
  * YAMNet batched (tfaudio's native network, one graph per batch of clips) against YAMNet one
    clip per call, as the TF-Hub signature forces (front end + Keras network per clip);
  * Wav2Vec2-base batched against one clip per call (random weights: same speed as trained);
  * YAMNet's fraction of its compute bound: 0.29 GFLOP per audio second (69.2 M multiply-adds
    per 0.96 s patch, a patch every 0.48 s) against a large float32 matmul timed in this run.

    python benchmarks/embed_throughput.py                 # ESC-10 from ../shared when present
    python benchmarks/embed_throughput.py --clips 64      # fewer clips, quicker
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
YAMNET_GFLOP_PER_AUDIO_SECOND = 2 * 69.2e-3 / 0.48


def clip_paths(data: Path, count: int, tmp: Path) -> list[Path]:
    """ESC-10 clips when present, else synthetic 5 s clips written to tmp."""
    files = sorted((data / "audio").glob("*.flac"))[:count]
    if files:
        return files
    from tfaudio.data.synth import SynthConfig, make_dataset

    make_dataset(tmp, SynthConfig(clips_per_class=max(1, count // 4), duration=5.0))
    return sorted(tmp.rglob("*.wav"))[:count]


def decode(paths: list[Path]) -> list[np.ndarray]:
    from tfaudio.data.audio import load

    return [load(p, 16000) for p in paths]


def seconds_of(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    product = tf.function(lambda x, y: tf.matmul(x, y))
    product(a, b).numpy()
    elapsed = seconds_of(lambda: [product(a, b).numpy() for _ in range(repeats)])
    return 2 * size**3 * repeats / elapsed / 1e9


def yamnet_runs(paths: list[Path], batch_size: int, weights: Path | None):
    """(batched, per-clip) callables, each decoding its clips as part of the work."""
    import tensorflow as tf

    from tfaudio.data.batches import iter_batches
    from tfaudio.data.dataset import Clip
    from tfaudio.models.yamnet import model as Y

    model = Y.Yamnet(Y.YamnetParams(), weights)
    clips = [Clip(p, "x") for p in paths]

    def batched():
        for batch in iter_batches(clips, 16000, batch_size):
            model.embed(batch.waveforms, batch.lengths)

    def per_clip():
        # The reference / TF-Hub style: a 1-D waveform in, features and the Keras network per call.
        for wave in decode(paths):
            padded = Y.pad_waveforms(tf.constant(wave[np.newaxis]), tf.constant([len(wave)]), model.params)
            patches = Y.log_mel_patches(Y.log_mel_spectrogram(padded, model.params), model.params)[0]
            model.network(patches, training=False)

    batched()  # trace once before timing
    return batched, per_clip


def wav2vec2_runs(paths: list[Path], batch_size: int, folder: Path):
    """(batched, per-clip) callables for Wav2Vec2-base with random weights saved to folder."""
    from tfaudio.data.batches import iter_batches
    from tfaudio.data.dataset import Clip
    from tfaudio.models.wav2vec2.config import Wav2Vec2Params
    from tfaudio.models.wav2vec2.model import Wav2Vec2, keep_keras_3

    with keep_keras_3():
        from transformers import TFWav2Vec2Model, Wav2Vec2Config, Wav2Vec2FeatureExtractor

        network = TFWav2Vec2Model(Wav2Vec2Config())  # the base architecture, random weights
        network(network.dummy_inputs)  # create the weights before saving
        network.save_pretrained(folder)
        Wav2Vec2FeatureExtractor().save_pretrained(folder)
    model = Wav2Vec2(Wav2Vec2Params(model=str(folder)))
    clips = [Clip(p, "x") for p in paths]

    def batched():
        for batch in iter_batches(clips, 16000, batch_size):
            model.frames(batch.waveforms, batch.lengths)

    def per_clip():
        for wave in decode(paths):
            model.frames(wave[np.newaxis], np.array([len(wave)], np.int32))

    warm = decode(paths[:1])[0]
    model.frames(warm[np.newaxis], np.array([len(warm)], np.int32))
    return batched, per_clip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "esc10")
    parser.add_argument("--clips", type=int, default=128, help="clips to embed (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-wav2vec2", action="store_true", help="YAMNet only")
    parser.add_argument("--wav2vec2-clips", type=int, default=32, help="clips for Wav2Vec2 (it is ~50x slower)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tempfile

    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    with tempfile.TemporaryDirectory() as tmp:
        paths = clip_paths(args.data, args.clips, Path(tmp))
        audio = sum(len(w) for w in decode(paths)) / 16000
        weights = REPO.parent / "shared" / "models" / "yamnet" / "yamnet.h5"
        print(f"{len(paths)} clips, {audio:.0f} s of audio, batches of {args.batch_size}")
        batched, per_clip = yamnet_runs(paths, args.batch_size, weights if weights.exists() else None)
        fast, slow = audio / seconds_of(batched), audio / seconds_of(per_clip)
        gflops = matmul_gflops()
        bound = gflops / YAMNET_GFLOP_PER_AUDIO_SECOND
        print(f"YAMNet batched    {fast:8.0f} x real time")
        print(f"YAMNet per clip   {slow:8.0f} x real time   -> batched is {fast / slow:.1f}x faster")
        print(f"matmul {gflops:.0f} GFLOP/s -> YAMNet compute bound {bound:.0f} x real time; "
              f"batched reaches {100 * fast / bound:.0f} % of it")
        if not args.skip_wav2vec2:
            batched, per_clip = wav2vec2_runs(paths[: args.wav2vec2_clips], args.batch_size, Path(tmp) / "w2v")
            audio = sum(len(w) for w in decode(paths[: args.wav2vec2_clips])) / 16000
            fast, slow = audio / seconds_of(batched), audio / seconds_of(per_clip)
            print(f"Wav2Vec2-base batched  {fast:8.1f} x real time")
            print(f"Wav2Vec2-base per clip {slow:8.1f} x real time   -> batched is {fast / slow:.1f}x faster")


if __name__ == "__main__":
    main()
