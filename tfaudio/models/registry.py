"""Names -> representations. `get("yamnet")` resolves the weights and returns a representation
whose network is built only when vectors must actually be computed.

Loading lazily matters: when every clip is already in the embedding store, a run needs only
the representation's identity (weights digest, parameters), not TensorFlow or the network,
so a cached run costs a fraction of a second instead of several.

A built-in model is its folder plus one line of `_BUILTIN`: the folder's `entry.py` holds its
card (`tfaudio.models.card.ModelCard`: vector size, sample rate, weights and the facts the
report's discussion reasons with, taken from the model's TensorFlow-free config.py), where its
weights are and how to build it. `register` adds one from elsewhere (a plugin, a test).
`tfaudio models` lists the cards; the report reads them; `model_kinds` names every spelling
`--model` takes, for the commands' help.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfaudio.errors import TfaudioError
from tfaudio.frontend.pooling import pooled_dim
from tfaudio.models.autoencoder.config import DEFAULT_POOLING as AUTOENCODER_POOLING
from tfaudio.models.autoencoder.config import AutoencoderConfig
from tfaudio.models.base import ModelUnavailable, Representation
from tfaudio.models.card import ModelCard, ModelEntry
from tfaudio.models.handcrafted import entry as handcrafted
from tfaudio.models.vggish import entry as vggish
from tfaudio.models.wav2vec2 import config as wav2vec2_config
from tfaudio.models.wav2vec2 import entry as wav2vec2
from tfaudio.models.yamnet import entry as yamnet
from tfaudio.quiet import import_tensorflow_quietly

__all__ = ["ModelCard", "ModelEntry", "ModelUnavailable", "UnknownModel", "get", "names", "describe", "card_for",
           "model_kinds", "register", "unregister"]


class UnknownModel(TfaudioError, ValueError):
    """A model name the registry does not know; the message lists the names it does."""


#: The built-in models, one line each (the autoencoder, trained on the data, is `get`'s own case).
_BUILTIN: dict[str, ModelEntry] = {
    entry.name: entry for entry in (handcrafted.ENTRY, yamnet.ENTRY, vggish.ENTRY, wav2vec2.ENTRY)
}
_BUILT_IN = frozenset(_BUILTIN)


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


#: One card per representation, the autoencoder included (`register` adds to it). Published
#: facts: YAMNet and VGGish, the AudioSet release notes; Wav2Vec2, Baevski et al. 2020; the
#: others, this project.
CARDS = {**{name: entry.card for name, entry in _BUILTIN.items()}, "autoencoder": _autoencoder_card()}

#: Spellings of `--model` that name a kind of model rather than one model, with what they are
#: (`model_kinds`). "autoencoder" is fitted on each split's training clips, so only commands
#: that fit (compare) take it.
_KINDS = (
    ("autoencoder", "an autoencoder trained on each split's training clips (compare only)"),
    ("autoencoder:PATH", "an autoencoder trained by `tfaudio autoencoder train` (its output folder)"),
    ("hub:HANDLE", "a TF-Hub waveform model: a tfhub.dev or Kaggle handle, or a SavedModel folder"),
    ("hf:NAME", "a Hugging Face TF audio encoder (wav2vec2-style): a model id or a save_pretrained folder"),
)


def register(entry: ModelEntry) -> None:
    """Add a model under `entry.card.name` (for `get`, `describe`, `model_kinds` and the cards)
    until `unregister`; raises ValueError if the name is taken. The registry's table is the one
    mutable thing it keeps, so that a model defined elsewhere needs no change here."""
    if entry.name in _BUILTIN or entry.name in CARDS or ":" in entry.name:
        raise ValueError(f"cannot register {entry.name!r}: the name is taken or has a ':'")
    _BUILTIN[entry.name] = entry
    CARDS[entry.name] = entry.card


def unregister(name: str) -> None:
    """Remove a model added by `register` (built-in ones stay)."""
    if name in _BUILT_IN:
        raise ValueError(f"{name} is built in")
    _BUILTIN.pop(name, None)
    CARDS.pop(name, None)


def names() -> list[str]:
    """The representation names (built in, then registered)."""
    return list(_BUILTIN)


def model_kinds(learned: bool = True) -> list[tuple[str, str]]:
    """(spelling, one-line description) for every kind of `--model`: each name, then
    `autoencoder`, `autoencoder:PATH`, `hub:HANDLE` and `hf:NAME`. learned=False leaves out
    `autoencoder`, which only commands that fit on a split's clips can use."""
    kinds = [(name, entry.card.description) for name, entry in _BUILTIN.items()]
    return kinds + [(spelling, text) for spelling, text in _KINDS if learned or spelling != "autoencoder"]


def card_for(name: str) -> ModelCard | None:
    """The card of representation `name` (a built-in name, or the default Wav2Vec2 checkpoint
    named as hf:<id>; other checkpoints differ in languages and tuning), else None."""
    if name in CARDS:
        return CARDS[name]
    if name == f"hf:{wav2vec2_config.DEFAULT_MODEL}":
        return CARDS["wav2vec2"]
    return None


def get(name: str, *, weights_path: str | None = None, offline: bool | None = None) -> Representation:
    """The representation called `name`, weights resolved (yamnet and handcrafted build their
    network only when vectors must be computed).

    name: one of `model_kinds()`: a model's name, "hub:<TF-Hub handle or SavedModel folder>",
    "hf:<Hugging Face id or local folder>", "autoencoder:<folder>" or "autoencoder".
    weights_path: an explicit weights file (else TFAUDIO_MODELS, the caches, a download).
    offline: override TFAUDIO_OFFLINE / HF_HUB_OFFLINE.
    Raises ModelUnavailable when the weights cannot be had, naming the file and where to put
    it; UnknownModel for a name it does not know.
    """
    if name.startswith("hub:"):
        return _hub(name[len("hub:") :])
    if name.startswith("hf:"):
        return wav2vec2.build(name[len("hf:") :], generic=True)
    if name.startswith("autoencoder:"):
        from tfaudio.models.autoencoder.saved import saved_representation

        return saved_representation(name[len("autoencoder:") :])
    if name == "autoencoder":
        return _learnable_autoencoder(weights_path)
    if name not in _BUILTIN:
        spellings = ", ".join(spelling for spelling, _ in model_kinds())
        raise UnknownModel(f"unknown representation {name!r}; choose one of {spellings}")
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
    """A model and whether it can run on this machine right now, without network."""

    info: ModelCard
    available: bool
    detail: str  # where the weights are, or why they are not usable


def describe() -> list[ModelStatus]:
    """The status of every model of `names()`: its weights are looked for and checked where the
    entry can check them cheaply (`ModelEntry.check`: a truncated file, another network), no
    network is built and nothing is downloaded."""
    rows = []
    for entry in _BUILTIN.values():
        try:
            source = entry.locate(None, True)
        except ModelUnavailable as err:
            rows.append(ModelStatus(entry.card, False, str(err)))
            continue
        problem = entry.check(source) if entry.check is not None else None
        rows.append(ModelStatus(entry.card, problem is None, source if problem is None else f"{source}: {problem}"))
    return rows
