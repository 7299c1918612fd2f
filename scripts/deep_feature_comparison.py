"""Deep features against hand-crafted features: the course exercise, over tfaudio's public API.

Load a pretrained model, extract clip embeddings, extract MFCC + spectral features, train a
random forest and an MLP on each over the same folds, and write the comparison report.

    TFAUDIO_MODELS=../shared/models .venv/bin/python scripts/deep_feature_comparison.py
    .venv/bin/python scripts/deep_feature_comparison.py --data my_sounds --model handcrafted --classifier mlp

Options override the settings below for one run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from tfaudio.comparison.classifiers import CLASSIFIERS as CLASSIFIER_TABLE
from tfaudio.comparison.classifiers import ClassifierSpec, cross_validate
from tfaudio.comparison.report import write_report
from tfaudio.comparison.run import CompareConfig, compare
from tfaudio.data.dataset import load_dataset
from tfaudio.data.splits import make_splits
from tfaudio.errors import TfaudioError
from tfaudio.models.registry import get
from tfaudio.pipeline.local import EmbedConfig, embed_dataset
from tfaudio.store import EmbeddingStore

# ----------------------------------------------------------------------------- settings
DATA_DIR = Path(os.environ.get("TFAUDIO_DATA", "../shared/datasets/esc10"))  # class folders or a manifest
MODEL_NAME = "yamnet"            # any name `tfaudio models` lists, or hub:<handle>, hf:<id>
POOLING = "mean"                 # how frame embeddings become one vector per clip
CLASSIFIERS = ("rf", "mlp")      # random forest and MLP, as in the exercise
SEED = 0
OUT = Path("reports/deep_feature_comparison")
# -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help=f"labeled audio (default: {DATA_DIR})")
    parser.add_argument("--model", default=MODEL_NAME, help=f"the pretrained representation (default: {MODEL_NAME})")
    parser.add_argument("--classifier", action="append", choices=list(CLASSIFIER_TABLE),
                        help=f"repeat for several (default: {' '.join(CLASSIFIERS)})")
    parser.add_argument("--out", type=Path, default=OUT, help=f"report folder (default: {OUT})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    classifiers = tuple(args.classifier or CLASSIFIERS)
    models = tuple(dict.fromkeys((args.model, "handcrafted")))  # the baseline once, even when it is the model
    dataset = load_dataset(args.data)
    splits = make_splits(dataset, "auto", k=5, seed=SEED)  # the manifest's folds when it has them
    print(f"{len(dataset)} clips, {len(dataset.classes)} classes, {len(splits)} splits")

    store = EmbeddingStore()  # cached: a second run reads the vectors back
    features = {}
    for name in models:
        pooling = None if name == "handcrafted" else POOLING  # the baseline's statistics are its pooling
        table = embed_dataset(dataset, get(name), store, EmbedConfig(pooling=pooling))
        if len(table.clips) != len(dataset):
            raise SystemExit(f"{name}: {len(table.stats.skipped)} clips could not be read; see `tfaudio info`")
        features[name] = np.asarray(table.vectors)
        print(f"{name:>12}: vectors {features[name].shape} ({table.stats.cached} from cache)")

    for name, X in features.items():
        for classifier in classifiers:
            result = cross_validate(X, dataset.labels, splits, ClassifierSpec(classifier, seed=SEED))
            print(f"{name:>12} + {classifier:<6} accuracy {100 * result.fold_accuracy.mean():5.1f} "
                  f"± {100 * result.fold_accuracy.std():.1f} %")

    # The full comparison (confidence intervals, McNemar, confusion matrices, discussion).
    config = CompareConfig(models=models[::-1], classifiers=classifiers, seed=SEED, pooling=None)
    report = write_report(compare(dataset, config, command="scripts/deep_feature_comparison.py"), args.out)
    print(f"report: {report}")


if __name__ == "__main__":
    try:
        main()
    except TfaudioError as err:  # what the user can fix (no data there, weights missing) as one message
        sys.exit(f"error: {err}")
