"""The spectrogram autoencoder's configuration and saved-model files, apart from TensorFlow.

Importing this module does not import TensorFlow, so `autoencoder:PATH` can name its cache key
(config + weights digest) and a fully cached `tfaudio embed` never builds the network.

A saved autoencoder is a folder:

    autoencoder.json           config, weights sha256, training history and facts, and
                               trained_on_sha256: the content sha256 of every clip that shaped
                               the weights (training and early-stopping clips), so a comparison
                               can tell when the model has heard the clips it is tested on
    autoencoder.weights.h5     Keras weights: standardization statistics, encoder, decoder
    figures/                   reconstructions, error per class, loss curves (PNG + HTML)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tfaudio.assets import sha256_of
from tfaudio.errors import TfaudioError
from tfaudio.frontend.params import MelParams, centred_power_mel

CONFIG_FILE = "autoencoder.json"


WEIGHTS_FILE = "autoencoder.weights.h5"

#: The record's list of the clips a model was trained on (content sha256, sorted).
TRAINED_ON = "trained_on_sha256"


#: Mean and spread of the bottleneck over a clip's patches: on ESC-10 (5 folds, random forest)
#: the standard deviation adds about ten points of accuracy to the mean alone.
DEFAULT_POOLING = "mean+std"


#: Bump when the network or patching changes, so vectors cached under the old code are not reused.
IMPLEMENTATION = 1


class AutoencoderError(TfaudioError, ValueError):
    """A configuration, dataset or saved model the autoencoder cannot use; says what to change."""


@dataclass(frozen=True)
class AutoencoderConfig:
    """Front end, network and training settings of the log-mel autoencoder.

    Front end: log-mel in dB (librosa's conventions, `tfaudio.frontend.LogMel`), 25 ms Hann
    window, 10 ms hop, centred frames (so even a very short clip has a frame), 80 dB range.
    Patches: `patch_frames` frames x `num_mel_bins` bands, every `patch_hop_frames` frames
    (None: half a patch); a clip shorter than one patch gets one patch whose tail is padding,
    left out of the loss.
    Network: `len(filters)` stride-2 3x3 convolutions, a dense bottleneck of `latent` units,
    and the mirror image back; `patch_frames` and `num_mel_bins` must divide by 2 ** len(filters).
    Training: Adam, masked MSE on standardized log-mel, early stopping on the validation clips
    (`val_fraction` of the training clips, at least one) after `patience` epochs without
    improvement; `seed` fixes the split, initialization and shuffling. `precision`: "bfloat16"
    trains the encoder and decoder under Keras mixed precision (bfloat16 compute, float32
    variables, `tfaudio.runtime.keras_policy`); standardization and the loss stay float32. It
    changes only how the weights are found: a saved model loads as a float32 network whatever
    it was trained at, and its identity is its weights' digest.
    """

    sample_rate: int = 16000
    window_length: int = 400
    hop_length: int = 160
    num_mel_bins: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    patch_frames: int = 64
    patch_hop_frames: int | None = None
    latent: int = 64
    filters: tuple[int, ...] = (16, 32, 64)
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    patience: int = 3
    val_fraction: float = 0.1
    max_duration: float | None = None
    seed: int = 0
    precision: str = "float32"

    def __post_init__(self):
        # JSON gives lists; a frozen dataclass must stay hashable.
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        # precision is checked by `train`, before any clip is decoded: tfaudio.runtime, which
        # knows the precisions, reaches TensorFlow, and a config must not.
        size = self.patch_frames * self.num_mel_bins
        if self.latent < 1:
            raise AutoencoderError(f"latent size must be at least 1, got {self.latent}")
        if self.latent >= size:
            raise AutoencoderError(
                f"latent size {self.latent} is not smaller than the input it should compress: a patch is "
                f"{self.patch_frames} frames x {self.num_mel_bins} mel bands = {size} values. "
                f"Choose --latent below {size} (64-256 is typical) or a larger --patch-frames"
            )
        if not self.filters or any(f < 1 for f in self.filters):
            raise AutoencoderError(f"filters must be positive channel counts, got {self.filters}")
        step = 2 ** len(self.filters)
        for name, value in (("patch_frames", self.patch_frames), ("num_mel_bins", self.num_mel_bins)):
            if value < step or value % step:
                raise AutoencoderError(
                    f"{name}={value} must be a positive multiple of {step} (the network halves it "
                    f"{len(self.filters)} times); try {max(step, value // step * step)}"
                )
        if not 1 <= self.hop <= self.patch_frames:
            raise AutoencoderError(f"patch_hop_frames must be in 1..{self.patch_frames}, got {self.patch_hop_frames}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 0:
            raise AutoencoderError("epochs and batch_size must be at least 1, patience at least 0")
        if not 0.0 < self.val_fraction < 1.0:
            raise AutoencoderError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        # MelParams checks the band edges against the sample rate.
        self.mel  # noqa: B018

    @property
    def hop(self) -> int:
        """Frames between patch starts."""
        return self.patch_hop_frames if self.patch_hop_frames is not None else self.patch_frames // 2

    @property
    def mel(self) -> MelParams:
        return centred_power_mel(
            self.sample_rate, self.window_length, self.hop_length,
            num_mel_bins=self.num_mel_bins, fmin=self.fmin, fmax=self.fmax,
        )

    @property
    def patch_seconds(self) -> float:
        return self.patch_frames * self.hop_length / self.sample_rate

    @property
    def patch_hop_seconds(self) -> float:
        return self.hop * self.hop_length / self.sample_rate

    def network_dict(self) -> dict:
        """The fields that shape the vectors (front end, patching, architecture); training
        settings only matter through the weights, whose digest the identity carries."""
        keep = ("sample_rate", "window_length", "hop_length", "num_mel_bins", "fmin", "fmax",
                "patch_frames", "latent", "filters")
        values = {name: getattr(self, name) for name in keep}
        return {**values, "filters": list(self.filters), "patch_hop_frames": self.hop}

    def to_dict(self) -> dict:
        """JSON-ready settings (autoencoder.json's "config"; compare's key for its per-split fits).

        precision is listed only when it is not float32, the rule representation identities
        follow (`tfaudio.models.precision`): a float32 model's record and fit key are what they
        were before precision was a setting, and a bfloat16 training is recorded and keyed apart.
        """
        values = {**dataclasses.asdict(self), "filters": list(self.filters)}
        if values["precision"] == "float32":
            del values["precision"]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> AutoencoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def autoencoder_identity(config: AutoencoderConfig, weights_digest: str) -> dict:
    """What determines the bottleneck vectors (the embedding store's key)."""
    return {
        "model": "autoencoder",
        "implementation": IMPLEMENTATION,
        "weights_sha256": weights_digest,
        "config": config.network_dict(),
    }


def read_saved(path: str | os.PathLike) -> tuple[Path, dict, AutoencoderConfig]:
    """(folder, the JSON record, config) of a saved autoencoder; AutoencoderError naming the
    folder and what is missing otherwise."""
    folder = Path(path).expanduser()
    if folder.is_file() and folder.name in (CONFIG_FILE, WEIGHTS_FILE):
        folder = folder.parent
    record_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not folder.is_dir():
        raise AutoencoderError(f"{folder}: no such folder; train one with `tfaudio autoencoder train DATA --out {folder}`")
    missing = [p.name for p in (record_path, weights_path) if not p.is_file()]
    if missing:
        raise AutoencoderError(
            f"{folder}: not a saved autoencoder (missing {', '.join(missing)}); "
            f"train one with `tfaudio autoencoder train DATA --out {folder}`"
        )
    try:
        record = json.loads(record_path.read_text())
        config = AutoencoderConfig.from_dict(record["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise AutoencoderError(f"{record_path}: unreadable autoencoder record ({err})") from None
    return folder, record, config


def content_digests(paths: Sequence[Path], known: dict[Path, str | None] | None = None) -> list[str | None]:
    """sha256 of each file's content (None where it cannot be read), the digest the embedding
    store keys clips by. known: path -> digest already computed; updated with the new ones."""
    known = {} if known is None else known

    def digest(path: Path) -> str | None:
        try:
            return sha256_of(path)
        except OSError:
            return None

    missing = list(dict.fromkeys(p for p in paths if p not in known))
    with ThreadPoolExecutor(max_workers=4) as pool:
        known.update(zip(missing, pool.map(digest, missing)))
    return [known[p] for p in paths]


def trained_on(record: dict) -> frozenset[str] | None:
    """The content sha256 of the clips a saved model was trained on (None: saved before tfaudio
    recorded them)."""
    digests = record.get(TRAINED_ON)
    return None if digests is None else frozenset(digests)
