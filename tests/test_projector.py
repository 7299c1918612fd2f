"""TensorBoard embedding projector export: the files, `tfaudio projector`, and a real
TensorBoard server reading them through the projector plugin's HTTP endpoints."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_path

from tfaudio.data.dataset import load_dataset
from tfaudio.pipeline.local import EmbeddingTable, EmbedStats
from tfaudio.viz import VizError, export_tables
from tfaudio.viz.media import sprite
from tfaudio.viz.points import align
from tfaudio.viz.projector import metadata_tsv, tensor_names


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def viz_store(tmp_path_factory) -> Path:
    """The embedding cache test_viz.py uses too (same path), so data is embedded once."""
    return tmp_path_factory.getbasetemp() / "tfaudio-viz-store"


def fake_tables(dataset, dims=(16, 8)) -> list[EmbeddingTable]:
    """One table per dim: per-class centres plus noise (seeded)."""
    rng = np.random.default_rng(0)
    tables = []
    for number, dim in enumerate(dims):
        centres = {label: rng.normal(size=dim) * 3 for label in dataset.classes}
        vectors = np.stack([centres[c.label] + rng.normal(size=dim) * 0.3 for c in dataset.clips]).astype(np.float32)
        tables.append(EmbeddingTable(f"model {number}", "mean", dataset, dataset.clips, vectors, EmbedStats(len(dataset))))
    return tables


# ----------------------------------------------------------------------------------- pieces


def test_tensor_names_are_file_safe_and_unique():
    assert tensor_names(["yamnet", "hf:facebook/wav2vec2-base", "yamnet", "a b"]) == [
        "yamnet", "hf_facebook_wav2vec2-base", "yamnet_2", "a_b",
    ]


def test_metadata_rows_follow_tensor_rows_and_never_split(synth_data):
    from dataclasses import replace

    dataset = load_dataset(synth_data)
    clips = (replace(dataset.clips[0], label="odd\tlabel\nhere"), *dataset.clips[1:])
    dataset = replace(dataset, clips=clips, classes=tuple(sorted({c.label for c in clips})))
    lines = metadata_tsv(align(fake_tables(dataset))).splitlines()
    assert lines[0] == "label\tfile\tfold" and len(lines) == 81
    assert lines[1] == "odd label here\ttone/tone_000.wav\t1"
    assert all(line.count("\t") == 2 for line in lines)


def test_sprite_grid_shrinks_cells_to_fit_the_projector_limit():
    images = [np.full((64, 50), 1.0), None, np.zeros((64, 3))]
    canvas, cell = sprite(images)
    assert canvas.shape == (128, 128) and cell == 64  # 3 clips: a 2 x 2 grid
    assert canvas[:64, :64].min() > 0 and canvas[:64, 64:].max() == 0  # a clip without an image stays dark
    canvas, cell = sprite([np.ones((64, 10))] * 300, max_side=1000)
    assert cell == 55 and canvas.shape == (18 * 55, 18 * 55)  # ceil(sqrt(300)) = 18 cells a side


def test_export_writes_one_tensor_per_representation(synth_data, tmp_path):
    from google.protobuf import text_format
    from PIL import Image
    from tensorboard.plugins.projector import ProjectorConfig

    dataset = load_dataset(synth_data)
    result = export_tables(fake_tables(dataset), tmp_path / "run", progress=False)
    assert result.tensors == {"model_0": (80, 16), "model_1": (80, 8)} and result.sprite_cell == 64
    assert result.command == f"tensorboard --logdir {tmp_path / 'run'}"
    config = text_format.Parse((tmp_path / "run" / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert [e.tensor_name for e in config.embeddings] == ["model_0", "model_1"]
    assert all(e.metadata_path == "metadata.tsv" and list(e.sprite.single_image_dim) == [64, 64] for e in config.embeddings)
    import tensorflow as tf

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "run")))
    np.testing.assert_array_equal(reader.get_tensor("model_1"), fake_tables(dataset)[1].vectors)
    assert Image.open(tmp_path / "run" / "sprite.png").size == (9 * 64, 9 * 64)  # 80 clips: 9 x 9 grid


def test_nan_vectors_and_empty_sets_are_refused(synth_data, tmp_path):
    dataset = load_dataset(synth_data)
    tables = fake_tables(dataset, dims=(4,))
    tables[0].vectors[3, 1] = np.nan
    with pytest.raises(VizError, match=r"model 0: 1 of 80 clips have NaN or infinite embedding values \(tone/tone_003.wav\)"):
        export_tables(tables, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "projector_config.pbtxt").exists()


def test_cli_projector_prints_the_tensorboard_command(synth_data, viz_store, tmp_path):
    from tfaudio.cli.main import main

    logdir = tmp_path / "runs" / "synth"
    args = ["projector", str(synth_data), "--model", "handcrafted", "--out", str(logdir), "--store", str(viz_store)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"tensorboard --logdir {logdir}" in result.stdout and "handcrafted 80x104" in result.stdout
    assert (logdir / "metadata.tsv").read_text().count("\n") == 81
    assert "note:" not in result.stderr
    bad = CliRunner().invoke(main, ["projector", str(tmp_path / "missing"), "--model", "handcrafted", "--out", str(logdir)])
    assert bad.exit_code == 1 and "Traceback" not in bad.output and "missing" in bad.output


def test_cli_projector_old_logdir_spelling_still_works_with_a_note(synth_data, viz_store, tmp_path):
    from tfaudio.cli.main import main

    out = tmp_path / "old"
    args = ["projector", str(synth_data), "--model", "handcrafted", "--logdir", str(out), "--store", str(viz_store)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == "note: --logdir is now --out (the old spelling still works)"
    assert (out / "metadata.tsv").is_file() and f"wrote {out}:" in result.stdout
    neither = CliRunner().invoke(main, ["projector", str(synth_data), "--model", "handcrafted"])
    assert neither.exit_code == 2 and "Missing option '--out'" in neither.output
    assert "--logdir" not in CliRunner().invoke(main, ["projector", "--help"]).output  # the old spelling is hidden


# ------------------------------------------------------------------------- real TensorBoard


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def check_tensorboard_serves(logdir: Path, expected: dict[str, tuple[int, int]], timeout: float = 120.0) -> None:
    """Start `tensorboard --logdir` on 127.0.0.1, read the projector plugin's endpoints, stop it."""
    binary = shutil.which("tensorboard", path=str(Path(sys.executable).parent)) or shutil.which("tensorboard")
    if binary is None:
        pytest.skip("the tensorboard command is not installed")
    port = _free_port()
    base = f"http://127.0.0.1:{port}/data/plugin/projector"
    server = subprocess.Popen(
        [binary, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port), "--load_fast=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline, runs = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"tensorboard exited early: {server.stderr.read().decode()[-2000:]}")
            try:
                runs = json.loads(_get(f"{base}/runs"))
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert runs == ["."], f"projector runs after {timeout} s: {runs}"
        info = json.loads(_get(f"{base}/info?run=."))
        shapes = {e["tensorName"]: tuple(e["tensorShape"]) for e in info["embeddings"]}
        assert shapes == expected
        for name, (rows, dim) in expected.items():
            tensor = np.frombuffer(_get(f"{base}/tensor?run=.&name={name}&num_rows={rows}"), np.float32)
            assert tensor.size == rows * dim and np.isfinite(tensor).all()
            metadata = _get(f"{base}/metadata?run=.&name={name}").decode().splitlines()
            assert metadata[0] == "label\tfile\tfold" and len(metadata) == rows + 1
            png = _get(f"{base}/sprite_image?run=.&name={name}")
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
        from PIL import Image

        side = int(np.ceil(np.sqrt(rows)))
        cell = info["embeddings"][0]["sprite"]["singleImageDim"]
        assert Image.open(io.BytesIO(png)).size == (side * cell[0], side * cell[1])
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
def test_tensorboard_serves_an_export_of_generated_clips(synth_data, tmp_path):
    dataset = load_dataset(synth_data)
    export_tables(fake_tables(dataset), tmp_path / "run", progress=False)
    check_tensorboard_serves(tmp_path / "run", {"model_0": (80, 16), "model_1": (80, 8)})


@pytest.mark.shared
@pytest.mark.slow
def test_tensorboard_serves_the_esc10_yamnet_export(viz_store, tmp_path, monkeypatch):
    """Acceptance: the 400 ESC-10 clips embedded with YAMNet, exported, served by TensorBoard."""
    from tfaudio.viz.points import embed_tables

    esc10 = shared_path("datasets", "esc10")
    monkeypatch.setenv("TFAUDIO_MODELS", str(shared_path("models")))
    tables = embed_tables(load_dataset(esc10), ["yamnet"], store=viz_store, progress=False)
    result = export_tables(tables, tmp_path / "esc10", progress=False)
    assert result.tensors == {"yamnet": (400, 1024)}
    check_tensorboard_serves(tmp_path / "esc10", {"yamnet": (400, 1024)})
