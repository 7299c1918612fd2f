"""What one `tfaudio serve` holds while it runs: the index, the label store, the uploaded query
files, and the ids by which the browser names recordings.

The browser never sends a path. An indexed recording is named by its file id, its place in the
index's sorted list of files (fixed while the server runs: it reads one generation of the
index); an uploaded query by its upload id ("u1", "u2", ...), a file the server wrote under a
name of its own in a temporary folder removed when it stops. Anything else is unknown (404).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from tfaudio.app.errors import AppError
from tfaudio.app.jobs import Jobs

#: Uploaded query files kept at once; the oldest is removed beyond it.
MAX_UPLOADS = 50
#: Audio the uploads may be (what soundfile reads); other suffixes are stored as ".audio".
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}
_UPLOAD_ID = re.compile(r"^u[0-9]{1,9}$")


@dataclass(frozen=True)
class Recording:
    """A file the browser may ask for: path on the server, name shown, content hash (None for
    uploads), and the end of its last window (seconds; the length the index knows)."""

    path: str
    name: str
    sha256: str | None
    end: float


class Uploads:
    """Query files uploaded through the page, in a private temporary folder (removed by close())."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="tfaudio-serve-"))
        self._files: OrderedDict[str, Recording] = OrderedDict()
        self._numbers = itertools.count(1)
        self._turn = threading.Lock()

    def add(self, name: str, source, duration_of) -> tuple[str, Recording]:
        """Copy the file object `source` in under a new id; `duration_of(path)` checks it is audio
        (raising) and gives its length. Returns (id, Recording)."""
        with self._turn:
            upload = f"u{next(self._numbers)}"
        suffix = Path(name).suffix.lower()
        path = self.folder / f"{upload}{suffix if suffix in AUDIO_SUFFIXES else '.audio'}"
        with open(path, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        try:
            duration = duration_of(path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        recording = Recording(str(path), name, None, duration)
        with self._turn:
            self._files[upload] = recording
            while len(self._files) > MAX_UPLOADS:
                _, old = self._files.popitem(last=False)
                Path(old.path).unlink(missing_ok=True)
        return upload, recording

    def get(self, upload: str) -> Recording:
        with self._turn:
            found = self._files.get(upload) if _UPLOAD_ID.match(upload or "") else None
        if found is None:
            raise AppError(f"no uploaded file {upload!r} (uploads last while the server runs)", 404)
        return found

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class AppState:
    """The server's index (SearchIndex), label store (LabelStore), uploads, default annotator,
    `work` (the lock one search or round holds: the model and its graphs are shared), background
    `jobs`, the detectors trained or loaded so far (label -> Detector) and the folder they are
    saved in (`detector_root`: beside the label store, DB.detectors/)."""

    def __init__(self, index, store, *, annotator: str = ""):
        self.index = index
        self.store = store
        self.annotator = annotator
        self.uploads = Uploads()
        self.work = threading.Lock()
        self.jobs = Jobs()
        self.detectors: dict = {}
        self.detector_root = Path(store.path).with_name(Path(store.path).stem + ".detectors")
        windows = index.windows
        grouped = windows.groupby("file", sort=True).agg(sha256=("sha256", "first"), end=("end", "max"))
        self.recordings = [Recording(file, os.path.basename(file), sha, float(end))
                           for file, sha, end in zip(grouped.index, grouped["sha256"], grouped["end"])]
        self.file_ids = {recording.path: number for number, recording in enumerate(self.recordings)}

    def recording(self, source: str, ident) -> Recording:
        """The Recording a request names: source "file" (ident: a file id) or "upload" (an upload
        id). AppError 404 for anything else."""
        if source == "file":
            text = str(ident)
            if text.isdigit() and int(text) < len(self.recordings):
                return self.recordings[int(text)]
            raise AppError(f"no indexed file with id {text[:40]!r}", 404)
        if source == "upload":
            return self.uploads.get(str(ident))
        raise AppError(f"unknown source {str(source)[:40]!r} (file or upload)", 404)

    def detector_folder(self, label: str) -> Path:
        """DB.detectors/<label>-<digest>/: the label made safe for any file system, the digest
        keeping apart two labels that clean to the same name."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._")[:40] or "label"
        return self.detector_root / f"{safe}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"

    def detector(self, label: str):
        """The label's Detector (trained by this server, else saved in its folder), or None."""
        if label not in self.detectors and (self.detector_folder(label) / "detector.json").is_file():
            from tfaudio.detector.model import Detector

            self.detectors[label] = Detector.load(self.detector_folder(label))
        return self.detectors.get(label)

    def close(self) -> None:
        self.uploads.close()
        self.store.close()
