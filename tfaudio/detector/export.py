"""A detector as one waveform-in SavedModel (+ optional TFLite), and loading such an export back.

``DET/saved_model/<version>/`` holds, in the layout of tfaudio.training.export (TF Serving's
version folders, written whole under a hidden name then renamed, assets/tfaudio.json with the
sha256 of saved_model.pb), one graph that runs everything a detector's scores depend on:

    waveform float32 [batch, samples] at the source model's rate (16 kHz for YAMNet)
      -> the representation's frames (`Representation.frame_graph`: for YAMNet the function
         behind `frames`, patches through the network in bounded groups)
      -> windows as the index made them (`tfaudio.search.windows.file_windows`: the mean of
         `frames_per_window` consecutive frames, a last window of fewer kept, L2-normalised,
         a zero window stays zero)
      -> the heads (`Heads.tf_scores`, their input standardisation inside: BirdNET-Analyzer #823)
      -> Platt scaling (sigmoid(a * score + b)) -> decisions at the detector's thresholds.

Signature ``serving_default`` (what `saved_model_cli show` lists), C = the detector's labels:
    waveform: float32 [batch, samples]; every clip of a batch is taken as `samples` long (pad
        shorter clips with zeros, or send one clip per call, as `tfaudio predict` does)
    scores: float32 [batch, windows, C]        raw head scores (logits)
    probabilities: float32 [batch, windows, C] calibrated
    decisions: bool [batch, windows, C]        probabilities >= thresholds
    starts: float32 [windows]                  seconds; window i starts at i * hop
    ends: float32 [windows]                    seconds; where the audio of its last frame ends,
                                               cut at the clip's end (samples / sample_rate)
    clip_probabilities: float32 [batch, C]     the maximum over the clip's windows

The graph runs in float32. A detector trained on an index built in bfloat16 is exported in
float32 all the same (tfaudio.json records both precisions): its scores then differ from those
of the stored bfloat16 vectors by the bfloat16 error of the embeddings, not by 1e-5.

An export is identified before its graph loads (`identify_detector`: tfaudio.json with format
"tfaudio-detector", the digest of saved_model.pb, the signature above, read from the protocol
buffer); like any SavedModel it is a program, so load only exports from people you trust.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio.detector.model import HEADER as DETECTOR_FILE
from tfaudio.detector.model import EXPORTS, DetectorError
from tfaudio.training import export as base
from tfaudio.training.export import ExportError

#: tfaudio.json's "format" for a detector export.
EXPORT_FORMAT = "tfaudio-detector"
#: Where a saved detector keeps its export (DET/saved_model/<version>/).
SAVED_MODEL = EXPORTS
OUTPUTS = ("scores", "probabilities", "decisions", "starts", "ends", "clip_probabilities")
#: Outputs whose last dimension is the detector's labels.
LABEL_OUTPUTS = ("scores", "probabilities", "decisions", "clip_probabilities")
FIX = "export the detector again (tfaudio detector train --out DET, or tfaudio.detector.export_detector)"


def export_detector(detector, out: str | os.PathLike | None = None, *, version: int | None = None,
                    tflite: bool = False) -> Path:
    """Write `detector` as one waveform-in SavedModel to ``out/<version>/`` and return that folder.

    out: default ``detector.path / "saved_model"`` (the detector must then be saved). version:
    default one above the highest present. tflite: also write ``<version>/model.tflite``; a
    YAMNet detector's converts to TFLite builtins only (any TFLite runtime runs it), the
    hand-crafted front end needs the Flex delegate (select TensorFlow ops) besides.
    The representation is the registry's model the detector's index was built with, checked by
    its embedding key (other weights: DetectorError); one whose frames are not one TensorFlow
    graph (Wav2Vec2, TF-Hub models, ...) raises DetectorError.
    """
    from tfaudio.quiet import keras, tf

    if out is None:
        if getattr(detector, "path", None) is None:
            raise DetectorError("the detector has not been saved, so it has no folder for its export: save it "
                                "first (detector.save(DET)) or give out=")
        out = Path(detector.path) / SAVED_MODEL
    source = detector.source
    representation = _representation(source, detector)
    graph = representation.frame_graph()
    if graph is None:
        raise DetectorError(f"{source['model']} cannot be exported as one graph (its frames are not TensorFlow "
                            "operations); export a detector trained on a yamnet or handcrafted index, or run "
                            "tfaudio detect instead")
    rate = int(source.get("sample_rate") or representation.sample_rate)
    serve = detector_function(graph.frames, detector, rate)

    def write(folder: Path) -> None:
        archive = keras.export.ExportArchive()
        if graph.trackable is not None:
            archive.track(graph.trackable)
        archive.add_endpoint(base.SIGNATURE, serve,
                             input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
        archive.write_out(str(folder), verbose=False)

    target = base.write_version(out, version, write, export_metadata(detector, rate), EXPORT_FORMAT)
    if tflite:
        base.export_tflite(target)
    return target


def export_metadata(detector, sample_rate: int) -> dict:
    """What assets/tfaudio.json records of a detector exported at `sample_rate` Hz (JSON-ready;
    NaN thresholds as null)."""
    spec = detector.window_spec()
    source = dict(detector.source)
    config = getattr(detector, "config", None)
    return {
        "labels": list(detector.labels),
        "thresholds": [_number(t) for t in np.asarray(detector.thresholds, np.float64)],
        "platt_a": [float(a) for a in np.asarray(detector.platt_a, np.float64)],
        "platt_b": [float(b) for b in np.asarray(detector.platt_b, np.float64)],
        "classifier": getattr(detector.heads, "kind", None),
        "sample_rate": int(sample_rate),
        "window": {"frame_hop": spec.frame_hop, "frame_span": spec.frame_span, "frames": spec.frames,
                   "hop": spec.hop, "length": spec.length},
        "source": {key: source.get(key) for key in ("model", "precision", "key", "dim", "index")},
        "graph_precision": "float32",
        "config": _config(config),
        "outputs": list(OUTPUTS),
    }


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _config(config) -> dict | None:
    import dataclasses

    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None


def _representation(source: dict, detector):
    """The float32 registry model of the detector's index, refused when its embedding key (model,
    weights, precision, decoding) is not the one the index recorded."""
    from tfaudio.models.precision import with_precision
    from tfaudio.models.registry import get
    from tfaudio.pipeline.local import EmbedConfig, embedding_identity
    from tfaudio.store import FRAMES

    model = get(source["model"])  # ModelUnavailable (where its weights were looked for) when not here
    _, _, key = embedding_identity(with_precision(model, source["precision"], warn=False), EmbedConfig(pooling=FRAMES))
    if key != source.get("key"):
        where = getattr(detector, "path", None) or source.get("index") or "the detector"
        raise DetectorError(f"{where}: trained on {source['model']} embeddings of other weights or settings than the "
                            f"{source['model']} here now, so an export would not give its scores; export where its "
                            "index was built, or rebuild the index and train again")
    return model  # float32: the export always runs in float32 (the module docstring)


def detector_function(frames, detector, sample_rate: int):
    """The serving computation, waveform float32 [batch, samples] at `sample_rate` -> the outputs
    of the module docstring; `frames` is `FrameGraph.frames` of the detector's representation."""
    from tfaudio.quiet import tf

    spec = detector.window_spec()
    k = int(spec.frames)
    dim = int(detector.source["dim"])
    rate = float(sample_rate)
    labels = len(detector.labels)
    a = tf.constant(np.asarray(detector.platt_a, np.float32).reshape(labels))
    b = tf.constant(np.asarray(detector.platt_b, np.float32).reshape(labels))
    thresholds = tf.constant(np.asarray(detector.thresholds, np.float32).reshape(labels))
    heads = detector.heads

    def serve(waveform):
        batch, samples = tf.shape(waveform)[0], tf.shape(waveform)[1]
        embeddings, mask = frames(waveform, tf.fill([batch], samples))
        # Every clip has the same length, so the same frames; keep those the mask gives (the
        # frames `frames` gives the pipeline), at least 0 for an empty batch.
        count = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)), 0)
        vectors, starts, ends = window_vectors(tf.slice(embeddings, [0, 0, 0], [-1, count, -1]), k, dim, spec,
                                               tf.cast(samples, tf.float32) / rate)
        windows = tf.shape(vectors)[1]
        scores = tf.reshape(heads.tf_scores(tf.reshape(vectors, [-1, dim])), [batch, windows, labels])
        scores = tf.cast(scores, tf.float32)
        probabilities = tf.sigmoid(a * scores + b)
        # Floor 0 so a clip too short for a window gives 0, not the float minimum.
        clip = tf.reduce_max(tf.concat([tf.zeros([batch, 1, labels]), probabilities], axis=1), axis=1)
        return {"scores": scores, "probabilities": probabilities, "decisions": probabilities >= thresholds,
                "starts": starts, "ends": ends, "clip_probabilities": clip}

    return serve


