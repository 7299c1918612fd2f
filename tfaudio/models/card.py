"""What the registry knows of a model before building it: its card (the facts `tfaudio models`
lists and the report reasons with), where its weights are, and how to build it from them.

Each model's folder holds its own entry (`tfaudio/models/<name>/entry.py`: `ENTRY`), made from
its TensorFlow-free config.py, so the registry's table is one line per model. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tfaudio import assets as weights
from tfaudio.models.base import ModelUnavailable

if TYPE_CHECKING:
    from tfaudio.models.base import Representation

#: locate(explicit weights path or None, offline or None for the environment's rule) -> the
#: source `build` takes (a resolved file, a model id, "computed"); raises ModelUnavailable.
Locate = Callable[[str | None, bool | None], str]


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


@dataclass(frozen=True)
class ModelEntry:
    """A registry entry: the model's card, how to find its weights (`locate`), and how to build
    the representation from what `locate` found (`build`; lazy where it can be, so a cached run
    never builds the network). check: why what `locate` found cannot be used (damaged or other
    weights), found cheaply and without TensorFlow, or None when it can; what `tfaudio models`
    reports."""

    card: ModelCard
    locate: Locate
    build: Callable[[str], Representation]
    check: Callable[[str], str | None] | None = None

    @property
    def name(self) -> str:
        return self.card.name


def weights_file(spec: weights.WeightsFile) -> Locate:
    """A model whose weights are one known file (`tfaudio.assets`): the explicit path, else
    TFAUDIO_MODELS, the cache or a download (`assets.resolve`)."""

    def locate(explicit, offline) -> str:
        try:
            return str(weights.resolve(spec, explicit, offline=offline))
        except weights.WeightsUnavailable as err:
            raise ModelUnavailable(str(err)) from None

    return locate


def no_weights(name: str) -> Locate:
    """A model computed from formulas: it has no weights, and says so if given some."""

    def locate(explicit, offline) -> str:
        if explicit is not None:
            raise ValueError(f"{name} has no weights; do not pass weights_path")
        return "computed"

    return locate
