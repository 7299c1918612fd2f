"""Transfer learning and fine-tuning: the public API (implementation in tfaudio.training).

    from tfaudio.train import TrainConfig, train
    result = train("data/", TrainConfig(backbone="yamnet", epochs=20, fine_tune_epochs=5),
                   out="saved_models/sounds", logdir="runs/sounds")
    result.metrics["accuracy"], result.export_dir   # saved_models/sounds/1
"""

from tfaudio.training import (  # noqa: F401  (the public names)
    AUGMENTATIONS,
    BACKBONES,
    AugmentConfig,
    FrontendConfig,
    TrainConfig,
    TrainingError,
    TrainResult,
    train,
)
