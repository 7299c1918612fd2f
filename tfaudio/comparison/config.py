"""What a comparison runs: its configuration, a frozen dataclass (no TensorFlow, no scikit-learn)."""

from __future__ import annotations

from dataclasses import dataclass

from tfaudio.comparison.classifiers import CLASSIFIERS, ClassifierSpec
from tfaudio.data.splits import CROSS_VALIDATION
from tfaudio.errors import TfaudioError

#: The representation every other one is tested against.
BASELINE = "handcrafted"

#: Split strategies a comparison accepts (each tests every clip exactly once).
SPLITS = CROSS_VALIDATION


class CompareError(TfaudioError):
    """A comparison that cannot run as asked (a model unavailable under --strict, no classes left)."""


@dataclass(frozen=True)
class CompareConfig:
    """What to compare and how.

    models: representation names (the baseline is added when missing: every learned
    representation is judged against it). classifiers: keys of `evaluate.CLASSIFIERS`.
    split: "auto" (the manifest's folds, else group-aware, else stratified k-fold) or another
    of `tfaudio.data.splits.CROSS_VALIDATION`; folds: k for the generated splits. params: per-classifier
    hyperparameter overrides, ((classifier, ((name, value), ...)), ...). pooling: clip pooling
    for every model (None: each model's default). strict: an unavailable model or unreadable
    file stops the run. precision: "float32" or "bfloat16" for the learned
    representations' networks (tfaudio.runtime; the hand-crafted baseline stays float32). ae_epochs / latent: epochs and bottleneck size of a representation
    fitted on each split's training clips (the autoencoder), passed on as `fit_settings`.
    """

    models: tuple[str, ...] = (BASELINE, "yamnet")
    classifiers: tuple[str, ...] = ("rf", "mlp", "logreg")
    split: str = "auto"
    folds: int = 5
    seed: int = 0
    params: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()
    pooling: str | None = None
    batch_size: int = 32
    max_duration: float | None = None
    strict: bool = False
    group_column: str | None = None
    store: str | None = None
    ae_epochs: int = 10
    latent: int = 64
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
        object.__setattr__(self, "classifiers", tuple(dict.fromkeys(self.classifiers)))

    def spec(self, classifier: str) -> ClassifierSpec:
        overrides = dict(self.params).get(classifier, ())
        return ClassifierSpec(classifier, tuple(overrides), self.seed)

    @property
    def fit_settings(self) -> dict:
        """What a representation fitted per split takes from this comparison
        (`LearnedRepresentation.configure`: each takes the settings it knows)."""
        return {"epochs": self.ae_epochs, "latent": self.latent, "seed": self.seed, "max_duration": self.max_duration}

    @property
    def model_list(self) -> tuple[str, ...]:
        """The models in run order, baseline first, duplicates removed."""
        rest = [m for m in self.models if m != BASELINE]
        return (BASELINE, *dict.fromkeys(rest))


