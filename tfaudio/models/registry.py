"""Names -> representations. `get("yamnet")` resolves the weights and returns a representation
whose network is built only when vectors must actually be computed.

Loading lazily matters: when every clip is already in the embedding store, a run needs only
the representation's identity (weights digest, parameters), not TensorFlow or the network,
so a cached run costs a fraction of a second instead of several.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tfaudio import assets as weights
from tfaudio.models.base import LazyRepresentation, ModelUnavailable, Representation
from tfaudio.quiet import import_tensorflow_quietly


@dataclass(frozen=True)
class ModelInfo:
    """What `tfaudio models` shows for one built-in representation."""

    name: str
    dim: int
    sample_rate: int
    weights: str
    description: str


def _resolve(spec: weights.WeightsFile, explicit, offline) -> str:
    try:
        return str(weights.resolve(spec, explicit, offline=offline))
    except weights.WeightsUnavailable as err:
        raise ModelUnavailable(str(err)) from None


def _handcrafted(source: str) -> Representation:
    from tfaudio.models.handcrafted.config import HandcraftedParams, frame_feature_names, handcrafted_identity

    params = HandcraftedParams()

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
    )


def _yamnet(source: str) -> Representation:
    from tfaudio.models.yamnet.config import YamnetParams, yamnet_identity

    params = YamnetParams()

    def load():
        from tfaudio.models.yamnet.model import YamnetRepresentation

        return YamnetRepresentation(source, params)

    return LazyRepresentation(
        "yamnet",
        sample_rate=params.sample_rate,
        frame_hop_seconds=params.patch_hop_seconds,
        dim=1024,
        identity=yamnet_identity(weights.sha256_of(source), params),
        load=load,
        source=source,
    )


def _vggish(source: str) -> Representation:
    # VGGish's identity needs its params class, which lives with the network: built eagerly.
    import_tensorflow_quietly()
    from tfaudio.models.vggish.model import Vggish

    model = Vggish(source)
    model.source = source
    return model


def _hugging_face(source: str, generic: bool = False) -> Representation:
    """Wav2Vec2 (generic=False) or any TF audio encoder taking input_values (generic=True)."""
    # Loading reads the model's files (and their digests), so it happens here, not lazily.
    import_tensorflow_quietly()
    from tfaudio.models.wav2vec2.config import Wav2Vec2Params
    from tfaudio.models.wav2vec2.files import ModelFilesError
    from tfaudio.models.wav2vec2.model import HFAudioEncoder, Wav2Vec2

    try:
        model = (HFAudioEncoder if generic else Wav2Vec2)(Wav2Vec2Params(model=source))
    except ModelFilesError as err:
        raise ModelUnavailable(str(err)) from None
    model.source = source
    return model


def _weights_file(spec: weights.WeightsFile) -> Callable[[str | None, bool | None], str]:
    return lambda explicit, offline: _resolve(spec, explicit, offline)


def _no_weights(name: str) -> Callable[[str | None, bool | None], str]:
    def locate(explicit, offline):
        if explicit is not None:
            raise ValueError(f"{name} has no weights; do not pass weights_path")
        return "computed"

    return locate


def _hf_model(default: str) -> Callable[[str | None, bool | None], str]:
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


@dataclass(frozen=True)
class _Entry:
    """A built-in model: what it is, how to find its weights, how to build it from them."""

    info: ModelInfo
    locate: Callable[[str | None, bool | None], str]
    build: Callable[[str], Representation]


_WAV2VEC2_DEFAULT = "facebook/wav2vec2-base-960h"
_BUILTIN = {
    entry.info.name: entry
    for entry in (
        _Entry(
            ModelInfo("handcrafted", 104, 16000, "none (computed)", "13 MFCCs + deltas + spectral descriptors, mean and std"),
            _no_weights("handcrafted"),
            _handcrafted,
        ),
        _Entry(
            ModelInfo("yamnet", 1024, 16000, weights.YAMNET_H5.url, "YAMNet, MobileNetV1 trained on AudioSet; 0.96 s patches"),
            _weights_file(weights.YAMNET_H5),
            _yamnet,
        ),
        _Entry(
            ModelInfo("vggish", 128, 16000, weights.VGGISH_CKPT.url, "VGGish, VGG trained on YouTube-8M audio; 0.96 s examples"),
            _weights_file(weights.VGGISH_CKPT),
            _vggish,
        ),
        _Entry(
            ModelInfo("wav2vec2", 768, 16000, f"Hugging Face {_WAV2VEC2_DEFAULT}", "Wav2Vec2-base, self-supervised on LibriSpeech; 20 ms frames"),
            _hf_model(_WAV2VEC2_DEFAULT),
            _hugging_face,
        ),
    )
}


def names() -> list[str]:
    """The built-in representation names."""
    return list(_BUILTIN)


def get(name: str, *, weights_path: str | None = None, offline: bool | None = None) -> Representation:
    """The representation called `name`, weights resolved (yamnet and handcrafted build their
    network only when vectors must be computed).

    name: a built-in name, "hub:<TF-Hub handle or SavedModel folder>", or "hf:<Hugging Face id
    or local folder>". weights_path: an explicit weights file (else TFAUDIO_MODELS, the caches,
    a download). offline: override TFAUDIO_OFFLINE / HF_HUB_OFFLINE.
    Raises ModelUnavailable when the weights cannot be had, naming the file and where to put it.
    """
    if name.startswith("hub:"):
        return _hub(name[len("hub:") :])
    if name.startswith("hf:"):
        return _hugging_face(name[len("hf:") :], generic=True)
    if name.startswith("autoencoder:"):
        from tfaudio.models.autoencoder.saved import saved_representation

        return saved_representation(name[len("autoencoder:") :])
    if name not in _BUILTIN:
        raise ValueError(
            f"unknown representation {name!r}; choose one of {', '.join(names())}, hub:<handle>, hf:<model id> "
            "or autoencoder:<folder>"
        )
    entry = _BUILTIN[name]
    return entry.build(entry.locate(weights_path, offline))


def _hub(handle: str) -> Representation:
    import_tensorflow_quietly()
    from tfaudio.models import hub

    known = {hub.TFHUB_YAMNET: hub.HubYamnet, hub.TFHUB_VGGISH: hub.HubVggish}
    try:
        model = known[handle](handle) if handle in known else hub.HubModel(handle)
    except hub.HubError as err:
        raise ModelUnavailable(str(err)) from None
    model.name = f"hub:{handle}"
    return model


@dataclass(frozen=True)
class ModelStatus:
    """A built-in model and whether it can run on this machine right now, without network."""

    info: ModelInfo
    available: bool
    detail: str  # where the weights are, or why they are not usable


def describe() -> list[ModelStatus]:
    """The status of every built-in model: its weights are looked for, nothing is loaded, and
    the network is never touched."""
    rows = []
    for entry in _BUILTIN.values():
        try:
            rows.append(ModelStatus(entry.info, True, entry.locate(None, True)))
        except ModelUnavailable as err:
            rows.append(ModelStatus(entry.info, False, str(err)))
    return rows
