"""SavedModel export in TF Serving's layout, TFLite export, and loading an export back.

``saved_models/NAME/<version>/`` holds a SavedModel whose ``serving_default`` signature takes
``waveform: float32 [batch, samples]`` at 16 kHz, any length, and returns
``probabilities: float32 [batch, classes]`` and ``label: string [batch]``. A clip up to the
training duration is zero-padded to it, as in training; a longer one is cut into windows of
that duration whose probabilities are averaged, each weighted by the audio it holds (so a
last window of a few samples counts for little); training cuts long clips into the same
windows, and the reported validation metrics come from this serving function on whole clips.
Windows go through the network WINDOW_CHUNK at a time, so a long file needs bounded memory. ``assets/tfaudio.json`` stores the class
names, the front-end parameters and the training settings.

A version folder appears whole or not at all: it is written under a hidden temporary name
beside its final one and renamed into place once ``assets/tfaudio.json`` is in it, so an export
killed half-way leaves only a hidden ``.<version>.partial-*`` folder that loading ignores.
Loading uses the highest *complete* version (saved_model.pb and assets/tfaudio.json), passing
over, with an ExportWarning, a version left incomplete by an older tfaudio or by hand.

A SavedModel's graph is a program (its ops can read and write files), so an export is
identified before its graph is loaded (`identify`): tfaudio.json must be a tfaudio classifier's
metadata, saved_model.pb must parse, hash to the digest tfaudio.json records for it and declare
the serving signature above (read from the protocol buffer, nothing run). A folder that fails
is refused with an ExportError naming the file and the fix. This identifies tfaudio's exports
and catches damage; it does not authenticate them: whoever can write an export can write its
tfaudio.json too, so load only models from people you trust (docs/safety.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio.errors import TfaudioError, TfaudioWarning

SIGNATURE = "serving_default"
METADATA_FILE = "tfaudio.json"
#: tfaudio.json's "format": what marks the metadata of a tfaudio classifier export.
EXPORT_FORMAT = "tfaudio-classifier"
#: tfaudio.json's key for the sha256 of saved_model.pb, recorded at export.
GRAPH_DIGEST = "saved_model_sha256"
TFLITE_FILE = "model.tflite"
MIN_SECONDS = 0.1
#: Windows the exported model runs through the classifier per call (more when the batch has
#: more clips: one window of each at least). Bounds the memory a long clip needs.
WINDOW_CHUNK = 32


class ExportError(TfaudioError):
    """An export folder that cannot be written or read; the message names it."""


class ExportWarning(TfaudioWarning):
    """An export folder passed over (incomplete); the message names it and what was used."""


def version_dirs(model_dir: str | os.PathLike) -> list[Path]:
    """The numbered version folders of ``model_dir``, lowest first."""
    root = Path(model_dir)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def _missing(version: Path) -> str | None:
    """What a version folder lacks to be a complete tfaudio export, or None when complete."""
    for part in ("saved_model.pb", f"assets/{METADATA_FILE}"):
        if not (version / part).is_file():
            return part
    return None


def resolve_version(path: str | os.PathLike) -> Path:
    """A version folder: ``path`` itself when it holds saved_model.pb, else its highest complete
    version (saved_model.pb and assets/tfaudio.json); each higher, incomplete one is passed
    over with an ExportWarning."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    passed = []
    for version in reversed(version_dirs(path)):
        lacking = _missing(version)
        if lacking is None:
            for skipped, what in passed:
                warnings.warn(ExportWarning(f"{skipped}: incomplete export (no {what}; interrupted?), passed over; "
                                            f"using {version}"), stacklevel=2)
            return version
        passed.append((version, lacking))
    found = "; ".join(f"{v.name}/ lacks {what}" for v, what in reversed(passed))
    raise ExportError(
        f"{path}: not an exported model: no saved_model.pb in it nor a complete numbered version folder "
        f"(expected {path}/1/saved_model.pb and {path}/1/assets/{METADATA_FILE}, as `tfaudio train --out {path}` "
        f"writes)" + (f"; incomplete: {found}" if found else "")
    )


