"""Where pretrained weights come from: local copies first, downloads last, never a silent guess.

A weights file is looked for in this order; the first hit wins:

1. an explicit path given by the caller (missing -> error; it never falls through);
2. ``$TFAUDIO_MODELS/<model>/<file name>``, a folder the user fills by hand (``../shared/models``
   is laid out this way: ``yamnet/yamnet.h5``, ``keras/models/mobilenet_v2_..._no_top.h5``);
3. the tfaudio cache, ``<tfaudio home>/<model>/<file name>`` (:func:`tfaudio_home`: ``$TFAUDIO_HOME``,
   else ``$XDG_CACHE_HOME/tfaudio``, else ``~/.cache/tfaudio``);
4. for ``keras.applications`` files, Keras' own cache ``$KERAS_HOME/models/<file name>``
   (default ``~/.keras``);
5. a download into the tfaudio cache, unless offline (``TFAUDIO_OFFLINE``, ``HF_HUB_OFFLINE`` or
   ``TRANSFORMERS_OFFLINE`` truthy), in which case no socket is opened and the error lists every
   place looked and where to put the file.

TF-Hub models and Hugging Face repositories are folders their own libraries cache;
:func:`tfhub_cache_path` and :func:`hf_cache_path` say where, in those libraries' layouts, and

Digest policy. Files in an explicit path, in ``TFAUDIO_MODELS`` or in Keras' cache are the
user's choice and are not checked against any digest (``../shared/models`` holds rebuilt
files that differ from Google's bytes on purpose). Downloads are always hashed while streaming:
against ``WeightsFile.sha256`` when one is known, and otherwise trusted on first download. Either
way ``<file>.sha256`` is written beside the download, and every later load from the tfaudio
cache re-hashes the file (about 1 s per GB) against the known digest, else that sidecar, so a
corrupted or truncated cache file is detected: it is downloaded again, or reported when
offline. The tfaudio cache is therefore for verified downloads; put your own files (such as
rebuilt weights) in ``TFAUDIO_MODELS``. Google publishes no digests for these files; each
constant says where its digest comes from, or that none is known.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from tfaudio.errors import TfaudioError

_LOG = logging.getLogger(__name__)
_CHUNK = 1 << 20  # bytes per read when hashing or downloading
_OFFLINE_SWITCHES = ("TFAUDIO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}  # what huggingface_hub accepts as true


@dataclass(frozen=True)
class WeightsFile:
    """One released weights file and where it is published.

    model: folder under ``TFAUDIO_MODELS`` and the tfaudio cache ("yamnet", "keras/models").
    filename: the official file name, kept so files downloaded by hand drop straight in.
    url: the official download URL.
    sha256: expected hex digest of the download, or None when no trustworthy one is known
        (then trust on first download; see the module docstring).
    keras_cache: also look in ``$KERAS_HOME/models/<filename>`` (``keras.applications`` files).
    """

    model: str
    filename: str
    url: str
    sha256: str | None = None
    keras_cache: bool = False


#: YAMNet weights (legacy Keras HDF5, 15,296,092 bytes). Google publishes no digest; this one
#: was recorded independently by many public projects that downloaded the file.
YAMNET_H5 = WeightsFile(
    "yamnet",
    "yamnet.h5",
    "https://storage.googleapis.com/audioset/yamnet.h5",
    "13c3308955bbfaef262f175ac9c40e47b134573a93984f009220dd7cc12a1744",
)
#: YAMNet's 521 class names (index, mid, display_name). Digest recorded by many public
#: projects at several tensorflow/models commits, and equal to the copy in ../shared/models.
YAMNET_CLASS_MAP = WeightsFile(
    "yamnet",
    "yamnet_class_map.csv",
    "https://raw.githubusercontent.com/tensorflow/models/master/research/audioset/yamnet/yamnet_class_map.csv",
    "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2",
)
#: VGGish TF1 checkpoint. No trustworthy digest known: trusted on first download.
VGGISH_CKPT = WeightsFile("vggish", "vggish_model.ckpt", "https://storage.googleapis.com/audioset/vggish_model.ckpt")
#: VGGish PCA / quantization parameters. No trustworthy digest known: trusted on first download.
VGGISH_PCA = WeightsFile(
    "vggish", "vggish_pca_params.npz", "https://storage.googleapis.com/audioset/vggish_pca_params.npz"
)
#: ImageNet MobileNetV2 1.0/224 without top, as ``keras.applications`` names it. Keras itself
#: pins no digest for it, so none here. The folder mirrors ``$KERAS_HOME/models`` so that
#: ``KERAS_HOME=$TFAUDIO_MODELS/keras`` also works for Keras.
MOBILENET_V2_NO_TOP = WeightsFile(
    "keras/models",
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    keras_cache=True,
)


class WeightsError(TfaudioError):
    """A weights file that exists but does not fit the network; the message names the file
    and the missing, unexpected or mis-shaped variable."""


class WeightsUnavailable(TfaudioError):
    """A weights file could not be found or fetched.

    The message names the file, why it is unavailable, every place looked (in order) and how
    to fix it; ``looked`` holds those places for callers.
    """

    def __init__(self, message: str, looked: list[Path]):
        super().__init__(message)
        self.looked = looked


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def tfaudio_home() -> Path:
    """The tfaudio cache: ``$TFAUDIO_HOME``, else ``$XDG_CACHE_HOME/tfaudio``, else ``~/.cache/tfaudio``.

    The one rule for every cache tfaudio keeps: downloaded weights (``<home>/<model>/``), datasets
    (``<home>/datasets/``), the embedding store (``<home>/embeddings/``) and what lives beside it.
    """
    home = _env_path("TFAUDIO_HOME")
    if home is not None:
        return home
    return (_env_path("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfaudio"


def keras_home() -> Path:
    """Keras' cache root: ``$KERAS_HOME``, else ``~/.keras`` (Keras' own default)."""
    return _env_path("KERAS_HOME") or Path.home() / ".keras"


def offline_switch() -> str | None:
    """The environment setting that forbids network access (e.g. "HF_HUB_OFFLINE=1"), or None."""
    for name in _OFFLINE_SWITCHES:
        value = os.environ.get(name, "")
        if value.strip().lower() in _TRUE:
            return f"{name}={value}"
    return None


def _network_off(offline: bool | None) -> str | None:
    """Why network access is forbidden ("offline=True", "TFAUDIO_OFFLINE=1"), or None if allowed."""
    if offline is None:
        return offline_switch()
    return "offline=True" if offline else None


def is_offline() -> bool:
    """True when TFAUDIO_OFFLINE, HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is 1/true/yes/on."""
    return offline_switch() is not None


def locations(spec: WeightsFile, explicit: str | os.PathLike | None = None) -> list[Path]:
    """The candidate paths for ``spec`` in the order :func:`resolve` tries them.

    The download target is the tfaudio cache entry, which is always in the list.
    """
    places = []
    if explicit is not None:
        places.append(Path(explicit).expanduser())
    models = _env_path("TFAUDIO_MODELS")
    if models is not None:
        places.append(models / spec.model / spec.filename)
    places.append(tfaudio_home() / spec.model / spec.filename)
    if spec.keras_cache:
        places.append(keras_home() / "models" / spec.filename)
    return places


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (constant memory for any size)."""
    return files_sha256([path], names=False)


