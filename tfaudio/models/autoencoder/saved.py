"""`autoencoder:PATH`: a saved autoencoder as a representation known by its identity."""

from __future__ import annotations

from tfaudio.assets import sha256_of
from tfaudio.models.autoencoder.config import (
    DEFAULT_POOLING,
    WEIGHTS_FILE,
    AutoencoderError,
    autoencoder_identity,
    read_saved,
    trained_on,
)
from tfaudio.models.base import LazyRepresentation, ModelUnavailable


def saved_representation(path: str):
    """`autoencoder:PATH` for the registry: a representation known by its identity (config
    and weights file digest), the network built only when vectors must be computed. Its
    `trained_on` holds the clips the model was trained on, as its record lists them."""

    try:
        folder, record, config = read_saved(path)
    except AutoencoderError as err:
        raise ModelUnavailable(str(err)) from None

    def load():
        from tfaudio.models.autoencoder.model import load_representation

        return load_representation(folder, name=f"autoencoder:{path}")

    representation = LazyRepresentation(
        f"autoencoder:{path}",
        sample_rate=config.sample_rate,
        frame_hop_seconds=config.patch_hop_seconds,
        dim=config.latent,
        identity=autoencoder_identity(config, sha256_of(folder / WEIGHTS_FILE)),
        load=load,
        source=str(folder),
        default_pooling=DEFAULT_POOLING,
    )
    representation.trained_on = trained_on(record)
    return representation
