"""Finding audio files: walking a folder tree, checking a file a manifest or a list names, and
reading a list of files (one path a line, from a file or standard input).

Every command that reads recordings finds them through these rules, so a folder, a manifest
and a list leave out the same things for the same reasons: hidden entries (silently), links
that are broken, loop or lead to folders, and anything that is not a regular file (a pipe, a
socket, a device: opening a pipe would wait forever for a writer). What is left out is a
`Problem`, named and explained.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tfaudio.data.audio import printable_path

#: The DATA argument that means "read the list of files from standard input".
STDIN = "-"
#: Extensions of a list of files (one path a line); `#` starts a comment line.
LIST_SUFFIXES = (".txt", ".lst")


@dataclass(frozen=True)
class Problem:
    """A file left out or worth a look, and why. path is the name as the file system or the
    manifest gives it; `shown` is that name safe to print (see audio.printable_path)."""

    path: str
    reason: str

    @property
    def shown(self) -> str:
        return printable_path(self.path)


def not_a_file(path: Path) -> str | None:
    """Why `path` cannot be a clip, or None for a regular file (or a link to one) and for a
    plain folder (which a walk enters). Never opens `path`."""
    if path.is_symlink():
        try:
            path.stat()
        except OSError as err:
            if err.errno == errno.ELOOP:
                return "symbolic link loop (the link leads back to itself)"
            return "broken symbolic link (its target does not exist)"
        if path.is_dir():
            return "symbolic link to a folder (not followed, so a link loop cannot recurse forever)"
    if path.is_dir() or path.is_file():
        return None
    if not os.path.lexists(path):
        return "not found"
    return "not a regular file (a pipe, socket or device)"


def named_file_problem(path: Path) -> str | None:
    """Why a file that a manifest, a list or the command line names cannot be read as a clip
    (missing, a folder, a pipe, a bad link), or None when it is a regular file."""
    try:
        reason = not_a_file(path)
    except OSError as err:  # a name too long, a component that is a file, ...
        return f"cannot be looked up ({err.strerror})"
    if reason is None and path.is_dir():
        return "a folder, not a file"
    return reason


def walk(folder: Path, ignored: list[Problem]) -> list[Path]:
    """Every regular file (or link to one) under `folder`, sorted, outside hidden folders.

    Links to folders are not followed. What cannot be used (links that are broken, loop or
    lead to folders, unreadable folders, pipes) is added to `ignored`; hidden entries are
    skipped silently.
    """

    def unreadable(err: OSError) -> None:
        ignored.append(Problem(str(err.filename), f"folder cannot be read ({err.strerror})"))

    files, odd = [], []
    for top, folders, names in os.walk(folder, onerror=unreadable):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in [*folders, *names]:
            path = Path(top, name)
            if name.startswith("."):
                continue
            if path.is_file():
                files.append(path)
            elif (reason := not_a_file(path)) is not None:
                odd.append(Problem(str(path), reason))
    ignored.extend(sorted(odd, key=lambda p: Path(p.path)))
    return sorted(files)


def is_file_list(path: str | os.PathLike) -> bool:
    """Whether DATA names a list of files: `-` (standard input) or a .txt / .lst file (not a
    folder that happens to be named so)."""
    return str(path) == STDIN or (Path(path).suffix.lower() in LIST_SUFFIXES and not Path(path).is_dir())


def read_file_list(path: str | os.PathLike) -> tuple[Path, str, list[tuple[int, str]]]:
    """(the folder its names are relative to, how to call the list, [(line number, name)]) of
    a list of files: `-` reads standard input (names relative to the current folder), else a
    text file (names relative to its folder). Blank lines and `#` comment lines are skipped;
    names are taken as written, spaces inside them included."""
    if str(path) == STDIN:
        text, root, called = sys.stdin.read(), Path.cwd(), "standard input"
    else:
        path = Path(path)
        raw = path.read_bytes()  # OSError for the caller to word
        # Undecodable bytes stay as they were (surrogate escapes), so a name the file system
        # gave in another encoding still opens.
        text, root, called = os.fsdecode(raw), path.parent, path.name
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.rstrip("\r")
        if name.strip() and not name.lstrip().startswith("#"):
            entries.append((number, name.strip()))
    return root, called, entries
