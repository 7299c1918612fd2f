"""Public datasets, downloaded once with a checksum and given a tfaudio manifest.

    path = fetch("esc10")      # $TFAUDIO_HOME/datasets/esc10, holding meta.csv and audio/

The archive goes through the same verified, atomic download as model weights (a partial or
corrupt download never lands), and is looked for first in `TFAUDIO_MODELS/datasets/` and the
cache, so a copy fetched by hand or on another machine is used as is. The prepared folder holds
`meta.csv` (`filename,label,fold,group`) with the official folds, so `tfaudio compare` uses them.

What is trusted, said in one line (the archive's sha256, verified or not, against what) every
time an archive is used. A download is checked against the dataset's known digest (or the
`--sha256` given with a mirror's `--url`); a mirror given without one is trusted on first
download and said to be unverified. An archive placed by hand (in `TFAUDIO_MODELS/datasets/`,
or in the cache without a digest sidecar) is hashed and must match the known digest, so the
advice after a failed download (fetch it by hand, put it there) leads to a verified copy; one
that differs is refused, with the command that uses it anyway if you trust it (`--url
file://... --sha256 ...`). No archive is trusted with paths or sizes: every entry is checked
before anything is written; an archive whose member or manifest row would land outside the
prepared folder (`../x`, `/x`, a link leading out) is refused, naming the entry, and one that
would expand more than MAX_EXPANSION times its size, or past the disk's free space, is refused
saying how much room it needs, with nothing extracted.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tfaudio import assets as weights
from tfaudio.errors import TfaudioError
from tfaudio.outputs import free_bytes, size_text

_LOG = logging.getLogger(__name__)


class FetchError(TfaudioError):
    """A dataset that could not be downloaded or prepared; the message says why and what to do."""


@dataclass(frozen=True)
class DatasetSource:
    """A public dataset: its archive (url, official name, sha256) and how to lay it out.

    prepare(archive, out) extracts what is needed into `out` and writes `out/meta.csv`.
    """

    name: str
    archive: weights.WeightsFile
    prepare: Callable[[Path, Path], int]
    description: str


def _esc_prepare(only_esc10: bool) -> Callable[[Path, Path], int]:
    """ESC-50's zip: <top>/meta/esc50.csv (filename, fold, target, category, esc10, src_file, take)
    and <top>/audio/*.wav. Folds are the official 5; group is the source recording."""

    def prepare(archive: Path, out: Path) -> int:
        with zipfile.ZipFile(archive) as bundle:
            meta_name = next((n for n in bundle.namelist() if n.endswith("meta/esc50.csv")), None)
            if meta_name is None:
                raise FetchError(f"{archive}: no meta/esc50.csv inside; is this the ESC-50 archive?")
            top = meta_name[: -len("meta/esc50.csv")]
            rows = list(csv.DictReader(bundle.read(meta_name).decode().splitlines()))
            if only_esc10:
                rows = [r for r in rows if r["esc10"].strip().lower() == "true"]
            for line, row in enumerate(rows, start=2):  # every row checked before any file is written
                if not _plain_name(row["filename"]):
                    raise FetchError(
                        f"{archive}: refusing to prepare it: {meta_name} (row {line}) names {row['filename']!r}, "
                        f"which is not a plain file name: it would be written outside {out / 'audio'}"
                    )
            wanted = [bundle.getinfo(f"{top}audio/{row['filename']}") for row in rows
                      if not (out / "audio" / row["filename"]).exists()]
            check_expansion(archive, out, [(info.filename, info.file_size) for info in wanted])
            (out / "audio").mkdir(parents=True, exist_ok=True)
            for row in rows:
                target = out / "audio" / row["filename"]
                if not target.exists():  # written whole under a temporary name, so never half there
                    partial = target.with_name(f".{target.name}.tmp")
                    with bundle.open(f"{top}audio/{row['filename']}") as src, open(partial, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    os.replace(partial, target)
        _write_manifest(out, ["filename", "label", "fold", "group"],
                        [(f"audio/{r['filename']}", r["category"], r["fold"], r["src_file"]) for r in rows])
        return len(rows)

    return prepare


def _plain_name(name: str) -> bool:
    """Whether `name` is one file name that stays in the folder it is joined to: no folder
    part, not `.` or `..`, no NUL."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def _check_members(bundle: tarfile.TarFile, archive: Path, dest: Path) -> None:
    """Refuse the whole archive, before anything is extracted, if one member has an absolute
    path (the "data" filter would strip its leading slash; an honest archive has none), would
    land outside `dest`, or breaks another of tarfile's "data" filter rules (links leading
    out, devices)."""
    refused = []
    for member in bundle:
        if os.path.isabs(member.name):
            refused.append(f"{member.name!r} is an absolute path")
            continue
        try:
            tarfile.data_filter(member, str(dest))
        except tarfile.FilterError as err:
            refused.append(str(err))
    if refused:
        more = f" and {len(refused) - 3} more" if len(refused) > 3 else ""
        raise FetchError(f"{archive}: refusing to extract it: {'; '.join(refused[:3])}{more}")


#: The most an archive of recordings may expand, all told, over its own size. WAV and FLAC
#: compress about 1.1-3x (ESC-50's zip expands 1.4x, Speech Commands' tarball about 1.5x);
#: a decompression bomb expands hundreds or thousands of times.
MAX_EXPANSION = 20
#: Room kept free on the disk beyond what the extracted files need (the manifest, the file system's own).
_SPARE_BYTES = 1 << 20


def check_expansion(archive: Path, out: Path, members: list[tuple[str, int]]) -> None:
    """Before extracting anything: refuse an archive whose `members` ((name, declared size in
    bytes), those about to be extracted) would expand more than MAX_EXPANSION times the
    archive's size, or would not fit the free space of `out`'s disk; the message says how
    much room is needed. The declared sizes are what extraction writes (zipfile and tarfile
    stop a member at its declared size)."""
    total = sum(size for _, size in members)
    packed = max(archive.stat().st_size, 1)
    if total > MAX_EXPANSION * packed:
        largest = max(members, key=lambda member: member[1])
        raise FetchError(
            f"{archive}: refusing to extract it: its {len(members)} file(s) would expand to {size_text(total)}, "
            f"{total / packed:.0f} times the archive's {size_text(packed)} (recordings expand at most about "
            f"{MAX_EXPANSION} times; the largest, {largest[0]!r}, declares {size_text(largest[1])}); this looks like "
            "a decompression bomb, not the dataset: delete it"
        )
    free = free_bytes(out)
    if total + _SPARE_BYTES > free:
        raise FetchError(
            f"{archive}: not extracted: its {len(members)} file(s) need {size_text(total + _SPARE_BYTES)} in "
            f"{out} but only {size_text(free)} is free there; free some space or choose another --out"
        )


def speaker_fold(speaker: str, folds: int = 5) -> int:
    """1..folds from a stable hash of the speaker id: every clip of a speaker in one fold."""
    return int(hashlib.sha1(speaker.encode()).hexdigest()[:8], 16) % folds + 1


def _speech_commands_prepare(archive: Path, out: Path) -> int:
    """Speech Commands v0.01: <word>/<speaker>_nohash_<n>.wav plus validation_list.txt and
    testing_list.txt. Folds: 5 speaker-disjoint folds (hash of the speaker id); group: speaker;
    official_split: train / validation / test from the official lists. The _background_noise_
    recordings are extracted but not listed (they are long, unlabelled)."""
    with tarfile.open(archive) as bundle:
        _check_members(bundle, archive, out / "audio")
        check_expansion(archive, out, [(member.name, member.size) for member in bundle if member.isfile()])
        bundle.extractall(out / "audio", filter="data")
    listed = {}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        path = out / "audio" / name
        if path.exists():
            listed.update({line.strip(): split for line in path.read_text().splitlines() if line.strip()})
    rows = []
    for wav in sorted((out / "audio").glob("*/*.wav")):
        word = wav.parent.name
        if word.startswith("_"):
            continue
        relative = f"{word}/{wav.name}"
        speaker = wav.name.split("_nohash_")[0]
        rows.append((f"audio/{relative}", word, str(speaker_fold(speaker)), speaker, listed.get(relative, "train")))
    _write_manifest(out, ["filename", "label", "fold", "group", "official_split"], rows)
    return len(rows)


