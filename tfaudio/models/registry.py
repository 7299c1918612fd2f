"""Names -> representations. `get("yamnet")` resolves the weights and returns a representation
whose network is built only when vectors must actually be computed.

Loading lazily matters: when every clip is already in the embedding store, a run needs only
the representation's identity (weights digest, parameters), not TensorFlow or the network,
so a cached run costs a fraction of a second instead of several.

Each built-in name also has a model card (`CARDS`): its vector size, sample rate, weights and
the facts the report's discussion reasons with, sizes and timings taken from the model's
TensorFlow-free config.py. `tfaudio models` lists the cards; the report reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tfaudio import assets as weights
from tfaudio.frontend.pooling import pooled_dim
from tfaudio.models.autoencoder.config import DEFAULT_POOLING as AUTOENCODER_POOLING
from tfaudio.models.autoencoder.config import AutoencoderConfig
from tfaudio.models.base import LazyRepresentation, ModelUnavailable, Representation
from tfaudio.models.handcrafted.config import (
    HandcraftedParams,
    feature_names,
    frame_feature_names,
    handcrafted_identity,
)
from tfaudio.models.vggish import config as vggish_config
from tfaudio.models.wav2vec2 import config as wav2vec2_config
from tfaudio.models.yamnet import config as yamnet_config
from tfaudio.quiet import import_tensorflow_quietly


@dataclass(frozen=True)
class ModelCard:
    """The facts about one built-in representation: what `tfaudio models` lists and what the
    report's discussion reasons with. Sizes and timings come from the model's config.py.

    dim: values per clip vector under the model's default pooling; sample_rate: Hz it takes;
    weights: where its weights come from. trained_on: what it learned from, as the report words
    it; receptive_seconds: audio one frame vector summarizes and hop_seconds: time between its
    frames (None: not fixed, the report then states neither); domain: "general sounds",
    "speech", "this dataset" or "hand-crafted".
    """

    name: str
    dim: int
    sample_rate: int
    weights: str
    description: str
    trained_on: str
    receptive_seconds: float | None
    hop_seconds: float | None
    domain: str

    def frames(self, seconds: float) -> int:
        """Frames a clip of `seconds` gives (at least one: short clips are padded)."""
        if not self.receptive_seconds or not self.hop_seconds:
            return 1
        return 1 + max(0, int((seconds - self.receptive_seconds) // self.hop_seconds))


def _handcrafted_card() -> ModelCard:
    params = HandcraftedParams()
    return ModelCard(
        "handcrafted", len(feature_names(params)), params.sample_rate, "none (computed)",
        f"{params.num_mfcc} MFCCs + deltas + spectral descriptors, mean and std",
        "nothing: fixed formulas (MFCCs with deltas, spectral centroid, bandwidth, roll-off, flatness, contrast, "
        "zero-crossing rate, RMS), averaged over the clip",
        params.window_length / params.sample_rate, params.hop_length / params.sample_rate, "hand-crafted",
    )


def _yamnet_card() -> ModelCard:
    params = yamnet_config.YamnetParams()
    return ModelCard(
        "yamnet", yamnet_config.EMBEDDING_SIZE, params.sample_rate, weights.YAMNET_H5.url,
        f"YAMNet, MobileNetV1 trained on AudioSet; {params.patch_window_seconds} s patches",
        "AudioSet: about 2 million 10 s YouTube clips labelled with 521 sound event classes "
        "(animals, weather, machines, music, speech)",
        params.patch_window_seconds, params.patch_hop_seconds, "general sounds",
    )


def _vggish_card() -> ModelCard:
    params = vggish_config.VggishParams()
    return ModelCard(
        "vggish", vggish_config.EMBEDDING_SIZE, params.sample_rate, weights.VGGISH_CKPT.url,
        f"VGGish, VGG trained on YouTube-8M audio; {params.example_window_seconds} s examples",
        "YouTube-8M audio: about 8 million videos with video-level topic labels",
        params.example_window_seconds, params.example_hop_seconds, "general sounds",
    )


def _wav2vec2_card() -> ModelCard:
    config = wav2vec2_config
    rate = config.Preprocessing().sample_rate
    hop = config.frame_hop_samples(config.BASE_CONV_STRIDE) / rate
    return ModelCard(
        "wav2vec2", config.BASE_HIDDEN_SIZE, rate, f"Hugging Face {config.DEFAULT_MODEL}",
        f"Wav2Vec2-base, self-supervised on LibriSpeech; {round(hop * 1000)} ms frames",
        "960 hours of read English speech (LibriSpeech), self-supervised, then fine-tuned for speech recognition",
        config.receptive_field(config.BASE_CONV_KERNEL, config.BASE_CONV_STRIDE) / rate, hop, "speech",
    )


def _autoencoder_card() -> ModelCard:
    # No receptive field or hop: its patching is a training setting of each trained model.
    config = AutoencoderConfig()
    return ModelCard(
        "autoencoder", pooled_dim(config.latent, AUTOENCODER_POOLING), config.sample_rate,
        "none (trained on the data itself)",
        f"convolutional autoencoder of log-mel patches, trained on the data; {AUTOENCODER_POOLING} of its bottleneck",
        "this dataset's own training clips, without labels (reconstruction of log-mel patches)",
        None, None, "this dataset",
    )


#: One card per built-in representation, the autoencoder included. Published facts: YAMNet and
#: VGGish, the AudioSet release notes; Wav2Vec2, Baevski et al. 2020; the others, this project.
CARDS = {card.name: card for card in (_handcrafted_card(), _yamnet_card(), _vggish_card(), _wav2vec2_card(),
                                      _autoencoder_card())}


def card_for(name: str) -> ModelCard | None:
    """The card of representation `name` (a built-in name, or the default Wav2Vec2 checkpoint
    named as hf:<id>; other checkpoints differ in languages and tuning), else None."""
    if name in CARDS:
        return CARDS[name]
    if name == f"hf:{wav2vec2_config.DEFAULT_MODEL}":
        return CARDS["wav2vec2"]
    return None


def _resolve(spec: weights.WeightsFile, explicit, offline) -> str:
    try:
        return str(weights.resolve(spec, explicit, offline=offline))
    except weights.WeightsUnavailable as err:
        raise ModelUnavailable(str(err)) from None


def _handcrafted(source: str) -> Representation:
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
    params = yamnet_config.YamnetParams()

    def load():
        from tfaudio.models.yamnet.model import YamnetRepresentation

        return YamnetRepresentation(source, params)

    return LazyRepresentation(
        "yamnet",
        sample_rate=params.sample_rate,
        frame_hop_seconds=params.patch_hop_seconds,
        dim=yamnet_config.EMBEDDING_SIZE,
        identity=yamnet_config.yamnet_identity(weights.sha256_of(source), params),
        load=load,
        source=source,
    )


def _vggish(source: str) -> Representation:
    # Built eagerly: its identity digests the checkpoint's files, which the loader beside the
    # network finds, and a checkpoint that does not fit the network fails here, not mid-run.
    import_tensorflow_quietly()
    from tfaudio.models.vggish.model import Vggish

    model = Vggish(source)
    model.source = source
    return model


def _hugging_face(source: str, generic: bool = False) -> Representation:
    """Wav2Vec2 (generic=False) or any TF audio encoder taking input_values (generic=True)."""
    # Loading reads the model's files (and their digests), so it happens here, not lazily.
    import_tensorflow_quietly()
    from tfaudio.models.wav2vec2.files import ModelFilesError
    from tfaudio.models.wav2vec2.model import HFAudioEncoder, Wav2Vec2

    try:
        model = (HFAudioEncoder if generic else Wav2Vec2)(wav2vec2_config.Wav2Vec2Params(model=source))
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

    card: ModelCard
    locate: Callable[[str | None, bool | None], str]
    build: Callable[[str], Representation]


_BUILTIN = {
    entry.card.name: entry
    for entry in (
        _Entry(CARDS["handcrafted"], _no_weights("handcrafted"), _handcrafted),
        _Entry(CARDS["yamnet"], _weights_file(weights.YAMNET_H5), _yamnet),
        _Entry(CARDS["vggish"], _weights_file(weights.VGGISH_CKPT), _vggish),
        _Entry(CARDS["wav2vec2"], _hf_model(wav2vec2_config.DEFAULT_MODEL), _hugging_face),
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
    if name == "autoencoder":
        return _learnable_autoencoder(weights_path)
    if name not in _BUILTIN:
        raise ValueError(
            f"unknown representation {name!r}; choose one of {', '.join(names())}, hub:<handle>, hf:<model id> "
            "or autoencoder:<folder>"
        )
    entry = _BUILTIN[name]
    return entry.build(entry.locate(weights_path, offline))


def _learnable_autoencoder(weights_path: str | None) -> Representation:
    """`autoencoder`: trained on the data itself, so a LearnedRepresentation (default config;
    `configure` takes a comparison's settings), fitted on each split's training clips."""
    if weights_path is not None:
        raise ValueError("autoencoder is trained on the data; do not pass weights_path (a trained one is autoencoder:<folder>)")
    from tfaudio.models.autoencoder.learned import LearnableAutoencoder

    return LearnableAutoencoder()


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

    info: ModelCard
    available: bool
    detail: str  # where the weights are, or why they are not usable


def describe() -> list[ModelStatus]:
    """The status of every built-in model: its weights are looked for, nothing is loaded, and
    the network is never touched."""
    rows = []
    for entry in _BUILTIN.values():
        try:
            rows.append(ModelStatus(entry.card, True, entry.locate(None, True)))
        except ModelUnavailable as err:
            rows.append(ModelStatus(entry.card, False, str(err)))
    return rows
