"""Transfer learning: a spectrogram classifier on a pretrained backbone (frozen, its outputs
cached), then fine-tuning of its last blocks, exported as a SavedModel that takes waveforms.

    config.py      TrainConfig, AugmentConfig, FrontendConfig; the backbone table (no TensorFlow)
    inputs.py      checks before training, the validation split, decoding, windows, augmentation
    backbones.py   the classifier on each backbone (frozen part + head), its weights
    layers.py      the Keras layers of those networks (standardize, SpecAugment, YAMNet pooled)
    fitting.py     the Keras side of a fit: cached features, epoch record, callbacks, batches
    loop.py        `train`: the run, phase by phase
    evaluation.py  validation metrics as the export serves whole clips
    result.py      TrainResult and the description stored with the export
    plots.py       curves.html / curves.png
    export.py      the SavedModel (and TFLite) export and `load` for predictions

Importing this package does not import TensorFlow (only :func:`train` does, when called).
"""

from tfaudio.training.config import (
    AUGMENTATIONS,
    BACKBONE_TABLE,
    BACKBONES,
    AugmentConfig,
    Backbone,
    FrontendConfig,
    TrainConfig,
    TrainingError,
)
from tfaudio.training.loop import train
from tfaudio.training.result import TrainResult

__all__ = [
    "AUGMENTATIONS", "BACKBONES", "BACKBONE_TABLE", "AugmentConfig", "Backbone", "FrontendConfig", "TrainConfig",
    "TrainResult", "TrainingError", "train",
]
