"""Every script in scripts/ (the course module's demos over the public API) run as a user runs
it: `python scripts/NAME.py` in its own process, offline, on generated data, and with the real
weights and recordings of ../shared where present (skipped otherwise). Each run is checked like
a command (helpers.Finished.check: exit status, no traceback, a prompt exit) and by its outputs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, SHARED, shared_path
from helpers import Finished, run_process

SCRIPTS = REPO / "scripts"
#: The scripts these tests run; a new script needs its test (test_every_script_is_run).
COVERED = ("deep_feature_comparison.py", "finetune_commands_vs_noise.py", "wav2vec2_projection.py")


def script(name: str, *args, env: dict, cwd: Path, **options) -> Finished:
    return run_process([sys.executable, str(SCRIPTS / name), *(os.fsdecode(a) for a in args)],
                       env=env, cwd=cwd, **options)


@pytest.fixture
def env(tmp_path) -> dict:
    """Offline, a fresh TFAUDIO_HOME and Hugging Face cache, no weights or data of ours."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TFAUDIO_MODELS", "TFAUDIO_DATA", "KERAS_HOME", "TFAUDIO_SHARED")}
    environment.update(TFAUDIO_HOME=str(tmp_path / "home"), TFAUDIO_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
                       HF_HUB_OFFLINE="1")
    return environment


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> Path:
    """20 one-second clips in 4 classes with a 5-fold manifest."""
    from tfaudio.data.synth import SynthConfig, make_dataset

    return make_dataset(tmp_path_factory.mktemp("sounds"), SynthConfig(clips_per_class=5))


def test_every_script_is_run():
    assert sorted(p.name for p in SCRIPTS.glob("*.py")) == sorted(COVERED)


# ---------------------------------------------------------------------- deep_feature_comparison.py


def test_deep_feature_comparison_on_generated_data(sounds, env, tmp_path):
    run = script("deep_feature_comparison.py", "--data", sounds, "--model", "handcrafted",
                 "--classifier", "logreg", "--classifier", "mlp", "--out", "report", env=env, cwd=tmp_path).check()
    lines = run.stdout.splitlines()
    assert lines[0] == "20 clips, 4 classes, 5 splits"
    assert sum("handcrafted + " in line and "accuracy" in line for line in lines) == 2, run.stdout
    assert lines[-1] == "report: report/index.html"
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics  # the comparison's numbers, written whole
    assert (tmp_path / "report" / "report.md").is_file()


def test_deep_feature_comparison_without_weights_says_so(sounds, env, tmp_path):
    run = script("deep_feature_comparison.py", "--data", sounds, env=env, cwd=tmp_path).check(code=1)
    assert run.stderr.startswith("error: yamnet") and "unavailable" in run.stderr, run.stderr
    assert not (tmp_path / "reports").exists()


def test_deep_feature_comparison_with_yamnet(sounds, env, tmp_path):
    models = shared_path("models")
    run = script("deep_feature_comparison.py", "--data", sounds, "--classifier", "logreg", "--out", "report",
                 env={**env, "TFAUDIO_MODELS": str(models)}, cwd=tmp_path).check()
    assert "yamnet: vectors (20, 1024)" in run.stdout and "handcrafted: vectors (20, 104)" in run.stdout
    assert "yamnet + logreg" in run.stdout
    assert (tmp_path / "report" / "index.html").is_file()


# ------------------------------------------------------------------- finetune_commands_vs_noise.py


