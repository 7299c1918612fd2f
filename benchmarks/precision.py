"""bfloat16 against float32 on ESC-10, network by network: how close the numbers stay.

Every clip is embedded at both precisions the way users get vectors (`registry.get`,
`with_precision`, `pipeline.local.embed_dataset` into a temporary embedding store, each
network's default pooling), and the run reports the clip-vector cosine of bfloat16 to float32
(min, 1st percentile, median), YAMNet's top-1 agreement of its 521 scores patch by patch, and
the ESC-10 accuracy (official folds) of each classifier on either precision's vectors.

Checked before any figure is printed: both sides hold the same clips in the same order; the
bfloat16 run computed every vector itself (the store keys the precisions apart, so none came
from the float32 run); bfloat16 changed the vectors (the rewrite ran); and the float32 vectors
equal a fresh float32 embed made after the bfloat16 one (the rewrite stays inside its scope).

    yamnet       the real weights (../shared/models/yamnet/yamnet.h5, or --weights)
    vggish       RANDOM weights (He-scaled, seed 0) written as the official TF1 checkpoint
                 (no real VGGish weights here): the accuracies say nothing about VGGish itself
    wav2vec2     a RANDOM network: tiny config (2 layers of width 32), or --wav2vec2 base (slow)
    autoencoder  trained in float32 on each official split's training folds, as `tfaudio
                 compare` trains it (--autoencoder-epochs), then embedded at both precisions

    python benchmarks/precision.py                       # all four, ../shared/datasets/esc10
    python benchmarks/precision.py --model yamnet --classifier logreg   # the linear probe only
Speed: benchmarks/embed_throughput.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SR = 16000
MODELS = ("yamnet", "vggish", "wav2vec2", "autoencoder")
TINY_WAV2VEC2 = dict(  # 80 samples per frame, 2 layers of width 32 (tests/test_wav2vec2.py's TINY)
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16, 16, 16),
    conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    vocab_size=32,
)
_START = time.perf_counter()


def say(message: str) -> None:
    """A progress line on stderr (the figures go to stdout)."""
    print(f"[{time.perf_counter() - _START:6.1f} s] {message}", file=sys.stderr, flush=True)


@dataclass
class Fidelity:
    """One network's figures: cosine float64 [pairs]; accuracy {classifier: (float32, bfloat16)}."""

    model: str
    weights: str  # short, for the summary
    about: str  # what the weights are, for the heading
    cosine: np.ndarray
    accuracy: dict[str, tuple[float, float]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two float [n, dim] matrices, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def embed_both(dataset, representation, root: Path, label: str) -> dict[str, np.ndarray]:
    """{"float32": float32 [clips, dim], "bfloat16": ...} in dataset order, after the checks
    named in the module docstring (SystemExit naming the one that failed)."""
    from tfaudio.models.precision import with_precision
    from tfaudio.pipeline.local import embed_dataset
    from tfaudio.store import EmbeddingStore

    def embed(rep, store, what):
        say(f"{label}: {what}")
        table = embed_dataset(dataset, rep, store)
        if table.clips != dataset.clips or table.stats.computed != len(dataset):
            raise SystemExit(f"{label}, {what}: {table.stats.computed} of {len(dataset)} clips computed "
                             f"({len(table.stats.skipped)} skipped, {table.stats.cached} from the store); cannot compare")
        return np.asarray(table.vectors)

    store = EmbeddingStore(root / "store")  # never the user's: embed_dataset's default store is theirs
    vectors = {"float32": embed(representation, store, "float32"),
               "bfloat16": embed(with_precision(representation, "bfloat16", warn=False), store, "bfloat16")}
    again = embed(representation, EmbeddingStore(root / "fresh"), "float32 again, after bfloat16")
    if not np.array_equal(again, vectors["float32"]):
        raise SystemExit(f"{label}: float32 vectors after the bfloat16 run differ from the first ones "
                         f"(largest difference {np.abs(again - vectors['float32']).max():.3g}): bfloat16 leaked out")
    if np.array_equal(vectors["bfloat16"], vectors["float32"]):
        raise SystemExit(f"{label}: bfloat16 gave exactly the float32 vectors: the oneDNN rewrite did not run")
    return vectors


def probe(fidelity: Fidelity, dataset, splits, vectors: dict, classifiers) -> None:
    """Accuracy of each classifier on either precision's vectors (one matrix, or one per split)."""
    from tfaudio.comparison.classifiers import ClassifierSpec, cross_validate

    for name in classifiers:
        say(f"{fidelity.model}: {name} on {len(splits)} folds, both precisions")
        fidelity.accuracy[name] = tuple(
            float(np.mean(cross_validate(vectors[p], dataset.labels, splits, ClassifierSpec(name)).predictions
                          == dataset.labels)) for p in ("float32", "bfloat16"))


def yamnet(dataset, root: Path, weights: Path) -> tuple[Fidelity, dict]:
    from tfaudio.data.batches import iter_batches
    from tfaudio.models import registry
    from tfaudio.runtime import precision_scope

    representation = registry.get("yamnet", weights_path=str(weights))
    vectors = embed_both(dataset, representation, root, "yamnet")
    say("yamnet: the 521 scores at both precisions")
    model = representation.loaded().model  # the same network object the vectors came from
    agree = patches = 0
    for batch in iter_batches(dataset.clips, SR, 32):
        scores = {}
        for precision in ("float32", "bfloat16"):
            with precision_scope(precision):
                out = model.embed(batch.waveforms, batch.lengths)
            scores[precision] = out.scores[out.patch_mask]
        agree += int(np.sum(scores["float32"].argmax(1) == scores["bfloat16"].argmax(1)))
        patches += len(scores["float32"])
    fidelity = Fidelity("yamnet", "real", f"real weights ({weights})", cosines(vectors["bfloat16"], vectors["float32"]))
    fidelity.lines.append(f"top-1 of the 521 scores agrees on {agree} of {patches} patches ({100 * agree / patches:.1f} %)")
    return fidelity, vectors


def random_vggish_checkpoint(path: Path, seed: int = 0) -> Path:
    """The official checkpoint's variables (names, shapes) with He-scaled random values, so
    activations keep their scale through the eight ReLU layers, saved as a TF1 V1 checkpoint."""
    import tensorflow as tf

    from tfaudio.models.vggish.model import CHECKPOINT_VARIABLES

    rng = np.random.default_rng(seed)
    values = {
        name: (rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / np.prod(shape[:-1]))))
        if name.endswith("weights") else rng.normal(0, 0.1, shape).astype(np.float32)
        for name, shape in CHECKPOINT_VARIABLES.items()
    }
    tf.raw_ops.Save(filename=str(path), tensor_names=list(values), data=[tf.constant(v) for v in values.values()])
    return path


