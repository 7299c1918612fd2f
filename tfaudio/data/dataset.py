"""Labeled datasets: discovery, summaries, reproducible splits and input pipelines.

A dataset is either a folder with one sub-folder per class (like
`keras.utils.audio_dataset_from_directory`) or a CSV manifest `filename,label[,fold][,group]`
whose paths are relative to the CSV. A folder holding `meta.csv` or `manifest.csv` is read
through that manifest (the layout of ESC-50 and of the datasets tfaudio writes).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.data.audio import AUDIO_EXTENSIONS, AudioError, info

if TYPE_CHECKING:  # pandas is imported where a summary is built, not for every dataset read
    import pandas as pd


MANIFEST_NAMES = ("meta.csv", "manifest.csv")


class DatasetError(Exception):
    """A dataset that cannot be read or split as asked."""


@dataclass(frozen=True)
class Clip:
    """One labeled recording. fold and group come from a manifest when it has them."""

    path: Path
    label: str
    fold: int | None = None
    group: str | None = None


@dataclass(frozen=True)
class Problem:
    """A file left out, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Dataset:
    """Clips with their labels; `classes` is the sorted label list that integer labels index."""

    root: Path
    clips: tuple[Clip, ...]
    classes: tuple[str, ...]
    source: str
    ignored: tuple[Problem, ...] = ()

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labels(self) -> np.ndarray:
        """int64 [clips]: index of each clip's label in `classes`."""
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([index[c.label] for c in self.clips], dtype=np.int64)

    @property
    def folds(self) -> np.ndarray | None:
        """int64 [clips] predefined folds, or None when the dataset has none."""
        if not self.clips or any(c.fold is None for c in self.clips):
            return None
        return np.array([c.fold for c in self.clips], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray | None:
        """object [clips] group ids (speaker, recording...), or None when no clip has one.

        A clip without a group (e.g. a noise clip in a speech manifest) is its own group."""
        if all(c.group is None for c in self.clips):
            return None
        return np.array([c.group if c.group is not None else f"<clip {i}>" for i, c in enumerate(self.clips)], dtype=object)

    def relative(self, clip: Clip) -> str:
        """The clip's path relative to the dataset root (as a manifest would write it)."""
        try:
            return clip.path.relative_to(self.root).as_posix()
        except ValueError:
            return str(clip.path)

    def without(self, paths: Sequence[str | os.PathLike], reason: str) -> Dataset:
        """A copy without the clips at `paths`, recorded in `ignored` with `reason`."""
        drop = {str(p) for p in paths}
        kept = tuple(c for c in self.clips if str(c.path) not in drop)
        gone = tuple(Problem(str(c.path), reason) for c in self.clips if str(c.path) in drop)
        return replace(self, clips=kept, ignored=self.ignored + gone)


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _from_folders(root: Path) -> Dataset:
    clips: list[Clip] = []
    ignored: list[Problem] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            if entry.suffix.lower() in AUDIO_EXTENSIONS:
                ignored.append(Problem(str(entry), "not inside a class folder"))
            continue
        for file in sorted(entry.rglob("*")):
            if not file.is_file() or _is_hidden(file, root):
                continue
            if file.suffix.lower() in AUDIO_EXTENSIONS:
                clips.append(Clip(path=file, label=entry.name))
            else:
                ignored.append(Problem(str(file), f"unknown audio extension '{file.suffix or '(none)'}'"))
    if not clips:
        raise DatasetError(
            f"{root}: no audio files found. Expected one sub-folder per class holding "
            f"{', '.join(sorted(AUDIO_EXTENSIONS))} files, or a CSV manifest filename,label[,fold][,group]"
        )
    classes = tuple(sorted({c.label for c in clips}))
    return Dataset(root=root, clips=tuple(clips), classes=classes, source="folders", ignored=tuple(ignored))


def _from_manifest(csv_path: Path, group_column: str | None) -> Dataset:
    # The csv module rather than pandas: reading a manifest should not cost a pandas import
    # (a fully cached `tfaudio embed` run is otherwise mostly import time).
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{k.strip(): (v or "") for k, v in row.items() if k is not None} for row in reader]
    except (csv.Error, UnicodeDecodeError) as err:
        raise DatasetError(f"{csv_path}: not a readable CSV manifest ({err})") from None
    missing = {"filename", "label"} - set(columns)
    if missing:
        raise DatasetError(
            f"{csv_path}: manifest lacks column(s) {sorted(missing)}; expected filename,label[,fold][,group], "
            f"found {columns}"
        )
    group_column = group_column or ("group" if "group" in columns else None)
    if group_column and group_column not in columns:
        raise DatasetError(f"{csv_path}: group column '{group_column}' not found in {columns}")
    root = csv_path.parent
    clips: list[Clip] = []
    ignored: list[Problem] = []
    for line, row in enumerate(rows, start=2):
        name, label = row["filename"].strip(), row["label"].strip()
        if not name or not label:
            raise DatasetError(f"{csv_path}, line {line}: empty filename or label")
        path = (root / name).resolve() if not Path(name).is_absolute() else Path(name)
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            ignored.append(Problem(str(path), f"unknown audio extension '{path.suffix or '(none)'}'"))
            continue
        if not path.exists():
            ignored.append(Problem(str(path), f"listed in {csv_path.name} (line {line}) but not found"))
            continue
        fold = None
        if "fold" in row and row["fold"].strip():
            try:
                fold = int(row["fold"])
            except ValueError:
                raise DatasetError(f"{csv_path}, line {line}: fold must be an integer, got {row['fold']!r}") from None
        group = (row[group_column].strip() or None) if group_column else None
        clips.append(Clip(path=path, label=label, fold=fold, group=group))
    if not clips:
        raise DatasetError(f"{csv_path}: none of the files it lists could be found")
    if any(c.fold is None for c in clips) and any(c.fold is not None for c in clips):
        raise DatasetError(f"{csv_path}: some rows have a fold and others do not; give every row a fold or none")
    classes = tuple(sorted({c.label for c in clips}))
    return Dataset(
        root=root.resolve(), clips=tuple(clips), classes=classes, source=str(csv_path), ignored=tuple(ignored)
    )


