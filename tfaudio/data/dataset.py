"""Datasets: discovery, summaries, reproducible splits and input pipelines.

A labelled dataset is either a folder with one sub-folder per class (like
`keras.utils.audio_dataset_from_directory`) or a CSV manifest `filename,label[,fold][,group]`
whose paths are relative to the CSV. A folder holding `meta.csv` or `manifest.csv` is read
through that manifest (the layout of ESC-50 and of the datasets tfaudio writes). Commands that
need no labels also read any tree of recordings, a list of files and a manifest without labels
(`load_dataset(..., labelled=False)`); files are found by the rules of `tfaudio.data.listing`.
"""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.assets import sha256_of
from tfaudio.data.audio import AUDIO_EXTENSIONS, AudioError, info, printable_path, short_clip_problem, verify
from tfaudio.data.listing import Problem, is_file_list, named_file_problem, not_a_file, read_file_list, walk
from tfaudio.errors import TfaudioError

if TYPE_CHECKING:  # pandas is imported where a summary is built, not for every dataset read
    import pandas as pd


MANIFEST_NAMES = ("meta.csv", "manifest.csv")


class DatasetError(TfaudioError):
    """A dataset that cannot be read or split as asked."""


@dataclass(frozen=True)
class Clip:
    """One recording and its label (None: unlabelled). fold and group come from a manifest
    when it has them; listed_as is the manifest's (or list's) own text for a path that leaves
    the dataset folder (reports show that, not the absolute path it resolves to)."""

    path: Path
    label: str | None
    fold: int | None = None
    group: str | None = None
    listed_as: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Dataset:
    """Clips with their labels; `classes` is the sorted label list that integer labels index
    (empty when the clips are unlabelled).

    ignored: files left out (unknown extension, broken or looping links, rows whose file is
    missing). warnings: clips kept but worth a look: duplicated manifest rows, one file listed
    under two labels, manifest paths that leave the dataset folder.
    """

    root: Path
    clips: tuple[Clip, ...]
    classes: tuple[str, ...]
    source: str
    ignored: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labelled(self) -> bool:
        """Whether every clip has a label."""
        return all(c.label is not None for c in self.clips)

    @property
    def labels(self) -> np.ndarray:
        """int64 [clips]: index of each clip's label in `classes`."""
        if not self.labelled:
            raise DatasetError(f"{self.source}: some clips have no label; expected {LABELLED_LAYOUTS}")
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
        """The clip's path relative to the dataset root (as a manifest would write it), else as
        the manifest wrote it; always printable (see audio.printable_path)."""
        try:
            return printable_path(clip.path.relative_to(self.root).as_posix())
        except ValueError:
            return printable_path(clip.listed_as or clip.path)

    def without(self, paths: Sequence[str | os.PathLike], reason: str) -> Dataset:
        """A copy without the clips at `paths`, recorded in `ignored` with `reason`."""
        drop = {str(p) for p in paths}
        kept = tuple(c for c in self.clips if str(c.path) not in drop)
        gone = tuple(Problem(str(c.path), reason) for c in self.clips if str(c.path) in drop)
        return replace(self, clips=kept, ignored=self.ignored + gone)


#: What a command that needs labels takes, for its errors.
LABELLED_LAYOUTS = (f"one sub-folder per class holding {', '.join(sorted(AUDIO_EXTENSIONS))} files, or a CSV "
                    "manifest filename,label[,fold][,group]")
#: What DATA may be for commands that need no labels, for their errors.
ANY_LAYOUT = ("a folder of recordings (any depth), a CSV manifest with a filename column, a list of files (.txt or "
              ".lst, one path a line; - for standard input) or an audio file")


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
        if not entry.is_dir():
            ignored.append(Problem(str(entry), not_a_file(entry) or "not a folder"))
            continue
        for file in walk(entry, ignored):
            if file.suffix.lower() in AUDIO_EXTENSIONS:
                clips.append(Clip(path=file, label=entry.name))
            else:
                ignored.append(Problem(str(file), f"unknown audio extension '{file.suffix or '(none)'}'"))
    if not clips:
        loose = sum(p.reason == "not inside a class folder" for p in ignored)
        if loose:
            raise DatasetError(f"{root}: {loose} audio file(s) but no class sub-folders, and this command needs "
                               f"labelled clips. Expected {LABELLED_LAYOUTS} (embed, tag, features and info also "
                               "take unlabelled recordings)")
        raise DatasetError(f"{root}: no audio files found. Expected {LABELLED_LAYOUTS}")
    classes = tuple(sorted({c.label for c in clips}))
    return Dataset(root=root, clips=tuple(clips), classes=classes, source="folders", ignored=tuple(ignored))


