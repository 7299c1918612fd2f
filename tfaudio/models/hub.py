"""TF-Hub audio models (YAMNet, VGGish, any waveform -> embeddings SavedModel) as Representations.

``hub.KerasLayer`` is a tf_keras layer and fails inside Keras 3 models (tensorflow/hub#903), so
the models are loaded with ``tensorflow_hub.load`` and the loaded object is called directly.

Handles. A tfhub.dev URL (``https://tfhub.dev/google/yamnet/1``), a Kaggle Models URL
(``https://www.kaggle.com/models/google/yamnet/TensorFlow2/yamnet/1``) or a local SavedModel
directory. tensorflow_hub downloads a URL handle's archive once and unpacks it into
``$TFHUB_CACHE_DIR/<sha1 of the exact handle string>`` (default ``<tmp>/tfhub_modules``); it treats
that folder as complete as soon as it exists and is not empty, and then loads from it without any
network access. The ``<sha1>.descriptor.txt`` beside it is informational only. To use a machine
without network, fill that folder with the model's SavedModel (``saved_model.pb``,
``variables/``), e.g. by unpacking ``<handle>?tf-hub-format=compressed`` downloaded elsewhere.

Offline. With nothing cached and no network, tensorflow_hub would try to download and, where DNS
hangs, hang with it. :func:`load_module` therefore refuses early, naming the handle and the cache
folder: at once when ``TFAUDIO_OFFLINE=1``, else when the handle's host cannot be reached within
:data:`REACHABILITY_TIMEOUT_SECONDS`.

Batching. The hub models take one 1-D waveform per call, so :meth:`HubModel.frames` calls the
model once per clip, trimmed to its length: a clip's frames never depend on the rest of the
batch, but a batch costs as many calls as it has clips. ``tfaudio.models.yamnet`` and
``tfaudio.models.vggish`` run whole batches in one graph with the same weights layout.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import numpy as np

from tfaudio.quiet import tf  # TensorFlow imported without its start-up noise
from tfaudio.assets import files_sha256, is_offline, reachable, tfhub_cache_path
from tfaudio.errors import TfaudioError
from tfaudio.models.base import FrameEmbeddings, Representation, check_batch
from tfaudio.models.vggish.config import VggishParams
from tfaudio.models.vggish.model import load_pca_params, postprocess
from tfaudio.models.yamnet.config import YamnetParams

TFHUB_YAMNET = "https://tfhub.dev/google/yamnet/1"
TFHUB_VGGISH = "https://tfhub.dev/google/vggish/1"
REACHABILITY_TIMEOUT_SECONDS = 3.0
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


class HubError(TfaudioError):
    """A hub model that cannot be loaded or does not map a waveform to embeddings."""


def _is_url(handle: str) -> bool:
    return handle.startswith(("http://", "https://"))


def cached_module_dir(handle: str) -> Path:
    """``$TFHUB_CACHE_DIR/<sha1(handle)>``: where tensorflow_hub unpacks a URL handle's SavedModel."""
    return tfhub_cache_path(handle)


def _uses_cache() -> bool:
    # TFHUB_MODEL_LOAD_FORMAT=UNCOMPRESSED reads from Google's bucket on every load, never the cache.
    return os.environ.get("TFHUB_MODEL_LOAD_FORMAT", "").upper() != "UNCOMPRESSED"


def _fill_hint(handle: str, module_dir: Path) -> str:
    return (
        f"to use it offline, unpack the model's SavedModel (saved_model.pb, variables/) into {module_dir} "
        f"(download '{handle}?tf-hub-format=compressed' where there is network; tensorflow_hub fills that "
        f"folder itself when run online with the same TFHUB_CACHE_DIR), or pass a local SavedModel directory"
    )


