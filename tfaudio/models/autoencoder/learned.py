"""`autoencoder`: the autoencoder as a representation learned from the data it embeds.

The registry gives this unfitted form (`LearnableAutoencoder`); `fit` trains it on a split's
training clips only and returns the bottleneck representation. Importing this module does not
import TensorFlow: fitting does.

Fitted models are kept under <models_dir>/autoencoders/<key>, the key a digest of the config
and of the training clips' content, so a rerun of the same comparison loads them instead of
training again, and gets the very same vectors (the embedding store is keyed by the weights'
digest).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from tfaudio.data.dataset import Clip, Dataset
from tfaudio.models.autoencoder.config import (
    CONFIG_FILE,
    DEFAULT_POOLING,
    AutoencoderConfig,
    AutoencoderError,
    content_digests,
)
from tfaudio.models.base import LearnedRepresentation, ModelUnavailable, Representation
from tfaudio.quiet import import_tensorflow_quietly

#: Subfolder of `models_dir` that holds the fitted autoencoders.
CACHE_FOLDER = "autoencoders"


class LearnableAutoencoder(LearnedRepresentation):
    """The log-mel autoencoder before training: `latent`-d bottleneck frames, pooled mean+std."""

    default_pooling = DEFAULT_POOLING
    settings = tuple(f.name for f in dataclasses.fields(AutoencoderConfig))
    how_to_fit = (
        "`tfaudio compare` trains it on each split's training clips; to embed or plot with one, train it with "
        "`tfaudio autoencoder train DATA --out FOLDER` and name it autoencoder:FOLDER"
    )

    def __init__(self, config: AutoencoderConfig = AutoencoderConfig(), name: str = "autoencoder",
                 digests: dict[Path, str | None] | None = None):
        self.config = config
        self.name = name
        self.sample_rate = config.sample_rate
        self.frame_hop_seconds = config.patch_hop_seconds
        self.dim = config.latent
        # Clip path -> content sha256, shared with configured copies: a comparison's splits
        # overlap, and each file is read for its digest once.
        self._digests = {} if digests is None else digests

    def configure(self, settings: Mapping[str, object]) -> LearnableAutoencoder:
        chosen = {k: v for k, v in settings.items() if k in self.settings}
        try:
            config = dataclasses.replace(self.config, **chosen)
        except AutoencoderError as err:
            raise ModelUnavailable(str(err)) from None
        except TypeError as err:  # a value of the wrong kind ("epochs": "ten") fails a comparison
            shown = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
            raise ModelUnavailable(f"{self.name} cannot use the settings {shown}: {err}") from None
        return LearnableAutoencoder(config, self.name, self._digests)

    def fitting_note(self, fits: int) -> str:
        return (
            f"The autoencoder was trained {fits} times, once per split on that split's training clips "
            f"only ({self.config.epochs} epochs max, latent {self.config.latent}); its test clips never entered its training."
        )

    def fit(
        self,
        dataset: Dataset,
        train_indices: np.ndarray,
        *,
        models_dir: Path | None = None,
        part: str = "the dataset",
        log: Callable[[str], None] | None = None,
    ) -> Representation:
        """The bottleneck representation of an autoencoder trained on `train_indices` only
        (loaded from `models_dir` when one was trained on the same clips with the same config)."""
        import_tensorflow_quietly()
        from tfaudio.models.autoencoder.model import load_representation
        from tfaudio.models.autoencoder.train import save, train

        log = log or (lambda message: None)
        try:
            if models_dir is None:
                return train(dataset, train_indices, self.config).representation(self.name)
            folder = self._folder(dataset.clips, train_indices, Path(models_dir))
            if (folder / CONFIG_FILE).is_file():
                log(f"{self.name}: {part}'s model is cached ({folder})")
            else:
                log(f"{self.name}: training on the {len(train_indices)} training clips of {part}")
                partial = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
                save(train(dataset, train_indices, self.config), partial)
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(partial, folder)  # a model folder is complete or absent
            return load_representation(folder, name=self.name)
        except AutoencoderError as err:
            raise ModelUnavailable(str(err)) from None

    def _folder(self, clips: tuple[Clip, ...], train_indices: np.ndarray, models_dir: Path) -> Path:
        """models_dir/autoencoders/<16 hex digits of the config and the training clips' content>."""
        contents = sorted(d or "" for d in content_digests([clips[i].path for i in train_indices], self._digests))
        blob = json.dumps({"config": self.config.to_dict(), "train": contents}, sort_keys=True, default=str)
        return models_dir / CACHE_FOLDER / hashlib.sha256(blob.encode()).hexdigest()[:16]
