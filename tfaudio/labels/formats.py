"""Label tables in and out of the store: tfaudio's CSV, Raven selection tables, tfaudio manifests.

    csv       file,start,end,label[,kind,annotator,time,source,round,strategy,sha256,whole,weight];
              a CSV with a `score` column is a round's sheet (`tfaudio labels next`: NEXT_COLUMNS),
              whose rows with an empty kind are not judged yet and are skipped (counted); a
              sheet's weight (a stratified or random pick's inclusion weight) is stored with its label
    raven     tab-separated; Begin Time (s), End Time (s), an annotation column, and the recording
              from Begin Path / Begin File (File Offset (s) when the table spans several files)
              or from --audio
    manifest  filename,label[,...]: each file is a positive of its label(s) and a negative of
              every other label the manifest names, for the whole file

Reading checks every row: a bad one is reported as `table:line: problem` and skipped; a file that
is not there keeps its labels (CSV, Raven) with its content hash unknown, and is reported by name;
a manifest row needs its file (its label covers the file's length). Writing goes through
tfaudio.outputs (checked first, written whole under a temporary name, renamed into place), and a
written table read back gives the same annotations.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from tfaudio.labels.store import Annotation, Counts, LabelError, now, resolve, shown

FORMATS = ("csv", "raven", "manifest")
#: The columns of tfaudio's label CSV, in the order it writes them.
CSV_COLUMNS = ("file", "start", "end", "label", "kind", "annotator", "time", "source", "round", "strategy",
               "sha256", "whole", "weight")
#: The columns of the sheet `tfaudio labels next` writes (next.csv): kind is left for a person to
#: fill in; a CSV with a `score` column is read as such a sheet (see `_Reader.csv`).
NEXT_COLUMNS = ("file", "start", "end", "label", "kind", "score", "strategy", "round", "weight")
#: The source of the annotations a round's sheet gives (unless a row names another).
NEXT_SOURCE = "next"
#: Columns of a Raven table that may hold the annotation, tried in this order (else --annotation-column).
RAVEN_LABEL_COLUMNS = ("Annotation", "Label", "Species", "Class", "Sound Type", "Call Type", "Common Name", "Code")
_RAVEN_BEGIN, _RAVEN_END, _RAVEN_OFFSET = "Begin Time (s)", "End Time (s)", "File Offset (s)"
#: tfaudio's own columns in a Raven table it writes (Raven keeps columns it does not know).
_RAVEN_EXTRA = {"Kind": "kind", "Annotator": "annotator", "Time": "time", "Source": "source", "Round": "round",
                "Strategy": "strategy", "SHA256": "sha256", "Whole": "whole"}
#: Problems listed one by one before the rest are only counted.
SHOWN_PROBLEMS = 20


@dataclass
class Table:
    """What reading one label table found.

    annotations: the rows fit to store. rows: the table's data rows. problems: `table:line:
    problem` for each row skipped. missing: recordings not found -> how many annotations name
    them (kept, without a content hash, except in a manifest). changed: recordings whose content
    differs from the sha256 the table gives (the table's hash is kept: the label is about that
    content). unjudged: rows of a round's sheet (next.csv) whose kind is still empty (skipped).
    """

    path: str
    format: str
    annotations: list[Annotation] = field(default_factory=list)
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    unjudged: int = 0


class _Hashes:
    """Content hashes of recordings, each file read once per import (None: not a file)."""

    def __init__(self):
        self._known: dict[str, str | None] = {}

    def __call__(self, path: str) -> str | None:
        if path not in self._known:
            from tfaudio.assets import sha256_of

            try:
                self._known[path] = sha256_of(path) if os.path.isfile(path) else None
            except OSError:
                self._known[path] = None
        return self._known[path]


def detect_format(path: str | os.PathLike, lines: Sequence[str] | None = None) -> str:
    """The format of the table at `path` (whose `lines` may be given), from its first line."""
    lines = _lines(path) if lines is None else lines
    first = lines[0] if lines else ""
    if "\t" in first and _RAVEN_BEGIN in first:
        return "raven"
    header = {name.strip().lower() for name in next(csv.reader([first]), [])}
    if {"start", "end"} <= header:
        return "csv"
    if {"filename", "label"} <= header:
        return "manifest"
    raise LabelError(f"{shown(path)}: not a label table tfaudio knows (a CSV with file,start,end,label; a Raven "
                     f"selection table; a manifest with filename,label); its first line is {first[:80]!r}")


def _lines(path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        raise LabelError(f"{shown(path)}: no such label table") from None
    except IsADirectoryError:
        raise LabelError(f"{shown(path)}: is a folder, not a label table") from None
    except UnicodeDecodeError as err:
        raise LabelError(f"{shown(path)}: not a text table (byte {err.start} is not UTF-8)") from None
    except OSError as err:
        raise LabelError(f"{shown(path)}: cannot be read ({err.strerror or err})") from None


def read_table(path: str | os.PathLike, *, format: str = "auto", audio: str | os.PathLike | None = None,
               annotator: str = "", annotation_column: str | None = None, hashes: _Hashes | None = None) -> Table:
    """Read the label table at `path` (`format` auto: from its first line).

    audio: the folder the table's file names are relative to (default: the table's folder), or
    the one recording a table without file names describes. annotator: for rows that name none.
    annotation_column: the Raven column holding the label (default: the first of
    RAVEN_LABEL_COLUMNS present). Raises LabelError for a table that cannot be read at all.
    """
    lines = _lines(path)
    format = detect_format(path, lines) if format == "auto" else format
    if format not in FORMATS:
        raise LabelError(f"unknown label table format {format!r} (one of {', '.join(FORMATS)})")
    recording = None
    root = Path(path).parent
    if audio is not None:
        if os.path.isdir(audio):
            root = Path(audio)
        elif os.path.isfile(audio):
            recording = resolve(audio)
        else:
            raise LabelError(f"{shown(audio)}: --audio names neither a folder nor a recording")
    reader = _Reader(Table(shown(path), format), root, recording, annotator, hashes or _Hashes())
    if format == "raven":
        reader.raven(lines, annotation_column)
    elif format == "manifest":
        reader.manifest(lines)
    else:
        reader.csv(lines)
    return reader.table


class _Reader:
    """Turns the rows of one table into annotations, noting each problem where it was found."""

    def __init__(self, table: Table, root: Path, recording: str | None, annotator: str, hashes: _Hashes):
        self.table, self.root, self.recording, self.annotator, self.hashes = table, root, recording, annotator, hashes
        self.time = now()  # one import, one time, for the rows that give none
        self.paths: dict[str, str] = {}  # name in the table -> path stored (resolved once per name)

    def problem(self, line: int, text: str) -> None:
        self.table.problems.append(f"{self.table.path}:{line}: {text}")

    def rows(self, lines: Sequence[str], delimiter: str, required: Iterable[str]) -> list[tuple[int, dict]]:
        """(line number, {column: text}) for each data row; LabelError when `required` columns lack.
        tfaudio's own tables (comma-separated) take their column names in any case."""
        try:
            rows = list(csv.reader(lines, delimiter=delimiter))
        except csv.Error as err:
            raise LabelError(f"{self.table.path}: not a readable table ({err})") from None
        if not rows:
            raise LabelError(f"{self.table.path}: empty table")
        header = [name.strip().lower() if delimiter == "," else name.strip() for name in rows[0]]
        lacking = [name for name in required if name not in header]
        if lacking:
            raise LabelError(f"{self.table.path}: lacks column(s) {', '.join(lacking)} of a {self.table.format} table; "
                             f"its columns are {', '.join(header)}")
        found = []
        for number, row in enumerate(rows[1:], start=2):
            if any(cell.strip() for cell in row):
                found.append((number, dict(zip(header, (cell.strip() for cell in row)))))
        self.table.rows = len(found)
        return found

    def keep(self, line: int, file: str | None, row: dict) -> None:
        """Check one row's annotation and keep it (or note why not). row: {field: text} of
        Annotation's fields (start and end required, the rest may be absent or empty); `file`
        None: the table names no recording."""
        if file is None:
            if self.recording is None:
                self.problem(line, "names no recording (give --audio RECORDING for a table about one file)")
                return
            path = self.recording
        else:
            path = self.paths.get(file) or self.paths.setdefault(file, resolve(file, self.root))
        get = row.get
        if not get("start") or not get("end"):
            self.problem(line, "start and end are needed (seconds)")
            return
        try:
            start, end = round(float(row["start"]), 6), round(float(row["end"]), 6)
            round_ = int(get("round")) if get("round") else None
        except ValueError as err:
            self.problem(line, f"not a number: {str(err).rpartition(': ')[2]}")
            return
        try:
            weight = float(get("weight")) if get("weight") else None  # its range: Annotation.problem
        except ValueError:
            self.problem(line, f"weight {get('weight')!r} is not a number (an inclusion weight above 0, or empty)")
            return
        given, actual = get("sha256") or None, self.hashes(path)
        annotation = Annotation(
            file=path, start=start, end=end, label=get("label", ""), kind=(get("kind") or "positive").lower(),
            annotator=get("annotator") or self.annotator, time=get("time") or self.time,
            source=get("source") or "import", round=round_, strategy=get("strategy") or None,
            sha256=given or actual, whole=(get("whole") or "").lower() in ("1", "true", "yes"), weight=weight)
        problem = annotation.problem()
        if problem:
            self.problem(line, problem)
            return
        self.table.annotations.append(annotation)  # already as stored: times rounded, cells stripped, a time given
        if actual is None:
            self.table.missing[path] = self.table.missing.get(path, 0) + 1
        elif given and given != actual and path not in self.table.changed:
            self.table.changed.append(path)

    def csv(self, lines: Sequence[str]) -> None:
        required = ["start", "end", "label"] + ([] if self.recording else ["file"])
        rows = self.rows(lines, ",", required)
        # A round's sheet (a score column, as `labels next` writes it) proposes windows: a row
        # whose kind is still empty was not judged, and must not become a positive by default.
        sheet = "score" in {name.strip().lower() for name in next(csv.reader(lines[:1]), [])}
        for line, row in rows:
            if sheet and not row.get("kind"):
                self.table.unjudged += 1
                continue
            if sheet and not row.get("source"):
                row = {**row, "source": NEXT_SOURCE}
            self.keep(line, row.get("file") or None, row)

    def raven(self, lines: Sequence[str], annotation_column: str | None) -> None:
        header = [name.strip() for name in next(csv.reader(lines[:1], delimiter="\t"), [])]
        column = annotation_column or next((name for name in RAVEN_LABEL_COLUMNS if name in header), None)
        if column is None:
            raise LabelError(f"{self.table.path}: no annotation column ({', '.join(RAVEN_LABEL_COLUMNS)}); name the "
                             f"one holding the labels with --annotation-column; its columns are {', '.join(header)}")
        seen = set()
        for line, row in self.rows(lines, "\t", [_RAVEN_BEGIN, _RAVEN_END, column]):
            selection = row.get("Selection")
            if selection:  # Raven lists a selection once per view (waveform, spectrogram)
                if selection in seen:
                    continue
                seen.add(selection)
            values = {ours: row.get(theirs, "") for theirs, ours in _RAVEN_EXTRA.items()}
            values["label"] = row.get(column, "")
            values["start"], values["end"] = row.get(_RAVEN_BEGIN), row.get(_RAVEN_END)
            if row.get(_RAVEN_OFFSET) and values["start"] and values["end"]:
                # a table over several files: Begin Time counts from the first file's start
                try:
                    offset = float(row[_RAVEN_OFFSET])
                    values["start"], values["end"] = str(offset), str(offset + float(values["end"])
                                                                        - float(values["start"]))
                except ValueError as err:
                    self.problem(line, f"not a number: {str(err).rpartition(': ')[2]}")
                    continue
            self.keep(line, self.raven_file(row), values)

    def raven_file(self, row: dict) -> str | None:
        """The recording a Raven row names: Begin Path when it is here, else Begin File under the
        audio folder when it is there; else (a recording not found) the path as named. None
        when the row names none."""
        path, name = row.get("Begin Path", ""), row.get("Begin File", "")
        if path and os.path.isfile(path):
            return path
        if name and os.path.isfile(resolve(name, self.root)):
            return name
        if path and os.path.isabs(path):
            return path
        if name:
            return name
        if path:  # a path from another machine (maybe Windows): look for its name here
            return PureWindowsPath(path).name if "\\" in path else path
        return None

    def manifest(self, lines: Sequence[str]) -> None:
        """Whole-file labels: a positive for each file's label(s), a negative for every other label."""
        from tfaudio.data.audio import AudioError, info

        rows = self.rows(lines, ",", ["filename", "label"])
        by_file: dict[str, tuple[int, set[str]]] = {}
        for line, row in rows:
            if not row["filename"] or not row["label"]:
                self.problem(line, "empty filename or label")
                continue
            path = resolve(row["filename"], self.root)
            by_file.setdefault(path, (line, set()))[1].add(row["label"])
        labels = set().union(*(found for _, found in by_file.values()))
        for path, (line, positives) in by_file.items():
            try:
                duration = info(path).duration
            except AudioError as err:
                self.problem(line, f"{shown(path)}: {err.problem}; a manifest's label covers the whole file, "
                                   "so its length is needed")
                continue
            if duration <= 0:
                self.problem(line, f"{shown(path)} holds no audio")
                continue
            for label in sorted(labels):
                kind = "positive" if label in positives else "negative"
                values = {"label": label, "kind": kind, "start": "0", "end": repr(duration), "whole": "1"}
                self.keep(line, path, values)


# -- writing ----------------------------------------------------------------------------------------


def _number(value: float) -> str:
    """Seconds as the store keeps them (to the microsecond), without trailing zeros."""
    return format(value, ".6f").rstrip("0").rstrip(".")


def _named(file: str, folder: Path) -> str:
    """How a manifest in `folder` names `file`: relative when the file lies under it (a dataset
    folder can move), else absolute. CSV and Raven tables name files as stored (absolute), so
    that reading one back gives the very annotations written."""
    relative = os.path.relpath(file, folder)
    return file if relative.split(os.sep)[0] == ".." else relative


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return _number(value)
    return shown(value) if isinstance(value, str) else str(value)


def render(annotations: Sequence[Annotation], format: str, folder: Path) -> tuple[str, int]:
    """(the table's text, how many annotations it could not hold) for a table in `folder`."""
    buffer = io.StringIO()
    left_out = 0
    if format == "csv":
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for a in annotations:
            # a weight in full (repr: the shortest text that reads back as the same float); seconds
            # are kept to the microsecond, so _number writes them exactly already
            writer.writerow([_cell(getattr(a, name)) if name != "weight" or a.weight is None else repr(a.weight)
                             for name in CSV_COLUMNS])
    elif format == "raven":
        writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
        writer.writerow(["Selection", "View", "Channel", _RAVEN_BEGIN, _RAVEN_END, "Begin Path", "Begin File",
                         _RAVEN_OFFSET, "Annotation", *_RAVEN_EXTRA])
        for number, a in enumerate(annotations, start=1):
            writer.writerow([number, "Spectrogram 1", 1, _cell(a.start), _cell(a.end), _cell(a.file),
                             _cell(os.path.basename(a.file)), _cell(a.start), _cell(a.label),
                             *(_cell(getattr(a, ours)) for ours in _RAVEN_EXTRA.values())])
    else:  # a manifest holds whole-file positives; negatives are what it implies
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["filename", "label"])
        rows = {(a.file, a.label) for a in annotations if a.whole and a.kind == "positive"}
        left_out = sum(1 for a in annotations if not (a.whole and a.kind in ("positive", "negative")))
        for file, label in sorted(rows):
            writer.writerow([_cell(_named(file, folder)), _cell(label)])
    return buffer.getvalue(), left_out


def write_table(annotations: Sequence[Annotation], out: str | os.PathLike, format: str = "csv") -> int:
    """Write `annotations` to `out` as a `format` table, whole or not at all; returns how many
    annotations the format could not hold (a manifest holds whole-file positives and negatives
    only). Raises OutputError when `out` cannot be written."""
    from tfaudio.outputs import check_writable, write_text

    if format not in FORMATS:
        raise LabelError(f"unknown label table format {format!r} (one of {', '.join(FORMATS)})")
    out = check_writable(out, folder=False)
    text, left_out = render(annotations, format, Path(os.path.abspath(out)).parent)
    write_text(out, text)
    return left_out


# -- between tables and a store --------------------------------------------------------------------


def import_tables(store, paths: Sequence[str | os.PathLike], *, format: str = "auto",
                  audio: str | os.PathLike | None = None, annotator: str = "", annotation_column: str | None = None,
                  strict: bool = False, committed=None) -> tuple[list[Table], Counts]:
    """Read every table of `paths` (see read_table), then store their annotations in `store`
    (a LabelStore) in bounded transactions; `committed(counts so far, annotations in all)` after
    each commit. Every table is read before anything is stored, so a table that cannot be read
    stores nothing. strict: a skipped row or a recording not found is a LabelError, nothing stored.
    Returns the tables read and what was added / already there."""
    hashes = _Hashes()
    tables = [read_table(path, format=format, audio=audio, annotator=annotator, annotation_column=annotation_column,
                         hashes=hashes) for path in paths]
    if strict:
        for table in tables:
            if table.problems:
                more = f" (and {len(table.problems) - 1} more)" if len(table.problems) > 1 else ""
                raise LabelError(f"{table.problems[0]}{more}; nothing was imported (--strict)")
            if table.missing:
                first = shown(next(iter(table.missing)))
                raise LabelError(f"{table.path}: names a recording that is not there: {first} "
                                 f"(and {len(table.missing) - 1} more); nothing was imported (--strict)")
    everything = [annotation for table in tables for annotation in table.annotations]
    counts = store.add_many(everything, committed=None if committed is None else
                            (lambda done: committed(done, len(everything))))
    return tables, counts


def export_labels(store, out: str | os.PathLike, format: str = "csv", *,
                  labels: Sequence[str] | None = None) -> tuple[int, int]:
    """Write the annotations of `store` (those of `labels`, when given) to `out` as a `format`
    table; (annotations written, annotations the format could not hold). `out` is checked
    before the store is read."""
    from tfaudio.outputs import check_writable

    check_writable(out, folder=False)
    annotations = store.query(label=labels or None)
    left_out = write_table(annotations, out, format)
    return len(annotations) - left_out, left_out


__all__ = ["CSV_COLUMNS", "FORMATS", "NEXT_COLUMNS", "NEXT_SOURCE", "RAVEN_LABEL_COLUMNS", "Table", "detect_format",
           "export_labels", "import_tables", "read_table", "render", "write_table"]