def load_dataset(path: str | os.PathLike, *, group_column: str | None = None) -> Dataset:
    """Discover a dataset from a class-folder tree, a CSV manifest, or a folder holding one.

    group_column names the manifest column that groups clips (default: `group` when present),
    e.g. "speaker" so that no speaker is in both the training and the test side of a split.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DatasetError(f"{path}: expected a folder of class sub-folders or a .csv manifest")
        return _from_manifest(path, group_column)
    for name in MANIFEST_NAMES:
        if (path / name).is_file():
            return _from_manifest(path / name, group_column)
    if group_column:
        raise DatasetError(f"{path}: --group-column needs a CSV manifest; this is a class-folder tree")
    return _from_folders(path.resolve())


@dataclass(frozen=True)
class Summary:
    """Header facts of every clip. clips: one row per readable clip (path, label, fold,
    group, sample_rate, channels, duration, format); unreadable: clips whose header failed."""

    dataset: Dataset
    clips: pd.DataFrame
    unreadable: tuple[Problem, ...]

    def per_class(self) -> pd.DataFrame:
        """clips, total and mean duration per class (every class listed, even if unreadable)."""
        import pandas as pd

        grouped = self.clips.groupby("label")["duration"]
        table = pd.DataFrame({"clips": grouped.size(), "seconds": grouped.sum(), "mean_seconds": grouped.mean()})
        return table.reindex(list(self.dataset.classes), fill_value=0)

    def to_dict(self) -> dict:
        """JSON-ready facts for reports."""
        d = self.clips["duration"]
        folds = self.dataset.folds
        return {
            "source": self.dataset.source,
            "clips": int(len(self.clips)),
            "classes": list(self.dataset.classes),
            "clips_per_class": {k: int(v) for k, v in self.per_class()["clips"].items()},
            "duration_seconds": {
                "total": float(d.sum()),
                "min": float(d.min()) if len(d) else 0.0,
                "median": float(d.median()) if len(d) else 0.0,
                "max": float(d.max()) if len(d) else 0.0,
            },
            "sample_rates": {int(k): int(v) for k, v in Counter(self.clips["sample_rate"]).items()},
            "channels": {int(k): int(v) for k, v in Counter(self.clips["channels"]).items()},
            "folds": sorted({int(f) for f in folds}) if folds is not None else None,
            "groups": int(len(set(self.dataset.groups))) if self.dataset.groups is not None else None,
            "unreadable": [{"path": p.path, "reason": p.reason} for p in self.unreadable],
            "ignored": [{"path": p.path, "reason": p.reason} for p in self.dataset.ignored],
        }


def summarize(dataset: Dataset, progress: Callable[[int], None] | None = None) -> Summary:
    """Read every clip's header (no decoding). progress(n) is called as clips complete."""
    rows, unreadable = [], []

    def read(clip: Clip):
        try:
            return clip, info(clip.path), None
        except AudioError as err:
            return clip, None, err

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for clip, meta, err in pool.map(read, dataset.clips):
            if err is not None:
                unreadable.append(Problem(err.path, err.problem))
            else:
                rows.append(
                    {
                        "path": str(clip.path),
                        "label": clip.label,
                        "fold": clip.fold,
                        "group": clip.group,
                        "sample_rate": meta.sample_rate,
                        "channels": meta.channels,
                        "duration": meta.duration,
                        "format": meta.format,
                    }
                )
            if progress:
                progress(1)
    import pandas as pd

    columns = ["path", "label", "fold", "group", "sample_rate", "channels", "duration", "format"]
    return Summary(dataset=dataset, clips=pd.DataFrame(rows, columns=columns), unreadable=tuple(unreadable))
