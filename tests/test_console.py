"""Every `tfaudio` command as a user runs it: the installed console script in its own process, on
small generated datasets, offline, with its own TFAUDIO_HOME. Each test checks the exit status,
the outputs, that no traceback reached stderr, that the process left within EXIT_SECONDS of its
last output line and left no worker behind (helpers.Finished.check); the last tests press
Ctrl-C in the middle of commands.

The command run is the console script beside this Python (`.venv/bin/tfaudio`), or the words of
TFAUDIO_CLI, which lets the same tests run another checkout's code, e.g.

    TFAUDIO_CLI="$PWD/.venv/bin/python -m tfaudio.cli" PYTHONPATH=/path/to/checkout \\
        .venv/bin/python -m pytest tests/test_console.py

Commands that need YAMNet's weights take them from ../shared/models and are skipped without it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from helpers import Finished, run_process

CLI = shlex.split(os.environ.get("TFAUDIO_CLI", "")) or [str(Path(sys.executable).parent / "tfaudio")]

#: Generated datasets (`tfaudio datasets synth`, 4 classes, 5 folds). SMALL for most commands;
#: MANY for compare and demo: 200 clips x 104 hand-crafted values is over the 20,000 from which
#: `compare` fits the MLP's and the linear probe's splits in a pool of worker processes, the
#: pool that once kept the process alive for minutes after the report.
SMALL = ("--clips-per-class", "5", "--duration", "1.0")
MANY = ("--clips-per-class", "50", "--duration", "0.25")
CLASSES = ["chirp", "clicks", "noise", "tone"]


def tfaudio(*args, env: dict, cwd: Path, **options) -> Finished:
    """`tfaudio ARGS` in `cwd` with the environment `env` (see helpers.run_process)."""
    return run_process([*CLI, *(os.fsdecode(a) for a in args)], env=env, cwd=cwd, **options)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    if not shutil.which(CLI[0]):
        pytest.fail(f"{CLI[0]} is not installed: `pip install -e .` (make test does) installs the console script")
    return tmp_path_factory.mktemp("console")


@pytest.fixture(scope="module")
def env(root) -> dict:
    """A user's environment without weights or data of ours: offline, a fresh TFAUDIO_HOME."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TFAUDIO_MODELS", "TFAUDIO_DATA", "KERAS_HOME", "TFAUDIO_STORE")}
    environment.update(TFAUDIO_HOME=str(root / "home"), TFAUDIO_OFFLINE="1")
    return environment


@pytest.fixture(scope="module")
def weights_env(env) -> dict:
    """`env` with the real pretrained weights of ../shared/models (skips where it is absent)."""
    return {**env, "TFAUDIO_MODELS": str(shared_path("models", "yamnet", "yamnet.h5").parents[1])}


@pytest.fixture(scope="module")
def data(root, env) -> SimpleNamespace:
    """The two datasets, written by `tfaudio datasets synth` (and the runs that wrote them)."""
    small = tfaudio("datasets", "synth", "small", *SMALL, env=env, cwd=root)
    many = tfaudio("datasets", "synth", "many", *MANY, env=env, cwd=root)
    return SimpleNamespace(small=root / "small", many=root / "many", runs=(small, many))


def manifest(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "meta.csv")


def assert_vectors(table: pd.DataFrame, clips: int, dim: int) -> np.ndarray:
    """The e0000... columns of an embedding table: `clips` rows of `dim` finite values."""
    columns = [c for c in table.columns if c.startswith("e") and c[1:].isdigit()]
    vectors = table[columns].to_numpy()
    assert vectors.shape == (clips, dim), vectors.shape
    assert np.isfinite(vectors).all() and vectors.std(axis=0).max() > 0
    return vectors


# ------------------------------------------------------------------------------------- datasets


def test_datasets_synth_writes_clips_and_a_manifest(data):
    for run, folder, count in zip(data.runs, (data.small, data.many), (20, 200)):
        run.check()
        assert run.last_line("stdout") == f"wrote {count} clips in 4 classes to {folder.name}"
        table = manifest(folder)
        assert len(table) == count and sorted(table.label.unique()) == CLASSES
        assert sorted(table.fold.unique()) == [1, 2, 3, 4, 5]
        assert all((folder / name).is_file() for name in table.filename)


def test_info_summarizes_the_dataset(data, root, env):
    text = tfaudio("info", "small", env=env, cwd=root).check().stdout
    assert "20 readable in 4 classes" in text and "folds      1, 2, 3, 4, 5" in text
    facts = json.loads(tfaudio("info", "small", "--json", env=env, cwd=root).check().stdout)
    assert facts["clips"] == 20 and facts["classes"] == CLASSES
    assert facts["clips_per_class"] == dict.fromkeys(CLASSES, 5)


