"""A detector as one waveform-in SavedModel (issue 19): run on raw audio in a fresh process it
gives the scores and probabilities the detector gives the index's stored vectors of the same
windows (to 1e-5); saved_model_cli lists its signature; a tampered export is refused before its
graph loads; TFLite gives the same probabilities; `tfaudio predict` serves it.

YAMNet with random (He-scaled) weights written as a yamnet.h5 the registry finds, so nothing
here needs ../shared; the index and labels are built from generated tones and noise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

SR = 16000
TOLERANCE = 1e-5
#: Index windows of two YAMNet frames (0.96 s), so the export's window pooling is exercised.
HOP = 0.96


def _tone(seconds: float, freq: float, rng) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def _noise(seconds: float, rng) -> np.ndarray:
    return (0.2 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def _write_data(root: Path) -> Path:
    """Tones (two recordings of each of 440 and 660 Hz), noises, and mixed.wav: 2 s noise, 2 s
    of 440 Hz, 1.3 s noise (5.3 s: 11 frames, so its last
    index window holds one)."""
    rng = np.random.default_rng(0)
    clips = {"tone/a.wav": _tone(3.0, 440, rng), "tone/b.wav": _tone(2.5, 660, rng),
             "tone/c.wav": _tone(2.0, 440, rng), "tone/d.wav": _tone(3.0, 660, rng),
             "noise/a.wav": _noise(3.0, rng), "noise/b.wav": _noise(2.5, rng), "noise/c.wav": _noise(2.0, rng),
             "noise/d.wav": _noise(3.0, rng),
             "mixed.wav": np.concatenate([_noise(2.0, rng), _tone(2.0, 440, rng), _noise(1.3, rng)])}
    for name, samples in clips.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, samples, SR)
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(detector, SearchIndex, data folder, DET folder, version folder, environment): a linear
    detector of "tone" and "noise" trained on a random-weight YAMNet index, saved to DET and
    exported to DET/saved_model/1 with model.tflite, its network run on pieces of 4 patches."""
    import keras
    from helpers import randomize, write_legacy_h5

    from tfaudio.detector import DetectorConfig, train_detector
    from tfaudio.detector.export import export_detector
    from tfaudio.labels import LabelStore
    from tfaudio.models.yamnet import model as Y
    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search.build import IndexConfig, build_index
    from tfaudio.search.index import SearchIndex

    root = tmp_path_factory.mktemp("detector-export")
    keras.utils.set_random_seed(7)
    yamnet = Y.Yamnet()
    randomize(yamnet.network, seed=7)
    (root / "models" / "yamnet").mkdir(parents=True)
    write_legacy_h5(yamnet.network, root / "models" / "yamnet" / "yamnet.h5")
    environment = {"TFAUDIO_HOME": str(root / "home"), "TFAUDIO_MODELS": str(root / "models"), "TFAUDIO_OFFLINE": "1"}
    mp = pytest.MonkeyPatch()
    for name, value in environment.items():
        mp.setenv(name, value)
    try:
        data = _write_data(root / "data")
        build_index(data, root / "index", IndexConfig(model="yamnet", hop=HOP), RunSettings(store=str(root / "store")))
        index = SearchIndex.open(root / "index")
        store = LabelStore(root / "labels.db", create=True)
        for path in sorted((data / "tone").glob("*.wav")) + sorted((data / "noise").glob("*.wav")):
            is_tone = path.parent.name == "tone"
            seconds = sf.info(path).duration
            store.add(path, 0.0, seconds, "tone", "positive" if is_tone else "negative")
            store.add(path, 0.0, seconds, "noise", "negative" if is_tone else "positive")
        detector = train_detector(index, store, config=DetectorConfig(folds=2, resamples=50, weak_negatives=20))
        detector.save(root / "DET")
        # 4 patches per piece: mixed.wav's 11 go through the exported network in 3 pieces
        mp.setattr(Y, "MAX_PATCHES_PER_CALL", 4)
        version = export_detector(detector, tflite=True)
    finally:
        mp.undo()
    return detector, index, data, root / "DET", version, environment


def _stored(index, data: Path, name: str):
    """The index's windows of data/name: (vectors float32 [m, 1024], starts, ends)."""
    windows = index.windows
    rows = windows[[Path(f).resolve() == (data / name).resolve() for f in windows["file"]]].sort_values("start")
    return index.vectors(rows.index.to_numpy()), rows["start"].to_numpy(), rows["end"].to_numpy()