def check_available(handle: str) -> Path | None:
    """Fail fast where ``tensorflow_hub.load(handle)`` could only fail slowly; return the local
    folder the model will load from (None where tensorflow_hub reads it remotely).

    Raises:
        HubError: naming the handle, the cache folder it looked at and how to fill it.
    """
    if not _is_url(handle):
        if "://" in handle:  # gs:// and the like: tensorflow_hub reads them itself
            return None
        path = Path(handle)
        if not any((path / name).is_file() for name in _SAVED_MODEL_FILES):
            raise HubError(f"{handle}: not a SavedModel directory (no saved_model.pb); give a TF-Hub handle or a folder written by tf.saved_model.save")
        return path
    if not _uses_cache():
        return None
    module_dir = cached_module_dir(handle)
    if module_dir.is_dir() and any(module_dir.iterdir()):
        if not any((module_dir / name).is_file() for name in _SAVED_MODEL_FILES):
            raise HubError(
                f"{handle}: the cache folder {module_dir} is not empty but holds no saved_model.pb, so tensorflow_hub "
                f"would take it as complete and fail; delete it, then {_fill_hint(handle, module_dir)}"
            )
        return module_dir
    if is_offline():
        raise HubError(f"{handle}: not cached at {module_dir} and offline mode (TFAUDIO_OFFLINE / HF_HUB_OFFLINE) forbids downloading; {_fill_hint(handle, module_dir)}")
    host = urllib.parse.urlparse(handle).hostname or ""
    if not reachable(host, REACHABILITY_TIMEOUT_SECONDS):
        raise HubError(
            f"{handle}: not cached at {module_dir} and {host} cannot be reached (no network?); "
            f"{_fill_hint(handle, module_dir)}"
        )
    return module_dir


def load_module(handle: str):
    """``(tensorflow_hub.load(handle), local folder or None)``, after :func:`check_available`."""
    import tensorflow_hub

    local = check_available(handle)
    try:
        return tensorflow_hub.load(handle), local
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise HubError(f"{handle}: tensorflow_hub could not load it ({str(err).splitlines()[0]})") from None


def _describe(spec) -> str:
    return f"{spec.dtype.name}{list(spec.shape)}" if isinstance(spec, tf.TensorSpec) else repr(spec)


