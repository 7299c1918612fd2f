"""Where tfaudio writes its outputs, and how: checked before any work, written whole or not at all.

Every command that writes (a feature table, a report, a page, a training run) first checks its
output location with `check_writable`, so a read-only folder or a path through a file is
refused in one line before minutes of work, not after them. Each output file is then written
under a hidden temporary name in its own folder, flushed to disk and renamed over the final
name (`replacing`, `write_text`, `write_bytes`): a crash, a full disk or a failing writer
leaves the earlier file as it was and no half-written one. `fresh_folder` gives a run a folder
of its own, so a second run never overwrites the first one's files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tfaudio.errors import TfaudioError


class OutputError(TfaudioError, OSError):
    """An output location that cannot be written, or a write that failed (a full disk); the
    message names the path and why. An OSError too, as the failure it stands for."""


def _shown(path: str | os.PathLike) -> str:
    """`path` printable: tfaudio.data.audio.printable_path's rule (bytes that are not UTF-8 as
    `\\xNN`), restated here because this module sits below the data package."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _existing_part(path: Path) -> Path:
    """The deepest part of `path` that exists (`path` itself when it does)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | os.PathLike, *, folder: bool = True) -> Path:
    """Check, without creating anything, that `path` can be written: a folder to create or
    write into (folder=True) or a file to create or replace (folder=False). Raises OutputError
    naming the path: a part of it that is a file, a folder where a file is wanted, no
    permission, a read-only or full file system. Returns `path` as a Path.
    """
    path = Path(path)
    try:
        if folder and path.exists() and not path.is_dir():
            raise OutputError(f"{_shown(path)}: exists and is not a folder")
        if not folder and path.is_dir():
            raise OutputError(f"{_shown(path)}: is a folder; give a file name")
        existing = _existing_part(path if folder else path.parent)
        if not existing.is_dir():
            raise OutputError(f"{_shown(path)}: a part of this path is a file, not a folder ({_shown(existing)})")
        # A real write: permissions alone miss read-only mounts, full disks and root's rights.
        handle, probe = tempfile.mkstemp(prefix=".tfaudio-write-test-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(f"{_shown(path)}: cannot write there ({err.strerror or err})") from None
    return path


def fresh_folder(path: str | os.PathLike) -> Path:
    """A folder of this run's own: `path` when it is new or an empty folder, else the first
    `path-2`, `path-3`, ... that this call creates. An earlier run's files are never touched.
    Raises OutputError when the folder cannot be created or written."""
    path = Path(path)
    for number in range(1, 10_000):
        candidate = path if number == 1 else path.with_name(f"{path.name}-{number}")
        try:
            candidate.mkdir(parents=True)  # atomic: of two runs starting together, one gets it
        except FileExistsError:
            # A numbered folder exists only because some run made it (maybe just now, still
            # empty): taken. `path` itself may be an empty folder the user made for this run.
            if number > 1 or not candidate.is_dir() or any(candidate.iterdir()):
                continue
        except OSError as err:
            raise OutputError(f"{_shown(candidate)}: cannot create the folder ({err.strerror or err})") from None
        return check_writable(candidate)
    raise OutputError(f"{_shown(path)}: every name from {path.name}-2 to {path.name}-9999 is taken; choose another")


def _sync(path: Path) -> None:
    """Flush `path` (a file or a folder) to disk; a file system that cannot sync a folder is let be."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(handle)


def move_into_place(temporary: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Flush the finished file `temporary` to disk and rename it over `path` (same folder), so
    `path` changes from its old content to the new one in one step. Raises OutputError."""
    temporary, path = Path(temporary), Path(path)
    try:
        _sync(temporary)
        os.replace(temporary, path)
        _sync(path.parent)  # the rename itself survives a power cut
    except OSError as err:
        raise _failed(path, err) from err
    return path


def _failed(path: Path, err: OSError) -> OutputError:
    kept = "the earlier file is kept" if path.exists() else "nothing was written"
    return OutputError(f"{_shown(path)}: cannot write ({err.strerror or err}); {kept}")


def temporary_name(path: str | os.PathLike) -> Path:
    """A hidden, unused name beside `path` with the same suffix (writers such as matplotlib
    choose the format by it): `.curves.partial-1a2b3c4d.png` for `curves.png`."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial-{secrets.token_hex(4)}{path.suffix}")


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Write `path` whole or not at all: yields a temporary name beside it for the writer to
    create; when the block ends the file is flushed and renamed over `path`. When the block
    raises, the temporary file is removed and `path` keeps its earlier content (if any); an
    OSError (a full disk) becomes an OutputError naming `path`.

        with replacing(out / "table.parquet") as temporary:
            frame.to_parquet(temporary)
    """
    temporary = temporary_name(path)
    try:
        yield temporary
        move_into_place(temporary, path)
    except OutputError:
        raise
    except OSError as err:  # a full disk, a folder made read-only meanwhile: said in one line
        raise _failed(Path(path), err) from err
    finally:
        temporary.unlink(missing_ok=True)  # gone already when the rename succeeded


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` whole or not at all (see `replacing`)."""
    with replacing(path) as temporary:
        # A file name that is not UTF-8 and slipped through unprintable shows as \udcff rather
        # than costing the user the whole output at the last step.
        temporary.write_text(text, encoding="utf-8", errors="backslashreplace")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` whole or not at all (see `replacing`)."""
    with replacing(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)