def ensure_writable(model_dir: str | os.PathLike) -> Path:
    """Create ``model_dir`` (and its parents) and check a file can be written in it, so a
    training run learns that its export target is unusable before it trains, not after.

    Raises ExportError naming the folder: a path part that is a file, no permission, a
    read-only or full disk.
    """
    model_dir = Path(model_dir)
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        probe = model_dir / f".write-test-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except FileExistsError:
        raise ExportError(f"{model_dir}: exists and is not a folder") from None
    except NotADirectoryError:
        raise ExportError(f"{model_dir}: a part of this path is a file, not a folder") from None
    except OSError as err:
        raise ExportError(f"{model_dir}: cannot write the export there ({err.strerror or err})") from None
    return model_dir


def serving_function(classifier, class_names, num_samples: int, max_windows: int | None = None):
    """The serving computation: waveform float32 [batch, samples] -> {probabilities, label}.

    classifier maps float32 [n, num_samples] to float32 [n, classes]. Each clip is cut into
    windows of num_samples (the last zero-padded), and the windows go through the classifier
    in chunks of at most max(batch, max_windows) (default WINDOW_CHUNK), so an hour-long file
    needs the memory of a chunk, not of 3600 windows at once. The windows' probabilities are
    averaged, each weighted by the samples of audio it holds.
    """
    from tfaudio.quiet import tf

    names = tf.constant(list(class_names))
    num_classes = len(class_names)
    chunk = int(max_windows or WINDOW_CHUNK)

    def serve(waveform):
        batch, samples = tf.shape(waveform)[0], tf.shape(waveform)[1]
        windows = tf.maximum((samples + num_samples - 1) // num_samples, 1)
        padded = tf.pad(waveform, [[0, 0], [0, windows * num_samples - samples]])
        framed = tf.reshape(padded, [batch, windows, num_samples])
        audio = tf.clip_by_value(samples - tf.range(windows) * num_samples, 1, num_samples)  # samples of audio per window
        weights = tf.cast(audio, tf.float32) / tf.cast(tf.reduce_sum(audio), tf.float32)
        step = tf.maximum(chunk // tf.maximum(batch, 1), 1)  # windows of each clip per classifier call

        def body(start, total):
            stop = tf.minimum(start + step, windows)
            count = stop - start
            part = tf.reshape(framed[:, start:stop], [batch * count, num_samples])
            probabilities = tf.reshape(classifier(part, training=False), [batch, count, num_classes])
            total += tf.reduce_sum(probabilities * weights[start:stop][tf.newaxis, :, tf.newaxis], axis=1)
            return stop, total

        _, mean = tf.while_loop(
            lambda start, _: start < windows, body, [tf.constant(0), tf.zeros([batch, num_classes], tf.float32)]
        )
        mean = tf.ensure_shape(mean, [None, num_classes])
        return {"probabilities": mean, "label": tf.gather(names, tf.argmax(mean, axis=1))}

    return serve


def export_savedmodel(classifier, metadata: dict, model_dir: str | os.PathLike, version: int | None = None) -> Path:
    """Write ``model_dir/<version>/`` (default: one above the highest present, 1 for a new
    folder) and return it. metadata must hold class_names, sample_rate and num_samples (see
    tfaudio.training.TrainResult.metadata); assets/tfaudio.json holds it with the format mark
    EXPORT_FORMAT and the sha256 of saved_model.pb (GRAPH_DIGEST), which `identify` checks."""
    from tfaudio.quiet import keras
    from tfaudio.quiet import tf

    def write(folder: Path) -> None:
        archive = keras.export.ExportArchive()
        archive.track(classifier)
        archive.add_endpoint(
            SIGNATURE,
            serving_function(classifier, metadata["class_names"], int(metadata["num_samples"])),
            input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")],
        )
        archive.write_out(str(folder), verbose=False)

    return write_version(model_dir, version, write, metadata, EXPORT_FORMAT)


def write_version(model_dir: str | os.PathLike, version: int | None, write, metadata: dict, export_format: str) -> Path:
    """Write ``model_dir/<version>/`` whole or not at all and return it: `write(folder)` writes a
    SavedModel into a hidden temporary folder beside it, then assets/tfaudio.json gets `metadata`
    with "format": export_format and the sha256 of saved_model.pb (GRAPH_DIGEST), and the folder
    is renamed into place. version None: one above the highest present (1 for a new folder)."""
    model_dir = Path(model_dir)
    if model_dir.exists() and not model_dir.is_dir():
        raise ExportError(f"{model_dir}: exists and is not a folder")
    if version is None:
        present = version_dirs(model_dir)  # incomplete ones count: their number is never reused
        version = int(present[-1].name) + 1 if present else 1
    target = model_dir / str(version)
    if target.exists():
        raise ExportError(f"{target}: already exists; choose another version or folder")
    ensure_writable(model_dir)
    # Hidden and not a number, so version_dirs and resolve_version never take it for a version.
    partial = model_dir / f".{version}.partial-{secrets.token_hex(4)}"
    try:
        write(partial)
        assets = partial / "assets"
        assets.mkdir(exist_ok=True)
        # What `identify` knows a tfaudio export by, before loading its graph.
        recorded = {**metadata, "format": export_format, GRAPH_DIGEST: _sha256(partial / "saved_model.pb")}
        (assets / METADATA_FILE).write_text(json.dumps(recorded, indent=2))
        if target.exists():  # another export took this number meanwhile
            raise ExportError(f"{target}: appeared during the export; export again to get the next version")
        partial.rename(target)
    except OSError as err:
        raise ExportError(f"{target}: cannot write the export ({err.strerror or err})") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # gone already when the rename succeeded
    return target


def export_tflite(version_dir: str | os.PathLike) -> Path:
    """Convert the SavedModel's serving signature to ``<version_dir>/model.tflite``.

    The STFT and string gather need TensorFlow ops beyond the TFLite builtins, so the model
    uses the Flex delegate (bundled with the tensorflow pip package's interpreter).
    """
    from tfaudio.quiet import tf

    version_dir = Path(version_dir)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(version_dir), signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    target = version_dir / TFLITE_FILE
    partial = version_dir / f".{TFLITE_FILE}.partial-{secrets.token_hex(4)}"
    try:
        partial.write_bytes(converter.convert())
        os.replace(partial, target)  # model.tflite is whole or absent
    finally:
        partial.unlink(missing_ok=True)
    return target


@dataclass
class ServedModel:
    """An exported classifier loaded back. predict(): waveform float32 [batch, samples] ->
    (probabilities float32 [batch, classes], labels list[str])."""

    path: Path
    metadata: dict
    signature: object

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def sample_rate(self) -> int:
        return int(self.metadata["sample_rate"])

    def predict(self, waveform) -> tuple[np.ndarray, list[str]]:
        from tfaudio.quiet import tf

        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim == 1:
            waveform = waveform[np.newaxis]
        out = self.signature(waveform=tf.constant(waveform))
        return out["probabilities"].numpy(), [s.decode() for s in out["label"].numpy()]


def load(path: str | os.PathLike) -> ServedModel:
    """Load ``saved_models/NAME`` (its highest version) or a version folder, once `identify`
    has found it a tfaudio export; ExportError naming the file otherwise."""
    version = resolve_version(path)
    metadata = identify(version)
    loaded, signature = load_signature(version, "export the model again (tfaudio train --out)")
    served = ServedModel(version, metadata, signature)
    served._loaded = loaded  # keeps the variables alive as long as the signature is used
    return served


def load_signature(version: Path, fix: str):
    """(the loaded SavedModel, its serving signature) of an identified export; ExportError naming
    the folder, with `fix`, when TensorFlow cannot load it. Keep the first alive while the
    signature is used: it owns the variables."""
    from tfaudio.quiet import tf

    try:
        loaded = tf.saved_model.load(str(version))
        signature = loaded.signatures[SIGNATURE]
    except Exception as err:  # noqa: BLE001 - TensorFlow raises many kinds for a damaged variables/ folder
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"{version}: the SavedModel does not load ({detail}); {fix}") from None
    return loaded, signature


def export_format(version: str | os.PathLike) -> str | None:
    """The "format" that `version`'s assets/tfaudio.json records (what kind of tfaudio export
    it is), or None when the file is missing, unreadable or has none: for choosing how to
    `identify` it, which names the problem."""
    try:
        metadata = json.loads((Path(version) / "assets" / METADATA_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return metadata.get("format") if isinstance(metadata, dict) else None


def identify(version: str | os.PathLike) -> dict:
    """The metadata of the tfaudio export in `version`, checked without loading its graph.

    tfaudio.json must be JSON holding this format's class_names, sample_rate and num_samples;
    saved_model.pb must parse as a SavedModel, match the digest tfaudio.json records for it
    (exports written before the digest was recorded have none to match), and declare the
    `serving_default` signature waveform float32 [batch, samples] -> probabilities [batch,
    classes] and label. Raises ExportError naming the file, what is wrong and the fix.
    """
    version = Path(version)
    metadata = _metadata(version / "assets" / METADATA_FILE)
    fix = "export the model again (tfaudio train --out)"
    check_digest(version, metadata, fix)
    classes = len(metadata["class_names"])
    check_signature(version / "saved_model.pb", {"waveform"}, {"probabilities", "label"}, ("probabilities",), classes,
                    f"a tfaudio export's (waveform) -> (label, probabilities of the {classes} classes "
                    f"{METADATA_FILE} names)", fix)
    return metadata


def read_metadata(path: Path, export_format: str, fix: str) -> dict:
    """tfaudio.json at `path`: a JSON object whose "format" is export_format; ExportError
    (naming the file, with `fix`) otherwise."""
    try:
        metadata = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ExportError(f"{path}: missing; not a model exported by tfaudio ({fix})") from None
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: not readable JSON ({err}); {fix}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != export_format:
        raise ExportError(f"{path}: not the metadata of a tfaudio export (no \"format\": \"{export_format}\"); {fix}")
    return metadata


def _metadata(path: Path) -> dict:
    """tfaudio.json, checked to be a tfaudio classifier's."""
    fix = "export the model again (tfaudio train --out); predict takes only folders that tfaudio exported"
    metadata = read_metadata(path, EXPORT_FORMAT, fix)
    names = metadata.get("class_names")
    if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)):
        raise ExportError(f"{path}: class_names must be a list of at least two names; {fix}")
    for key in ("sample_rate", "num_samples"):
        if not (isinstance(metadata.get(key), int) and metadata[key] > 0):
            raise ExportError(f"{path}: {key} must be a positive whole number, not {metadata.get(key)!r}; {fix}")
    return metadata


def check_digest(version: Path, metadata: dict, fix: str) -> None:
    """saved_model.pb hashes to the digest tfaudio.json records (none recorded: nothing to check)."""
    graph = version / "saved_model.pb"
    recorded = metadata.get(GRAPH_DIGEST)
    if recorded is not None and recorded != _sha256(graph):
        raise ExportError(f"{graph}: changed since it was exported (its sha256 is not the one {METADATA_FILE} "
                          f"records): damaged or replaced; {fix}")


def check_signature(graph: Path, inputs: set[str], outputs: set[str], class_outputs: tuple[str, ...], classes: int,
                    expected: str, fix: str) -> None:
    """saved_model.pb parses and its serving signature takes exactly `inputs` and gives at least
    `outputs`, the last dimension of each of `class_outputs` being `classes` (or unknown); read
    from the protocol buffer: nothing of the graph runs. `expected` describes the signature for
    the message ("a tfaudio export's (waveform) -> (...)")."""
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # first, so that the protocol buffer's import prints nothing
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(graph.read_bytes())
    except OSError as err:
        raise ExportError(f"{graph}: cannot be read ({err.strerror or err}); {fix}") from None
    except Exception as err:  # noqa: BLE001 - protobuf's DecodeError and kin: a damaged file
        raise ExportError(f"{graph}: not a SavedModel (it does not parse: {err}); damaged or truncated; "
                          f"{fix}") from None
    signatures = [g.signature_def[SIGNATURE] for g in proto.meta_graphs if "serve" in g.meta_info_def.tags
                  and SIGNATURE in g.signature_def]
    if not signatures:
        raise ExportError(f"{graph}: has no '{SIGNATURE}' signature for serving, so it is not a tfaudio export; {fix}")
    given, gives = signatures[0].inputs, signatures[0].outputs

    def width(name):
        return [d.size for d in gives[name].tensor_shape.dim][-1:] if name in gives else []

    if (set(given) != set(inputs) or not set(outputs) <= set(gives)
            or any(width(name) not in ([classes], [-1]) for name in class_outputs)):
        shown = f"({', '.join(sorted(given))}) -> ({', '.join(sorted(gives))})"
        raise ExportError(f"{graph}: its '{SIGNATURE}' signature is {shown}, not {expected}; {fix}")


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise ExportError(f"{path}: cannot be read ({err.strerror or err})") from None
