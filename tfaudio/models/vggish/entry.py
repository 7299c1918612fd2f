"""VGGish's registry entry: its card, and the representation built at once (its identity digests
the checkpoint's files, which the loader beside the network finds, and a checkpoint that does
not fit the network fails here, not mid-run)."""

from __future__ import annotations

from tfaudio import assets as weights
from tfaudio.models.base import Representation
from tfaudio.models.card import ModelCard, ModelEntry, weights_file
from tfaudio.models.vggish.config import EMBEDDING_SIZE, VggishParams
from tfaudio.quiet import import_tensorflow_quietly


def card(params: VggishParams = VggishParams()) -> ModelCard:
    return ModelCard(
        "vggish", EMBEDDING_SIZE, params.sample_rate, weights.VGGISH_CKPT.url,
        f"VGGish, VGG trained on YouTube-8M audio; {params.example_window_seconds} s examples",
        "YouTube-8M audio: about 8 million videos with video-level topic labels",
        params.example_window_seconds, params.example_hop_seconds, "general sounds",
    )


def build(source: str) -> Representation:
    import_tensorflow_quietly()
    from tfaudio.models.vggish.model import Vggish

    model = Vggish(source)
    model.source = source
    return model


ENTRY = ModelEntry(card(), weights_file(weights.VGGISH_CKPT), build)