def write_commands_and_noise(root: Path) -> tuple[Path, Path]:
    """Files named as Speech Commands names them: words `<word>_<speaker>_nohash_<n>.wav` (pitched
    sweeps, 4 speakers) and noise cuts `<recording>_<nnn>.wav` (3 recordings of coloured noise)."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    commands, noise = root / "commands", root / "noise"
    commands.mkdir(parents=True)
    noise.mkdir(parents=True)
    for s, speaker in enumerate(("0a1b2c3d", "1b2c3d4e", "2c3d4e5f", "3d4e5f60")):
        for w, word in enumerate(("yes", "no", "up")):
            f0 = 120 + 40 * s + 25 * w
            voice = np.sin(2 * np.pi * f0 * t * (1 + 0.3 * t)) * np.hanning(t.size)
            sf.write(commands / f"{word}_{speaker}_nohash_0.wav", (0.4 * voice).astype(np.float32), 16000)
    for r, recording in enumerate(("white_noise", "pink_noise", "running_tap")):
        for cut in range(0, 60, 15):  # 15 apart: each cut in its own block of 20 or the next
            sound = np.cumsum(rng.standard_normal(t.size)) * 0.01 if r == 1 else rng.standard_normal(t.size) * 0.1
            sf.write(noise / f"{recording}_{cut:03d}.wav", np.clip(sound, -1, 1).astype(np.float32), 16000)
    return commands, noise


def assert_trained(run: Finished, folder: Path) -> None:
    assert run.stdout.startswith("validation (") and "fine-tuning" in run.stdout, run.stdout
    assert [p.name for p in (folder / "model").iterdir()] == ["1"]
    assert (folder / "model" / "1" / "saved_model.pb").is_file()
    assert {"curves.png", "curves.html", "metrics.json"} <= {p.name for p in (folder / "runs").iterdir()}


def test_finetune_on_generated_commands_and_noise(env, tmp_path):
    commands, noise = write_commands_and_noise(tmp_path)
    run = script("finetune_commands_vs_noise.py", "--commands", commands, "--noise", noise, "--backbone", "small_cnn",
                 "--epochs", "1", "--fine-tune-epochs", "1", "--out", "model", "--logdir", "runs",
                 env=env, cwd=tmp_path).check()
    assert_trained(run, tmp_path)
    assert "frozen small_cnn" in run.stdout


def test_finetune_without_weights_says_so(env, tmp_path):
    commands, noise = write_commands_and_noise(tmp_path)
    run = script("finetune_commands_vs_noise.py", "--commands", commands, "--noise", noise, "--out", "model",
                 env={**env, "KERAS_HOME": str(tmp_path / "keras")}, cwd=tmp_path).check(code=1)
    assert run.stderr.startswith("error: ") and "mobilenet" in run.stderr.lower(), run.stderr
    assert not (tmp_path / "model").exists()


def test_finetune_mobilenet_on_real_commands_and_noise(env, tmp_path):
    """The demo itself (MobileNetV2, weights from ../shared) on 12 real words and 18 real noise cuts."""
    keras_home = shared_path("models", "keras")
    audio = shared_path("datasets", "speech_commands", "audio")
    commands, noise = tmp_path / "commands", tmp_path / "noise"
    commands.mkdir()
    noise.mkdir()
    for path in sorted((audio / "commands").iterdir())[::25]:
        (commands / path.name).symlink_to(path)
    for path in sorted((audio / "noise").iterdir()):
        if int(path.stem.rsplit("_", 1)[1]) in (0, 20, 40):  # three blocks of each recording
            (noise / path.name).symlink_to(path)
    run = script("finetune_commands_vs_noise.py", "--commands", commands, "--noise", noise, "--epochs", "1",
                 "--fine-tune-epochs", "1", "--out", "model", "--logdir", "runs",
                 env={**env, "KERAS_HOME": str(keras_home)}, cwd=tmp_path).check()
    assert_trained(run, tmp_path)
    assert "frozen mobilenet_v2" in run.stdout


# ------------------------------------------------------------------------- wav2vec2_projection.py


def page_title(page: Path) -> str:
    text = page.read_text()
    return text[text.index("<title>") + 7:text.index("</title>")]


def test_projection_follows_the_model_on_generated_data(sounds, env, tmp_path):
    run = script("wav2vec2_projection.py", "--model", "handcrafted", "--data", sounds, "--pca",
                 env=env, cwd=tmp_path).check()
    page = tmp_path / "reports" / "handcrafted_projection.html"  # the default name follows the model
    assert f"wrote {page.relative_to(tmp_path)} (20 clips)" in run.stdout
    assert page_title(page) == "handcrafted embeddings, PCA"
    assert "wav2vec2" not in page_title(page).lower()


def test_projection_of_the_default_model_offline_says_what_to_do(sounds, env, tmp_path):
    run = script("wav2vec2_projection.py", "--data", sounds, env=env, cwd=tmp_path).check(code=1)
    assert run.stderr.startswith("wav2vec2 is unavailable: ") and "Try another model, e.g. --model yamnet" in run.stderr
    assert not (tmp_path / "reports").exists()


def test_projection_of_the_esc10_files_with_yamnet(env, tmp_path):
    """The script's own FILES (25 ESC-10 clips in ../shared) with YAMNet and t-SNE."""
    models = shared_path("models")
    shared_path("datasets", "esc10")
    run = script("wav2vec2_projection.py", "--model", "yamnet",
                 env={**env, "TFAUDIO_MODELS": str(models), "TFAUDIO_SHARED": str(SHARED)}, cwd=tmp_path).check()
    page = tmp_path / "reports" / "yamnet_projection.html"
    assert "(25 clips)" in run.stdout and page.is_file()
    assert page_title(page) == "yamnet embeddings, t-SNE"
