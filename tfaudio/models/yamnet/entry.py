"""YAMNet's registry entry: its card, and the representation built lazily (the network, and
TensorFlow, only when vectors must be computed; the identity digests the weights file)."""

from __future__ import annotations

from tfaudio import assets as weights
from tfaudio.models.base import LazyRepresentation, Representation
from tfaudio.models.card import ModelCard, ModelEntry, weights_file
from tfaudio.models.yamnet.config import EMBEDDING_SIZE, YamnetParams, yamnet_identity


def card(params: YamnetParams = YamnetParams()) -> ModelCard:
    return ModelCard(
        "yamnet", EMBEDDING_SIZE, params.sample_rate, weights.YAMNET_H5.url,
        f"YAMNet, MobileNetV1 trained on AudioSet; {params.patch_window_seconds} s patches",
        "AudioSet: about 2 million 10 s YouTube clips labelled with 521 sound event classes "
        "(animals, weather, machines, music, speech)",
        params.patch_window_seconds, params.patch_hop_seconds, "general sounds",
    )


def build(source: str, params: YamnetParams = YamnetParams()) -> Representation:
    def load():
        from tfaudio.models.yamnet.model import YamnetRepresentation

        return YamnetRepresentation(source, params)

    return LazyRepresentation(
        "yamnet",
        sample_rate=params.sample_rate,
        frame_hop_seconds=params.patch_hop_seconds,
        dim=EMBEDDING_SIZE,
        identity=yamnet_identity(weights.sha256_of(source), params),
        load=load,
        source=source,
        window_geometry=params.window_geometry,
    )


def check(source: str) -> str | None:
    from tfaudio.models.yamnet.weights_check import weights_problem  # h5py, only when asked

    return weights_problem(source)


ENTRY = ModelEntry(card(), weights_file(weights.YAMNET_H5), build, check)
