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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.audio import AUDIO_EXTENSIONS, AudioError, fix_length, info, load

if TYPE_CHECKING:  # pandas is imported where a summary is built, not for every dataset read
    import pandas as pd

MANIFEST_NAMES = ("meta.csv", "manifest.csv")


class DatasetError(Exception):
    """A dataset that cannot be read or split as asked."""


class SplitError(DatasetError):
    """The requested split is impossible for this dataset (e.g. a class with too few clips)."""


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


# --------------------------------------------------------------------------- summary


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


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class Split:
    """Indices into the dataset's clips: int64 [n_train] and int64 [n_test]."""

    name: str
    train: np.ndarray
    test: np.ndarray


def _require_per_class(labels: np.ndarray, classes: Sequence[str], needed: int, what: str) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    short = [f"'{classes[i]}' ({counts[i]})" for i in np.flatnonzero(counts < needed)]
    if short:
        raise SplitError(
            f"{what} needs at least {needed} clips per class; too few in: {', '.join(short)}. "
            f"Add clips, drop those classes, or ask for fewer folds"
        )


def holdout(dataset: Dataset, test_size: float = 0.2, seed: int = 0) -> list[Split]:
    """One stratified train/test split (group-aware when the dataset has groups)."""
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    labels = dataset.labels
    _require_per_class(labels, dataset.classes, 2, "A stratified holdout split")
    index = np.arange(len(labels))
    if dataset.groups is not None:
        k = max(2, int(round(1 / test_size)))
        train, test = next(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(index, labels, dataset.groups))
    else:
        train, test = train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    return [Split("holdout", np.sort(train), np.sort(test))]


def stratified_kfold(dataset: Dataset, k: int = 5, seed: int = 0) -> list[Split]:
    """k stratified folds, shuffled with `seed`."""
    from sklearn.model_selection import StratifiedKFold

    labels = dataset.labels
    _require_per_class(labels, dataset.classes, k, f"Stratified {k}-fold cross-validation")
    index = np.arange(len(labels))
    folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(index, labels)
    return [Split(f"fold{i + 1}", train, test) for i, (train, test) in enumerate(folds)]


