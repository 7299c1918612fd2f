"""`compare` warns, and the report says so, when a representation loaded from disk was trained
on clips it is tested on: a saved autoencoder records the content digests of its training clips,
and compare matches them against each split's test clips."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from tfaudio.cli.main import main

TINY_ARGS = ("--patch-frames", "32", "--latent", "16", "--epochs", "2", "--batch-size", "16")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    monkeypatch.delenv("TFAUDIO_MODELS", raising=False)


@pytest.fixture(scope="module")
def trained_on_all(synth_data, tmp_path_factory):
    """An autoencoder trained by the CLI on every clip of the generated dataset."""
    return train(synth_data, tmp_path_factory.mktemp("leak") / "all")


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def train(data, out, *extra):
    result = cli("autoencoder", "train", data, "--out", out, "--examples-per-class", "1", *TINY_ARGS, *extra)
    assert result.exit_code == 0, result.output
    return out


def compare(data, model, out):
    result = cli("compare", data, "--model", f"autoencoder:{model}", "--classifier", "logreg", "--out", out)
    assert result.exit_code == 0, result.output
    return result.output, json.loads((out / "metrics.json").read_text()), (out / "report.md").read_text()


def test_a_model_trained_on_every_clip_is_flagged(synth_data, trained_on_all, tmp_path):
    model = trained_on_all
    record = json.loads((model / "autoencoder.json").read_text())
    assert len(record["trained_on_sha256"]) == 80  # training and early-stopping clips alike
    output, metrics, report = compare(synth_data, model, tmp_path / "r")
    sentence = (f"autoencoder:{model} was trained on 80 of the 80 clips it is tested on (in the test side of every "
                "split), so its scores are optimistic")
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {sentence}")
    assert metrics["discussion"][1].startswith(f"**Test clips leaked into training**: {sentence}")
    assert "Test clips leaked into training" in report and "--model autoencoder instead of autoencoder:PATH" in report


def test_a_model_trained_on_some_folds_names_the_splits_it_saw(synth_data, tmp_path):
    model = train(synth_data, tmp_path / "two", "--fold", "1", "--fold", "2")
    output, metrics, _ = compare(synth_data, model, tmp_path / "r")
    assert "was trained on 32 of the 80 clips it is tested on (in the test side of 2 of 5 splits (fold1, fold2))" \
        in output
    assert "Test clips leaked" in metrics["discussion"][1]


def test_a_model_trained_elsewhere_or_saved_without_its_clips_gives_no_warning(synth_data, trained_on_all, tmp_path):
    from tfaudio.data.dataset import load_dataset
    from tfaudio.data.synth import SynthConfig, make_dataset
    from tfaudio.models.autoencoder.config import AutoencoderConfig
    from tfaudio.models.autoencoder.train import save
    from tfaudio.models.autoencoder.train import train as train_autoencoder

    other = load_dataset(make_dataset(tmp_path / "other", SynthConfig(seed=7)))  # other sounds of the same kinds
    tiny = AutoencoderConfig(patch_frames=32, latent=16, epochs=2, batch_size=16)
    model = save(train_autoencoder(other, None, tiny), tmp_path / "other-model")
    output, metrics, report = compare(synth_data, model, tmp_path / "r")
    assert "warning:" not in output and "leaked" not in " ".join(metrics["discussion"]) and "leaked into" not in report
    # A model saved before tfaudio recorded its clips cannot be checked, and is not accused.
    old = tmp_path / "old-model"
    shutil.copytree(trained_on_all, old)
    record = json.loads((old / "autoencoder.json").read_text())
    del record["trained_on_sha256"]
    (old / "autoencoder.json").write_text(json.dumps(record))
    from tfaudio.models import registry

    assert registry.get(f"autoencoder:{old}").trained_on is None
    output, _, _ = compare(synth_data, old, tmp_path / "r2")
    assert "warning:" not in output
