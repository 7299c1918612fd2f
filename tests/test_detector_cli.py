"""`tfaudio detector train|export|info` and `tfaudio detect` as a user runs them: the console
script in its own process (exit status, outputs, a prompt exit), one-line errors before any work,
on a hand-crafted index of generated tones (fast, no weights)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_tree
from helpers import run_process

CLI = [str(Path(sys.executable).parent / "tfaudio")]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A folder of three dog and three rain tones, its hand-crafted index (0.1 s windows) and a
    label table: the first 0.3 s of each dog file a positive of `dog`, of each rain file a
    negative (the rest of the rain files' windows are left for weak negatives)."""
    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search.build import IndexConfig, build_index

    root = tmp_path_factory.mktemp("detector-cli")
    data = write_tree(root / "data", classes=("dog", "rain"), per_class=3)
    build_index(data, root / "index", IndexConfig(model="handcrafted", hop=0.1), RunSettings(store=str(root / "store")))
    rows = ["file,start,end,label,kind"] + [f"data/{c}/{c}_{i}.wav,0,0.3,dog,{'positive' if c == 'dog' else 'negative'}"
                                            for c in ("dog", "rain") for i in range(3)]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    env = {**os.environ, "TFAUDIO_HOME": str(root / "home"), "TFAUDIO_OFFLINE": "1"}
    run_process([*CLI, "labels", "import", "labels.csv", "--labels", "labels.db"], env=env, cwd=root).check()
    return root, env


def run(root: Path, env: dict, *args: str, code: int = 0):
    return run_process([*CLI, *args], env=env, cwd=root, timeout=120).check(code)


def test_train_info_detect_and_export_from_the_console(labelled):
    root, env = labelled
    trained = run(root, env, "detector", "train", "index", "--labels", "labels.db", "--out", "det", "--folds", "3")
    lines = trained.stdout.splitlines()
    assert lines[0].split()[:6] == ["label", "pos", "neg", "weak", "rec", "AP"]
    row = lines[1].split()
    assert row[:5] == ["dog", "9", "9", "6", "6"] and float(row[5]) > 0.9  # every tone told apart
    assert "det/report.html" in trained.stdout and "exported: det/saved_model/1" in trained.stdout
    assert "train" in trained.stderr  # the progress bar
    for name in ("detector.json", "heads.npz", "held_out.npz", "report.html", "saved_model/1/saved_model.pb"):
        assert (root / "det" / name).exists(), name

    info = run(root, env, "detector", "info", "det")
    assert f"trained on: {root / 'index'} (handcrafted, float32" in info.stdout
    assert "\ndog " in info.stdout and "export: det/saved_model/1" in info.stdout

    found = run(root, env, "detect", "index", "--detector", "det", "--out", "found")
    assert "scored 30 windows of 6 files from the index's stored vectors (nothing decoded)" in found.stdout
    detections = pd.read_csv(root / "found" / "detections.csv")
    assert set(detections["label"]) <= {"dog"} and f"  dog: {len(detections)} detections at" in found.stdout
    for name in ("detections.selections.txt", "detect.json", "scores/part-00000.parquet"):
        assert (root / "found" / name).exists(), name

    chosen = run(root, env, "detect", "index", "--detector", "det", "--out", "chosen", "--threshold", "dog=0.75")
    assert "at probability >= 0.750 (--threshold)" in chosen.stdout

    from tfaudio.cli.main import main

    exported = CliRunner().invoke(main, ["detector", "export", str(root / "det")])  # TensorFlow is loaded here
    assert exported.exit_code == 0 and f"exported: {root / 'det' / 'saved_model' / '2'}" in exported.output


