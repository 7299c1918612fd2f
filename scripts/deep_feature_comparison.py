"""Deep features against hand-crafted features: the course exercise, over tfaudio's public API.

Load a pretrained model, extract clip embeddings, extract MFCC + spectral features, train a
random forest and an MLP on each over the same folds, and write the comparison report.

    TFAUDIO_MODELS=../shared/models .venv/bin/python scripts/deep_feature_comparison.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tfaudio.comparison.classifiers import ClassifierSpec, cross_validate
from tfaudio.comparison.report import write_report
from tfaudio.comparison.run import CompareConfig, compare
from tfaudio.data.dataset import load_dataset
from tfaudio.data.splits import make_splits
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


def main() -> None:
    dataset = load_dataset(DATA_DIR)
    splits = make_splits(dataset, "auto", k=5, seed=SEED)  # the manifest's folds when it has them
    print(f"{len(dataset)} clips, {len(dataset.classes)} classes, {len(splits)} splits")

    store = EmbeddingStore()  # cached: a second run reads the vectors back
    features = {}
    for name, pooling in ((MODEL_NAME, POOLING), ("handcrafted", None)):
        table = embed_dataset(dataset, get(name), store, EmbedConfig(pooling=pooling))
        if len(table.clips) != len(dataset):
            raise SystemExit(f"{name}: {len(table.stats.skipped)} clips could not be read; see `tfaudio info`")
        features[name] = np.asarray(table.vectors)
        print(f"{name:>12}: vectors {features[name].shape} ({table.stats.cached} from cache)")

    for name, X in features.items():
        for classifier in CLASSIFIERS:
            result = cross_validate(X, dataset.labels, splits, ClassifierSpec(classifier, seed=SEED))
            print(f"{name:>12} + {classifier:<4} accuracy {100 * result.fold_accuracy.mean():5.1f} "
                  f"± {100 * result.fold_accuracy.std():.1f} %")

    # The full comparison (confidence intervals, McNemar, confusion matrices, discussion).
    config = CompareConfig(models=("handcrafted", MODEL_NAME), classifiers=CLASSIFIERS, seed=SEED, pooling=None)
    report = write_report(compare(dataset, config, command="scripts/deep_feature_comparison.py"), OUT)
    print(f"report: {report}")


if __name__ == "__main__":
    main()
