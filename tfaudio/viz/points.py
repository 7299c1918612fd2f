"""The clips and their vectors under each representation, checked before anything is drawn.

Every representation is embedded through the embedding store (cached), then the tables are
aligned on the clips that all of them hold, so one point means the same clip in every panel,
one metadata row and one sprite cell serve every tensor of a projector export.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tfaudio.data.dataset import Clip, Dataset, Problem
from tfaudio.errors import TfaudioError, TfaudioWarning

#: Fewest clips a 2-D projection and its figures make sense for.
MIN_CLIPS = 3


class VizError(TfaudioError, ValueError):
    """Input that cannot be visualized or exported; the message says what and what to do."""


class VizWarning(TfaudioWarning):
    """An adjustment made to run at all (a perplexity clamped, a figure left out)."""


@dataclass(frozen=True)
class Embedded:
    """One representation's vectors for the aligned clips: float32 [clips, dim]."""

    name: str
    pooling: str
    vectors: np.ndarray


@dataclass(frozen=True)
class PointSet:
    """Clips present in every representation (dataset order) and their vectors per representation.

    dataset: the clips' dataset, reduced to these clips (classes recomputed).
    skipped: clips left out, with the reason (unreadable, or missing from a representation).
    """

    dataset: Dataset
    embedded: tuple[Embedded, ...]
    skipped: tuple[Problem, ...] = ()

    @property
    def clips(self) -> tuple[Clip, ...]:
        return self.dataset.clips

    def files(self) -> list[str]:
        """Each clip's path relative to the dataset root."""
        return [self.dataset.relative(c) for c in self.clips]


def as_dataset(data, *, group_column: str | None = None) -> Dataset:
    """A Dataset from a Dataset, a folder / manifest path, or a sequence of (label, file) pairs."""
    from tfaudio.data.dataset import DatasetError, load_dataset

    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load_dataset(data, group_column=group_column)
    pairs = list(data)
    if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise VizError("data must be a dataset folder, a CSV manifest, a Dataset, or (label, file) pairs")
    clips = tuple(Clip(Path(file).resolve(), str(label)) for label, file in pairs)
    missing = [str(c.path) for c in clips if not c.path.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} file(s) in the (label, file) list do not exist: {', '.join(missing[:5])}")
    root = Path(os.path.commonpath([str(c.path.parent) for c in clips]))
    return Dataset(root, clips, tuple(sorted({c.label for c in clips})), "list")


def align(tables: Sequence) -> PointSet:
    """EmbeddingTables of one dataset -> the PointSet of the clips every table holds."""
    if not tables:
        raise VizError("no representation given: name at least one model")
    dataset = tables[0].dataset
    keep = set(tables[0].clips)
    for table in tables[1:]:
        keep &= set(table.clips)
    skipped: dict[str, str] = {}
    for table in tables:
        for problem in table.stats.skipped:
            skipped.setdefault(problem.path, problem.reason)
        for clip in set(table.clips) - keep:
            skipped.setdefault(str(clip.path), f"not embedded by every representation (missing from {table.representation})")
    order = [c for c in dataset.clips if c in keep]
    embedded = []
    for table in tables:
        if table.pooling == "frames":
            raise VizError(f"{table.representation}: frame-level embeddings cannot be drawn; choose a pooling")
        row = {clip: i for i, clip in enumerate(table.clips)}
        vectors = np.asarray(table.vectors, np.float32)[[row[c] for c in order]] if order else np.zeros((0, 0), np.float32)
        embedded.append(Embedded(table.representation, table.pooling, vectors))
    reduced = replace(dataset, clips=tuple(order), classes=tuple(sorted({c.label for c in order})))
    return PointSet(reduced, tuple(embedded), tuple(Problem(p, r) for p, r in skipped.items()))


def check_finite(points: PointSet) -> None:
    """Refuse NaN or infinite vectors, naming the representation and the clips."""
    for item in points.embedded:
        bad = np.flatnonzero(~np.isfinite(item.vectors).all(axis=1))
        if bad.size:
            files = points.files()
            shown = ", ".join(files[i] for i in bad[:5]) + (", ..." if bad.size > 5 else "")
            raise VizError(
                f"{item.name}: {bad.size} of {len(files)} clips have NaN or infinite embedding values ({shown}); "
                "the model produced invalid numbers for them. Check those files (silence, clipping, a broken "
                "decode) or drop them from the dataset"
            )


def check_for_plot(points: PointSet) -> None:
    """What a 2-D picture with separability figures needs: enough clips, two classes, finite
    vectors, and vectors that are not all the same."""
    count = len(points.clips)
    if count == 0:
        reasons = "; ".join(f"{p.path}: {p.reason}" for p in points.skipped[:3])
        raise VizError("no clip could be embedded" + (f" ({reasons})" if reasons else ""))
    if count < MIN_CLIPS:
        raise VizError(
            f"only {count} clip(s) to show ({', '.join(points.files())}); a 2-D projection and its neighbour "
            f"figures need at least {MIN_CLIPS} clips. Add clips to the dataset"
        )
    classes = points.dataset.classes
    if len(classes) < 2:
        raise VizError(
            f"all {count} clips have the label '{classes[0]}'; colouring by label and measuring how well labels "
            "separate need at least two classes. Add clips of another class"
        )
    check_finite(points)
    for item in points.embedded:
        if np.ptp(item.vectors, axis=0).max() == 0:
            raise VizError(f"{item.name}: every clip has the same vector, so there is nothing to project")


def embed_tables(
    dataset: Dataset,
    models: Sequence,
    *,
    pooling: str | None = None,
    store=None,
    batch_size: int = 32,
    max_duration: float | None = None,
    precision: str = "float32",
    progress: bool = True,
) -> list:
    """EmbeddingTables of `dataset`, one per model (a registry name or a Representation),
    through the embedding store (clips embedded before are read back)."""
    import sys

    from tqdm import tqdm

    from tfaudio.models.precision import with_precision
    from tfaudio.models.registry import get
    from tfaudio.pipeline.local import EmbedConfig, embed_dataset
    from tfaudio.store import EmbeddingStore

    if not models:
        raise VizError("no representation given: name at least one model (e.g. yamnet)")
    store = store if isinstance(store, EmbeddingStore) else EmbeddingStore(store)
    config = EmbedConfig(pooling=pooling, batch_size=batch_size, max_duration=max_duration)
    tables = []
    for model in models:
        try:
            representation = with_precision(get(model) if isinstance(model, str) else model, precision)
        except ValueError as err:  # an unknown name: the registry lists the known ones
            raise VizError(str(err)) from None
        with tqdm(total=len(dataset), desc=representation.name, unit="clip", file=sys.stderr,
                  disable=not progress or len(dataset) < 2, dynamic_ncols=True) as bar:
            tables.append(embed_dataset(dataset, representation, store, config, progress=bar.update))
    return tables