def _write_manifest(out: Path, header: list[str], rows: list[tuple[str, ...]]) -> None:
    temporary = out / ".meta.csv.tmp"
    with open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(temporary, out / "meta.csv")  # meta.csv appears only once every file is in place


# The ESC-50 digest is that of the master-branch archive as recorded in November 2026
# (645,695,005 bytes); the Speech Commands one is the published digest of the v0.01 tarball.
_ESC50_ZIP = weights.WeightsFile(
    "datasets", "ESC-50-master.zip", "https://github.com/karolpiczak/ESC-50/archive/master.zip",
    "805afc618aff80eff0641d51311647871fead5807da68bb18e43a27db47a79ce",
)
_SPEECH_COMMANDS_TGZ = weights.WeightsFile(
    "datasets", "speech_commands_v0.01.tar.gz", "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
    "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
)

SOURCES = {
    source.name: source
    for source in (
        DatasetSource("esc10", _ESC50_ZIP, _esc_prepare(True),
                      "ESC-10: 400 five-second environmental recordings, 10 classes, 5 official folds (CC BY-NC)"),
        DatasetSource("esc50", _ESC50_ZIP, _esc_prepare(False),
                      "ESC-50: 2000 five-second environmental recordings, 50 classes, 5 official folds (CC BY-NC)"),
        DatasetSource("speech-commands", _SPEECH_COMMANDS_TGZ, _speech_commands_prepare,
                      "Speech Commands v0.01: 64,727 one-second words, 30 classes, 5 speaker-disjoint folds, "
                      "speakers as groups, the official lists in official_split (CC BY 4.0; 1.4 GB)"),
    )
}