def test_info_system_describes_the_machine(root, env):
    text = tfaudio("info", "--system", env=env, cwd=root).check().stdout
    assert text.startswith("tfaudio ") and "TensorFlow" in text and env["TFAUDIO_HOME"] in text
    facts = json.loads(tfaudio("info", "--system", "--json", env=env, cwd=root).check().stdout)
    assert facts["home"] == env["TFAUDIO_HOME"] and facts["cores"] >= 1 and facts["python"]


# ------------------------------------------------------------------------------------ embedding


def test_features_writes_one_row_per_clip(data, root, env):
    run = tfaudio("features", "small", "--out", "features.parquet", env=env, cwd=root).check()
    assert run.last_line("stdout").startswith("wrote 20 clips x 104 features to features.parquet")
    table = pd.read_parquet(root / "features.parquet")
    assert len(table) == 20 and sorted(table.label.unique()) == CLASSES
    features = table.drop(columns=[c for c in ("file", "label", "fold", "group") if c in table])
    assert features.shape[1] == 104 and np.isfinite(features.to_numpy(float)).all()


@pytest.fixture(scope="module")
def embedded(data, root, env) -> Finished:
    """The hand-crafted baseline of SMALL embedded locally into the store `root/store`."""
    return tfaudio("embed", "small", "--model", "handcrafted", "--out", "embedded", "--store", "store",
                   env=env, cwd=root)


def test_embed_locally(embedded, root):
    embedded.check()
    assert "handcrafted: 20 clips -> " in embedded.stdout and "20 computed" in embedded.stdout
    assert_vectors(pd.read_parquet(root / "embedded" / "handcrafted.parquet"), 20, 104)


def test_embed_on_beam_gives_the_local_vectors(embedded, root, env):
    pytest.importorskip("apache_beam", reason="Beam is the optional extra tfaudio[beam] (make test installs it)")
    from tfaudio.store import read_embeddings

    run = tfaudio("embed", "small", "--model", "handcrafted", "--out", "beam", "--store", "beam-store",
                  "--runner", "direct", "--num-workers", "2", env=env, cwd=root).check()
    assert "on Beam" in run.stdout and "20 computed" in run.stdout
    beam = read_embeddings(root / "beam", "handcrafted").sort_values("file", ignore_index=True)
    local = pd.read_parquet(root / "embedded" / "handcrafted.parquet").sort_values("file", ignore_index=True)
    assert list(beam.file) == list(local.file)
    np.testing.assert_allclose(assert_vectors(beam, 20, 104), assert_vectors(local, 20, 104), rtol=1e-5, atol=1e-6)


def test_embed_with_yamnet(data, root, weights_env):
    run = tfaudio("embed", "small", "--model", "yamnet", "--out", "yamnet", env=weights_env, cwd=root).check()
    assert "yamnet: 20 clips -> " in run.stdout
    assert_vectors(pd.read_parquet(root / "yamnet" / "yamnet.parquet"), 20, 1024)


def test_tag_names_audioset_classes(data, root, weights_env):
    files = ["small/tone/tone_000.wav", "small/noise/noise_001.wav"]
    text = tfaudio("tag", *files, "--top", "2", env=weights_env, cwd=root).check().stdout
    for name in files:
        assert f"{name}  (1.00 s)" in text
    lines = text.splitlines()
    assert sum(line.strip().startswith("overall") for line in lines) == 2
    assert sum(line.strip().startswith("0.48 s") for line in lines) == 2
    assert "Water" in text  # filtered noise sounds like water to YAMNet


def test_models_lists_every_representation(root, env):
    text = tfaudio("models", env=env, cwd=root).check().stdout
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line[:1].isalpha()}
    assert rows["handcrafted"][1:4] == ["104", "16000", "yes"]
    for name in ("yamnet", "vggish", "wav2vec2"):
        assert rows[name][3] == "no", text  # offline, no weights here