def _from_tree(root: Path) -> Dataset:
    """Every audio file under `root`, at any depth. A tree whose audio files all sit exactly
    one folder down is a class-folder tree (each clip labelled by its folder, as for labelled
    commands); in any other tree a folder name says nothing about a class, so clips have none."""
    ignored: list[Problem] = []
    audio = []
    for file in walk(root, ignored):
        if file.suffix.lower() in AUDIO_EXTENSIONS:
            audio.append(file)
        else:
            ignored.append(Problem(str(file), f"unknown audio extension '{file.suffix or '(none)'}'"))
    if not audio:
        raise DatasetError(f"{root}: no audio files found ({', '.join(sorted(AUDIO_EXTENSIONS))}, in this folder "
                           "or any sub-folder)")
    depths = {len(file.relative_to(root).parts) for file in audio}
    if depths == {2}:
        clips = tuple(Clip(path=file, label=file.relative_to(root).parts[0]) for file in audio)
        classes, source = tuple(sorted({c.label for c in clips})), "folders"
    else:
        clips, classes, source = tuple(Clip(path=file, label=None) for file in audio), (), "files"
    return Dataset(root=root, clips=clips, classes=classes, source=source, ignored=tuple(ignored),
                   warnings=tuple(_same_files(clips)))


def _same_files(clips: Sequence[Clip]) -> list[Problem]:
    """A clip whose path leads (through links) to the file of an earlier clip."""
    first: dict[str, Path] = {}
    found = []
    for clip in clips:
        real = os.path.realpath(clip.path)
        if real in first:
            found.append(Problem(str(clip.path), f"the same file as {first[real]} (through a link)"))
        else:
            first[real] = clip.path
    return found


def _named(root: Path, name: str, where: str) -> tuple[Path, Problem | None]:
    """The clip path a manifest row or list line names (relative to `root` unless absolute;
    relative names resolved, absolute ones kept as written), or why it cannot be a clip. Never
    opens the file, so a pipe cannot hang the run."""
    written = Path(name) if Path(name).is_absolute() else root / name
    shown = name if _leaves_folder(name) else str(written)  # never an absolute path the manifest did not write
    if written.suffix.lower() not in AUDIO_EXTENSIONS:
        return written, Problem(shown, f"unknown audio extension '{written.suffix or '(none)'}'")
    problem = named_file_problem(written)
    if problem == "not found":
        return written, Problem(shown, f"listed in {where} but not found")
    if problem is not None:
        return written, Problem(shown, f"listed in {where}: {problem}")
    return (written if Path(name).is_absolute() else Path(os.path.realpath(written))), None


def _from_manifest(csv_path: Path, group_column: str | None, labelled: bool = True) -> Dataset:
    # The csv module rather than pandas: reading a manifest should not cost a pandas import
    # (a fully cached `tfaudio embed` run is otherwise mostly import time).
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{k.strip(): (v or "") for k, v in row.items() if k is not None} for row in reader]
    except (csv.Error, UnicodeDecodeError) as err:
        raise DatasetError(f"{csv_path}: not a readable CSV manifest ({err})") from None
    missing = ({"filename", "label"} if labelled else {"filename"}) - set(columns)
    if missing:
        raise DatasetError(
            f"{csv_path}: manifest lacks column(s) {sorted(missing)}; expected filename,label[,fold][,group]"
            f"{'' if labelled else ' (label optional here)'}, found {columns}"
        )
    group_column = group_column or ("group" if "group" in columns else None)
    if group_column and group_column not in columns:
        raise DatasetError(f"{csv_path}: group column '{group_column}' not found in {columns}")
    root = csv_path.parent
    clips: list[Clip] = []
    ignored: list[Problem] = []
    warnings: list[Problem] = []
    seen: dict[Path, tuple[int, str | None]] = {}  # resolved path -> (first line, its label)
    for line, row in enumerate(rows, start=2):
        name, label = row["filename"].strip(), row.get("label", "").strip() or None
        if not name or (labelled and not label):
            raise DatasetError(f"{csv_path}, line {line}: empty filename{' or label' if labelled else ''}")
        path, problem = _named(root, name, f"{csv_path.name} (line {line})")
        if problem is not None:
            ignored.append(problem)
            continue
        outside = _leaves_folder(name)
        if outside:
            warnings.append(Problem(name, f"{csv_path.name} line {line} points outside the dataset folder"))
        if (same := Path(os.path.realpath(path))) in seen:  # absolute rows are kept as written, so resolve here
            first, first_label = seen[same]
            if first_label == label:
                reason = f"{csv_path.name} line {line} repeats line {first} (same file, label '{label}')"
            else:
                reason = (f"{csv_path.name} line {line} lists the file of line {first} under another label: "
                          f"'{label}', not '{first_label}'")
            warnings.append(Problem(name, reason))
        else:
            seen[same] = (line, label)
        fold = None
        if "fold" in row and row["fold"].strip():
            try:
                fold = int(row["fold"])
            except ValueError:
                raise DatasetError(f"{csv_path}, line {line}: fold must be an integer, got {row['fold']!r}") from None
        group = (row[group_column].strip() or None) if group_column else None
        clips.append(Clip(path=path, label=label, fold=fold, group=group, listed_as=name if outside else None))
    if not clips:
        raise DatasetError(f"{csv_path}: none of the files it lists could be found"
                           + (f" (first: {ignored[0].shown}: {ignored[0].reason})" if ignored else ""))
    if any(c.fold is None for c in clips) and any(c.fold is not None for c in clips):
        raise DatasetError(f"{csv_path}: some rows have a fold and others do not; give every row a fold or none")
    labels = {c.label for c in clips}
    classes = tuple(sorted(labels)) if None not in labels else ()
    return Dataset(
        root=root.resolve(), clips=tuple(clips), classes=classes, source=str(csv_path), ignored=tuple(ignored),
        warnings=tuple(warnings),
    )


