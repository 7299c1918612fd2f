"""Frozen-phase epoch time: head trained on cached backbone outputs vs recomputing the frozen
backbone every epoch (the course module's pipeline), side by side in one run.

    KERAS_HOME=../shared/models/keras .venv/bin/python benchmarks/train_cache.py [--backbone mobilenet_v2] [--clips 256]

Both sides train the same head with the same batches on the same waveforms; the recomputing
side runs waveform -> log-mel -> frozen backbone -> head every step, the cached side runs the
frozen part once (timed separately) and then only the head. Epoch times are medians over the
epochs after the first (which also traces the graphs). Weights do not change the timing, so
the backbone runs with random weights when its pretrained file is absent.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=["mobilenet_v2", "yamnet"], default="mobilenet_v2")
    parser.add_argument("--clips", type=int, default=256, help="training clips (generated, 1 s each)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per side (the first is not counted)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from tfaudio.assets import WeightsUnavailable
    from tfaudio.training.backbones import build, resolve_weights
    from tfaudio.training.config import TrainConfig, TrainingError
    from tfaudio.training.loop import _compile, compute_features

    config = TrainConfig(backbone=args.backbone, batch_size=args.batch_size, offline=True)
    try:
        weights = resolve_weights(config)
        source = weights
    except (TrainingError, WeightsUnavailable):
        weights, source = None, "random weights (pretrained file not found; timing is the same)"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((args.clips, 16000))).astype(np.float32)
    labels = rng.integers(0, 2, args.clips)
    parts = build(config, 2, 16000, weights)
    print(f"{args.backbone} ({source}); {args.clips} clips of 1 s, batch {args.batch_size}, {args.epochs} epochs per side",
          file=sys.stderr)

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    # Recomputing: the whole classifier with the backbone frozen, fed waveforms every epoch.
    recompute = EpochTimes()
    _compile(parts.classifier, 1e-3)
    parts.classifier.fit(waves, labels, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[recompute])

    # Cached: the frozen part once, then the head alone on its outputs.
    start = time.perf_counter()
    features = compute_features(parts.frozen, waves, args.batch_size)
    cache_seconds = time.perf_counter() - start
    cached = EpochTimes()
    _compile(parts.head, 1e-3)
    parts.head.fit(features, labels, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[cached])

    slow = statistics.median(recompute.times[1:])
    fast = statistics.median(cached.times[1:])
    print(f"recomputing the backbone: {slow:8.3f} s per epoch   (epochs: {', '.join(f'{t:.2f}' for t in recompute.times)})")
    print(f"cached backbone outputs:  {fast:8.3f} s per epoch   (epochs: {', '.join(f'{t:.2f}' for t in cached.times)})")
    print(f"one-off cache computation: {cache_seconds:.2f} s (about {cache_seconds / slow:.1f} recomputing epochs)")
    print(f"ratio: {slow / fast:.0f}x faster per frozen-phase epoch (target: at least 10x)")


if __name__ == "__main__":
    main()
