"""The failure catalog, command-line side: outputs checked before the work and written whole or
not at all, names that are not UTF-8, training runs that keep each other's files, `predict`
going on past a bad file, damaged weights, and no traceback for any bad input.

Commands run as `python -m tfaudio.cli ...` subprocesses with a strict UTF-8 stdout (as under
any UTF-8 locale but C.UTF-8), so a name printed unescaped fails here as it would for a user.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import run_cli, sine, write_tree

RATE = 16000
NON_UTF8 = b"bad\xffbyte.wav"


def cli(*args, home: Path, env: dict | None = None, cwd: Path | None = None, timeout: int = 600):
    """`python -m tfaudio.cli ARGS` offline with its cache in `home` (:func:`conftest.run_cli`)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("TFAUDIO_MODELS", "HF_HUB_OFFLINE")}
    environment.update({
        "TFAUDIO_HOME": str(home), "TFAUDIO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
        "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict", **(env or {}),
    })
    return run_cli(args, environment, cwd=cwd, timeout=timeout)


def tone(seconds: float = 0.5, frequency: float = 440.0) -> np.ndarray:
    return sine(frequency, seconds, 0.3, RATE)


def error_lines(err: str) -> list[str]:
    """stderr without progress bars and blank lines."""
    return [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "clip/s" not in line]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def disk_full(monkeypatch, owner, method: str, target=lambda self, args: args[0]) -> None:
    """Make `owner.method` fail like a disk that fills up: it writes, its file is cut to half,
    and it raises ENOSPC. `target(self, args)` is the path it writes."""
    original = getattr(owner, method)

    def write_half(self, *args, **kwargs):
        original(self, *args, **kwargs)
        path = Path(target(self, args))
        os.truncate(path, path.stat().st_size // 2)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(owner, method, write_half)


def path_self(self, args):
    return self


# --- 1. output locations are checked before any work -----------------------------------------


def writer_commands(data: Path, target: Path, tmp_path: Path) -> dict[str, tuple[list, Path]]:
    """Every command that writes: (its arguments with the output inside `target`, that output)."""
    cases = {
        "features": (["features", data, "--out"], "table.csv", []),
        "embed": (["embed", data, "--model", "handcrafted", "--out"], "emb", []),
        "compare": (["compare", data, "--model", "handcrafted", "--out"], "report", []),
        "demo": (["demo", "--out"], "demo", []),
        "train --out": (["train", data, "--out"], "model", ["--logdir", tmp_path / "runs"]),
        "train --logdir": (["train", data, "--logdir"], "runs", []),
        "autoencoder train": (["autoencoder", "train", data, "--out"], "ae", []),
        "autoencoder export": (["autoencoder", "export", tmp_path / "no-model", "--out"], "encoder", []),
        "visualize": (["visualize", data, "--model", "handcrafted", "--out"], "page.html", []),
        "projector": (["projector", data, "--model", "handcrafted", "--out"], "projector", []),
        "datasets synth": (["datasets", "synth"], "synth", []),
    }
    return {name: ([*head, target / output, *tail], target / output) for name, (head, output, tail) in cases.items()}


WRITERS = list(writer_commands(Path("data"), Path("target"), Path("tmp")))


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("small") / "data")


@pytest.mark.parametrize("command", WRITERS)
def test_an_output_path_through_a_file_is_refused_before_any_work(small_tree, tmp_path, command):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    args, output = writer_commands(small_tree, blocker, tmp_path)[command]
    home = tmp_path / "home"

    code, out, err = cli(*args, home=home)

    assert code == 1, err
    assert error_lines(err) == [f"Error: {output}: a part of this path is a file, not a folder ({blocker})"]
    assert not home.exists() and not (tmp_path / "runs").exists()  # nothing cached, embedded or logged


