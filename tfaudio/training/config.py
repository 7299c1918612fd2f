"""Settings of a transfer-learning run: frozen dataclasses only (no TensorFlow import).

Kept apart from the TensorFlow code so the CLI can build and check a configuration, and the
export metadata can describe one, without paying for a TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import InitVar, dataclass
from pathlib import Path

from tfaudio import assets
from tfaudio.data.splits import ALIASES, VALIDATION_SPLITS
from tfaudio.errors import TfaudioError
from tfaudio.frontend.params import MelParams, centred_power_mel
from tfaudio.runtime import check_precision


@dataclass(frozen=True)
class Backbone:
    """A network a run can build its classifier on.

    network: what it is; pretrained_on: what its weights learned from (None: it trains from
    scratch on the run's clips); weights: the file it needs (None: none).
    """

    name: str
    network: str
    pretrained_on: str | None
    weights: assets.WeightsFile | None


#: Every backbone, the default first: an audio-pretrained network, since transfer learning is
#: the point of a run (small_cnn, from scratch, is for quick checks and runs without weights).
BACKBONE_TABLE = {
    backbone.name: backbone
    for backbone in (
        Backbone("yamnet", "YAMNet, a MobileNetV1 on 0.96 s log-mel patches", "AudioSet sound events", assets.YAMNET_H5),
        Backbone("mobilenet_v2", "MobileNetV2 on the log-mel spectrogram as an image", "ImageNet photographs",
                 assets.MOBILENET_V2_NO_TOP),
        Backbone("small_cnn", "four convolution blocks on the log-mel spectrogram", None, None),
    )
}
BACKBONES = tuple(BACKBONE_TABLE)
AUGMENTATIONS = ("gain", "shift", "specaugment", "noise")
#: How a run holds out its validation clips (`tfaudio.data.splits.validation_holdout`).
SPLITS = VALIDATION_SPLITS


class TrainingError(TfaudioError):
    """A run that cannot start as asked (bad data, split, weights); raised before training."""


@dataclass(frozen=True)
class FrontendConfig:
    """The log-mel front end inside the model (mobilenet_v2 and small_cnn; YAMNet has its own).

    sample_rate: must be 16000, the rate clips are decoded at and the export serves.
    window_length: STFT window and FFT size in samples; hop_length: samples between frames.
    Frames are centred (librosa's convention), so a clip of n samples has 1 + n // hop frames.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 128
    window_length: int = 1024
    hop_length: int = 160
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float = 80.0

    def __post_init__(self):
        # Clips are decoded (resampled) at 16 kHz and the export serves 16 kHz waveforms; a mel
        # filterbank built for another rate would put every band at the wrong frequencies.
        if self.sample_rate != 16000:
            raise TrainingError(
                f"FrontendConfig.sample_rate must be 16000 (clips are resampled to 16 kHz and the export serves "
                f"16 kHz waveforms), got {self.sample_rate}"
            )

    def mel_params(self) -> MelParams:
        """Power log-mel in dB (librosa.power_to_db of melspectrogram), clipped at top_db."""
        return centred_power_mel(
            self.sample_rate, self.window_length, self.hop_length,
            num_mel_bins=self.num_mel_bins, fmin=self.fmin, fmax=self.fmax, top_db=self.top_db,
        )


#: The front end each backbone uses unless told otherwise: 128 bands for the ImageNet network
#: (resized to 224 x 224 anyway), YAMNet's 64 bands and 25 ms window for the small CNN, whose
#: input is the native spectrogram.
DEFAULT_FRONTENDS = {
    "mobilenet_v2": FrontendConfig(),
    "small_cnn": FrontendConfig(num_mel_bins=64, window_length=400, fmin=125.0, fmax=7500.0),
}


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; an empty `kinds` turns it off.

    kinds: any of "gain" (random gain within +-gain_db), "shift" (a time shift of
        up to max_shift of the clip, zero-filled), "specaugment" (freq_masks bands of at most
        freq_mask_bins mel bins and time_masks spans of at most time_mask_fraction of the
        frames set to the spectrogram's mean), "noise" (a random clip from noise_dir mixed in
        at an SNR drawn from snr_db).
    copies: augmented copies of each training clip whose backbone outputs are cached for the
        frozen phase (the fine-tuning phase augments afresh every epoch).
    """

    kinds: tuple[str, ...] = ()
    gain_db: float = 6.0
    max_shift: float = 0.1
    freq_masks: int = 2
    freq_mask_bins: int = 8
    time_masks: int = 2
    time_mask_fraction: float = 0.1
    noise_dir: Path | None = None
    snr_db: tuple[float, float] = (5.0, 20.0)
    copies: int = 2

    def __post_init__(self):
        unknown = sorted(set(self.kinds) - set(AUGMENTATIONS))
        if unknown:
            raise TrainingError(f"unknown augmentation(s) {unknown}; choose from {', '.join(AUGMENTATIONS)}")
        if "noise" in self.kinds and self.noise_dir is None:
            raise TrainingError("augmentation 'noise' needs a folder of background-noise clips (--noise-dir)")
        if self.copies < 1:
            raise TrainingError(f"augmentation copies must be at least 1, got {self.copies}")

    @property
    def waveform_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in self.kinds if k != "specaugment")


@dataclass(frozen=True)
class TrainConfig:
    """One transfer-learning run.

    backbone: a name of BACKBONE_TABLE: "yamnet" (AudioSet, the default), "mobilenet_v2"
        (ImageNet) or "small_cnn" (from scratch).
    epochs / learning_rate: phase 1, backbone frozen, head trained on cached backbone outputs.
    fine_tune_epochs / fine_tune_learning_rate / unfreeze_last: phase 2, the last
        `unfreeze_last` blocks of the backbone train too (batch norm kept in inference mode);
        0 epochs skips it.
    duration: seconds per training example (clips padded / trimmed at the end); None: the
        dataset's median clip duration.
    split: a strategy of `tfaudio.data.splits.VALIDATION_SPLITS`: "auto" (the manifest's fold,
        else group-aware, else stratified), "predefined" (one of the manifest's folds), "group" or
        "stratified"; val_fold: the fold "predefined" holds out (default: the lowest);
        val_fraction: the held-out share for "group" and "stratified".
    weights: an explicit weights file for the backbone (else the usual resolution).
    resize: mobilenet_v2 input resized to 224 x 224 (False: the native spectrogram size).
    offline: forbid downloads (None: read TFAUDIO_OFFLINE).
    precision: "float32" or "bfloat16": the backbone (for small_cnn, its conv blocks) trains
        under Keras mixed precision (bfloat16 compute, float32 variables); the front end, the
        classification layer and the loss stay float32 (`tfaudio.runtime.keras_policy`).
    export_precision: what the exported network computes in (and `TrainResult.classifier`,
        whose validation metrics are reported): the trained weights in a network built at it.
    lr, fine_tune_lr: old names of learning_rate and fine_tune_learning_rate, still accepted
        (DeprecationWarning); split "fold" is the old name of "predefined", likewise.
    """

    backbone: str = "yamnet"
    epochs: int = 20
    fine_tune_epochs: int = 5
    unfreeze_last: int = 2
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-5
    batch_size: int = 32
    duration: float | None = None
    dropout: float = 0.3
    patience: int = 5
    seed: int = 0
    split: str = "auto"
    val_fold: int | None = None
    val_fraction: float = 0.2
    class_weights: bool = True
    augment: AugmentConfig = AugmentConfig()
    frontend: FrontendConfig | None = None
    weights: str | None = None
    resize: bool = True
    offline: bool | None = None
    precision: str = "float32"
    export_precision: str = "float32"
    lr: InitVar[float | None] = None
    fine_tune_lr: InitVar[float | None] = None

    def __post_init__(self, lr, fine_tune_lr):
        self._accept_old_names(lr, fine_tune_lr)
        for name in ("precision", "export_precision"):
            try:
                check_precision(getattr(self, name))
            except ValueError as err:
                raise TrainingError(f"{name}: {err}") from None
        if self.backbone not in BACKBONES:
            raise TrainingError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.split not in SPLITS:
            raise TrainingError(f"unknown split {self.split!r}; choose one of {', '.join(SPLITS)}")
        if self.epochs < 1:
            raise TrainingError(f"epochs must be at least 1, got {self.epochs}")
        if self.fine_tune_epochs < 0 or self.unfreeze_last < 0:
            raise TrainingError("fine_tune_epochs and unfreeze_last must not be negative")
        if self.batch_size < 1:
            raise TrainingError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.duration is not None and self.duration < 0.1:
            raise TrainingError(f"duration must be at least 0.1 s, got {self.duration}")
        if not 0 < self.val_fraction < 1:
            raise TrainingError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if BACKBONE_TABLE[self.backbone].weights is None and self.weights is not None:
            raise TrainingError(f"{self.backbone} trains from scratch: it takes no weights file")

    def _accept_old_names(self, lr, fine_tune_lr) -> None:
        """The old spellings (lr, fine_tune_lr, split "fold") set the new fields, with a
        DeprecationWarning, so code written against them keeps running."""
        renamed = {"lr": ("learning_rate", lr), "fine_tune_lr": ("fine_tune_learning_rate", fine_tune_lr)}
        for old, (new, value) in renamed.items():
            if value is not None:
                warnings.warn(f"TrainConfig({old}=...) is now {new}", DeprecationWarning, stacklevel=4)
                object.__setattr__(self, new, value)  # frozen: the one way to set a field here
        if self.split in ALIASES:
            warnings.warn(f"split {self.split!r} is now {ALIASES[self.split]!r}", DeprecationWarning, stacklevel=4)
            object.__setattr__(self, "split", ALIASES[self.split])

    @property
    def frontend_config(self) -> FrontendConfig | None:
        """The log-mel front end used (None for yamnet, which brings its own)."""
        if self.backbone == "yamnet":
            return None
        return self.frontend or DEFAULT_FRONTENDS[self.backbone]

    def to_dict(self) -> dict:
        """JSON-ready settings (stored with the export and the run).

        A precision is listed only when it is not float32, the rule representation identities
        follow (`tfaudio.models.precision`): a float32 run's settings, and the metrics.json and
        tfaudio.json holding them, are exactly what they were before precision was a setting.
        """
        values = dataclasses.asdict(self)
        for name in ("precision", "export_precision"):
            if values[name] == "float32":
                del values[name]
        values["augment"]["noise_dir"] = str(self.augment.noise_dir) if self.augment.noise_dir else None
        values["frontend"] = dataclasses.asdict(self.frontend_config) if self.frontend_config else None
        return values
