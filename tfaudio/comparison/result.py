"""What a comparison measured: plain records and tables, no computation (a leaf module)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.comparison.classifiers import CVResult
from tfaudio.comparison.config import BASELINE, CompareConfig
from tfaudio.comparison.metrics import McNemar, Metrics, mcnemar
from tfaudio.data.dataset import Dataset, Problem
from tfaudio.data.splits import Split

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class RepresentationInfo:
    """A representation as the report describes it: its pooled dimension, what determines its
    vectors (identity: model, weights digest, parameters), and how many clips came from cache."""

    name: str
    dim: int
    pooling: str
    identity: dict
    cached: int = 0
    computed: int = 0
    embed_seconds: float = 0.0
    per_split: bool = False


@dataclass(frozen=True)
class Unavailable:
    name: str
    reason: str


@dataclass(frozen=True)
class Leakage:
    """A representation loaded from disk that was fitted on clips it is tested on.

    name: the representation; clips: how many of the compared clips are both in its training
    and in a test split; compared: the clips compared; splits: the names of the splits whose
    test side holds such clips, of `total_splits`.
    """

    name: str
    clips: int
    compared: int
    splits: tuple[str, ...]
    total_splits: int

    def sentence(self) -> str:
        """What the warning and the report say about it."""
        where = ("every split" if len(self.splits) == self.total_splits
                 else f"{len(self.splits)} of {self.total_splits} splits ({', '.join(self.splits)})")
        return (f"{self.name} was trained on {self.clips} of the {self.compared} clips it is tested on (in the test "
                f"side of {where}), so its scores are optimistic: its vectors were learned from the very clips they "
                "are tested on. Train it on clips outside those test splits, or let compare train one per split "
                "(--model autoencoder instead of autoencoder:PATH).")


@dataclass(frozen=True)
class Run:
    """One representation x classifier: out-of-fold result, metrics, and the test against the
    baseline with the same classifier (None for the baseline itself)."""

    representation: str
    classifier: str
    cv: CVResult
    metrics: Metrics
    versus_baseline: McNemar | None


@dataclass
class ComparisonResult:
    """Everything a comparison measured. Tables are pandas DataFrames (`ranking`, `per_class`,
    `reliability`, `folds`, `predictions`); `tfaudio.write_report(result, out)` writes the HTML / Markdown / JSON / CSV report."""

    config: CompareConfig
    dataset: Dataset
    summary: dict
    splits: list[Split]
    split_strategy: str
    representations: list[RepresentationInfo]
    runs: list[Run]
    vectors: dict[str, np.ndarray]
    unavailable: list[Unavailable] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    leakage: list[Leakage] = field(default_factory=list)
    command: str = ""
    fallback: str | None = None  # why the data is not what was asked for (e.g. offline demo)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.dataset.classes

    @property
    def dataset_ignored(self) -> list[Problem]:
        """Files found but not audio (unknown extension, hidden files are not listed)."""
        return list(self.dataset.ignored)

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels

    def run(self, representation: str, classifier: str) -> Run:
        return next(r for r in self.runs if r.representation == representation and r.classifier == classifier)

    def ranked(self) -> list[Run]:
        """Runs from best to worst: pooled accuracy, then macro F1; on an exact tie the baseline
        comes first (a learned representation must beat it to win), then by name (stable)."""
        return sorted(self.runs, key=lambda r: (-round(r.metrics.accuracy, 9), -round(r.metrics.macro_f1, 9),
                                                r.representation != BASELINE, r.representation, r.classifier))

    def best_of(self, representation: str) -> Run:
        return next(r for r in self.ranked() if r.representation == representation)

    @property
    def winner(self) -> Run:
        return self.ranked()[0]

    def best_learned(self) -> Run | None:
        """The best run of any representation but the baseline (None: only the baseline ran)."""
        return next((r for r in self.ranked() if r.representation != BASELINE), None)

    def learned_versus_baseline(self) -> McNemar | None:
        """McNemar of the best learned run against the baseline's best run: what the verdict
        tests, whichever of the two ranks first (None: only the baseline ran)."""
        learned = self.best_learned()
        if learned is None:
            return None
        return mcnemar(self.labels, learned.cv.predictions, self.best_of(BASELINE).cv.predictions)

    def winner_versus_baseline(self) -> McNemar | None:
        """McNemar of the overall winner against the baseline's best classifier."""
        best, base = self.winner, self.best_of(BASELINE)
        if best.representation == BASELINE:
            return None
        return mcnemar(self.labels, best.cv.predictions, base.cv.predictions)

    @property
    def ranking(self) -> pd.DataFrame:
        """One row per run, best first: accuracy with its interval, macro scores, ece (top-label
        expected calibration error; NaN for a classifier without probabilities), timings, and
        mcnemar_p, the run against the baseline with the same classifier (NaN for the baseline)."""
        import pandas as pd

        dims = {r.name: r.dim for r in self.representations}
        rows = []
        for rank, run in enumerate(self.ranked(), 1):
            m, versus = run.metrics, run.versus_baseline
            rows.append({
                "rank": rank,
                "representation": run.representation,
                "classifier": run.classifier,
                "dim": dims[run.representation],
                "accuracy": m.accuracy,
                "fold_mean": m.fold_mean,
                "fold_std": m.fold_std,
                "ci_low": m.accuracy_ci[0],
                "ci_high": m.accuracy_ci[1],
                "macro_precision": m.macro_precision,
                "macro_recall": m.macro_recall,
                "macro_f1": m.macro_f1,
                "ece": m.calibration.ece if m.calibration else np.nan,
                "mcnemar_p": versus.p_value if versus else np.nan,
                "fit_seconds": float(run.cv.fit_seconds.mean()),
                "predict_seconds": float(run.cv.predict_seconds.mean()),
            })
        return pd.DataFrame(rows)

    @property
    def per_class(self) -> pd.DataFrame:
        """Precision, recall, F1 and support per class for every run (long format)."""
        import pandas as pd

        rows = []
        for run in self.runs:
            values = run.metrics.per_class
            for i, name in enumerate(self.classes):
                rows.append({"representation": run.representation, "classifier": run.classifier, "class": name,
                             **{k: v[i].item() for k, v in values.items()}})
        return pd.DataFrame(rows)

    @property
    def reliability(self) -> pd.DataFrame:
        """The reliability curves: one row per run with probabilities and non-empty confidence
        bin (bin_low, bin_high, clips, confidence: mean top-label probability, accuracy)."""
        import pandas as pd

        return pd.DataFrame([
            {"representation": r.representation, "classifier": r.classifier, "bin_low": row["bin"][0],
             "bin_high": row["bin"][1], "clips": row["clips"], "confidence": row["confidence"],
             "accuracy": row["accuracy"]}
            for r in self.runs if r.metrics.calibration for row in r.metrics.calibration.to_dict()["reliability"]
        ], columns=["representation", "classifier", "bin_low", "bin_high", "clips", "confidence", "accuracy"])

    @property
    def folds(self) -> pd.DataFrame:
        """Accuracy per split for every run."""
        import pandas as pd

        return pd.DataFrame([
            {"representation": r.representation, "classifier": r.classifier, "split": s.name, "accuracy": acc}
            for r in self.runs for s, acc in zip(self.splits, r.cv.fold_accuracy)
        ])

    @property
    def predictions(self) -> pd.DataFrame:
        """One row per clip: file, label, fold, group, the split that tested it, and each run's
        out-of-fold predicted label (column "<representation>/<classifier>")."""
        import pandas as pd

        tested_in = np.empty(len(self.dataset), dtype=object)
        for split in self.splits:
            tested_in[split.test] = split.name
        table = pd.DataFrame({
            "file": [self.dataset.relative(c) for c in self.dataset.clips],
            "label": [c.label for c in self.dataset.clips],
            "fold": pd.array([c.fold for c in self.dataset.clips], dtype="Int64"),
            "group": [c.group for c in self.dataset.clips],
            "split": tested_in,
        })
        names = np.array(self.classes, dtype=object)
        for run in self.runs:
            table[f"{run.representation}/{run.classifier}"] = names[run.cv.predictions]
        return table
