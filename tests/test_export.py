"""The exported SavedModel: TF Serving layout and signature, reloaded in a fresh process and
through saved_model_cli equal to the in-memory model, short and long clips, TFLite, predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tfaudio.training.config import TrainConfig

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def exported(tmp_path_factory, synth_data):
    """small_cnn trained briefly on the generated data, exported with its TFLite twin."""
    from tfaudio.training import train

    mp = pytest.MonkeyPatch()
    mp.setenv("TFAUDIO_HOME", str(tmp_path_factory.mktemp("home")))
    # 8 windows per classifier call: the 30 s clip below goes through the network in 4 chunks
    mp.setattr("tfaudio.training.export.WINDOW_CHUNK", 8)
    out = tmp_path_factory.mktemp("saved_models") / "synth"
    try:
        result = train(
            synth_data, TrainConfig(backbone="small_cnn", epochs=3, fine_tune_epochs=0, batch_size=16), out=out, tflite=True,
            progress=False,
        )
    finally:
        mp.undo()
    return result, out


def _clips() -> dict[str, np.ndarray]:
    """0.1 s, exactly the training length, 2.3 s and 30 s of the same chirp-like signal."""
    rng = np.random.default_rng(7)
    full = (0.3 * np.sin(2 * np.pi * np.cumsum(np.linspace(300, 3000, 30 * 16000)) / 16000)
            + 0.01 * rng.standard_normal(30 * 16000)).astype(np.float32)
    return {"short": full[:1600], "one": full[:16000], "mid": full[:36800], "long": full}


def _expected(result, wave: np.ndarray) -> np.ndarray:
    """What the in-memory classifier gives: windows of the training length, zero-padded,
    probabilities averaged weighted by the audio in each window."""
    n = result.num_samples
    windows = max(1, -(-len(wave) // n))
    padded = np.zeros(windows * n, np.float32)
    padded[: len(wave)] = wave
    probabilities = np.asarray(result.classifier(padded.reshape(windows, n), training=False))
    audio = np.clip(len(wave) - np.arange(windows) * n, 1, n).astype(np.float64)
    return (probabilities * (audio / audio.sum())[:, None]).sum(axis=0)


def test_layout_signature_and_metadata(exported):
    result, out = exported
    version = out / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    meta = json.loads((version / "assets" / "tfaudio.json").read_text())
    assert meta["class_names"] == ["chirp", "clicks", "noise", "tone"]
    assert meta["sample_rate"] == 16000 and meta["num_samples"] == 16000
    assert meta["frontend"]["kind"] == "log_mel" and meta["frontend"]["num_mel_bins"] == 64
    assert meta["frontend"]["stft"]["hop_length"] == 160
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "saved_model_cli"), "show", "--dir", str(version), "--tag_set", "serve",
         "--signature_def", "serving_default"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "inputs['waveform']" in shown and "DT_FLOAT" in shown and "shape: (-1, -1)" in shown
    assert "outputs['probabilities']" in shown and "shape: (-1, 4)" in shown
    assert "outputs['label']" in shown and "DT_STRING" in shown


def test_short_and_long_clips_match_the_in_memory_model(exported):
    from tfaudio.training.export import load

    result, out = exported
    served = load(out)
    for name, wave in _clips().items():
        probabilities, labels = served.predict(wave)
        expected = _expected(result, wave)
        assert probabilities.shape == (1, 4), name
        assert np.max(np.abs(probabilities[0] - expected)) <= TOLERANCE, name
        assert labels[0] == result.class_names[int(expected.argmax())]
        assert abs(probabilities.sum() - 1) < 1e-5


def test_fresh_process_and_saved_model_cli_equal_in_memory(exported, tmp_path):
    result, out = exported
    clips = _clips()
    batch = np.stack([clips["long"][16000 * k: 16000 * k + 24000] for k in range(3)])  # [3, 1.5 s]
    np.save(tmp_path / "batch.npy", batch)
    expected = np.stack([_expected(result, row) for row in batch])

    script = (
        "import json, sys, numpy as np\n"
        "from tfaudio.training.export import load\n"
        "p, labels = load(sys.argv[1]).predict(np.load(sys.argv[2]))\n"
        "print(json.dumps({'p': p.tolist(), 'labels': labels}))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", script, str(out), str(tmp_path / "batch.npy")],
                         capture_output=True, text=True, check=True, env=env)
    fresh = json.loads(run.stdout.strip().splitlines()[-1])
    assert np.max(np.abs(np.array(fresh["p"]) - expected)) <= TOLERANCE
    assert fresh["labels"] == [result.class_names[i] for i in expected.argmax(axis=1)]

    subprocess.run(
        [str(Path(sys.executable).parent / "saved_model_cli"), "run", "--dir", str(out / "1"), "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs", f"waveform={tmp_path / 'batch.npy'}", "--outdir", str(tmp_path / "cli")],
        capture_output=True, text=True, check=True, env=env,
    )
    cli = np.load(tmp_path / "cli" / "probabilities.npy")
    assert np.max(np.abs(cli - expected)) <= TOLERANCE
    labels = np.load(tmp_path / "cli" / "label.npy", allow_pickle=True)
    assert [s.decode() for s in labels] == fresh["labels"]


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tflite_agrees_with_the_savedmodel(exported):
    import tensorflow as tf

    from tfaudio.training.export import load

    _, out = exported
    path = out / "1" / "model.tflite"
    assert path.is_file()
    runner = tf.lite.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    served = load(out)
    for name in ("short", "mid"):
        wave = _clips()[name][np.newaxis]
        lite = runner(waveform=wave)
        probabilities, labels = served.predict(wave)
        assert np.max(np.abs(lite["probabilities"] - probabilities)) <= 1e-5, name
        assert [s.decode() if isinstance(s, bytes) else s for s in lite["label"]] == labels


def test_predict_command(exported, tmp_path):
    from tfaudio.cli.main import main

    _, out = exported
    clips = _clips()
    sf.write(tmp_path / "short.wav", clips["short"], 16000)
    sf.write(tmp_path / "long.flac", clips["long"], 16000)
    result = CliRunner().invoke(main, ["predict", str(out), str(tmp_path / "short.wav"), str(tmp_path / "long.flac"), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [Path(r["file"]).name for r in rows] == ["short.wav", "long.flac"]
    for row in rows:
        assert set(row["probabilities"]) == {"chirp", "clicks", "noise", "tone"}
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)

    sf.write(tmp_path / "blip.wav", clips["short"][:800], 16000)
    too_short = CliRunner().invoke(main, ["predict", str(out), str(tmp_path / "blip.wav")])
    assert too_short.exit_code == 1 and "blip.wav: 0.050 s long; the model needs at least 0.1 s" in too_short.output
    missing = CliRunner().invoke(main, ["predict", str(tmp_path / "nothing"), str(tmp_path / "short.wav")])
    assert missing.exit_code == 1 and "not an exported model" in missing.output and "Traceback" not in missing.output


def test_second_export_is_the_next_version(exported):
    from tfaudio.training.export import export_savedmodel, resolve_version

    result, out = exported
    second = export_savedmodel(result.classifier, result.metadata(), out)
    assert second == out / "2" and resolve_version(out) == second


def test_long_clips_go_through_the_classifier_in_bounded_chunks():
    """An hour of audio must not become one call over every window: at most max(batch,
    max_windows) windows per call, and the same weighted average as one big call."""
    import tensorflow as tf

    from tfaudio.training.export import serving_function

    n = 100
    recorded = []

    def probabilities(x: np.ndarray) -> np.ndarray:  # a stand-in classifier: [windows, n] -> [windows, 3]
        logits = 10.0 * np.stack([x.mean(axis=1), x.max(axis=1), x.min(axis=1)], axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def recording(x: np.ndarray) -> np.ndarray:
        recorded.append(len(x))
        return probabilities(x)

    def classifier(x, training=False):
        return tf.reshape(tf.numpy_function(recording, [x], tf.float32), [-1, 3])

    serve = tf.function(serving_function(classifier, ["a", "b", "c"], n, max_windows=4),
                        input_signature=[tf.TensorSpec([None, None], tf.float32)])
    rng = np.random.default_rng(0)
    for batch, length in ((1, 2550), (3, 1730), (1, 60), (5, 100)):
        waves = rng.standard_normal((batch, length)).astype(np.float32)
        recorded.clear()
        out = serve(tf.constant(waves))
        windows = max(1, -(-length // n))
        assert max(recorded) <= max(batch, 4) and sum(recorded) == batch * windows, (batch, length, recorded)
        # reference: every window at once, weighted by its audio
        padded = np.zeros((batch, windows * n), np.float32)
        padded[:, :length] = waves
        p = probabilities(padded.reshape(batch * windows, n)).reshape(batch, windows, 3)
        audio = np.clip(length - np.arange(windows) * n, 1, n).astype(np.float64)
        expected = (p * (audio / audio.sum())[None, :, None]).sum(axis=1)
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-6)
