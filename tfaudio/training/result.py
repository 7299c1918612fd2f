"""What a run produced (`TrainResult`) and the description stored beside its export."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfaudio.data.dataset import Problem
from tfaudio.training.config import TrainConfig
from tfaudio.training.inputs import ValidationSplit

SAMPLE_RATE = 16000


@dataclass
class TrainResult:
    """What a run produced.

    classifier: Keras model, waveform float32 [batch, num_samples] -> float32 [batch, classes]:
        the network as exported, computing at config.export_precision (a bfloat16 run's weights
        in a float32 network unless export_precision says bfloat16).
    history: one dict per epoch (epoch, phase, loss, accuracy, val_loss, val_accuracy,
        learning_rate); phase_boundary: epochs of phase 1 (the curves' boundary mark).
    metrics: final validation metrics (accuracy, balanced_accuracy, macro_f1, per_class,
        confusion, phase1_val_accuracy, fine_tuning_kept; fine_tuning: "kept", "not kept" or
        "skipped", and fine_tuning_reason saying why, "" when kept), computed like the export
        serves: the serving function (tfaudio.training.export.serving_function) on each whole
        validation clip.
    val_labels / val_probabilities: int64 [clips] and float32 [clips, classes] behind them,
        the validation clips that decoded, in the split's order.
    """

    classifier: object
    class_names: tuple[str, ...]
    num_samples: int
    config: TrainConfig
    split: ValidationSplit
    history: list[dict]
    phase_boundary: int
    metrics: dict
    timings: dict
    skipped: list[Problem] = field(default_factory=list)
    logdir: Path | None = None
    export_dir: Path | None = None
    val_labels: np.ndarray | None = None
    val_probabilities: np.ndarray | None = None

    def metadata(self) -> dict:
        """JSON-ready description stored beside the exported model."""
        from tfaudio.frontend.params import params_to_dict

        front = self.config.frontend_config
        if front is not None:
            frontend = {"kind": "log_mel", "standardize": "per example", **params_to_dict(front.mel_params())}
        else:
            from tfaudio.models.yamnet.config import YamnetParams

            frontend = {"kind": "yamnet", **params_to_dict(YamnetParams())}
        return {
            "format": "tfaudio-classifier",
            "version": 1,
            "class_names": list(self.class_names),
            "sample_rate": SAMPLE_RATE,
            "num_samples": self.num_samples,
            "duration": self.num_samples / SAMPLE_RATE,
            "backbone": self.config.backbone,
            "frontend": frontend,
            "config": self.config.to_dict(),
            "validation": {"split": self.split.how, "clips": int(len(self.split.val)), **_scalar_metrics(self.metrics)},
            "long_clips": (
                "split into windows of num_samples (the last zero-padded); probabilities averaged, weighted by the audio "
                "in each window; training used every window of its clips and the validation metrics are of this rule"
            ),
        }


def _scalar_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool))}


def describe_fine_tuning(metrics: dict) -> str:
    """What phase 2 came to, as a run's summary says it: "kept", "skipped (0 fine-tuning
    epochs)", "not kept (its validation accuracy ... is below phase 1's ...)"."""
    status, reason = metrics["fine_tuning"], metrics["fine_tuning_reason"]
    return f"{status} ({reason})" if reason else status