def _from_list(path: str | Path) -> Dataset:
    """The files of a list (`listing.read_file_list`), unlabelled, relative to its folder."""
    try:
        root, called, entries = read_file_list(path)
    except OSError as err:
        raise DatasetError(f"{path}: the list of files cannot be read ({err.strerror})") from None
    return _from_names(root.resolve(), called, entries)


def _from_names(root: Path, called: str, entries: Sequence[tuple[int, str]]) -> Dataset:
    """Unlabelled clips of the names in `entries` ([(line, name)] of the list `called`)."""
    clips: list[Clip] = []
    ignored: list[Problem] = []
    warnings: list[Problem] = []
    seen: dict[Path, int] = {}
    for line, name in entries:
        path, problem = _named(root, name, f"{called} (line {line})")
        if problem is not None:
            ignored.append(problem)
            continue
        if (same := Path(os.path.realpath(path))) in seen:
            warnings.append(Problem(name, f"{called} line {line} repeats line {seen[same]} (the same file)"))
        else:
            seen[same] = line
        clips.append(Clip(path=path, label=None, listed_as=name if _leaves_folder(name) else None))
    if not clips:
        found = f" (first: {ignored[0].shown}: {ignored[0].reason})" if ignored else " (it names no file)"
        raise DatasetError(f"{called}: none of the files it lists can be read as audio{found}")
    return Dataset(root=root, clips=tuple(clips), classes=(), source=called, ignored=tuple(ignored),
                   warnings=tuple(warnings))


def _leaves_folder(name: str) -> bool:
    """Whether a manifest's filename leaves the manifest's folder: absolute, or climbing out
    with `..` (read as written, before links are followed)."""
    return Path(name).is_absolute() or os.path.normpath(name).split(os.sep)[0] == ".."


def load_dataset(path: str | os.PathLike, *, group_column: str | None = None, labelled: bool = True) -> Dataset:
    """Discover a dataset from a class-folder tree, a CSV manifest, or a folder holding one.

    group_column names the manifest column that groups clips (default: `group` when present),
    e.g. "speaker" so that no speaker is in both the training and the test side of a split.

    labelled=False, for commands that need no labels (embed, tag, features, info): `path` may
    also be any tree of audio files, a manifest without a label column, a list of files
    (`.txt` / `.lst`, one path a line relative to the list's folder; `-` reads the list from
    standard input) or one audio file. Clips have label None except in a class-folder tree
    (every audio file exactly one folder down) and where a manifest gives one.
    """
    if is_file_list(path):
        if labelled:
            raise DatasetError(f"{printable_path(path)}: a list of files carries no labels, and this command needs "
                               f"labelled clips. Expected {LABELLED_LAYOUTS}")
        if group_column:
            raise DatasetError(f"{printable_path(path)}: --group-column needs a CSV manifest; this is a list of files")
        return _from_list(path)
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return _from_manifest(path, group_column, labelled)
        if not labelled and not group_column and path.suffix.lower() in AUDIO_EXTENSIONS:
            return _from_names(path.parent.resolve(), path.name, [(1, path.name)])
        raise DatasetError(f"{path}: expected {LABELLED_LAYOUTS if labelled else ANY_LAYOUT}")
    if not path.is_dir():
        raise DatasetError(f"{path}: not a regular file or folder (a pipe, socket or device)")
    for name in MANIFEST_NAMES:
        if (path / name).is_file():
            return _from_manifest(path / name, group_column, labelled)
    if group_column:
        raise DatasetError(f"{path}: --group-column needs a CSV manifest; this is a folder of audio files")
    return _from_folders(path.resolve()) if labelled else _from_tree(path.resolve())


