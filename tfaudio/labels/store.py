"""The label store: annotations of recordings in one SQLite file that survives kills and shares.

Each annotation says that, in the recording `file` (content `sha256`, None when the file was not
there to hash), the span `start`..`end` seconds is a `positive`, `negative` or `unsure` example of
`label`, according to `annotator` at `time`, and where the judgement came from (`source`: search,
import, round, app, python; the active-learning `round` and `strategy` that proposed it; the
inclusion `weight` of a window drawn as a probability sample by a stratified or random round).

What the file promises (see docs/labels.md):
- A write that returned is on disk: every write is its own transaction (or, for imports, one of
  a bounded size), committed with `synchronous=FULL` in WAL mode before the call returns. A
  process killed at any moment leaves every committed transaction and none of a half one.
- Several processes may write at once: each write takes the write lock (`BEGIN IMMEDIATE`) and
  waits up to `BUSY_SECONDS` for it, so none is lost and none fails on a short wait.
- The same annotation is stored once: (file, start, end, label, kind, annotator) is unique, so
  importing a table twice, or again after a kill, adds only what is not there yet.
- The schema is versioned and the file marked as tfaudio's (tfaudio.labels.schema): a newer
  tfaudio's store, another program's SQLite file and a damaged file are each refused in one
  line naming the file.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from tfaudio.labels.schema import SCHEMA_VERSION, LabelError, open_store, shown, store_error

#: The judgements an annotation can hold.
KINDS = ("positive", "negative", "unsure")
#: Annotations per transaction in `add_many` (an import): a kill loses at most the batch in flight.
BATCH = 5000
#: Times are kept to the microsecond, so 1.1 read from a table and 1.1 computed are one key.
_DIGITS = 6


def resolve(name: str | os.PathLike, root: str | os.PathLike = ".") -> str:
    """The path an annotation stores for `name`: as written when absolute, else `root`/`name`
    with links resolved (the rule tfaudio's datasets and search index follow)."""
    name = os.fspath(name)
    return name if os.path.isabs(name) else os.path.realpath(os.path.join(root, name))


def now() -> str:
    """The current time as tfaudio stores it: ISO 8601, UTC, microseconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Annotation:
    """One judgement of one span of one recording.

    file: the recording's path (absolute). sha256: its content hash, None when unknown.
    start, end: seconds from the recording's start, 0 <= start < end. whole: the annotation is
    about the whole recording (a manifest's label), start..end being its length. weight: the
    inclusion weight (1 / the probability of being picked: windows in its stratum / picks taken
    from it) of a span drawn as a probability sample (a stratified or random round's pick), so
    that archive-wide rates can be estimated from such labels; None for any other label. id: the
    store's row id (None before it is stored).
    """

    file: str
    start: float
    end: float
    label: str
    kind: str = "positive"
    annotator: str = ""
    time: str = ""
    source: str = "python"
    round: int | None = None
    strategy: str | None = None
    sha256: str | None = None
    whole: bool = False
    weight: float | None = None
    id: int | None = None

    def problem(self) -> str | None:
        """What makes this annotation unfit to store (None: nothing), in words for its user."""
        if not self.file:
            return "no file named"
        if not self.label or not self.label.strip():
            return "empty label"
        if self.kind not in KINDS:
            return f"unknown kind {self.kind!r} (one of {', '.join(KINDS)})"
        if not (self.start >= 0 and self.end > self.start):  # also refuses NaN
            return f"start {self.start:g} must be 0 or more and before end {self.end:g}"
        if self.end == float("inf"):
            return "end must be a finite number of seconds"
        if self.time:
            try:
                datetime.datetime.fromisoformat(self.time)
            except ValueError:
                return f"time {self.time!r} is not an ISO 8601 date and time"
        if self.weight is not None and not _positive(self.weight):
            return f"weight {_said(self.weight)} must be a finite number above 0 (or none)"
        return None

    def checked(self) -> Annotation:
        """This annotation as stored (times rounded to the microsecond, a time given), or a LabelError."""
        problem = self.problem()
        if problem:
            raise LabelError(f"{shown(self.file)}: {problem}")
        start, end, label = round(float(self.start), _DIGITS), round(float(self.end), _DIGITS), self.label.strip()
        weight = None if self.weight is None else float(self.weight)  # numpy's float64 is no SQLite type
        if (start, end, label) == (self.start, self.end, self.label) and self.time and type(self.whole) is bool \
                and type(self.weight) is type(weight):
            return self  # as stored already (an import builds them so: half its time went to copies)
        return replace(self, start=start, end=end, label=label, time=self.time or now(), whole=bool(self.whole),
                       weight=weight)


def _positive(value) -> bool:
    """Whether `value` is a finite real number above 0 (a weight; not a bool, not text)."""
    import math
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _said(value) -> str:
    """A bad value as its user wrote it: a number plainly (numpy's repr names its type), else repr."""
    import numbers

    return f"{float(value):g}" if isinstance(value, numbers.Real) and not isinstance(value, bool) else repr(value)


#: The columns of `LabelStore.frame()` (Annotation's fields).
COLUMNS = tuple(f.name for f in fields(Annotation))

# Fields -> SQL columns ("end" is an SQL keyword, so both times carry a unit).
_SQL = {"start": "start_s", "end": "end_s"}
_STORED = [name for name in COLUMNS if name != "id"]
_SELECT = ", ".join(["id"] + [_SQL.get(name, name) for name in _STORED])


def _from_row(row: Sequence) -> Annotation:
    values = dict(zip(["id", *_STORED], row))
    values["whole"] = bool(values["whole"])
    return Annotation(**values)


@dataclass(frozen=True)
class Counts:
    """What a batch of writes did: `added` new annotations, `present` already stored."""

    added: int = 0
    present: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.added + other.added, self.present + other.present)


class LabelStore:
    """The annotations in the SQLite file `path`, created when absent (create=False: refused).

        store = LabelStore("labels.db")
        store.add("calls/a.wav", 12.5, 14.0, "owl", "positive", annotator="ana")
        store.frame(label="owl")          # pandas DataFrame, one row per annotation (COLUMNS)
        store.undo()                      # take back the last annotation

    Every method that writes has committed when it returns. Use it as a context manager, or
    call close(). Threads may share a store (its calls take turns).
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True):
        self.path = Path(path)
        self._db = open_store(self.path, create)
        self._turn = threading.RLock()
        self._hashes: dict[str, tuple[tuple[int, int], str]] = {}  # path -> ((size, mtime_ns), sha256)

    # -- plumbing ---------------------------------------------------------------------------------

    def close(self) -> None:
        with self._turn:
            self._db.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({shown(self.path)!r})"

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        """One call's turn at the connection; SQLite's errors as one LabelError naming the store."""
        with self._turn:
            try:
                yield
            except sqlite3.Error as err:
                raise store_error(self.path, err) from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: the write lock first (waiting for other writers), committed on
        the way out, rolled back on any error or interruption."""
        with self._failures():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _select(self, sql: str, parameters: Sequence = ()) -> list:
        with self._failures():
            return self._db.execute(sql, parameters).fetchall()

    # -- writing ----------------------------------------------------------------------------------

    def add(self, file: str | os.PathLike, start: float, end: float, label: str, kind: str = "positive", *,
            annotator: str = "", source: str = "python", round: int | None = None, strategy: str | None = None,
            sha256: str | None = None, whole: bool = False, time: str = "", weight: float | None = None) -> Annotation:
        """Store one annotation (committed on return) and return it as stored, with its id; the
        same annotation stored before is returned as it was. `file` is made absolute; its
        content hash is computed when `sha256` is not given and the file exists (once per file
        while its size and modification time stay the same: give the index's hash to skip it).
        weight: the inclusion weight of a span drawn as a probability sample (see Annotation)."""
        path = resolve(file)
        if sha256 is None:
            sha256 = self._digest(path)
        annotation = Annotation(path, start, end, label, kind, annotator, time, source, round, strategy, sha256,
                                whole, weight).checked()
        with self._writing() as db:
            db.execute(_INSERT, _values(annotation))
            row = db.execute(f"SELECT {_SELECT} FROM annotations WHERE file = ? AND start_s = ? AND end_s = ? "
                             "AND label = ? AND kind = ? AND annotator = ?", _key(annotation)).fetchone()
        return _from_row(row)

    def _digest(self, path: str) -> str | None:
        """The content sha256 of `path` (None: not a file), remembered while the file is unchanged."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        if not os.path.isfile(path):
            return None
        seen = (stat.st_size, stat.st_mtime_ns)
        known = self._hashes.get(path)
        if known is None or known[0] != seen:
            from tfaudio.assets import sha256_of

            known = self._hashes[path] = (seen, sha256_of(path))
        return known[1]

    def add_many(self, annotations: Iterable[Annotation], *, batch: int = BATCH,
                 committed: Callable[[Counts], None] | None = None) -> Counts:
        """Store annotations (each checked first: a LabelError names the first bad one) in
        transactions of at most `batch`; after each commit `committed(counts so far)` is called:
        what it reports is on disk. Annotations already stored are counted, not added."""
        total = Counts()
        pending: list[Annotation] = []
        for annotation in annotations:
            pending.append(annotation.checked())
            if len(pending) >= batch:
                total += self._insert(pending)
                pending = []
                if committed:
                    committed(total)
        if pending:
            total += self._insert(pending)
            if committed:
                committed(total)
        return total

    def _insert(self, annotations: list[Annotation]) -> Counts:
        with self._writing() as db:
            before = db.total_changes
            db.executemany(_INSERT, [_values(a) for a in annotations])
            added = db.total_changes - before
        return Counts(added, len(annotations) - added)

    def remove(self, ids: int | Iterable[int]) -> int:
        """Delete the annotations with these ids; how many there were."""
        ids = [ids] if isinstance(ids, int) else [int(i) for i in ids]
        with self._writing() as db:
            before = db.total_changes
            db.executemany("DELETE FROM annotations WHERE id = ?", [(i,) for i in ids])
            return db.total_changes - before

    def undo(self, count: int = 1, *, annotator: str | None = None) -> list[Annotation]:
        """Take back the `count` annotations stored last (by `annotator`, when given); returns them."""
        where, parameters = ("WHERE annotator = ?", [annotator]) if annotator is not None else ("", [])
        with self._writing() as db:
            rows = db.execute(f"SELECT {_SELECT} FROM annotations {where} ORDER BY id DESC LIMIT ?",
                              [*parameters, count]).fetchall()
            db.executemany("DELETE FROM annotations WHERE id = ?", [(row[0],) for row in rows])
        return [_from_row(row) for row in rows]

    # -- reading ----------------------------------------------------------------------------------

    def query(self, *, label: str | Iterable[str] | None = None, kind: str | Iterable[str] | None = None,
              file: str | os.PathLike | None = None, sha256: str | None = None, start: float | None = None,
              end: float | None = None, annotator: str | None = None, source: str | None = None,
              round: int | None = None, latest: bool = False) -> list[Annotation]:
        """The annotations that match every filter given, in the order they were stored.

        label, kind: one value or several. file, sha256: one recording, by path or by content
        (both given: either matches, so a renamed file still finds its labels). start, end:
        annotations overlapping that span (seconds; either may be left open). latest: of the
        annotations of one span and label, only the newest (by time): the current judgement
        when it was changed or annotators disagree.
        """
        filters = dict(label=label, kind=kind, file=file, sha256=sha256, start=start, end=end, annotator=annotator,
                       source=source, round=round, latest=latest)
        return [_from_row(row) for row in self._select(*_matching(**filters))]

    def frame(self, **filters):
        """`query(**filters)` as a pandas DataFrame with COLUMNS (empty with them when nothing matches)."""
        import pandas as pd

        frame = pd.DataFrame.from_records(self._select(*_matching(**filters)), columns=["id", *_STORED])
        return frame[list(COLUMNS)].astype({"start": float, "end": float, "whole": bool, "weight": float})

    def __iter__(self) -> Iterator[Annotation]:
        return iter(self.query())

    def __len__(self) -> int:
        return self._select("SELECT count(*) FROM annotations")[0][0]

    def labels(self) -> list[str]:
        """Every label named, sorted."""
        return [row[0] for row in self._select("SELECT DISTINCT label FROM annotations ORDER BY label")]

    def summary(self):
        """A Summary (tfaudio.labels.summary): counts per label and kind, per annotator and per
        source; files, and those without a content hash."""
        from tfaudio.labels.summary import Summary

        by_label: dict[str, dict[str, int]] = {}
        for label, kind, number in self._select("SELECT label, kind, count(*) FROM annotations GROUP BY label, kind"):
            by_label.setdefault(label, dict.fromkeys(KINDS, 0))[kind] = number
        files, unhashed = self._select("SELECT count(DISTINCT file), count(DISTINCT CASE WHEN sha256 IS NULL "
                                       "THEN file END) FROM annotations")[0]
        return Summary(
            path=shown(self.path), schema=SCHEMA_VERSION, annotations=len(self), files=files, unhashed_files=unhashed,
            by_label=by_label,
            annotators=dict(self._select("SELECT annotator, count(*) FROM annotations GROUP BY annotator")),
            sources=dict(self._select("SELECT source, count(*) FROM annotations GROUP BY source")), kinds=KINDS,
        )

    def _repr_html_(self) -> str:
        return self.summary().html()


def _matching(*, label=None, kind=None, file=None, sha256=None, start=None, end=None, annotator=None, source=None,
              round=None, latest=False) -> tuple[str, list]:
    """The SELECT (and its parameters) of LabelStore.query's filters.

    With `latest`, the filters on what a judgement says or who made it (kind, annotator,
    source, round) apply to the current judgement of each span, after it is chosen: a span
    judged positive and later negative is not a positive, whoever made the older judgement.
    """
    span, said = [], []  # (clause, parameters): on the span and label / on the judgement
    for column, value, where in (("label", label, span), ("kind", kind, said)):
        if value is not None:
            values = [value] if isinstance(value, str) else list(value)
            where.append((f"{column} IN ({', '.join('?' * len(values))})", values))
    recording = [(column, value) for column, value in (("file", None if file is None else resolve(file)),
                                                       ("sha256", sha256)) if value is not None]
    if recording:
        span.append(("(" + " OR ".join(f"{column} = ?" for column, _ in recording) + ")",
                     [value for _, value in recording]))
    if start is not None:
        span.append(("end_s > ?", [float(start)]))
    if end is not None:
        span.append(("start_s < ?", [float(end)]))
    for column, value in (("annotator", annotator), ("source", source), ("round", round)):
        if value is not None:
            said.append((f"{column} = ?", [value]))

    def where(clauses) -> tuple[str, list]:
        text = f"WHERE {' AND '.join(c for c, _ in clauses)}" if clauses else ""
        return text, [p for _, values in clauses for p in values]

    if latest:
        inner, inner_parameters = where(span)
        outer, outer_parameters = where([("newest = 1", []), *said])
        return (f"SELECT {_SELECT} FROM (SELECT *, row_number() OVER (PARTITION BY file, start_s, end_s, label "
                f"ORDER BY time DESC, id DESC) AS newest FROM annotations {inner}) {outer} ORDER BY id",
                inner_parameters + outer_parameters)
    text, parameters = where(span + said)
    return f"SELECT {_SELECT} FROM annotations {text} ORDER BY id", parameters


_INSERT = (f"INSERT OR IGNORE INTO annotations ({', '.join(_SQL.get(n, n) for n in _STORED)}) "
           f"VALUES ({', '.join('?' * len(_STORED))})")


def _values(annotation: Annotation) -> tuple:
    return tuple(int(v) if isinstance(v, bool) else v for v in (getattr(annotation, n) for n in _STORED))


def _key(annotation: Annotation) -> tuple:
    a = annotation
    return a.file, a.start, a.end, a.label, a.kind, a.annotator