class HubModel(Representation):
    """Any hub SavedModel whose call maps one waveform to frame embeddings (e.g. TRILL).

    The model is called as ``obj(waveform)`` when the loaded object is callable, else through
    ``obj.signatures[signature]``. Its input must be one float waveform, 1-D ``[samples]`` or
    ``[1, samples]``; a scalar second input (TRILL's ``sample_rate``) receives ``sample_rate``.
    The output may be a tensor, a dict (pick with ``output_key``, e.g. TRILL's "embedding") or a
    tuple (pick with an int ``output_key``), shaped ``[frames, dim]``, ``[1, frames, dim]`` or
    ``[dim]`` (one vector per clip).

    Args:
        handle: a hub URL or a local SavedModel directory (see the module notes).
        output_key: which output holds the embeddings; needed when there are several.
        sample_rate: Hz the model expects; waveforms must already be at this rate.
        frame_hop_seconds: time between output frames; None estimates it from the output lengths
            of a 2 s and a 4 s probe (0.0 when the output is one vector whatever the length).
        min_samples: clips shorter than this are zero-padded to it, for models that give no
            frame (or fail) on short input.
        signature: the signature to call when the object itself is not callable.
    """

    def __init__(
        self,
        handle: str,
        *,
        output_key: str | int | None = None,
        sample_rate: int = 16000,
        frame_hop_seconds: float | None = None,
        min_samples: int = 0,
        signature: str = "serving_default",
    ):
        self.handle = handle
        self.name = f"hub:{handle}"
        self.sample_rate = sample_rate
        self.output_key = output_key
        self.min_samples = min_samples
        self.module, self._local = load_module(handle)
        self._call, self._waveform_rank = self._find_call(signature)
        if frame_hop_seconds is None:
            frame_hop_seconds = self._estimate_hop()
        self.frame_hop_seconds = frame_hop_seconds
        self.dim = self.clip_frames(np.zeros(max(sample_rate, min_samples), np.float32)).shape[1]
        self._digest = None

    # -- calling the model

    def _find_call(self, signature: str):
        """(function taking one waveform tensor, the rank of that tensor)."""
        module = self.module
        restored = getattr(module, "__call__", None)
        candidates = []
        if callable(module) and hasattr(restored, "concrete_functions"):
            candidates = [(fn.structured_input_signature, "call") for fn in restored.concrete_functions]
        elif signature in getattr(module, "signatures", {}):
            candidates = [(module.signatures[signature].structured_input_signature, "signature")]
        else:
            raise HubError(
                f"{self.handle}: the loaded object is not callable and has no signature '{signature}' "
                f"(signatures: {sorted(getattr(module, 'signatures', {}))}); pass signature="
            )
        seen = []
        for (args, kwargs), how in candidates:
            inputs = [(spec.name or "", spec) for spec in args] + sorted(kwargs.items())
            seen.append(", ".join(f"{name or 'arg'}: {_describe(spec)}" for name, spec in inputs))
            specs = [spec for _, spec in inputs]
            if not all(isinstance(spec, tf.TensorSpec) for spec in specs):
                continue
            waveforms = [
                spec for spec in specs
                if spec.dtype.is_floating and (spec.shape.rank == 1 or (spec.shape.rank == 2 and spec.shape[0] in (None, 1)))
            ]
            rates = [spec for spec in specs if spec.shape.rank == 0 and (spec.dtype.is_integer or spec.dtype.is_floating)]
            if len(waveforms) != 1 or len(rates) != len(specs) - 1:
                continue
            waveform_spec = waveforms[0]
            function = module if how == "call" else module.signatures[signature]
            # Positional arguments stay positional (a restored __call__), keywords stay keywords
            # (signatures take keywords only); the scalar inputs get the sample rate.
            def fill(spec, waveform, waveform_spec=waveform_spec):
                return waveform if spec is waveform_spec else tf.constant(self.sample_rate, spec.dtype)

            def call(waveform, args=args, kwargs=kwargs, function=function):
                return function(
                    *[fill(spec, waveform) for spec in args], **{n: fill(spec, waveform) for n, spec in kwargs.items()}
                )

            return call, waveform_spec.shape.rank
        raise HubError(
            f"{self.handle}: its inputs ({'; '.join(seen)}) do not look like one waveform "
            f"(float [samples] or [1, samples], optionally with a scalar sample_rate), so it is not a waveform -> "
            f"embeddings model"
        )

    def _select(self, outputs) -> tf.Tensor:
        key = self.output_key
        if isinstance(outputs, dict):
            if key is None and len(outputs) == 1:
                key = next(iter(outputs))
            if key not in outputs:
                raise HubError(f"{self.handle}: outputs are {sorted(outputs)}; choose one with output_key=")
            return outputs[key]
        if isinstance(outputs, (tuple, list)):
            if key is None and len(outputs) == 1:
                key = 0
            if not isinstance(key, int) or not -len(outputs) <= key < len(outputs):
                raise HubError(f"{self.handle}: the model returns {len(outputs)} outputs; choose one with output_key=<index>")
            return outputs[key]
        return outputs

    def clip_frames(self, waveform: np.ndarray) -> np.ndarray:
        """One clip, float32 [samples] -> float32 [frames, dim] (padded to ``min_samples`` first)."""
        waveform = np.asarray(waveform, np.float32)
        if len(waveform) < self.min_samples:
            waveform = np.pad(waveform, (0, self.min_samples - len(waveform)))
        tensor = tf.constant(waveform if self._waveform_rank == 1 else waveform[np.newaxis])
        values = np.asarray(self._select(self._call(tensor)), np.float32)
        if values.ndim == 3 and values.shape[0] == 1:
            values = values[0]
        elif values.ndim == 1:
            values = values[np.newaxis]
        if values.ndim != 2:
            raise HubError(f"{self.handle}: output of shape {values.shape} is not [frames, dim]; check output_key")
        return values

    def _estimate_hop(self) -> float:
        rng = np.random.default_rng(0)  # low noise rather than silence, which some models reject
        counts = [len(self.clip_frames(rng.normal(0, 0.01, seconds * self.sample_rate))) for seconds in (2, 4)]
        return 2.0 / (counts[1] - counts[0]) if counts[1] != counts[0] else 0.0

    # -- Representation

    def frames(self, waveforms: np.ndarray, lengths: np.ndarray) -> FrameEmbeddings:
        """float32 [batch, samples], int [batch] -> frames float32 [batch, max frames, dim] and mask;
        one model call per clip, on the clip's own samples."""
        waveforms, lengths = check_batch(waveforms, lengths)
        clips = [self.clip_frames(row[:length]) for row, length in zip(waveforms, lengths)]
        longest = max((len(c) for c in clips), default=0)
        embeddings = np.zeros((len(clips), longest, self.dim), np.float32)
        mask = np.zeros((len(clips), longest), bool)
        for i, clip in enumerate(clips):
            embeddings[i, : len(clip)] = clip
            mask[i, : len(clip)] = True
        return FrameEmbeddings(embeddings, mask)

    def identity(self) -> dict:
        if self._digest is None:
            # The handle alone does not pin the content (a cache or folder can be refilled).
            files = sorted(p for p in self._local.rglob("*") if p.is_file()) if self._local is not None else []
            self._digest = files_sha256(files) if files else "unknown"
        return {
            "model": self.name,
            "handle": self.handle,
            "module": self._digest,
            "output_key": self.output_key,
            "sample_rate": self.sample_rate,
            "min_samples": self.min_samples,
        }