def vggish(dataset, root: Path) -> tuple[Fidelity, dict]:
    from tfaudio.models import registry

    say("vggish: writing a random-valued checkpoint (290 MB)")
    checkpoint = random_vggish_checkpoint(root / "vggish_model.ckpt")
    vectors = embed_both(dataset, registry.get("vggish", weights_path=str(checkpoint)), root, "vggish")
    about = "RANDOM weights (seed 0) in the official checkpoint format: fidelity only, not VGGish's accuracy"
    return Fidelity("vggish", "RANDOM", about, cosines(vectors["bfloat16"], vectors["float32"])), vectors


def wav2vec2(dataset, root: Path, size: str) -> tuple[Fidelity, dict]:
    import keras

    from tfaudio.models import registry
    from tfaudio.models.wav2vec2.model import keep_keras_3

    say(f"wav2vec2: building a random {size} network")
    folder = root / f"wav2vec2-{size}"
    with keep_keras_3():
        from transformers import TFWav2Vec2Model, Wav2Vec2Config, Wav2Vec2FeatureExtractor

        keras.utils.set_random_seed(0)  # tf.random.set_seed alone leaves tf_keras' initializers to chance
        network = TFWav2Vec2Model(Wav2Vec2Config(**(TINY_WAV2VEC2 if size == "tiny" else {})))
        network.build_in_name_scope()
        network.save_pretrained(folder)
        Wav2Vec2FeatureExtractor().save_pretrained(folder)
    vectors = embed_both(dataset, registry.get("wav2vec2", weights_path=str(folder)), root, "wav2vec2")
    about = f"RANDOM weights, {size} config" + (" (2 layers of width 32)" if size == "tiny" else "")
    return Fidelity("wav2vec2", f"RANDOM, {size}", about, cosines(vectors["bfloat16"], vectors["float32"])), vectors