@dataclass(frozen=True)
class Summary:
    """Facts of every clip. clips: one row per readable clip (path, label, fold, group,
    sample_rate, channels, duration, format); unreadable: clips that failed to open or, when
    decoded, are cut short or hold non-finite samples. duplicates: a clip with the same bytes
    as an earlier clip at another path (the reason names it and both labels when they differ).
    short: readable clips shorter than one analysis window (embedded as near silence)."""

    dataset: Dataset
    clips: pd.DataFrame
    unreadable: tuple[Problem, ...]
    duplicates: tuple[Problem, ...] = ()
    short: tuple[Problem, ...] = ()

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
            # Listed only when there are some, so the facts of a clean dataset read as before.
            **{
                key: [{"path": p.path, "reason": p.reason} for p in problems]
                for key, problems in (("warnings", self.dataset.warnings), ("duplicates", self.duplicates),
                                      ("short", self.short))
                if problems
            },
        }


def summarize(dataset: Dataset, progress: Callable[[int], None] | None = None, *, decode: bool = True) -> Summary:
    """Facts of every clip. progress(n) is called as clips complete.

    decode: decode every clip (block by block, see audio.verify) so that truncated files and
    files holding non-finite samples count as unreadable, and compare the bytes of clips of
    equal size to find duplicates; False reads headers only (fast, but misses all three).
    """
    rows, unreadable, short = [], [], []
    read_one = verify if decode else info

    def read(clip: Clip):
        try:
            return clip, read_one(clip.path), None
        except AudioError as err:
            return clip, None, err

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for clip, meta, err in pool.map(read, dataset.clips):
            if err is not None:
                unreadable.append(Problem(clip.listed_as or err.path, err.problem))
            else:
                if (why := short_clip_problem(meta.frames, meta.sample_rate)) is not None:
                    short.append(Problem(clip.listed_as or str(clip.path), why))
                rows.append(
                    {
                        "path": printable_path(clip.path),  # pandas' arrow strings refuse undecodable bytes
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
    duplicates = _duplicates(dataset) if decode else ()
    return Summary(dataset=dataset, clips=pd.DataFrame(rows, columns=columns), unreadable=tuple(unreadable),
                   duplicates=duplicates, short=tuple(short))


def _duplicates(dataset: Dataset) -> tuple[Problem, ...]:
    """Clips whose file has the same bytes as an earlier clip's at another path.

    Only files that share their size with another are hashed, so a dataset without
    duplicates costs one stat per file plus the hashing of same-sized ones. The same path
    listed twice is a manifest matter (Dataset.warnings), not repeated here.
    """
    first: dict[Path, Clip] = {}
    for clip in dataset.clips:
        first.setdefault(clip.path, clip)
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in first:
        try:
            by_size[path.stat().st_size].append(path)
        except OSError:
            continue  # gone or unreadable: summarize lists it already
    candidates = [path for paths in by_size.values() if len(paths) > 1 for path in paths]

    def digest(path: Path) -> tuple[Path, str | None]:
        try:
            return path, sha256_of(path)
        except OSError:
            return path, None

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        digests = dict(pool.map(digest, candidates))
    owner: dict[str, Clip] = {}
    found = []
    for path, clip in first.items():  # in clip order, so "earlier" is the listing's order
        key = digests.get(path)
        if key is None:
            continue
        original = owner.setdefault(key, clip)
        if original is clip:
            continue
        shown = dataset.relative(original)
        reason = (f"same audio as {shown}" if original.label is None or clip.label is None
                  else f"same audio as {shown}, which is labelled '{original.label}', not '{clip.label}'"
                  if original.label != clip.label else f"same audio as {shown} (both labelled '{clip.label}')")
        found.append(Problem(clip.listed_as or str(path), reason))
    return tuple(found)