def test_a_fresh_process_on_raw_audio_gives_the_detectors_scores_on_the_stored_vectors(exported):
    """The acceptance criterion: `tfaudio predict DET FILE --json` (the console script, a fresh
    process decoding the file itself) gives, window for window, the raw scores and calibrated
    probabilities that the detector gives the index's stored vectors of that file, to 1e-5."""
    detector, index, data, det, _, environment = exported
    script = Path(sys.executable).parent / "tfaudio"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "tfaudio.cli"]
    env = {**os.environ, **environment, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([*command, "predict", str(det), str(data / "mixed.wav"), "--json"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    row = json.loads(run.stdout.strip().splitlines()[-1])
    vectors, starts, ends = _stored(index, data, "mixed.wav")
    assert len(vectors) == 6 and row["labels"] == list(detector.labels)
    assert np.max(np.abs(np.array(row["scores"]) - detector.scores(vectors))) <= TOLERANCE
    probabilities = detector.probabilities(vectors)
    assert np.max(np.abs(np.array(row["probabilities"]) - probabilities)) <= TOLERANCE
    assert np.allclose(row["starts"], starts, atol=1e-5) and np.allclose(row["ends"], ends, atol=1e-5)
    near = np.abs(probabilities - detector.thresholds) <= TOLERANCE  # a decision at the threshold may flip
    assert ((np.array(row["decisions"]) == detector.decisions(probabilities)) | near).all()
    assert np.allclose(list(row["clip_probabilities"].values()), probabilities.max(axis=0), atol=TOLERANCE)


def test_a_batch_of_clips_and_the_metadata(exported):
    """A batch gives each clip what it gives alone; tfaudio.json records what the graph is."""
    from tfaudio.detector.export import load_detector_export

    detector, index, data, det, version, _ = exported
    served = load_detector_export(det / "saved_model")
    assert served.path == version and served.labels == list(detector.labels) and served.sample_rate == SR
    for name in ("tone/a.wav", "noise/a.wav"):
        vectors, starts, _ = _stored(index, data, name)
        wave, _ = sf.read(data / name, dtype="float32")
        out = served.predict(np.stack([wave, wave]))
        assert out["probabilities"].shape == (2, len(starts), 2) and out["decisions"].dtype == bool
        assert np.max(np.abs(out["probabilities"] - detector.probabilities(vectors))) <= TOLERANCE
    meta = json.loads((version / "assets" / "tfaudio.json").read_text())
    assert meta["format"] == "tfaudio-detector" and meta["labels"] == ["noise", "tone"]
    assert meta["window"]["frames"] == 2 and meta["source"]["key"] == index.header["key"]
    assert meta["source"]["precision"] == "float32" and meta["graph_precision"] == "float32"
    assert len(meta["saved_model_sha256"]) == 64


def test_saved_model_cli_lists_the_signature(exported, capsys):
    """What `saved_model_cli show --dir V --tag_set serve --signature_def serving_default` prints,
    by the tool's own function in this process (a subprocess would import TensorFlow again: ~10 s
    on the loaded test machines)."""
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    cli = pytest.importorskip("tensorflow.python.tools.saved_model_cli", reason="saved_model_cli is not installed")

    *_, version, _ = exported
    capsys.readouterr()
    cli._show_inputs_outputs(str(version), "serve", "serving_default")
    shown = capsys.readouterr().out
    assert "inputs['waveform']" in shown and "shape: (-1, -1)" in shown
    for output in ("scores", "probabilities", "decisions", "starts", "ends", "clip_probabilities"):
        assert f"outputs['{output}']" in shown, shown
    assert "shape: (-1, -1, 2)" in shown and "DT_BOOL" in shown


def test_tampered_or_foreign_exports_are_refused_in_one_line_before_loading(exported, tmp_path, monkeypatch):
    from tfaudio.detector.export import load_detector_export
    from tfaudio.quiet import tf
    from tfaudio.training.export import ExportError

    *_, version, _ = exported

    def never(*args, **kwargs):
        raise AssertionError("the graph was loaded")

    monkeypatch.setattr(tf.saved_model, "load", never)
    tampered = Path(shutil.copytree(version, tmp_path / "tampered"))
    graph = tampered / "saved_model.pb"
    graph.write_bytes(graph.read_bytes().replace(b"clip_probabilities", b"clip_probabilitieZ"))
    foreign = Path(shutil.copytree(version, tmp_path / "foreign"))
    meta = json.loads((foreign / "assets" / "tfaudio.json").read_text())
    (foreign / "assets" / "tfaudio.json").write_text(json.dumps({**meta, "format": "tfaudio-classifier"}))
    cases = {tampered: f"{graph}: changed since it was exported",
             foreign: f"{foreign / 'assets' / 'tfaudio.json'}: not the metadata of a tfaudio export "
                      "(no \"format\": \"tfaudio-detector\")"}
    for folder, message in cases.items():
        with pytest.raises(ExportError) as caught:
            load_detector_export(folder)
        text = str(caught.value)
        assert text.startswith(message) and "\n" not in text and "export the detector again" in text, text


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tflite_gives_the_same_probabilities(exported):
    """The graph converts to TFLite builtins only (no Flex delegate, which tf.lite's interpreter
    lacks): YAMNet's patches run in a while loop, not map_fn's tensor lists."""
    from tfaudio.detector.export import load_detector_export
    from tfaudio.quiet import tf

    _, _, data, det, version, _ = exported
    runner = tf.lite.Interpreter(model_path=str(version / "model.tflite")).get_signature_runner("serving_default")
    wave = sf.read(data / "mixed.wav", dtype="float32")[0][np.newaxis]
    lite = runner(waveform=wave)
    served = load_detector_export(det).predict(wave)
    assert np.max(np.abs(lite["probabilities"] - served["probabilities"])) <= 1e-4
    assert np.array_equal(lite["starts"], served["starts"])


def test_predict_prints_the_detections_and_takes_each_form_of_the_folder(exported, tmp_path):
    from tfaudio.cli.main import main
    from tfaudio.detector.export import resolve_export

    detector, _, data, det, version, environment = exported
    assert resolve_export(det) == resolve_export(det / "saved_model") == resolve_export(version) == version
    result = CliRunner().invoke(main, ["predict", str(version), str(data / "mixed.wav"), str(data / "noise/a.wav")],
                                env=environment)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{data / 'mixed.wav'}  highest: noise ") and " tone " in lines[0]
    detected = [line.split() for line in lines[1:] if line.startswith("  ") and not line.startswith("  nothing")]
    assert detected and all(d[0] in detector.labels and d[2] == "s" and float(d[3]) >= 0 for d in detected)
    assert any(line.startswith(f"{data / 'noise/a.wav'}  highest:") for line in lines)

    empty = tmp_path / "DET"
    empty.mkdir()
    (empty / "detector.json").write_text("{}")
    refused = CliRunner().invoke(main, ["predict", str(empty), str(data / "mixed.wav")])
    assert refused.exit_code == 1 and "a saved detector with no export in it" in refused.output


def test_export_refuses_an_unsaved_detector_and_other_weights(exported, tmp_path, monkeypatch):
    import dataclasses

    from tfaudio.detector import DetectorError
    from tfaudio.detector.export import export_detector

    detector, *_, environment = exported
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DetectorError, match="has not been saved"):
        export_detector(dataclasses.replace(detector, path=None))
    other = dataclasses.replace(detector, source={**detector.source, "key": "another"})
    with pytest.raises(DetectorError, match="other weights or settings"):
        export_detector(other, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("frames_per_window", [1, 3])
def test_window_pooling_in_the_graph_is_the_index_builds(frames_per_window):
    """window_vectors (TF) against tfaudio.search.windows.file_windows (numpy): a partial last
    window, a window of zero frames that stays zero, ends cut at the file's end."""
    from tfaudio.detector.export import window_vectors
    from tfaudio.quiet import tf
    from tfaudio.search.windows import WindowSpec, file_windows

    spec = WindowSpec(frame_hop=0.48, frame_span=0.96, frames=frames_per_window)
    frames = np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)
    frames[:frames_per_window] = 0
    duration = 3.5
    vectors, starts, ends = window_vectors(tf.constant(frames[np.newaxis]), frames_per_window, 5, spec,
                                           tf.constant(duration))
    expected = file_windows(frames, spec, duration)
    assert np.max(np.abs(vectors.numpy()[0] - expected[0])) <= 1e-6 and not vectors.numpy()[0, 0].any()
    assert np.allclose(starts.numpy(), expected[1]) and np.allclose(ends.numpy(), expected[2])
