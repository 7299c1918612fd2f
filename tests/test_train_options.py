"""`tfaudio train` as a user meets it: one spelling per concept (old spellings still work, with a
note), a pretrained default backbone that says what it needs, what the summary says about
fine-tuning and the export, and curves that fit a laptop screen with whole-epoch ticks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_path

from tfaudio.training.config import BACKBONE_TABLE, TrainConfig, TrainingError


@pytest.fixture(autouse=True)
def _tmp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))


def _cli(*args):
    from tfaudio.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def configs(monkeypatch):
    """The TrainConfigs the CLI builds; `train` stops before any training."""
    from tfaudio.training import loop

    seen = []

    def stop(data, config, **kwargs):
        seen.append(config)
        raise TrainingError("stopped before training")

    monkeypatch.setattr(loop, "train", stop)
    return seen


# ----------------------------------------------------------------------------- spellings


def test_new_and_old_spellings_build_the_same_config(tmp_path, configs):
    new = _cli("train", tmp_path, "--learning-rate", "0.01", "--fine-tune-learning-rate", "0", "--split", "predefined",
               "--logdir", tmp_path / "runs")
    assert new.exit_code == 1 and "stopped before training" in new.output
    assert "note:" not in new.stderr
    old = _cli("train", tmp_path, "--lr", "0.01", "--fine-tune-lr", "0", "--split", "fold", "--logdir", tmp_path / "runs")
    assert old.exit_code == 1 and "stopped before training" in old.output
    assert old.stderr.splitlines()[:3] == [
        "note: --split fold is now --split predefined (the old spelling still works)",
        "note: --lr is now --learning-rate (the old spelling still works)",
        "note: --fine-tune-lr is now --fine-tune-learning-rate (the old spelling still works)",
    ]
    assert configs[0] == configs[1]
    # a learning rate of 0 is a value given, not "absent" (0 == False in Python)
    assert (configs[1].learning_rate, configs[1].fine_tune_learning_rate, configs[1].split) == (0.01, 0.0, "predefined")
    help_text = _cli("train", "--help").output
    assert "--learning-rate" in help_text and "--fine-tune-learning-rate" in help_text
    assert "--lr " not in help_text and "--fine-tune-lr " not in help_text  # old spellings are hidden
    assert "[auto|predefined|group|stratified]" in help_text
    holdout = _cli("train", tmp_path, "--split", "holdout")
    assert holdout.exit_code == 2 and "Invalid value for '--split'" in holdout.output


def test_python_api_old_names_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning) as warned:
        old = TrainConfig(backbone="small_cnn", lr=0.01, fine_tune_lr=1e-4, split="fold")
    assert [str(w.message) for w in warned] == [
        "TrainConfig(lr=...) is now learning_rate", "TrainConfig(fine_tune_lr=...) is now fine_tune_learning_rate",
        "split 'fold' is now 'predefined'",
    ]
    assert all(w.filename == __file__ for w in warned)  # the warning points at the caller's line
    assert old == TrainConfig(backbone="small_cnn", learning_rate=0.01, fine_tune_learning_rate=1e-4, split="predefined")
    assert "lr" not in old.to_dict() and old.to_dict()["learning_rate"] == 0.01
    with pytest.raises(TrainingError, match="unknown split 'holdout'"):
        TrainConfig(split="holdout")


# ----------------------------------------------------------------------------- the backbone


def test_default_backbone_is_pretrained_and_help_says_what_each_needs(tmp_path, configs):
    assert TrainConfig().backbone == "yamnet" and BACKBONE_TABLE["yamnet"].pretrained_on
    _cli("train", tmp_path, "--logdir", tmp_path / "runs")
    assert configs[-1].backbone == "yamnet"
    from tfaudio.cli.main import main

    wide = {"terminal_width": 10_000, "max_content_width": 10_000}  # one line per option: nothing wrapped
    help_text = " ".join(CliRunner().invoke(main, ["train", "--help"], **wide).output.split())
    assert "[default: yamnet]" in help_text
    for name, backbone in BACKBONE_TABLE.items():
        assert f"{name}" in help_text and backbone.network in help_text
    assert "pretrained on AudioSet sound events; needs yamnet.h5 in $TFAUDIO_MODELS/yamnet/" in help_text
    assert "pretrained on ImageNet photographs" in help_text and "$KERAS_HOME/models/" in help_text
    assert "trained from scratch on DATA; needs no weights" in help_text


def test_yamnet_without_weights_is_one_line_saying_where_to_put_them(synth_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    monkeypatch.delenv("TFAUDIO_MODELS", raising=False)
    result = _cli("train", synth_data, "--logdir", tmp_path / "runs")
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: yamnet weights are unavailable, so training cannot start: yamnet.h5: ")
    assert f"put it at {tmp_path / 'home' / 'yamnet' / 'yamnet.h5'}" in lines[0] and "TFAUDIO_MODELS" in lines[0]
    assert lines[0].endswith("or pick --backbone small_cnn, which trains from scratch and needs no weights")
    assert not (tmp_path / "runs").exists()  # refused before any work


@pytest.mark.shared
@pytest.mark.slow
def test_default_yamnet_trains_offline_from_local_weights(synth_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_MODELS", str(shared_path("models")))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    result = _cli("train", synth_data, "--epochs", "2", "--fine-tune-epochs", "1", "--batch-size", "16",
                  "--logdir", tmp_path / "runs", "--out", tmp_path / "model")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "runs" / "metrics.json").read_text())
    assert saved["config"]["backbone"] == "yamnet" and saved["metrics"]["fine_tuning"] in ("kept", "not kept")
    assert saved["metrics"]["accuracy"] > 0.5  # four synthetic classes: chance is 0.25
    assert (tmp_path / "model" / "1" / "saved_model.pb").is_file()


# ----------------------------------------------------------------------------- what the run says


def test_skipped_fine_tuning_and_no_export_are_said(synth_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _cli("train", synth_data, "--backbone", "small_cnn", "--epochs", "1", "--fine-tune-epochs", "0",
                  "--batch-size", "16")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "fine-tuning skipped (0 fine-tuning epochs)" in out and "not kept" not in out
    assert out.rstrip().splitlines()[-1] == "no --out: nothing exported; add --out saved_models/NAME to export"
    assert not (tmp_path / "saved_models").exists()
    saved = json.loads((tmp_path / "runs" / "small_cnn" / "metrics.json").read_text())["metrics"]
    assert (saved["fine_tuning"], saved["fine_tuning_reason"], saved["fine_tuning_kept"]) == (
        "skipped", "0 fine-tuning epochs", False)
    # the confusion printout keeps whole class names: rows named, columns numbered as the rows
    rows = out[out.index("confusion (rows true"):].splitlines()[1:6]
    assert rows[0].split() == ["1", "2", "3", "4"]
    assert [row.split()[:2] for row in rows[1:]] == [["1", "chirp"], ["2", "clicks"], ["3", "noise"], ["4", "tone"]]
    assert sum(int(v) for row in rows[1:] for v in row.split()[2:]) == saved["val_clips"]


def test_long_class_names_are_not_cut(capsys):
    from tfaudio.cli.train import _echo_confusion

    _echo_confusion(["crackling_fire", "dog"], [[12, 0], [1, 1000]])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["1", "crackling_fire", "12", "0"] and lines[3].split() == ["2", "dog", "1", "1000"]
    assert len({len(line) for line in lines[1:]}) == 1  # the columns line up


# ----------------------------------------------------------------------------- curves


def test_epoch_ticks_are_whole_epochs():
    from tfaudio.training.plots import epoch_step

    assert [epoch_step(n) for n in (1, 8, 10, 11, 20, 23, 50, 51, 100, 101)] == [1, 1, 1, 2, 2, 5, 5, 10, 10, 20]


def _fake_result(epochs: int, boundary: int, fine_tuning=("kept", "")):
    history = [{"epoch": e, "phase": 1 if e <= boundary else 2, "loss": 1 / e, "accuracy": 1 - 1 / (e + 1),
                "val_loss": 1.2 / e, "val_accuracy": 1 - 1.5 / (e + 2)} for e in range(1, epochs + 1)]
    names = ("crackling_fire", "crying_baby", "dog", "rain")
    metrics = {"accuracy": 0.75, "balanced_accuracy": 0.75, "macro_f1": 0.7, "phase1_val_accuracy": 0.5,
               "val_clips": 8, "fine_tuning_kept": fine_tuning[0] == "kept", "fine_tuning": fine_tuning[0],
               "fine_tuning_reason": fine_tuning[1], "confusion": (np.eye(4, dtype=int) * 2).tolist(),
               "per_class_recall": dict.fromkeys(names, 1.0)}
    return SimpleNamespace(config=TrainConfig(backbone="small_cnn"), metrics=metrics, class_names=names,
                           phase_boundary=boundary, split=SimpleNamespace(how="fold 1 of the manifest held out"),
                           history=history)


def test_curves_page_and_png_fit_a_laptop_and_say_what_fine_tuning_did(tmp_path):
    import matplotlib.image

    from tfaudio.training.plots import write_curves_html, write_curves_png

    write_curves_html(_fake_result(3, 3, ("skipped", "0 fine-tuning epochs")), tmp_path / "curves.html")
    page = (tmp_path / "curves.html").read_text()
    assert "phase 2: fine-tuning skipped (0 fine-tuning epochs)." in page
    assert '"dtick":1' in page and '"width":1500' not in page and '"responsive": true' in page
    write_curves_png(_fake_result(23, 20), tmp_path / "curves.png")
    height, width, _ = matplotlib.image.imread(tmp_path / "curves.png").shape
    assert width <= 1280 and height <= 500


def test_curves_page_in_a_browser_fits_1280_px_with_whole_epoch_ticks(tmp_path):
    from browser import chromium, console_errors, open_page

    from tfaudio.training.plots import write_curves_html

    write_curves_html(_fake_result(7, 5), tmp_path / "curves.html")
    with chromium(width=1280, height=900) as driver:
        open_page(driver, tmp_path / "curves.html")
        assert console_errors(driver) == []
        inner, scroll = driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
        assert scroll <= inner, (scroll, inner)  # no horizontal scrolling
        ticks = driver.execute_script(
            "return [...document.querySelectorAll('.xtick text')].map(t => t.textContent)")
        epochs = [t for t in ticks if t.strip().lstrip("-").replace(".", "", 1).isdigit()]
        assert epochs and all(float(t) == int(float(t)) for t in epochs), ticks
        assert {"1", "7"} <= set(epochs)