def group_kfold(dataset: Dataset, k: int = 5, seed: int = 0) -> list[Split]:
    """k folds with no group (speaker, recording) on both sides, stratified as far as possible."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = dataset.groups
    if groups is None:
        raise SplitError("group-aware folds need a group for every clip (a group column in the manifest)")
    labels = dataset.labels
    _require_per_class(labels, dataset.classes, 2, f"Group-aware {k}-fold cross-validation")
    if len(set(groups)) < k:
        raise SplitError(f"group-aware {k}-fold cross-validation needs at least {k} groups; found {len(set(groups))}")
    index = np.arange(len(labels))
    folds = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(index, labels, groups)
    return [Split(f"fold{i + 1}", train, test) for i, (train, test) in enumerate(folds)]


def predefined_folds(dataset: Dataset) -> list[Split]:
    """One split per fold value of the manifest: that fold is the test side."""
    folds = dataset.folds
    if folds is None:
        raise SplitError("the dataset has no predefined folds (no fold column in its manifest)")
    values = np.unique(folds)
    if len(values) < 2:
        raise SplitError(f"predefined folds need at least 2 distinct folds; found only fold {values[0]}")
    _require_per_class(dataset.labels, dataset.classes, 2, "Cross-validation over predefined folds")
    return [Split(f"fold{v}", np.flatnonzero(folds != v), np.flatnonzero(folds == v)) for v in values]


SPLIT_STRATEGIES = ("auto", "predefined", "group", "stratified", "holdout")


def make_splits(
    dataset: Dataset, strategy: str = "auto", k: int = 5, seed: int = 0, test_size: float = 0.2
) -> list[Split]:
    """Splits by strategy. "auto": the manifest's folds if any, else group-aware folds if the
    clips have groups, else stratified k-fold."""
    if strategy == "auto":
        strategy = "predefined" if dataset.folds is not None else "group" if dataset.groups is not None else "stratified"
    if strategy == "predefined":
        return predefined_folds(dataset)
    if strategy == "group":
        return group_kfold(dataset, k, seed)
    if strategy == "stratified":
        return stratified_kfold(dataset, k, seed)
    if strategy == "holdout":
        return holdout(dataset, test_size, seed)
    raise ValueError(f"unknown split strategy {strategy!r}; choose one of {SPLIT_STRATEGIES}")


# --------------------------------------------------------------------------- decoding in batches


@dataclass(frozen=True)
class Batch:
    """Decoded clips, zero-padded to the longest one.

    indices: int64 [batch] positions in the clip list; waveforms: float32 [batch, samples];
    lengths: int32 [batch] real samples per clip.
    """

    indices: np.ndarray
    waveforms: np.ndarray
    lengths: np.ndarray


def iter_batches(
    clips: Sequence[Clip],
    sample_rate: int = 16000,
    batch_size: int = 32,
    *,
    max_duration: float | None = None,
    min_duration: float | None = None,
    on_error: Callable[[AudioError], None] | None = None,
    workers: int = 4,
) -> Iterator[Batch]:
    """Decode clips in parallel threads and yield them in order, `batch_size` at a time.

    A clip that fails to decode is passed to on_error and left out of its batch; without
    on_error the AudioError propagates (fail fast).
    """

    def decode(clip: Clip):
        try:
            return load(clip.path, sample_rate, duration=max_duration, min_duration=min_duration), None
        except AudioError as err:
            return None, err

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(clips), batch_size):
            part = clips[start : start + batch_size]
            decoded = list(pool.map(decode, part))
            keep, waves = [], []
            for offset, (wave, err) in enumerate(decoded):
                if err is not None:
                    if on_error is None:
                        raise err
                    on_error(err)
                    continue
                keep.append(start + offset)
                waves.append(wave)
            if not waves:
                continue
            lengths = np.array([w.shape[0] for w in waves], dtype=np.int32)
            padded = np.stack([fix_length(w, int(lengths.max())) for w in waves])
            yield Batch(np.array(keep, dtype=np.int64), padded, lengths)


# --------------------------------------------------------------------------- tf.data


@dataclass(frozen=True)
class PipelineConfig:
    """How clips become fixed-size training batches.

    duration: seconds per example (pad / trim with `align`); cache: False, True (memory) or
    a file path prefix for tf.data's on-disk cache.
    """

    sample_rate: int = 16000
    duration: float = 1.0
    align: str = "start"
    batch_size: int = 32
    shuffle: bool = False
    seed: int = 0
    cache: bool | str = False
    drop_remainder: bool = False

    @property
    def num_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))


@dataclass
class SkippedFiles:
    """Filled while a pipeline runs: files that failed to decode."""

    problems: list[Problem] = field(default_factory=list)


def _decoded_ok(wave, label, ok):
    return ok


def _drop_flag(wave, label, ok):
    return wave, label


def tf_dataset(
    dataset: Dataset,
    indices: Sequence[int] | None = None,
    config: PipelineConfig = PipelineConfig(),
    skipped: SkippedFiles | None = None,
):
    """A tf.data.Dataset of (waveform float32 [batch, samples], label int32 [batch]).

    Clips are decoded in parallel (soundfile + soxr in `tf.numpy_function`), padded or
    trimmed to `config.duration`, and labelled with their index in `dataset.classes`. A clip
    that fails to decode is dropped and recorded in `skipped` when given; otherwise the
    pipeline stops with the file's AudioError.
    """
    import tensorflow as tf

    chosen = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    paths = np.array([str(dataset.clips[i].path) for i in chosen])
    labels = dataset.labels[chosen].astype(np.int32)
    n = config.num_samples

    def decode(path_bytes: bytes):
        path = path_bytes.decode()
        try:
            wave = fix_length(load(path, config.sample_rate), n, config.align)
            return wave, True
        except AudioError as err:
            if skipped is None:
                raise
            skipped.problems.append(Problem(err.path, err.problem))
            return np.zeros(n, np.float32), False

    def to_example(path, label):
        wave, ok = tf.numpy_function(decode, [path], [tf.float32, tf.bool], stateful=False)
        wave.set_shape([n])
        ok.set_shape([])
        return wave, label, ok

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(_decoded_ok).map(_drop_flag)
    # Cache decoded audio before shuffling, so later epochs skip decoding yet still reshuffle.
    if config.cache is True:
        ds = ds.cache()
    elif config.cache:
        ds = ds.cache(str(config.cache))
    if config.shuffle:
        ds = ds.shuffle(len(paths), seed=config.seed, reshuffle_each_iteration=True)
    return ds.batch(config.batch_size, drop_remainder=config.drop_remainder).prefetch(tf.data.AUTOTUNE)
