"""The `tfaudio` command as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from tfaudio import __version__
from tfaudio.cli.main import main


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_help_and_version():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("info", "features", "datasets"):
        assert command in result.output
    assert run("--version").output.strip() == f"tfaudio, version {__version__}"


def test_console_script_is_installed():
    exe = shutil.which("tfaudio", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert exe, "the tfaudio console script is not installed in the environment"
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert __version__ in result.stdout


def test_console_entry_exits_quickly_with_every_output_written(synth_data, tmp_path):
    """Once TensorFlow is loaded the console entry (`run`) skips Python's teardown: the exit
    code, the last lines on a piped (block-buffered) stdout and stderr, and the output files
    must all still be there, and no temporary file left behind."""
    import os

    from conftest import run_cli

    environment = {k: v for k, v in os.environ.items() if k != "TFAUDIO_MODELS"}
    environment.update(TFAUDIO_HOME=str(tmp_path / "home"), TFAUDIO_OFFLINE="1")
    out = tmp_path / "emb"
    code, stdout, stderr = run_cli(["embed", synth_data, "--model", "handcrafted", "--out", out], environment)
    assert code == 0, stderr
    table = pd.read_parquet(out / "handcrafted.parquet")
    last = stdout.splitlines()[-1]
    assert last.startswith(f"handcrafted: {len(table)} clips -> ") and f"{len(table)} computed" in last, stdout
    assert sorted(p.name for p in out.iterdir()) == ["handcrafted.parquet"]
    # `tag` imports TensorFlow before it looks for YAMNet's weights: an error after the import
    # keeps its exit code and its message, to the last line
    code, stdout, stderr = run_cli(["tag", synth_data / "tone" / "tone_000.wav"], environment)
    assert code == 1 and stderr.startswith("Error: yamnet.h5 (yamnet) is unavailable"), stderr
    assert stderr.rstrip().endswith("(TFAUDIO_OFFLINE=1 forbids it)."), stderr


def test_info_reports_classes_folds_and_the_unreadable_file(synth_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    (data / "tone" / "tone_000.wav").write_bytes(b"RIFF" + bytes(64))
    result = run("info", data)
    assert result.exit_code == 0, result.output
    assert "79 readable in 4 classes" in result.output
    assert "folds      1, 2, 3, 4, 5" in result.output
    assert "1 unreadable file(s)" in result.output and "tone_000.wav" in result.output
    facts = json.loads(run("info", data, "--json").stdout)
    assert facts["clips_per_class"] == {"chirp": 20, "clicks": 20, "noise": 20, "tone": 19}


def test_info_on_a_missing_folder_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(main, ["info", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'nowhere'}: no such file or folder"


def test_features_writes_parquet_and_csv_and_skips_corrupt_files(synth_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    (data / "noise" / "noise_003.wav").write_bytes(b"\x00" * 300)
    result = CliRunner().invoke(main, ["features", str(data), "--out", str(tmp_path / "f.parquet")])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "noise_003.wav" in result.output
    table = pd.read_parquet(tmp_path / "f.parquet")
    assert len(table) == 79 and "noise/noise_003.wav" not in set(table["file"])
    assert list(table.columns[:4]) == ["file", "label", "fold", "group"]
    assert table["fold"].between(1, 5).all()
    assert table.iloc[:, 4:].notna().all().all()
    run("features", data, "--out", tmp_path / "f.csv")
    csv = pd.read_csv(tmp_path / "f.csv")
    assert list(csv.columns) == list(table.columns)
    pd.testing.assert_frame_equal(
        csv.iloc[:, 4:].astype("float32"), table.iloc[:, 4:].astype("float32"), rtol=1e-5
    )


def test_features_strict_stops_at_the_first_unreadable_file(synth_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    (data / "chirp" / "chirp_001.wav").write_bytes(b"")
    result = CliRunner().invoke(main, ["features", str(data), "--out", str(tmp_path / "f.csv"), "--strict"])
    assert result.exit_code == 1
    assert "chirp_001.wav: file is empty (0 bytes)" in result.output
    assert not (tmp_path / "f.csv").exists()


def test_features_refuses_an_unknown_output_format(synth_data, tmp_path):
    result = CliRunner().invoke(main, ["features", str(synth_data), "--out", str(tmp_path / "f.xlsx")])
    assert result.exit_code == 2
    assert "must end in .parquet or .csv" in result.output


def test_datasets_synth_is_deterministic(tmp_path):
    run("datasets", "synth", tmp_path / "a", "--clips-per-class", "3")
    run("datasets", "synth", tmp_path / "b", "--clips-per-class", "3")
    a, b = sorted((tmp_path / "a").rglob("*.wav")), sorted((tmp_path / "b").rglob("*.wav"))
    assert len(a) == 12
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))


@pytest.mark.slow
def test_info_on_esc10(esc10):
    result = run("info", esc10)
    assert "400 readable in 10 classes" in result.output
    assert "folds      1, 2, 3, 4, 5" in result.output


@pytest.mark.slow
def test_tag_names_the_dog_in_an_esc10_clip(esc10, monkeypatch):
    models = esc10.parent.parent / "models"
    monkeypatch.setenv("TFAUDIO_MODELS", str(models))
    result = CliRunner().invoke(main, ["tag", str(esc10 / "audio" / "1-100032-A-0.flac"), "--top", "2"])
    assert result.exit_code == 0, result.output
    steps = [line for line in result.output.splitlines() if line.strip().endswith(tuple("0123456789")) and " s  " in line]
    assert len(steps) == 10  # a 5 s clip: patches every 0.48 s
    assert any("Dog" in line for line in steps)
    assert "overall" in result.output


def test_tag_without_weights_offline_says_what_is_missing(monkeypatch, tmp_path, synth_data):
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    monkeypatch.delenv("TFAUDIO_MODELS", raising=False)
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["tag", str(synth_data / "tone" / "tone_000.wav")])
    assert result.exit_code == 1
    assert "yamnet.h5" in result.output and "TFAUDIO_MODELS" in result.output
