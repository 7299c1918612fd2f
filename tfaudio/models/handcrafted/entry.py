"""The hand-crafted baseline's registry entry: its card, and the representation built lazily
(TensorFlow is imported only when vectors must be computed)."""

from __future__ import annotations

from tfaudio.models.base import LazyRepresentation, Representation
from tfaudio.models.card import ModelCard, ModelEntry, no_weights
from tfaudio.models.handcrafted.config import (
    HandcraftedParams,
    feature_names,
    frame_feature_names,
    handcrafted_identity,
)


def card(params: HandcraftedParams = HandcraftedParams()) -> ModelCard:
    return ModelCard(
        "handcrafted", len(feature_names(params)), params.sample_rate, "none (computed)",
        f"{params.num_mfcc} MFCCs + deltas + spectral descriptors, mean and std",
        "nothing: fixed formulas (MFCCs with deltas, spectral centroid, bandwidth, roll-off, flatness, contrast, "
        "zero-crossing rate, RMS), averaged over the clip",
        params.window_length / params.sample_rate, params.hop_length / params.sample_rate, "hand-crafted",
    )


def build(source: str, params: HandcraftedParams = HandcraftedParams()) -> Representation:
    def load():
        from tfaudio.models.handcrafted.model import HandcraftedRepresentation

        return HandcraftedRepresentation(params)

    return LazyRepresentation(
        "handcrafted",
        sample_rate=params.sample_rate,
        frame_hop_seconds=params.hop_length / params.sample_rate,
        dim=len(frame_feature_names(params)),
        identity=handcrafted_identity(params),
        load=load,
        source=source,
        default_pooling="mean+std",
        window_geometry=params.window_geometry,
    )


ENTRY = ModelEntry(card(), no_weights("handcrafted"), build)
