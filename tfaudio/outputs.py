"""Where tfaudio writes its outputs, and how: checked before any work, written whole or not at all.

Every command that writes (a feature table, a report, a page, a training run) first checks its
output location with `check_writable`, so a read-only folder or a path through a file is
refused in one line before minutes of work, not after them. Each output file is then written
under a hidden temporary name in its own folder, flushed to disk and renamed over the final
name (`replacing`, `write_text`, `write_bytes`): a crash, a full disk or a failing writer
leaves the earlier file as it was and no half-written one. `fresh_folder` gives a run a folder
of its own, so a second run never overwrites the first one's files; `writing_into` keeps a
second run out of a folder another is writing into, naming it. A disk that fills up anyway is
recognized whoever raised it (`is_disk_full`) and said in one line (`disk_full_message`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from tfaudio.errors import TfaudioError


class OutputError(TfaudioError, OSError):
    """An output location that cannot be written, or a write that failed (a full disk); the
    message names the path and why. An OSError too, as the failure it stands for."""


def _shown(path: str | os.PathLike) -> str:
    """`path` printable: tfaudio.data.audio.printable_path's rule (bytes that are not UTF-8 as
    `\\xNN`), restated here because this module sits below the data package."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def existing_part(path: Path) -> Path:
    """The deepest part of `path` that exists (`path` itself when it does)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


#: Bytes `temporary_name` adds to a file's name while it is written (".", ".partial-", 8 hex digits).
_TEMPORARY_EXTRA = len("..partial-") + 8


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system holding `folder` takes; 255 where it will not say."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _check_name_lengths(path: Path, existing: Path, folder: bool) -> None:
    """Refuse a name the file system would refuse once the work is done (`File name too long`):
    each part of `path` still to be created, and a file's name with the temporary suffix it is
    first written under."""
    limit = _name_max(existing)
    new_parts = path.parts[len(existing.parts):] if path != existing else ()
    for index, part in enumerate(new_parts):
        size = len(os.fsencode(part))
        is_file = not folder and index == len(new_parts) - 1
        if size > limit or (is_file and size + _TEMPORARY_EXTRA > limit):
            most = limit - _TEMPORARY_EXTRA if is_file else limit
            why = " (it is first written under a longer temporary name)" if is_file else ""
            raise OutputError(f"{_shown(path)}: the name {_shown(part)[:40]}... is {size} bytes long; at most "
                              f"{most} fit here{why}; choose a shorter name")


def check_writable(path: str | os.PathLike, *, folder: bool = True) -> Path:
    """Check, without creating anything, that `path` can be written: a folder to create or
    write into (folder=True) or a file to create or replace (folder=False). Raises OutputError
    naming the path: a part of it that is a file, a folder where a file is wanted, no
    permission, a read-only or full file system, a name longer than the file system takes.
    Returns `path` as a Path.
    """
    path = Path(path)
    try:
        if folder and path.exists() and not path.is_dir():
            raise OutputError(f"{_shown(path)}: exists and is not a folder")
        if not folder and path.is_dir():
            raise OutputError(f"{_shown(path)}: is a folder; give a file name")
        existing = existing_part(path if folder else path.parent)
        if not existing.is_dir():
            raise OutputError(f"{_shown(path)}: a part of this path is a file, not a folder ({_shown(existing)})")
        _check_name_lengths(path, existing, folder)
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


def is_disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or an error it was raised from, is a full disk or a used-up quota
    (ENOSPC, EDQUOT), whoever raised it: Python, pyarrow, TensorFlow's file system."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(err) or "Disk quota exceeded" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes an unprivileged writer may still put on the file system holding `path` (or the
    deepest part of it that exists)."""
    stats = os.statvfs(existing_part(Path(path)))
    return stats.f_bavail * stats.f_frsize


def size_text(count: float) -> str:
    """`count` bytes for people: "512 B", "4.0 KB", "1.5 GB" (powers of 1024)."""
    if count < 1024:
        return f"{count:.0f} B"
    for unit in ("KB", "MB"):
        count /= 1024
        if count < 1024:
            return f"{count:.1f} {unit}"
    return f"{count / 1024:.1f} GB"


def fullest(places: Mapping[str, str | os.PathLike], err: BaseException | None = None) -> tuple[str, Path, int]:
    """Which of `places` (what it is -> its path, e.g. {"the embedding store": root}) ran out of
    room: the one `err` names when it names a file under one of them, else the one with the
    least free space. Returns (what, path, free bytes)."""
    named = getattr(err, "filename", None)
    if named:
        for what, place in places.items():
            try:
                if Path(named).resolve().is_relative_to(Path(place).resolve()):
                    return what, Path(place), free_bytes(place)
            except (OSError, ValueError):
                continue
    what, place = min(places.items(), key=lambda item: free_bytes(item[1]))
    return what, Path(place), free_bytes(place)


def disk_full_message(places: Mapping[str, str | os.PathLike], err: BaseException, kept: Callable[[str], str]) -> str:
    """One line for a write that found the disk full: which place, how much room is left there,
    kept(what) (what survived, what a rerun does, given which place is full), what to do."""
    what, place, free = fullest(places, err)
    return (f"no space left on the disk holding {what} {_shown(place)} ({size_text(free)} free): {kept(what)}; free "
            "some space there or choose another location, then run the command again")


def _lock_holder(folder: Path) -> str:
    """Who holds the flock on `folder`: "pid N (command line)" from Linux's /proc/locks, else
    "another process"."""
    try:
        inode = os.stat(folder).st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; "->" marks a waiter, not the holder
            if "->" not in fields and "FLOCK" in fields and fields[-3].split(":")[-1] == str(inode):
                pid = fields[-4]
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                command = command.decode(errors="replace").strip()
                return f"pid {pid} ({command[:120]})" if command else f"pid {pid}"
    except (OSError, IndexError):
        pass
    return "another process"


@contextlib.contextmanager
def writing_into(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold `folder` (created if need be) for this process while the block writes into it: a
    second run given the same folder meanwhile is refused at once with OutputError naming the
    process that holds it, instead of failing later on the other's temporary files. The lock is
    the kernel's (flock on the folder itself): nothing is written for it, and a killed run
    releases it. A folder this call created is removed again when the block fails and left it
    empty."""
    import fcntl

    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(folder, os.O_RDONLY)
    except OSError as err:
        raise OutputError(f"{_shown(folder)}: cannot create the folder ({err.strerror or err})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"{_shown(folder)}: {_lock_holder(folder)} is writing there now; wait for it to end "
                              "or choose another folder") from None
        try:
            yield folder
        except BaseException:
            if created and not any(folder.iterdir()):
                folder.rmdir()
            raise
    finally:
        os.close(handle)  # releases the lock