def files_sha256(paths, names: bool = True) -> str:
    """One hex sha256 over several files' contents in the given order (and their base names,
    so that a checkpoint split differently is another digest): a model's weights digest."""
    digest = hashlib.sha256()
    for path in map(Path, paths):
        if names:
            digest.update(path.name.encode("utf8") + b"\0")
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` seconds.

    Model hubs' clients retry for tens of seconds when the network is blocked; one short probe
    lets a load fail (or fall back to the cache) in seconds. `socket.getaddrinfo` has no timeout
    of its own, so the probe runs in a daemon thread that is abandoned if it takes too long.
    """
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _cache_problem(spec: WeightsFile, path: Path) -> str | None:
    """Why the tfaudio cache copy at ``path`` cannot be used, or None when it is good.

    It must match the known digest, else the sidecar written when it was downloaded (an empty
    or garbled sidecar counts as a mismatch). A file with neither was placed by hand: trusted.
    """
    sidecar = _sidecar(path)
    expected = spec.sha256
    if expected is None and sidecar.is_file():
        expected = next(iter(sidecar.read_text().split()), "")
    if expected is None:
        return None
    actual = sha256_of(path)
    if actual != expected:
        return f"the cached copy {path} is corrupt: sha256 {actual}, expected {expected}"
    return None


def resolve(
    spec: WeightsFile,
    explicit: str | os.PathLike | None = None,
    *,
    offline: bool | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """The local path of ``spec``'s file, downloading it into the tfaudio cache if needed.

    explicit: a path the caller insists on; used as is (no digest check) or an error.
    offline: forbid network access; None reads the environment (:func:`is_offline`).
    progress: show a tqdm bar on stderr while downloading.
    timeout: seconds to wait for the server to connect or send the next bytes.

    Raises WeightsUnavailable with the file, the places looked and how to fix it.
    """
    places = locations(spec, explicit)
    if explicit is not None:
        if places[0].is_file():
            return places[0]
        raise _unavailable(spec, f"the path given, {places[0]}, is not a file", places[:1])

    cache = tfaudio_home() / spec.model / spec.filename
    problem = None
    for place in places:
        if not place.is_file():
            continue
        if place != cache:
            return place  # the user's or Keras' copy: their choice, not re-verified
        problem = _cache_problem(spec, place)
        if problem is None:
            return place

    switch = _network_off(offline)
    if switch is not None:
        reason = problem or f"it is in no local folder and network access is off ({switch})"
        raise _unavailable(spec, reason, places, switch)
    if problem is not None:
        _LOG.warning("%s; downloading it again", problem)
    _download(spec, cache, places, progress=progress, timeout=timeout)
    return cache


def _open_part(dest: Path) -> tuple[BinaryIO, Path]:
    """A new ``<name>.part-<random>`` file beside ``dest``, open for writing.

    Same folder, so the final ``os.replace`` is an atomic rename; created with mode 0o666 so
    the umask decides the permissions, as for any other file the user writes.
    """
    part = dest.with_name(f"{dest.name}.part-{secrets.token_hex(6)}")
    return os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb"), part


def _download(spec: WeightsFile, dest: Path, places: list[Path], *, progress: bool, timeout: float) -> None:
    """Fetch ``spec.url`` to ``dest`` so that ``dest`` is either absent or complete and verified.

    Bytes are hashed as they arrive into a part file. A short read against Content-Length (a
    dropped connection) or a digest mismatch removes the part file and raises; concurrent
    downloads each rename a complete file, so none ever sees a partial ``dest``.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        out, part = _open_part(dest)
    except OSError as err:
        reason = f"cannot write to the tfaudio cache {dest.parent} ({err}); set TFAUDIO_HOME to a writable folder"
        raise _unavailable(spec, reason, places) from None
    try:
        digest, received, expected_size = hashlib.sha256(), 0, None
        try:
            with out, urllib.request.urlopen(spec.url, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                expected_size = int(length) if length is not None else None
                with tqdm(total=expected_size, unit="B", unit_scale=True, desc=dest.name,
                          disable=not progress, file=sys.stderr) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:  # URLError and HTTPError are OSErrors
            raise _unavailable(spec, f"downloading {spec.url} failed: {err}", places) from None
        # http.client's read() returns b"" instead of raising when the server closes early.
        if expected_size is not None and received != expected_size:
            reason = f"the connection to {spec.url} dropped after {received} of {expected_size} bytes"
            raise _unavailable(spec, reason, places)
        actual = digest.hexdigest()
        if spec.sha256 is not None and actual != spec.sha256:
            reason = f"the download from {spec.url} has sha256 {actual}, expected {spec.sha256}"
            raise _unavailable(spec, reason, places)
        # Sidecar first: a crash between the two renames leaves a digest that flags the old
        # file as corrupt (so it is downloaded again), never an unverified new file.
        sidecar, sidecar_part = _open_part(_sidecar(dest))
        with sidecar:
            sidecar.write(f"{actual}  {dest.name}\n".encode())  # sha256sum's format
        os.replace(sidecar_part, _sidecar(dest))
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def _unavailable(spec: WeightsFile, reason: str, looked: list[Path], switch: str | None = None) -> WeightsUnavailable:
    """The error for ``spec``: the reason, each place looked, and where to put the file."""
    lines = [f"{spec.filename} ({spec.model}) is unavailable: {reason}.", "Looked in, in order:"]
    lines += [f"  {place}  ({'present' if place.is_file() else 'missing'})" for place in looked]
    models = _env_path("TFAUDIO_MODELS")
    if models is None:
        lines.append("  (TFAUDIO_MODELS is not set)")
        target = tfaudio_home() / spec.model / spec.filename
        where = f"put it at {target}, or in a folder laid out <model>/<file name> that TFAUDIO_MODELS names"
    else:
        where = f"put it at {models / spec.model / spec.filename} (TFAUDIO_MODELS is {models})"
    online = f", or allow network access ({switch} forbids it)" if switch else ""
    lines.append(f"To fix: download {spec.url} and {where}, or pass its path explicitly{online}.")
    return WeightsUnavailable("\n".join(lines), looked)


def tfhub_cache_path(handle: str) -> Path:
    """Where tensorflow_hub caches the model ``handle``: ``<cache>/<sha1 hex of the handle>``.

    ``<cache>`` is ``$TFHUB_CACHE_DIR``, else ``<system temp>/tfhub_modules``, as in
    ``tensorflow_hub.compressed_module_resolver``. The handle string must match exactly
    (a trailing slash or ``?tf-hub-format`` gives another folder).
    """
    cache = _env_path("TFHUB_CACHE_DIR") or Path(tempfile.gettempdir()) / "tfhub_modules"
    return cache / hashlib.sha1(handle.encode("utf8")).hexdigest()


def hf_cache_path(repo_id: str) -> Path:
    """Where huggingface_hub caches the model repository ``repo_id`` ("org/name").

    ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` (default
    ``~/.cache``), then ``models--org--name``: huggingface_hub's layout, read without importing it.
    """
    hub = _env_path("HF_HUB_CACHE") or _env_path("HUGGINGFACE_HUB_CACHE")
    if hub is None:
        home = _env_path("HF_HOME") or (_env_path("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
        hub = home / "hub"
    return hub / "--".join(["models", *repo_id.split("/")])