@pytest.fixture
def readonly(tmp_path) -> Path:
    """A folder nothing can be written in: a read-only tmpfs as root (root ignores permissions),
    else a folder without write permission."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)]).returncode:
        pytest.skip("mounting a read-only tmpfs failed here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("command", WRITERS)
def test_a_read_only_output_is_refused_before_any_work(small_tree, tmp_path, readonly, command):
    args, output = writer_commands(small_tree, readonly, tmp_path)[command]
    home = tmp_path / "home"

    code, out, err = cli(*args, home=home)

    assert code == 1, err
    reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    assert error_lines(err) == [f"Error: {output}: cannot write there ({reason})"]
    assert not home.exists() and not (tmp_path / "runs").exists()


def test_check_writable_names_what_is_wrong(tmp_path):
    from tfaudio.outputs import OutputError, check_writable

    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputError, match="file: exists and is not a folder$"):
        check_writable(tmp_path / "file")
    with pytest.raises(OutputError, match="folder: is a folder; give a file name$"):
        check_writable(tmp_path / "folder", folder=False)
    assert check_writable(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_writable(tmp_path / "new" / "table.csv", folder=False) == tmp_path / "new" / "table.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]  # checked, nothing created


# --- 2. outputs are written whole or not at all ------------------------------------------------


def test_replacing_keeps_the_earlier_file_when_the_writer_fails(tmp_path):
    from tfaudio import outputs

    target = tmp_path / "table.csv"
    target.write_text("the earlier table\n")
    with pytest.raises(outputs.OutputError, match=r"table.csv: cannot write \(No space left on device\); "
                                                  "the earlier file is kept"):
        with outputs.replacing(target) as temporary:
            assert temporary.parent == tmp_path and temporary.name.startswith(".") and temporary.suffix == ".csv"
            temporary.write_text("half a new ta")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "the earlier table\n"
    with pytest.raises(ZeroDivisionError):  # not an OSError: passed on as it is, the file kept all the same
        with outputs.replacing(target) as temporary:
            temporary.write_text("half")
            1 / 0
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left

    outputs.write_text(target, "the new table\n")
    assert target.read_text() == "the new table\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


@pytest.mark.parametrize("suffix, writer", [(".csv", "to_csv"), (".parquet", "to_parquet")])
def test_the_feature_table_survives_a_failed_write(tmp_path, monkeypatch, suffix, writer):
    from tfaudio.models.handcrafted.extract import FeatureTable
    from tfaudio.outputs import OutputError

    frame = pd.DataFrame({"file": ["a.wav", "b.wav"], "label": ["dog", "rain"], "f0": [1.0, 2.0]})
    target = tmp_path / f"features{suffix}"
    FeatureTable(frame, ("f0",), ()).write(target)
    before = snapshot(tmp_path)
    disk_full(monkeypatch, pd.DataFrame, writer)

    with pytest.raises(OutputError, match="No space left on device"):
        FeatureTable(frame.assign(f0=[3.0, 4.0]), ("f0",), ()).write(target)

    assert snapshot(tmp_path) == before  # the earlier table whole, no temporary file


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, small_tree):
    from tfaudio.comparison.run import CompareConfig, compare

    store = tmp_path_factory.mktemp("store")
    config = CompareConfig(models=("handcrafted",), classifiers=("logreg",), folds=2, store=str(store))
    return compare(small_tree, config, log=lambda message: None)


def test_report_files_survive_a_failed_write(comparison, tmp_path, monkeypatch):
    from tfaudio.comparison import report
    from tfaudio.outputs import OutputError

    out = tmp_path / "report"
    report.write_report(comparison, out)
    before = snapshot(out)
    assert set(before) == {"index.html", "report.md", "metrics.json", "predictions.csv", "timings.json"}

    disk_full(monkeypatch, Path, "write_text", target=path_self)  # the first file written fails half-way
    with pytest.raises(OutputError, match="metrics.json: cannot write .No space left on device.; the earlier"):
        report.write_report(comparison, out)
    assert snapshot(out) == before
    monkeypatch.undo()

    disk_full(monkeypatch, pd.DataFrame, "to_csv")  # the third
    with pytest.raises(OutputError, match="predictions.csv: cannot write"):
        report.write_report(comparison, out)
    assert snapshot(out) == before  # the same result: the files already replaced are equal


def test_page_and_projector_files_survive_a_failed_write(small_tree, tmp_path, monkeypatch):
    from tfaudio.data.dataset import load_dataset
    from tfaudio.outputs import OutputError
    from tfaudio.pipeline.local import EmbeddingTable, EmbedStats
    from tfaudio.viz import SeparabilityConfig, export_tables, visualize_tables

    dataset = load_dataset(small_tree)
    rng = np.random.default_rng(0)
    vectors = np.stack([rng.normal(size=8) + 4 * (c.label == "dog") for c in dataset.clips]).astype(np.float32)
    tables = [EmbeddingTable("model", "mean", dataset, dataset.clips, vectors, EmbedStats(len(dataset)))]
    page, projector = tmp_path / "page" / "index.html", tmp_path / "projector"
    visualize_tables(tables, page, separability=SeparabilityConfig(folds=2), progress=False)
    export_tables(tables, projector, progress=False)
    before = snapshot(tmp_path)

    disk_full(monkeypatch, Path, "write_text", target=path_self)
    with pytest.raises(OutputError, match="index.html: cannot write"):
        visualize_tables(tables, page, separability=SeparabilityConfig(folds=2), progress=False)
    monkeypatch.undo()
    disk_full(monkeypatch, Path, "write_bytes", target=path_self)  # sprite.png, the projector's first file
    with pytest.raises(OutputError, match="sprite.png: cannot write"):
        export_tables(tables, projector, progress=False)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before

    export_tables(tables, projector, progress=False)  # and a whole export replaces one, leaving nothing else
    assert set(snapshot(projector)) == set(k.removeprefix("projector/") for k in before if k.startswith("projector/"))


# --- 3. file names that are not UTF-8 ---------------------------------------------------------


@pytest.fixture(scope="module")
def non_utf8_data(tmp_path_factory) -> Path:
    """Two classes of four clips; one clip and one broken file named with a byte that is not UTF-8."""
    data = write_tree(tmp_path_factory.mktemp("names") / "data", per_class=4)
    sf.write(os.fsencode(data / "dog") + b"/" + NON_UTF8, tone(0.5, 777), RATE)  # bytes: the name has no str form
    Path(os.fsdecode(os.fsencode(data / "rain") + b"/broken\xff.wav")).write_bytes(b"RIFF" + bytes(60))
    return data


BROKEN = "broken\\xff.wav: corrupt or unsupported .wav file"  # as printed: the byte escaped, never raw


def test_info_prints_a_non_utf8_name_escaped(non_utf8_data, tmp_path):
    code, out, err = cli("info", non_utf8_data, home=tmp_path / "home")

    assert code == 0, err
    assert "9 readable in 2 classes" in out and BROKEN in out


@pytest.mark.parametrize("command", ["features", "embed"])
def test_features_and_embed_name_a_non_utf8_file_escaped(non_utf8_data, tmp_path, command):
    out_path = tmp_path / ("table.csv" if command == "features" else "emb")
    extra = ["--model", "handcrafted"] if command == "embed" else []

    code, out, err = cli(command, non_utf8_data, *extra, "--out", out_path, home=tmp_path / "home")

    assert code == 0, err
    assert f"skipped {non_utf8_data / 'rain'}/{BROKEN}" in err
    table = pd.read_csv(out_path) if command == "features" else pd.read_parquet(out_path / "handcrafted.parquet")
    assert len(table) == 9
    if command == "features":
        assert "dog/bad\\xffbyte.wav" in set(table["file"])


@pytest.mark.slow
def test_compare_names_a_non_utf8_file_and_writes_its_report(non_utf8_data, tmp_path):
    report = tmp_path / "report"

    code, out, err = cli("compare", non_utf8_data, "--model", "handcrafted", "--classifier", "logreg", "--folds", "2",
                         "--out", report, home=tmp_path / "home")

    assert code == 0, err
    assert f"skipped {non_utf8_data / 'rain'}/{BROKEN}" in err
    listed = f"- `{non_utf8_data / 'rain'}/broken\\xff.wav`: corrupt or unsupported .wav file"
    assert listed in (report / "report.md").read_text(encoding="utf-8")
    assert "dog/bad\\xffbyte.wav" in set(pd.read_csv(report / "predictions.csv")["file"])
    assert json.loads((report / "metrics.json").read_text())["skipped"][0]["path"].endswith("broken\\xff.wav")


# --- 4. training runs keep each other's files -------------------------------------------------


@pytest.mark.slow
def test_a_second_train_run_gets_its_own_folder(synth_data, tmp_path, monkeypatch):
    from tfaudio.outputs import OutputError
    from tfaudio.training import plots
    from tfaudio.training.config import TrainConfig
    from tfaudio.training.loop import train

    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))
    runs = tmp_path / "runs"
    first = train(synth_data, TrainConfig(backbone="small_cnn", epochs=2, fine_tune_epochs=0, batch_size=16),
                  logdir=runs / "small_cnn", progress=False)
    assert first.logdir == runs / "small_cnn"
    before = snapshot(first.logdir)
    assert {"history.csv", "metrics.json", "curves.html", "curves.png", "checkpoints/phase1_best.weights.h5"} <= set(before)

    # The same command again, as a user reruns it: the default --logdir is runs/<backbone>.
    code, out, err = cli("train", synth_data, "--backbone", "small_cnn", "--epochs", "3", "--fine-tune-epochs", "0",
                         "--batch-size", "16", home=tmp_path / "home", cwd=tmp_path)

    assert code == 0, err
    assert f"curves: {Path('runs') / 'small_cnn-2' / 'curves.html'}" in out
    assert snapshot(first.logdir) == before  # the first run's files untouched
    second = runs / "small_cnn-2"
    history = (second / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3 and history[-1].startswith("3,1,")  # its own three epochs, and only them
    assert json.loads((second / "metrics.json").read_text())["metrics"]["val_clips"] == 16
    assert (second / "checkpoints" / "phase1_best.weights.h5").is_file() and (second / "curves.png").is_file()
    assert list((second / "tensorboard").rglob("events.out.tfevents.*"))

    # A run's curves are written whole or not at all too.
    import matplotlib.figure

    disk_full(monkeypatch, matplotlib.figure.Figure, "savefig")
    with pytest.raises(OutputError, match="curves.png: cannot write"):
        plots.write_curves_png(first, first.logdir / "curves.png")
    assert snapshot(first.logdir) == before


def test_fresh_folder_never_reuses_a_run_folder(tmp_path):
    from tfaudio.outputs import fresh_folder

    assert fresh_folder(tmp_path / "runs" / "a") == tmp_path / "runs" / "a"  # new: used as it is
    (tmp_path / "runs" / "a" / "history.csv").write_text("the first run's")
    assert fresh_folder(tmp_path / "runs" / "a") == tmp_path / "runs" / "a-2"
    assert fresh_folder(tmp_path / "runs" / "a") == tmp_path / "runs" / "a-3"  # a-2 is taken though empty
    (tmp_path / "runs" / "empty").mkdir()
    assert fresh_folder(tmp_path / "runs" / "empty") == tmp_path / "runs" / "empty"  # made for it by the user
    assert (tmp_path / "runs" / "a" / "history.csv").read_text() == "the first run's"


# --- 5. predict goes on past a bad file ------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """saved_models/tiny/1: a two-class dense classifier over 0.1 s windows."""
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from tfaudio.training.export import export_savedmodel

    model = keras.Sequential([keras.Input((1600,)), keras.layers.Dense(2, activation="softmax")])
    model_dir = tmp_path_factory.mktemp("saved_models") / "tiny"
    export_savedmodel(model, {"class_names": ["high", "low"], "sample_rate": 16000, "num_samples": 1600}, model_dir)
    return model_dir


@pytest.mark.slow
def test_predict_names_each_bad_file_and_goes_on(exported, tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.5), RATE)
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + bytes(60))
    sf.write(tmp_path / "blip.wav", tone(0.05), RATE)
    c = Path(os.fsdecode(os.fsencode(tmp_path) + b"/c\xff.wav"))
    sf.write(os.fsencode(c), tone(0.5, 900), RATE)

    code, out, err = cli("predict", exported, tmp_path / "a.wav", tmp_path / "bad.wav", tmp_path / "blip.wav", c,
                         "--json", home=tmp_path / "home")

    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["file"] for row in rows] == [str(tmp_path / "a.wav"), f"{tmp_path}/c\\xff.wav"]  # the others classified
    assert all(set(row["probabilities"]) == {"high", "low"} for row in rows)
    assert error_lines(err) == [
        f"skipped {tmp_path / 'bad.wav'}: corrupt or unsupported .wav file: the header is not recognised",
        f"skipped {tmp_path / 'blip.wav'}: 0.050 s long; the model needs at least 0.1 s",
        "Error: 2 of 4 file(s) could not be classified (named above)",
    ]


# --- 6. damaged or wrong weights --------------------------------------------------------------


def bad_yamnet(folder: Path, kind: str) -> Path:
    """TFAUDIO_MODELS folder whose yamnet/yamnet.h5 is truncated or holds a mis-shaped layer."""
    import h5py

    target = folder / "yamnet" / "yamnet.h5"
    target.parent.mkdir(parents=True)
    whole = folder / "whole.h5"
    with h5py.File(whole if kind == "truncated" else target, "w") as handle:
        handle.attrs["layer_names"] = [b"layer1/conv"]
        group = handle.create_group("layer1/conv")
        group.attrs["weight_names"] = [b"layer1/conv/kernel:0"]
        group.create_dataset("layer1/conv/kernel:0", data=np.zeros((3, 3, 1, 16), np.float32))
    if kind == "truncated":
        target.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    return folder


WEIGHTS_PROBLEM = {
    "truncated": "yamnet.h5: not an HDF5 weights file (",
    "wrong-shape": "yamnet.h5: variable 'layer1/conv/kernel' has shape (3, 3, 1, 16), the network's",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["truncated", "wrong-shape"])
def test_compare_lists_a_model_with_damaged_weights_as_unavailable_and_goes_on(small_tree, tmp_path, kind):
    models = bad_yamnet(tmp_path / "models", kind)
    report = tmp_path / "report"

    code, out, err = cli("compare", small_tree, "--model", "handcrafted", "--model", "yamnet", "--classifier", "logreg",
                         "--folds", "2", "--out", report, home=tmp_path / "home", env={"TFAUDIO_MODELS": str(models)})

    assert code == 0, err
    problem = f"{models / 'yamnet'}/{WEIGHTS_PROBLEM[kind]}"
    assert f"yamnet: unavailable, left out ({problem}" in err
    assert f"yamnet: unavailable ({problem}" in out
    metrics = json.loads((report / "metrics.json").read_text())
    assert [u["name"] for u in metrics["unavailable"]] == ["yamnet"] and problem in metrics["unavailable"][0]["reason"]
    assert {r["representation"] for r in metrics["runs"]} == {"handcrafted"}  # the run went on without it

    code, _, err = cli("compare", small_tree, "--model", "yamnet", "--classifier", "logreg", "--folds", "2", "--strict",
                       "--out", report, home=tmp_path / "home", env={"TFAUDIO_MODELS": str(models)})
    assert code == 1 and error_lines(err)[-1].startswith(f"Error: yamnet is unavailable: {problem}")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["tag", "embed"])
def test_tag_and_embed_give_the_weights_error_in_one_line(small_tree, tmp_path, command):
    models = bad_yamnet(tmp_path / "models", "wrong-shape")
    args = ([small_tree / "dog" / "dog_0.wav"] if command == "tag"
            else [small_tree, "--model", "yamnet", "--out", tmp_path / "emb"])

    code, out, err = cli(command, *args, home=tmp_path / "home", env={"TFAUDIO_MODELS": str(models)})

    assert code == 1
    assert error_lines(err)[-1].startswith(f"Error: {models / 'yamnet'}/{WEIGHTS_PROBLEM['wrong-shape']}")


# --- 7. no traceback for any bad input --------------------------------------------------------


#: Cases that load TensorFlow (7-15 s each here) before they can fail.
SLOW_BAD_INPUTS = {"features --strict: corrupt file", "compare: one class", "compare: bad --param",
                   "predict: not a model", "tag: not a weights file", "autoencoder export: not a model"}


def bad_inputs(tmp_path: Path, data: Path) -> dict[str, tuple[list, int, str]]:
    """name -> (arguments, exit code, a part of the message); the files are made by `bad_files`."""
    one_class, corrupt, empty, missing = (tmp_path / name for name in ("one", "corrupt", "empty", "missing"))
    return {
        "info: missing path": (["info", missing], 1, "missing: no such file or folder"),
        "info: empty folder": (["info", empty], 1, "empty: no audio files found"),
        "train: manifest without labels": (["train", tmp_path / "no_label.csv", "--logdir", tmp_path / "runs"], 1,
                                           "lacks column(s) ['label']"),
        "features: bad suffix": (["features", data, "--out", tmp_path / "t.txt"], 2, "must end in .parquet or .csv"),
        "features --strict: corrupt file": (["features", corrupt, "--strict", "--out", tmp_path / "t.csv"], 1,
                                            "dog_0.wav: corrupt or unsupported .wav file"),
        "embed: unknown model": (["embed", data, "--model", "nosuch", "--out", tmp_path / "e"], 2,
                                 "unknown representation 'nosuch'"),
        "embed: missing path": (["embed", missing, "--model", "handcrafted", "--out", tmp_path / "e"], 1,
                                "no such file or folder"),
        "compare: one class": (["compare", one_class, "--model", "handcrafted", "--out", tmp_path / "r"], 1,
                               "fewer than 2 classes"),
        "compare: bad --param": (["compare", data, "--param", "rf.n_estimators", "--out", tmp_path / "r"], 2,
                                 "cannot read hyperparameter 'rf.n_estimators'"),
        "train: one class": (["train", one_class, "--logdir", tmp_path / "runs"], 1, "only one class ('dog'"),
        "train: bad option": (["train", data, "--epochs", "many"], 2, "'many' is not a valid integer"),
        "predict: not a model": (["predict", empty, data / "dog" / "dog_0.wav"], 1, "not an exported model"),
        "tag: not a weights file": (["tag", data / "dog" / "dog_0.wav", "--weights", tmp_path / "not_h5.h5"], 1,
                                    "not_h5.h5: not an HDF5 weights file"),
        "visualize: unknown model": (["visualize", data, "--model", "nosuch", "--out", tmp_path / "v.html"], 1,
                                     "unknown representation 'nosuch'"),
        "visualize: bad suffix": (["visualize", data, "--model", "handcrafted", "--out", tmp_path / "v.txt"], 2,
                                  "must end in .html"),
        "projector: missing path": (["projector", missing, "--model", "handcrafted", "--out", tmp_path / "p"], 1,
                                    "no such file or folder"),
        "autoencoder export: not a model": (["autoencoder", "export", empty, "--out", tmp_path / "x"], 1,
                                            "not a saved autoencoder"),
        "autoencoder train: no folds": (["autoencoder", "train", data, "--fold", "3", "--out", tmp_path / "ae"], 2,
                                        "has no fold column"),
        "datasets fetch: digest without url": (["datasets", "fetch", "esc10", "--sha256", "0" * 64], 2,
                                               "--sha256 goes with --url"),
    }


def bad_files(tmp_path: Path, data: Path) -> None:
    """The bad input `bad_inputs` names: one class, a corrupt clip, an empty folder, a manifest
    without labels, a text file posing as weights."""
    write_tree(tmp_path / "one", classes=("dog",))
    shutil.copytree(data, tmp_path / "corrupt")
    (tmp_path / "corrupt" / "dog" / "dog_0.wav").write_bytes(b"RIFF" + bytes(60))
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_label.csv").write_text("filename\ndog/dog_0.wav\n")
    (tmp_path / "not_h5.h5").write_text("plain text")


@pytest.mark.parametrize("case", [
    pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_BAD_INPUTS else [])
    for name in bad_inputs(Path("tmp"), Path("data"))
])
def test_bad_input_gets_a_message_never_a_traceback(small_tree, tmp_path, case):
    bad_files(tmp_path, small_tree)
    args, expected_code, message = bad_inputs(tmp_path, small_tree)[case]

    code, out, err = cli(*args, home=tmp_path / "home")  # cli() asserts no traceback reached stderr

    assert code == expected_code, err
    assert message in err and error_lines(err)[-1].startswith("Error: ")