def test_store_info_compact_gc(embedded, data, root, env):
    embedded.check()
    # A second run of the same model on other clips adds a second shard to the same key.
    tfaudio("embed", "many", "--model", "handcrafted", "--out", "embedded-many", "--store", "store",
            env=env, cwd=root).check()
    info = tfaudio("store", "info", "--store", "store", env=env, cwd=root).check().stdout
    keys = [line.split() for line in info.splitlines() if "handcrafted" in line]
    assert len(keys) == 1 and keys[0][3:5] == ["220", "2"], info  # vectors, shards
    key = keys[0][0]
    compact = tfaudio("store", "compact", "--store", "store", env=env, cwd=root).check().stdout
    assert f"{key}: 2 shard(s) -> 1" in compact
    info = tfaudio("store", "info", "--store", "store", env=env, cwd=root).check().stdout
    assert next(line.split() for line in info.splitlines() if key in line)[3:5] == ["220", "1"], info
    listed = tfaudio("store", "gc", "--store", "store", "--key", key, "--dry-run", env=env, cwd=root).check()
    assert "would delete" in listed.stdout and (root / "store" / key).is_dir()
    tfaudio("store", "gc", "--store", "store", "--key", key, env=env, cwd=root).check()
    assert not (root / "store" / key).exists()
    info = tfaudio("store", "info", "--store", "store", env=env, cwd=root).check().stdout
    assert key not in info


# ------------------------------------------------------------------------------------ comparing


def assert_report(folder: Path, clips: int, runs: int) -> None:
    """A complete comparison report in `folder`, whose predictions.csv holds one row per clip
    and one column of predicted labels per run (representation/classifier)."""
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "metrics.json", "predictions.csv",
                                                         "report.md", "timings.json"]
    assert (folder / "index.html").read_text().rstrip().endswith("</html>")
    assert json.loads((folder / "metrics.json").read_text())
    predictions = pd.read_csv(folder / "predictions.csv")
    predicted = [c for c in predictions.columns if "/" in c]
    assert len(predictions) == clips and len(predicted) == runs, predictions.columns
    assert set(predictions[predicted].stack()) <= set(CLASSES)


def test_compare_exits_once_the_report_is_written(data, root, env):
    run = tfaudio("compare", "many", "--model", "handcrafted", "--classifier", "logreg", "--classifier", "mlp",
                  "--out", "report", env=env, cwd=root).check()
    assert run.last_line("stdout") == "Report: report/index.html"
    assert "handcrafted" in run.stdout and "MLP" in run.stdout
    assert_report(root / "report", 200, 2)


def test_demo_on_local_data_lists_unavailable_models(data, root, env):
    # Two stratified folds: two autoencoders to train instead of five, the splits still fitted in a pool.
    run = tfaudio("demo", "--out", "demo", "--classifier", "logreg", "--classifier", "mlp", "--split", "stratified",
                  "--folds", "2", "--fit", "autoencoder.epochs=1", env={**env, "TFAUDIO_DATA": str(data.many)},
                  cwd=root).check()
    assert run.last_line("stdout") == "Report: demo/index.html"
    for name in ("yamnet", "vggish", "wav2vec2"):
        assert f"{name}: unavailable" in run.stdout
    assert "autoencoder" in run.stdout
    assert_report(root / "demo", 200, 4)  # handcrafted and the autoencoder, two classifiers each


# ------------------------------------------------------------------------------------- pictures


def test_visualize_writes_a_page(data, root, env):
    run = tfaudio("visualize", "small", "--model", "handcrafted", "--method", "pca", "--out", "page.html",
                  "--thumbnail-seconds", "0.5", "--audio-rate", "8000", env=env, cwd=root).check()
    assert run.last_line("stdout").startswith("wrote page.html (20 clips, 4 classes")
    page = (root / "page.html").read_text()
    assert page.rstrip().endswith("</html>") and "data:audio/" in page
    assert all(name in page for name in CLASSES)


def test_projector_writes_tensorboard_files(data, root, env):
    run = tfaudio("projector", "small", "--model", "handcrafted", "--out", "projector", env=env, cwd=root).check()
    assert "tensorboard --logdir projector" in run.stdout
    folder = root / "projector"
    assert {"projector_config.pbtxt", "metadata.tsv", "sprite.png"} <= {p.name for p in folder.iterdir()}
    metadata = pd.read_csv(folder / "metadata.tsv", sep="\t")
    assert len(metadata) == 20 and sorted(metadata.iloc[:, 0].unique()) == CLASSES


# ------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(data, root, env) -> Finished:
    """A small CNN trained for one epoch on SMALL and exported to root/saved/small."""
    return tfaudio("train", "small", "--backbone", "small_cnn", "--epochs", "1", "--fine-tune-epochs", "0",
                   "--learning-rate", "0.001", "--batch-size", "8", "--out", "saved/small", "--logdir", "runs/small",
                   env=env, cwd=root)


def test_train_exports_a_model_and_its_curves(trained, root):
    trained.check()
    assert "phase 1 epoch 1/1" in trained.stdout + trained.stderr
    assert trained.last_line("stdout") == "exported: saved/small/1"
    assert (root / "saved" / "small" / "1" / "saved_model.pb").is_file()
    logs = root / "runs" / "small"
    assert {"curves.html", "curves.png", "history.csv", "metrics.json"} <= {p.name for p in logs.iterdir()}
    metrics = json.loads((logs / "metrics.json").read_text())["metrics"]
    assert 0 <= metrics["accuracy"] <= 1 and metrics["class_names"] == CLASSES
    assert len(pd.read_csv(logs / "history.csv")) == 1


