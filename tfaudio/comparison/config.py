"""What a comparison runs: its configuration, a frozen dataclass (no TensorFlow, no scikit-learn)."""

from __future__ import annotations

from dataclasses import dataclass

from tfaudio.comparison.classifiers import CLASSIFIERS, ClassifierSpec
from tfaudio.comparison.settings import Overrides
from tfaudio.data.splits import CROSS_VALIDATION
from tfaudio.errors import TfaudioError, TfaudioWarning

#: The representation every other one is tested against.
BASELINE = "handcrafted"

#: Split strategies a comparison accepts (each tests every clip exactly once).
SPLITS = CROSS_VALIDATION


class CompareError(TfaudioError):
    """A comparison that cannot run as asked (a model unavailable under --strict, no classes left)."""


class LeakageWarning(TfaudioWarning):
    """A representation loaded from disk was fitted on clips that a split tests it on."""


@dataclass(frozen=True)
class CompareConfig:
    """What to compare and how.

    models: representation names (the baseline is added when missing: every learned
    representation is judged against it). classifiers: names in `classifiers.CLASSIFIERS`.
    split: "auto" (the manifest's folds, else group-aware, else stratified k-fold) or another
    of `tfaudio.data.splits.CROSS_VALIDATION`; folds: k for the generated splits. params: per-classifier
    hyperparameter overrides, ((classifier, ((name, value), ...)), ...). pooling: clip pooling
    for every model (None: each model's default). strict: an unavailable model or unreadable
    file stops the run. precision: "float32" or "bfloat16" for the learned
    representations' networks (tfaudio.runtime; the hand-crafted baseline stays float32).
    fit: settings of the representations fitted on each split's training clips, in the shape
    of params: ((model, ((setting, value), ...)), ...), e.g. (("autoencoder", (("epochs", 5),)),);
    each model must be among `models` (see `fit_settings`).
    """

    models: tuple[str, ...] = (BASELINE, "yamnet")
    classifiers: tuple[str, ...] = tuple(CLASSIFIERS)
    split: str = "auto"
    folds: int = 5
    seed: int = 0
    params: Overrides = ()
    pooling: str | None = None
    batch_size: int = 32
    max_duration: float | None = None
    strict: bool = False
    group_column: str | None = None
    store: str | None = None
    fit: Overrides = ()
    precision: str = "float32"

    def __post_init__(self):
        unknown = [c for c in self.classifiers if c not in CLASSIFIERS]
        if unknown:
            raise ValueError(f"unknown classifier(s) {unknown}; choose from {', '.join(CLASSIFIERS)}")
        if not self.classifiers:
            raise ValueError("name at least one classifier")
        if self.split not in SPLITS:
            # A holdout tests only part of the clips; every comparison here pools all of them.
            raise ValueError(f"unknown split {self.split!r} for a comparison; choose one of {', '.join(SPLITS)}")
        strays = [name for name, _ in self.fit if name not in self.model_list]
        if strays:
            # A setting for a model that is not compared would be silently ignored.
            raise ValueError(f"fit settings for {', '.join(strays)}, which {'is' if len(strays) == 1 else 'are'} not "
                             f"among the models compared ({', '.join(self.model_list)}); add --model {strays[0]}")
        object.__setattr__(self, "classifiers", tuple(dict.fromkeys(self.classifiers)))

    def spec(self, classifier: str) -> ClassifierSpec:
        overrides = dict(self.params).get(classifier, ())
        return ClassifierSpec(classifier, tuple(overrides), self.seed)

    def fit_settings(self, model: str) -> dict:
        """What the representation `model`, fitted per split, takes from this comparison
        (`LearnedRepresentation.configure`): the seed and max_duration every fit shares, then
        the settings given for it in `fit`, which win."""
        return {"seed": self.seed, "max_duration": self.max_duration, **self.fit_overrides(model)}

    def fit_overrides(self, model: str) -> dict:
        """The settings given in `fit` for `model` alone (what the user asked to change)."""
        return dict(dict(self.fit).get(model, ()))

    @property
    def model_list(self) -> tuple[str, ...]:
        """The models in run order, baseline first, duplicates removed."""
        rest = [m for m in self.models if m != BASELINE]
        return (BASELINE, *dict.fromkeys(rest))
