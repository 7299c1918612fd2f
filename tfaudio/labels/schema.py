"""The label store's file: its schema and versions, and opening it (created, upgraded or refused).

The schema version is `PRAGMA user_version`, brought up to date by MIGRATIONS; `PRAGMA
application_id` marks the file as a tfaudio label store. A store of a newer tfaudio, an SQLite
file of another program, a damaged file and one that is not SQLite are refused in one line
naming the file (LabelError).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tfaudio.errors import TfaudioError

#: `PRAGMA application_id` of a tfaudio label store: "tfLb".
APPLICATION_ID = 0x74664C62
#: How long a write waits for another process's write to finish.
BUSY_SECONDS = 60.0


class LabelError(TfaudioError):
    """A label store or a label that cannot be used as it is; the message names the file (and
    the line) and the problem."""


def shown(path) -> str:
    """A path as printable text (bytes that are not UTF-8 as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# -- the schema and its versions --------------------------------------------------------------------

_VERSION_1 = """
CREATE TABLE annotations (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    sha256 TEXT,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    label TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('positive', 'negative', 'unsure')),
    whole INTEGER NOT NULL DEFAULT 0,
    annotator TEXT NOT NULL DEFAULT '',
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    round INTEGER,
    strategy TEXT,
    CHECK (start_s >= 0 AND end_s > start_s)
);
CREATE UNIQUE INDEX annotation_key ON annotations (file, start_s, end_s, label, kind, annotator);
CREATE INDEX annotations_by_label ON annotations (label, kind);
CREATE INDEX annotations_by_content ON annotations (sha256, start_s);
"""

# Version 2: ids are never reused (AUTOINCREMENT). A plain INTEGER PRIMARY KEY hands the id of a
# label just undone to the next one, so an undo sent late (a second browser tab, a second server
# on the same store) would take back a label it never saw. SQLite cannot add AUTOINCREMENT to a
# table, so the table is copied into a new one (ids kept) and the indexes made again.
_VERSION_2 = """
CREATE TABLE annotations_2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file TEXT NOT NULL,
    sha256 TEXT,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    label TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('positive', 'negative', 'unsure')),
    whole INTEGER NOT NULL DEFAULT 0,
    annotator TEXT NOT NULL DEFAULT '',
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    round INTEGER,
    strategy TEXT,
    CHECK (start_s >= 0 AND end_s > start_s)
);
INSERT INTO annotations_2 (id, file, sha256, start_s, end_s, label, kind, whole, annotator, time, source, round,
                           strategy)
    SELECT id, file, sha256, start_s, end_s, label, kind, whole, annotator, time, source, round, strategy
    FROM annotations;
DROP TABLE annotations;
ALTER TABLE annotations_2 RENAME TO annotations;
CREATE UNIQUE INDEX annotation_key ON annotations (file, start_s, end_s, label, kind, annotator);
CREATE INDEX annotations_by_label ON annotations (label, kind);
CREATE INDEX annotations_by_content ON annotations (sha256, start_s);
"""

# Version 3: the inclusion weight of a label drawn as a probability sample (a stratified or random
# round's pick: windows in its stratum / picks taken from it), so that precision can be estimated
# on the whole archive and not only on the labelled windows. Older rows were no such sample: NULL.
# Not part of the uniqueness key: the same judgement of the same span is one annotation.
_VERSION_3 = """
ALTER TABLE annotations ADD COLUMN weight REAL CHECK (weight IS NULL OR weight > 0)
"""

#: MIGRATIONS[v] brings a store from schema version v to v + 1; the current version is their count.
#: Append to it, never edit an entry: a store written by this tfaudio must open in every later one.
MIGRATIONS: tuple[str, ...] = (_VERSION_1, _VERSION_2, _VERSION_3)
SCHEMA_VERSION = len(MIGRATIONS)


# -- opening ----------------------------------------------------------------------------------------


def store_error(path: Path, err: sqlite3.Error) -> LabelError:
    text = str(err)
    if "locked" in text or "busy" in text:
        return LabelError(f"{shown(path)}: another process kept the label store locked for over {BUSY_SECONDS:g} s; "
                          "try again when it has finished")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return LabelError(f"{shown(path)}: not a tfaudio label store, or a damaged one ({text})")
    return LabelError(f"{shown(path)}: the label store cannot be used ({text})")


def open_store(path: Path, create: bool) -> sqlite3.Connection:
    """A connection to the store at `path`, created or upgraded to SCHEMA_VERSION as needed.

    Several processes may open a new store at once (two `tfaudio serve` started together): what
    the file is, is decided under the write lock, where no other process can be half-way through
    creating it, so one creates it and the others find it made.
    """
    if path.is_dir():
        raise LabelError(f"{shown(path)}: is a folder, not a label store")
    if not path.exists():
        if not create:
            raise LabelError(f"{shown(path)}: no label store there (tfaudio labels import creates one)")
        from tfaudio.outputs import check_writable

        check_writable(path, folder=False)
        path.parent.mkdir(parents=True, exist_ok=True)
    db = None
    try:
        db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        if _state(db) != (APPLICATION_ID, SCHEMA_VERSION, False):
            _create_or_upgrade(db, path, create)
        db.execute("PRAGMA synchronous = FULL")  # a commit is on disk, not only in the OS's cache
        return db
    except sqlite3.Error as err:
        if db is not None:
            db.close()
        raise store_error(path, err) from None
    except BaseException:
        if db is not None:
            db.close()
        raise


def _state(db: sqlite3.Connection) -> tuple[int, int, bool]:
    """(application_id, user_version, whether the file holds no schema), read in one transaction."""
    db.execute("BEGIN")
    try:
        application, version = _identity(db)
        empty = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    finally:
        db.execute("COMMIT")
    return application, version, empty


def _check(path: Path, application: int, version: int, empty: bool, create: bool) -> None:
    if not create and empty:
        raise LabelError(f"{shown(path)}: not a tfaudio label store (an empty file)")
    if application != APPLICATION_ID and not (application == 0 and version == 0 and empty):
        raise LabelError(f"{shown(path)}: not a tfaudio label store (an SQLite file of another program)")
    if version > SCHEMA_VERSION:
        raise LabelError(f"{shown(path)}: written by a newer tfaudio (label schema {version}; this one reads up "
                         f"to {SCHEMA_VERSION}); upgrade tfaudio to use it")


def _identity(db: sqlite3.Connection) -> tuple[int, int]:
    return (db.execute("PRAGMA application_id").fetchone()[0], db.execute("PRAGMA user_version").fetchone()[0])


def _create_or_upgrade(db: sqlite3.Connection, path: Path, create: bool) -> None:
    """Check what the file is and apply the migrations it lacks, in one transaction that holds
    the write lock (another process may be doing the same: whoever gets the lock first does it,
    the others find it done). A refused file is left as it was."""
    _check(path, *_state(db), create)  # refuse a foreign or newer file before writing anything
    _wal(db)
    db.execute("BEGIN IMMEDIATE")
    try:
        application, version, empty = (*_identity(db),
                                       db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0)
        _check(path, application, version, empty, create)
        for migration in MIGRATIONS[version:]:
            for statement in filter(str.strip, migration.split(";")):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL (kept by the file: readers and a writer at once). The switch needs
    the file to itself and SQLite answers "locked" at once, without waiting, while another
    connection is using it: retry for up to BUSY_SECONDS."""
    import time

    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