def test_predict_classifies_files(trained, root, env):
    trained.check()
    files = ["small/tone/tone_000.wav", "small/chirp/chirp_001.wav"]
    run = tfaudio("predict", "saved/small", *files, "--json", env=env, cwd=root).check()
    answers = [json.loads(line) for line in run.stdout.splitlines()]
    assert [a["file"] for a in answers] == files
    for answer in answers:
        assert answer["label"] in CLASSES and sorted(answer["probabilities"]) == CLASSES
        assert sum(answer["probabilities"].values()) == pytest.approx(1, abs=1e-4)


@pytest.fixture(scope="module")
def autoencoder(data, root, env) -> Finished:
    return tfaudio("autoencoder", "train", "small", "--out", "ae", "--epochs", "1", "--latent", "8",
                   "--patch-frames", "32", "--batch-size", "16", env=env, cwd=root)


def test_autoencoder_train_saves_the_model_and_figures(autoencoder, root):
    autoencoder.check()
    assert "--model autoencoder:ae" in autoencoder.stdout
    record = json.loads((root / "ae" / "autoencoder.json").read_text())
    assert record["config"]["latent"] == 8 and len(record["history"]["loss"]) == 1
    assert (root / "ae" / "autoencoder.weights.h5").is_file()
    assert {"autoencoder.html", "reconstructions.png"} <= {p.name for p in (root / "ae" / "figures").iterdir()}


def test_autoencoder_export_writes_a_savedmodel(autoencoder, root, env):
    autoencoder.check()
    run = tfaudio("autoencoder", "export", "ae", "--out", "ae-saved", env=env, cwd=root).check()
    assert "embedding [batch, 16]" in run.stdout and "reloaded" in run.stdout
    assert (root / "ae-saved" / "saved_model.pb").is_file()


# --------------------------------------------------------------------------------------- Ctrl-C

INTERRUPTED = [
    pytest.param(("compare", "many", "--model", "handcrafted", "--out", "report"),
                 "embedding handcrafted", id="compare-while-embedding"),
    pytest.param(("compare", "many", "--model", "handcrafted", "--classifier", "mlp", "--classifier", "logreg",
                  "--out", "report"), "classifiers:", id="compare-while-fitting"),
    pytest.param(("train", "many", "--backbone", "small_cnn", "--epochs", "500", "--patience", "500",
                  "--fine-tune-epochs", "0", "--out", "saved", "--logdir", "runs"),
                 "phase 1 epoch 2/", id="train-while-training"),
    # tfaudio itself stops with its one line, but Beam's worker processes are in the terminal's
    # process group, get the same SIGINT and print their own KeyboardInterrupt tracebacks. They
    # would need to start with SIGINT ignored (tfaudio/pipeline/beam.py: a worker command run
    # as `trap '' INT; exec python -m apache_beam.runners.worker.sdk_worker_main`).
    pytest.param(("embed", "many", "--model", "handcrafted", "--out", "embedded", "--runner", "direct",
                  "--num-workers", "2"), "Worker:", id="embed-on-beam",
                 marks=pytest.mark.xfail(strict=True, reason="Beam's workers print tracebacks on Ctrl-C")),
]


@pytest.mark.parametrize("args, when", INTERRUPTED)
def test_ctrl_c_stops_with_one_line(args, when, data, env, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the command is
    busy: it stops within seconds with one line and status 130, and writes no output."""
    if "--runner" in args:
        pytest.importorskip("apache_beam", reason="Beam is the optional extra tfaudio[beam] (make test installs it)")
    (tmp_path / "many").symlink_to(data.many, target_is_directory=True)
    run = tfaudio(*args, env={**env, "TFAUDIO_HOME": str(tmp_path / "home")}, cwd=tmp_path,
                  interrupt_when=lambda text: when in text)
    assert run.after_interrupt is not None, f"ended before {when!r} was printed\n{run.describe()}"
    run.check(code=130)
    assert run.after_interrupt < 5, run.describe()
    assert run.last_line("stderr") == "Interrupted." and run.stderr.count("Interrupted.") == 1, run.describe()
    assert not [line for line in run.stderr.splitlines() if line.startswith(("Error", "Aborted"))], run.describe()
    left = {p.name for p in tmp_path.iterdir()} - {"many", "home", "runs"}
    assert not left, f"written although interrupted: {left}"
