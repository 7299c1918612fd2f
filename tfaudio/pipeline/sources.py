"""Where a distributed run's clips come from: a local dataset, or a folder, manifest or list of
files on any Beam filesystem (gs://, s3://, hdfs://, ...), and local copies of remote files for
the decoder.

The rows are the local dataset's rows (file relative to the dataset, label, fold, group), so a
Beam run's output carries the same columns as a local run's, and a local DATA gives the same
clips as the local runner (`load_dataset(..., labelled=False)`). Remote listings follow the
local rules: every audio file of the tree (hidden entries skipped, audio extensions only),
labelled by its folder only where every one sits exactly one folder down (class folders); a CSV
manifest `filename[,label][,fold][,group]` or a list of files (.txt / .lst, one name a line)
whose names are relative to its folder. Apache Beam is imported only for remote paths.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import posixpath
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from tfaudio.data.audio import AUDIO_EXTENSIONS
from tfaudio.data.dataset import MANIFEST_NAMES, Dataset, DatasetError, Problem, load_dataset
from tfaudio.data.listing import LIST_SUFFIXES

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ClipRef:
    """One clip to embed: `path` local or a Beam filesystem URL; `file` as the output names it;
    label None for an unlabelled clip."""

    path: str
    file: str
    label: str | None
    fold: int | None = None
    group: str | None = None


def is_remote(path: str | os.PathLike) -> bool:
    """Whether `path` is a URL for a Beam filesystem (gs://bucket/x) rather than a local path."""
    return "://" in str(path)


def list_clips(data: str | os.PathLike | Dataset,
               group_column: str | None = None) -> tuple[list[ClipRef], list[Problem]]:
    """The clips of `data` (a local DATA as `load_dataset(..., labelled=False)` reads it, or
    already read; or a remote folder tree, manifest or list of files) and the files left out,
    with why. group_column applies to what is read here, not to a Dataset given."""
    if isinstance(data, Dataset) or not is_remote(data):
        dataset = data if isinstance(data, Dataset) else load_dataset(data, group_column=group_column, labelled=False)
        clips = [ClipRef(str(c.path), dataset.relative(c), c.label, c.fold, c.group) for c in dataset.clips]
        return clips, list(dataset.ignored)
    from apache_beam.io.filesystems import FileSystems

    url = str(data).rstrip("/")
    if url.lower().endswith(".csv"):
        return _remote_manifest(url, group_column), []
    if url.lower().endswith(LIST_SUFFIXES):
        return _remote_list(url), []
    for name in MANIFEST_NAMES:
        if FileSystems.exists(FileSystems.join(url, name)):
            return _remote_manifest(FileSystems.join(url, name), group_column), []
    return _remote_folders(url)


def _remote_folders(url: str) -> tuple[list[ClipRef], list[Problem]]:
    from apache_beam.io.filesystems import FileSystems

    (result,) = FileSystems.match([f"{url}/**"])
    found, ignored = [], []
    # In the order of a local walk: by path components, so `a/` comes before `a-b/`.
    for metadata in sorted(result.metadata_list, key=lambda m: m.path[len(url) + 1 :].split("/")):
        relative = metadata.path[len(url) + 1 :]
        parts = relative.split("/")
        if any(part.startswith(".") for part in parts) or relative.endswith("/"):
            continue
        extension = posixpath.splitext(relative)[1].lower()
        if extension not in AUDIO_EXTENSIONS:
            ignored.append(Problem(metadata.path, f"unknown audio extension '{extension or '(none)'}'"))
        else:
            found.append((metadata.path, relative, parts))
    if not found:
        raise DatasetError(f"{url}: no audio files found ({', '.join(sorted(AUDIO_EXTENSIONS))}, in this folder or "
                           "any sub-folder)")
    class_folders = all(len(parts) == 2 for _, _, parts in found)  # as `dataset._from_tree`
    return [ClipRef(path, relative, parts[0] if class_folders else None) for path, relative, parts in found], ignored


def _remote_list(url: str) -> list[ClipRef]:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(url) as stream:
        text = stream.read().decode("utf-8-sig")
    root = url.rsplit("/", 1)[0]
    names = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    clips = [ClipRef(name if is_remote(name) else FileSystems.join(root, name), name, None) for name in names]
    if not clips:
        raise DatasetError(f"{url}: the list names no file")
    return clips


def _remote_manifest(url: str, group_column: str | None) -> list[ClipRef]:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(url) as stream:
        text = stream.read().decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "filename" not in columns:
        raise DatasetError(f"{url}: manifest lacks a filename column (found {columns})")
    group_column = group_column or ("group" if "group" in columns else None)
    root = url.rsplit("/", 1)[0]
    clips = []
    for row in ({k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader):
        name = row["filename"]
        fold = int(row["fold"]) if row.get("fold") else None
        group = (row.get(group_column) or None) if group_column else None
        path = name if is_remote(name) else FileSystems.join(root, name)
        clips.append(ClipRef(path, name, row.get("label") or None, fold, group))
    return clips


class LocalCopies:
    """Local paths for clips: local files as they are, remote files copied into `folder` (named by
    their URL's digest), the least recently used deleted past `max_bytes`: a worker embedding
    several windows of one file copies it once, and its disk does not fill with the archive.
    """

    def __init__(self, folder: str | os.PathLike | None = None, max_bytes: int = 4 << 30):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="tfaudio-beam-"))
        self.max_bytes = max_bytes
        self._held: OrderedDict[Path, int] = OrderedDict()  # local copy -> bytes, oldest use first

    def _local(self, path: str) -> Path:
        return self.folder / (hashlib.sha256(path.encode()).hexdigest()[:24] + posixpath.splitext(path)[1])

    def path(self, path: str) -> str:
        """A local path holding `path`'s bytes (raises OSError when it cannot be read)."""
        if not is_remote(path):
            return path
        local = self._local(path)
        if local in self._held:
            self._held.move_to_end(local)
        else:
            self.fetch(path, local)
        return str(local)

    def local_and_digest(self, path: str) -> tuple[str, str]:
        """(local path, content sha256), reading the file once: hashed where it is (local) or
        while it is copied (remote)."""
        if not is_remote(path):
            from tfaudio.assets import sha256_of

            return path, sha256_of(path)
        local = self._local(path)
        return str(local), self.fetch(path, local)

    def fetch(self, path: str, local: Path) -> str:
        """Copy `path` to `local` atomically; its content sha256."""
        from apache_beam.io.filesystems import FileSystems

        digest = hashlib.sha256()
        temporary = local.with_name(f".{local.name}.{os.getpid()}.tmp")
        local.parent.mkdir(parents=True, exist_ok=True)
        with FileSystems.open(path) as source, open(temporary, "wb") as target:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                target.write(chunk)
        os.replace(temporary, local)
        self._held[local] = local.stat().st_size
        while len(self._held) > 1 and sum(self._held.values()) > self.max_bytes:
            oldest, _ = self._held.popitem(last=False)
            oldest.unlink(missing_ok=True)
        return digest.hexdigest()

    def release(self, path: str) -> None:
        """Delete the local copy of a remote `path` (when no later step needs it here)."""
        if is_remote(path):
            local = self._local(path)
            self._held.pop(local, None)
            local.unlink(missing_ok=True)

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self._held.clear()