#: (arguments, exit status, the error line's start, whether to run it as a console script): the
#: cases the issue names run in a process of their own; the rest in this one (faster).
FAILURES = [
    (["detector", "info", "nowhere"], 1, "Error: nowhere: no such detector", True),
    (["detector", "train", "data", "--labels", "labels.db", "--out", "x"], 1, "Error: data: not a tfaudio index", True),
    (["detector", "train", "index", "--labels", "none.db", "--out", "x"], 1, "Error: none.db: no label store", False),
    (["detector", "train", "index", "--labels", "labels.db", "--out", "labels.csv/x"], 1,
     "Error: labels.csv/x: a part of this path is a file", True),
    (["detector", "train", "index", "--labels", "labels.db", "--out", "data"], 1,
     "Error: data: a folder that holds no detector", False),
    (["detector", "train", "index", "--labels", "labels.db", "--out", "x", "--target-precision", "1"], 2,
     "Error: Invalid value for '--target-precision'", False),
    (["detector", "train", "index", "--labels", "labels.db", "--out", "x", "--no-export", "--tflite"], 2,
     "Error: --tflite needs the export", False),
    (["detect", "index", "--detector", "nowhere", "--out", "x"], 1, "Error: nowhere: no such detector", False),
    (["detect", "index", "--detector", "det", "--out", "labels.csv/x"], 1,
     "Error: labels.csv/x: a part of this path is a file", True),
    (["detect", "index", "--detector", "det", "--out", "x", "--threshold", "owl=0.5"], 2,
     "Error: Invalid value for --threshold: 'owl': not a label of det (its labels: dog)", True),
    (["detect", "index", "--detector", "det", "--out", "x", "--threshold", "dog=1.5"], 2,
     "Error: Invalid value for '--threshold': 'dog=1.5': a threshold is a probability, 0 to 1", True),
    (["detect", "index", "--detector", "det", "--out", "x", "--threshold", "dog"], 2,
     "Error: Invalid value for '--threshold': 'dog' is not LABEL=P", False),
]


@pytest.mark.parametrize("args, code, message, console", FAILURES,
                         ids=[f"{i:02d}-{' '.join(f[0][:2])}" for i, f in enumerate(FAILURES)])
def test_what_cannot_work_is_one_line_before_any_work(labelled, monkeypatch, args, code, message, console):
    root, env = labelled
    if "det" in args and not (root / "det" / "detector.json").exists():  # run before (or without) the test above
        from tfaudio.detector.config import DetectorConfig
        from tfaudio.detector.train import train_detector

        train_detector(root / "index", root / "labels.db", config=DetectorConfig(folds=2)).save(root / "det")
    if console:
        finished = run(root, env, *args, code=code)
        stderr = finished.stderr
    else:
        from tfaudio.cli.main import main

        monkeypatch.chdir(root)
        result = CliRunner().invoke(main, args)
        assert result.exit_code == code, result.output
        stderr = result.output
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(message), stderr
    assert not (root / "x").exists()


def test_a_model_that_cannot_be_one_graph_is_a_note_not_a_failure(labelled, monkeypatch):
    """Training saves the detector and its report; an export the representation cannot make is
    said in one line (and `detector export` makes it the error)."""
    import tfaudio.detector.export as export
    from tfaudio.cli.main import main
    from tfaudio.detector.model import DetectorError

    def refuse(detector, out=None, *, version=None, tflite=False):
        raise DetectorError(f"{detector.source['model']} cannot be exported as one graph (a test says so)")

    root, env = labelled
    monkeypatch.chdir(root)
    monkeypatch.setattr(export, "export_detector", refuse)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    trained = CliRunner().invoke(main, ["detector", "train", "index", "--labels", "labels.db", "--out", "note",
                                        "--folds", "2", "--weak-negatives", "0"])
    assert trained.exit_code == 0, trained.output
    assert "not exported: handcrafted cannot be exported as one graph (a test says so)" in trained.output
    assert (root / "note" / "detector.json").exists() and (root / "note" / "report.html").exists()
    assert trained.output.split("\ndog ", 1)[1].split()[:3] == ["9", "9", "0"]  # no weak negatives asked for
    failed = CliRunner().invoke(main, ["detector", "export", "note"])
    assert failed.exit_code == 1 and "Error: handcrafted cannot be exported as one graph" in failed.output
    skipped = CliRunner().invoke(main, ["detector", "train", "index", "--labels", "labels.db", "--out", "note",
                                        "--folds", "2", "--no-export"])
    assert skipped.exit_code == 0 and "not exported (--no-export)" in skipped.output
