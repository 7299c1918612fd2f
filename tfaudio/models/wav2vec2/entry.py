"""Wav2Vec2's registry entry (and the builder of any `hf:<id or folder>` audio encoder): its card,
where the model is (a local folder, or an id in the Hugging Face cache), and the model loaded at
once (loading reads its files, whose digests are its identity)."""

from __future__ import annotations

from tfaudio import assets as weights
from tfaudio.models.base import ModelUnavailable, Representation
from tfaudio.models.card import Locate, ModelCard, ModelEntry
from tfaudio.models.wav2vec2 import config
from tfaudio.quiet import import_tensorflow_quietly


def card() -> ModelCard:
    rate = config.Preprocessing().sample_rate
    hop = config.frame_hop_samples(config.BASE_CONV_STRIDE) / rate
    return ModelCard(
        "wav2vec2", config.BASE_HIDDEN_SIZE, rate, f"Hugging Face {config.DEFAULT_MODEL}",
        f"Wav2Vec2-base, self-supervised on LibriSpeech; {round(hop * 1000)} ms frames",
        "960 hours of read English speech (LibriSpeech), self-supervised, then fine-tuned for speech recognition",
        config.receptive_field(config.BASE_CONV_KERNEL, config.BASE_CONV_STRIDE) / rate, hop, "speech",
    )


def hugging_face_model(default: str) -> Locate:
    """A Hugging Face model: an explicit local folder, else the id, which must be in the
    Hugging Face cache when offline (downloads go through huggingface_hub itself)."""

    def locate(explicit, offline):
        if explicit is not None:
            return str(explicit)
        offline = weights.is_offline() if offline is None else offline
        snapshots = weights.hf_cache_path(default) / "snapshots"
        if offline and not any(snapshots.glob("*/config.json")):
            raise ModelUnavailable(
                f"{default} is not in the Hugging Face cache ({snapshots.parent}) and network access is off; "
                f"download it where there is network (hf download {default}) and copy that folder here, "
                f"or pass a local directory saved with save_pretrained"
            )
        return default

    return locate


def build(source: str, generic: bool = False) -> Representation:
    """Wav2Vec2 (generic=False) or any TF audio encoder taking input_values (generic=True, `hf:`)."""
    import_tensorflow_quietly()
    from tfaudio.models.wav2vec2.files import ModelFilesError
    from tfaudio.models.wav2vec2.model import HFAudioEncoder, Wav2Vec2

    try:
        model = (HFAudioEncoder if generic else Wav2Vec2)(config.Wav2Vec2Params(model=source))
    except ModelFilesError as err:
        raise ModelUnavailable(str(err)) from None
    model.source = source
    return model


ENTRY = ModelEntry(card(), hugging_face_model(config.DEFAULT_MODEL), build)
