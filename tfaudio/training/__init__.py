"""Transfer learning: a frozen pretrained backbone with cached outputs, then fine-tuning.

The public names are re-exported by :mod:`tfaudio.train`; importing this package does not
import TensorFlow (only :func:`train` does, when called).
"""

from tfaudio.training.config import (
    AUGMENTATIONS,
    BACKBONES,
    AugmentConfig,
    FrontendConfig,
    TrainConfig,
    TrainingError,
)
from tfaudio.training.loop import TrainResult, train

__all__ = ["AUGMENTATIONS", "BACKBONES", "AugmentConfig", "FrontendConfig", "TrainConfig", "TrainResult", "TrainingError", "train"]