def window_vectors(frames, k: int, dim: int, spec, duration):
    """tfaudio.search.windows.file_windows in TF ops, for a batch of equally long clips.

    frames: float32 [batch, n, dim]; duration: float32 scalar seconds. Returns (vectors float32
    [batch, m, dim] unit L2 norm (zero stays zero), starts float32 [m], ends float32 [m]),
    m = ceil(n / k) less any window starting at or after the clip's end, the last window the
    mean of the frames left.
    """
    from tfaudio.quiet import tf

    batch, n = tf.shape(frames)[0], tf.shape(frames)[1]
    m = (n + k - 1) // k
    padded = tf.pad(frames, [[0, 0], [0, m * k - n], [0, 0]])
    sums = tf.reduce_sum(tf.reshape(padded, [batch, m, k, dim]), axis=2)
    firsts = tf.range(m) * k
    counts = tf.minimum(n - firsts, k)
    means = sums / tf.cast(counts, tf.float32)[tf.newaxis, :, tf.newaxis]
    vectors = tf.math.divide_no_nan(means, tf.norm(means, axis=-1, keepdims=True))
    starts = tf.cast(tf.range(m), tf.float32) * float(spec.hop)
    last = tf.cast(firsts + counts - 1, tf.float32)
    ends = tf.maximum(tf.minimum(last * float(spec.frame_hop) + float(spec.frame_span), duration), starts)
    # As search.windows.kept_windows: no window starting at or after the end of the clip.
    kept = tf.minimum(m, tf.maximum(1, tf.cast(tf.math.ceil(duration / float(spec.hop) - 1e-3), tf.int32)))
    return vectors[:, :kept], starts[:kept], ends[:kept]


