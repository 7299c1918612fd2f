"""bfloat16 against float32 on ESC-10 with the real YAMNet: how close the numbers stay.

Embeds every clip at both precisions (the same network object, so the float32 side is also
checked to be untouched by the bfloat16 calls) and reports the clip-vector cosine, the top-1
agreement of YAMNet's 521 scores patch by patch, and the ESC-10 accuracy (official folds) of
each classifier on either precision's vectors. Speed: benchmarks/embed_throughput.py.

    python benchmarks/precision.py                       # ../shared/datasets/esc10, ../shared/models
    python benchmarks/precision.py --classifier logreg   # the linear probe only, quicker
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SR = 16000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "esc10")
    parser.add_argument("--weights", type=Path, default=SHARED / "models" / "yamnet" / "yamnet.h5")
    parser.add_argument("--classifier", action="append", choices=["rf", "mlp", "logreg"],
                        help="classifiers for the accuracy (default: all three)")
    args = parser.parse_args(argv)
    if not (args.data.exists() and args.weights.exists()):
        raise SystemExit(f"needs {args.data} and {args.weights} (../shared beside the checkout)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.comparison.classifiers import ClassifierSpec, cross_validate
    from tfaudio.data.batches import iter_batches
    from tfaudio.data.dataset import load_dataset
    from tfaudio.data.splits import predefined_folds
    from tfaudio.models.yamnet.model import YamnetRepresentation
    from tfaudio.runtime import detect_hardware, precision_advice, precision_scope

    dataset = load_dataset(args.data)
    model = YamnetRepresentation(args.weights).model
    vectors = {p: np.empty((len(dataset), 1024), np.float32) for p in ("float32", "bfloat16")}
    agree = patches = 0
    float32_again = True
    for batch in iter_batches(dataset.clips, SR, 32):
        outputs = {}
        for precision in ("float32", "bfloat16"):
            with precision_scope(precision):
                outputs[precision] = out = model.embed(batch.waveforms, batch.lengths)
            for row, index in enumerate(batch.indices):
                vectors[precision][index] = out.embeddings[row][out.patch_mask[row]].mean(axis=0)
        again = model.embed(batch.waveforms, batch.lengths)
        float32_again &= bool(np.array_equal(again.embeddings, outputs["float32"].embeddings))
        valid = outputs["float32"].patch_mask
        agree += int(np.sum(outputs["float32"].scores[valid].argmax(1) == outputs["bfloat16"].scores[valid].argmax(1)))
        patches += int(valid.sum())

    a, b = (vectors[p].astype(np.float64) for p in ("float32", "bfloat16"))
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(f"{detect_hardware(gpus=False).cpu}: {precision_advice(detect_hardware(gpus=False))}")
    print(f"ESC-10, {len(dataset)} clips: float32 calls after bfloat16 ones give the same numbers: {float32_again}")
    print(f"clip-vector cosine bfloat16 vs float32: min {cosine.min():.5f}, median {np.median(cosine):.6f}")
    print(f"top-1 of the 521 scores agrees on {agree} of {patches} patches ({100 * agree / patches:.1f} %)")
    splits = predefined_folds(dataset)
    for name in args.classifier or ["logreg", "mlp", "rf"]:
        accuracy = {p: float(np.mean(cross_validate(x, dataset.labels, splits, ClassifierSpec(name)).predictions
                                     == dataset.labels)) for p, x in vectors.items()}
        print(f"{name:7s} accuracy float32 {100 * accuracy['float32']:.2f} %, bfloat16 {100 * accuracy['bfloat16']:.2f} %"
              f" ({100 * (accuracy['bfloat16'] - accuracy['float32']):+.2f} points)")


if __name__ == "__main__":
    main()