def autoencoder(dataset, root: Path, splits, epochs: int) -> tuple[Fidelity, dict]:
    """Per split: trained on its training folds in float32, every clip embedded at both precisions."""
    from tfaudio.models import registry

    learner = registry.get("autoencoder").configure({"epochs": epochs})
    vectors = {"float32": [], "bfloat16": []}
    for split in splits:
        say(f"autoencoder: training on the {len(split.train)} clips of {split.name}'s training folds ({epochs} epochs)")
        fitted = learner.fit(dataset, split.train)
        both = embed_both(dataset, fitted, root / split.name, f"autoencoder {split.name}")
        for precision in vectors:
            vectors[precision].append(both[precision])
    cosine = np.concatenate([cosines(b, a) for a, b in zip(vectors["float32"], vectors["bfloat16"])])
    fidelity = Fidelity("autoencoder", "trained", f"trained in float32, {epochs} epochs on each split's training folds",
                        cosine)
    fidelity.lines.append(f"cosines over {len(splits)} models (one per split) x {len(dataset)} clips")
    return fidelity, vectors


def report(fidelity: Fidelity, clips: int) -> None:
    c = fidelity.cosine
    print(f"\n== {fidelity.model}: {fidelity.about} ==")
    # embed_both stopped the run otherwise.
    print(f"ESC-10, {clips} clips: float32 calls after bfloat16 ones give the same numbers: True")
    print(f"clip-vector cosine bfloat16 vs float32: min {c.min():.5f}, 1st percentile {np.percentile(c, 1):.5f}, "
          f"median {np.median(c):.6f}")
    for line in fidelity.lines:
        print(line)
    for name, (low, high) in ((n, (a[0], a[1])) for n, a in fidelity.accuracy.items()):
        print(f"{name:7s} accuracy float32 {100 * low:.2f} %, bfloat16 {100 * high:.2f} % ({100 * (high - low):+.2f} points)")
    sys.stdout.flush()


def summary(results: list[Fidelity]) -> None:
    print("\nsummary: bfloat16 vs float32 on ESC-10 (official folds)")
    print(f"{'model':12s} {'weights':14s} {'cos min':>8s} {'cos p1':>8s} {'cos med':>8s}  accuracy float32 -> bfloat16")
    for r in results:
        accuracy = ", ".join(f"{n} {100 * a:.2f} -> {100 * b:.2f} ({100 * (b - a):+.2f})" for n, (a, b) in r.accuracy.items())
        print(f"{r.model:12s} {r.weights:14s} {r.cosine.min():8.5f} {np.percentile(r.cosine, 1):8.5f} "
              f"{np.median(r.cosine):8.5f}  {accuracy}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "esc10")
    parser.add_argument("--weights", type=Path, default=SHARED / "models" / "yamnet" / "yamnet.h5",
                        help="YAMNet's yamnet.h5")
    parser.add_argument("--model", action="append", choices=MODELS, help="networks to compare (default: all four)")
    parser.add_argument("--classifier", action="append", choices=["rf", "mlp", "logreg"],
                        help="classifiers for the accuracy (default: all three)")
    parser.add_argument("--wav2vec2", choices=["tiny", "base"], default="tiny",
                        help="size of the random Wav2Vec2 (base: about 9 minutes on 2 cores, tiny 15 s)")
    parser.add_argument("--autoencoder-epochs", type=int, default=5)
    args = parser.parse_args(argv)
    models = list(dict.fromkeys(args.model or MODELS))
    if not args.data.exists() or ("yamnet" in models and not args.weights.exists()):
        raise SystemExit(f"needs {args.data} and, for yamnet, {args.weights} (../shared beside the checkout)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # its loading chatter would bury the progress lines
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.data.dataset import load_dataset
    from tfaudio.data.splits import predefined_folds
    from tfaudio.runtime import detect_hardware, precision_advice

    hardware = detect_hardware(gpus=False)
    print(f"{hardware.cpu}: {precision_advice(hardware)}")
    dataset = load_dataset(args.data)
    splits = predefined_folds(dataset)
    results = []
    with tempfile.TemporaryDirectory(prefix="tfaudio-precision-") as tmp:
        for name in models:
            root = Path(tmp) / name
            root.mkdir()
            if name == "yamnet":
                fidelity, vectors = yamnet(dataset, root, args.weights)
            elif name == "vggish":
                fidelity, vectors = vggish(dataset, root)
            elif name == "wav2vec2":
                fidelity, vectors = wav2vec2(dataset, root, args.wav2vec2)
            else:
                fidelity, vectors = autoencoder(dataset, root, splits, args.autoencoder_epochs)
            probe(fidelity, dataset, splits, vectors, args.classifier or ["logreg", "mlp", "rf"])
            report(fidelity, len(dataset))
            results.append(fidelity)
    summary(results)


if __name__ == "__main__":
    main()