def datasets_home() -> Path:
    """<tfaudio home>/datasets, where `fetch` prepares datasets: see `tfaudio.assets.tfaudio_home`."""
    return weights.tfaudio_home() / "datasets"


def fetch(
    name: str,
    *,
    out: str | os.PathLike | None = None,
    offline: bool | None = None,
    source: DatasetSource | None = None,
    progress: bool = True,
    note: Callable[[str], None] | None = None,
) -> Path:
    """The prepared folder of dataset `name` (downloading and extracting it the first time).

    out: where to prepare it (default $TFAUDIO_HOME/datasets/<name>). source: override the
    built-in source (a mirror, or a test server). note: told, whenever an archive is used, its
    sha256 and whether it was verified and against what (`trust`; default: a log warning).
    Raises FetchError saying why and what to do.
    """
    if source is None:
        if name not in SOURCES:
            raise FetchError(f"unknown dataset {name!r}; choose one of {', '.join(SOURCES)}")
        source = SOURCES[name]
    folder = Path(out) if out is not None else datasets_home() / source.name
    if (folder / "meta.csv").is_file():
        return folder
    try:
        archive = weights.resolve(source.archive, offline=offline, progress=progress)
    except weights.WeightsUnavailable as err:
        digest = source.archive.sha256
        checked = (f" A copy put there by hand is checked against sha256 {digest} before it is used." if digest
                   else "")
        raise FetchError(f"cannot fetch {source.name}: {err}{checked}") from None
    verified, line = trust(source, archive)
    (note or (_LOG.info if verified else _LOG.warning))(line)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        count = source.prepare(archive, folder)
    except (zipfile.BadZipFile, tarfile.TarError, KeyError, OSError) as err:
        raise FetchError(f"cannot prepare {source.name} from {archive}: {err}; delete the file to download it again") from None
    if count == 0:
        raise FetchError(f"{archive} holds no clip of {source.name}")
    return folder


def trust(source: DatasetSource, archive: Path) -> tuple[bool, str]:
    """Whether `archive` (the path `tfaudio.assets.resolve` gave for `source`) is verified
    against a known digest, and one line saying so with its sha256. Raises FetchError for a
    copy that differs from the known digest.

    A download into the cache was hashed on arrival and is re-hashed on every use against the
    source's digest, else the one recorded beside it at download (trust on first download: a
    mirror given without --sha256). Any other copy (placed by hand in TFAUDIO_MODELS/datasets or
    in the cache) is hashed here and must match the source's digest when one is known."""
    expected, spec = source.archive.sha256, source.archive
    known = SOURCES[source.name].archive.sha256 if source.name in SOURCES else None
    against = f"the known digest of {source.name}" if expected == known else "the digest given with --sha256"
    sidecar = archive.with_name(archive.name + ".sha256")
    downloaded = archive == weights.tfaudio_home() / spec.model / spec.filename and (expected or sidecar.is_file())
    if downloaded and expected:  # resolve re-hashed it against `expected`
        return True, f"{archive.name}: sha256 {expected}, verified against {against}"
    if downloaded:
        actual = next(iter(sidecar.read_text().split()), "")
        return False, (f"{archive.name}: sha256 {actual}, NOT verified: no digest was given for {spec.url}, so it is "
                f"only checked against the one recorded when it was downloaded (pass --sha256 {actual} with --url to "
                "pin it)")
    actual = weights.sha256_of(archive)
    if expected and actual != expected:
        raise FetchError(
            f"{archive}: sha256 {actual}, but {source.name}'s archive has sha256 {expected}: another version or a "
            f"damaged copy, not used. Delete it; or, if you trust this copy, give it with --url "
            f"{archive.resolve().as_uri()} --sha256 {actual}"
        )
    if expected:
        return True, f"{archive}: sha256 {actual}, verified against {against} (placed by hand)"
    return False, (f"{archive}: sha256 {actual}, NOT verified: placed by hand and no digest is known for it "
                   f"(pass --url {archive.resolve().as_uri()} --sha256 {actual} to pin it)")


def with_url(source: DatasetSource, url: str, sha256: str | None) -> DatasetSource:
    """`source` downloaded from a mirror, with the mirror's digest (None: trust on first download)."""
    return replace(source, archive=replace(source.archive, url=url, sha256=sha256))