# -- loading an export back ----------------------------------------------------------------------


def resolve_export(path: str | os.PathLike) -> Path:
    """The version folder of a detector export given as a saved detector's folder (DET: its
    saved_model/), the export folder (its highest complete version) or a version folder."""
    path = Path(path)
    if (path / DETECTOR_FILE).is_file() and not (path / "saved_model.pb").is_file():
        if not (path / SAVED_MODEL).is_dir():
            raise ExportError(f"{path}: a saved detector with no export in it (no {SAVED_MODEL}/); {FIX}")
        path = path / SAVED_MODEL
    return base.resolve_version(path)


def is_detector_export(path: str | os.PathLike) -> bool:
    """Whether `path` (as `resolve_export` takes it) names a detector export, read from its
    tfaudio.json only (nothing checked or loaded: `identify_detector` does that)."""
    path = Path(path)
    if (path / DETECTOR_FILE).is_file():
        return True
    try:
        with warnings.catch_warnings():  # loading warns of passed-over versions; once is enough
            warnings.simplefilter("ignore", base.ExportWarning)
            version = base.resolve_version(path)
    except ExportError:
        return False
    return base.export_format(version) == EXPORT_FORMAT


def identify_detector(version: str | os.PathLike) -> dict:
    """The metadata of the detector export in `version`, checked without loading its graph:
    tfaudio.json is a detector's ("format": "tfaudio-detector", labels, thresholds, sample_rate),
    saved_model.pb hashes to the digest it records and declares the signature of the module
    docstring. ExportError naming the file, what is wrong and the fix, otherwise."""
    version = Path(version)
    path = version / "assets" / base.METADATA_FILE
    metadata = base.read_metadata(path, EXPORT_FORMAT, FIX)
    labels = metadata.get("labels")
    if not (isinstance(labels, list) and labels and all(isinstance(n, str) for n in labels)):
        raise ExportError(f"{path}: labels must be a list of one or more names; {FIX}")
    thresholds = metadata.get("thresholds")
    if not (isinstance(thresholds, list) and len(thresholds) == len(labels)):
        raise ExportError(f"{path}: thresholds must be a list of one per label ({len(labels)}); {FIX}")
    rate = metadata.get("sample_rate")
    if not (isinstance(rate, int) and rate > 0):
        raise ExportError(f"{path}: sample_rate must be a positive whole number, not {rate!r}; {FIX}")
    base.check_digest(version, metadata, FIX)
    base.check_signature(version / "saved_model.pb", {"waveform"}, set(OUTPUTS), LABEL_OUTPUTS, len(labels),
                         f"a tfaudio detector export's (waveform) -> ({', '.join(sorted(OUTPUTS))}) for the "
                         f"{len(labels)} labels {base.METADATA_FILE} names", FIX)
    return metadata


@dataclass
class ServedDetector:
    """A detector export loaded back. predict(): waveform float32 [samples] or [batch, samples]
    at `sample_rate` -> dict of numpy arrays named and shaped as the module docstring says."""

    path: Path
    metadata: dict
    signature: object

    @property
    def labels(self) -> list[str]:
        return list(self.metadata["labels"])

    @property
    def sample_rate(self) -> int:
        return int(self.metadata["sample_rate"])

    @property
    def thresholds(self) -> np.ndarray:
        """float32 [C]; NaN where the detector has none (its decisions are then all False)."""
        return np.array([np.nan if t is None else t for t in self.metadata["thresholds"]], np.float32)

    def predict(self, waveform) -> dict[str, np.ndarray]:
        from tfaudio.quiet import tf

        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim == 1:
            waveform = waveform[np.newaxis]
        if waveform.ndim != 2:
            raise ValueError(f"waveform must be float32 [samples] or [batch, samples], got shape {waveform.shape}")
        out = self.signature(waveform=tf.constant(waveform))
        return {name: out[name].numpy() for name in OUTPUTS}


def load_detector_export(path: str | os.PathLike) -> ServedDetector:
    """Load a detector export (a saved detector's folder, its saved_model/ folder or a version
    folder) once `identify_detector` has found it one; ExportError naming the file otherwise."""
    version = resolve_export(path)
    metadata = identify_detector(version)
    loaded, signature = base.load_signature(version, FIX)
    served = ServedDetector(version, metadata, signature)
    served._loaded = loaded  # keeps the variables alive as long as the signature is used
    return served