class HubYamnet(HubModel):
    """TF-Hub YAMNet: 1024-d embeddings of 0.96 s patches every 0.48 s.

    The hub model takes one 1-D float32 waveform at 16 kHz and returns (scores [patches, 521],
    embeddings [patches, 1024], log_mel_spectrogram [frames, 64]); it pads like the native
    ``tfaudio.models.yamnet`` (a clip shorter than 0.975 s still gives one patch).
    """

    def __init__(self, handle: str = TFHUB_YAMNET):
        params = YamnetParams()
        super().__init__(handle, output_key=1, sample_rate=params.sample_rate,
                         frame_hop_seconds=params.patch_hop_seconds)
        self.name = "hub-yamnet"


class HubVggish(HubModel):
    """TF-Hub VGGish: 128-d embeddings of 0.96 s examples every 0.96 s.

    The hub model takes one 1-D float32 waveform at 16 kHz and returns the raw embeddings
    [examples, 128]. It drops a clip's remainder like ``vggish_input`` and gives no example for
    a clip under 0.975 s, so such clips are zero-padded to 15600 samples first, as the native
    ``tfaudio.models.vggish`` does. With ``pca_params_path`` the embeddings are postprocessed
    like the AudioSet release (values 0..255 as float32).
    """

    def __init__(self, handle: str = TFHUB_VGGISH, pca_params_path: str | os.PathLike | None = None):
        # Set before the base constructor, whose probe goes through clip_frames.
        self._pca = load_pca_params(pca_params_path) if pca_params_path is not None else None
        self._pca_digest = files_sha256([Path(pca_params_path)]) if pca_params_path is not None else None
        params = VggishParams()
        super().__init__(handle, sample_rate=params.sample_rate, frame_hop_seconds=params.example_hop_seconds,
                         min_samples=params.example_samples)
        self.name = "hub-vggish"

    def clip_frames(self, waveform: np.ndarray) -> np.ndarray:
        values = super().clip_frames(waveform)
        return values if self._pca is None else postprocess(values, *self._pca).astype(np.float32)

    def identity(self) -> dict:
        return {**super().identity(), "postprocess": self._pca is not None, "pca_params": self._pca_digest}
