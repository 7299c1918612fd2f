"""The embedding store: cached vectors, resuming, crash safety; the registry's lazy models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tfaudio.cli.main import main
from tfaudio.data.dataset import load_dataset
from tfaudio.models import registry
from tfaudio.models.base import FrameEmbeddings, Representation
from tfaudio.pipeline.local import EmbedConfig, embed_dataset
from tfaudio.store import FRAMES, EmbeddingStore


class Counting(Representation):
    """A transparent representation: frame t of a clip is (mean, max) of its samples in 100-sample
    blocks; it counts the clips it computes, so the tests see what the cache saved."""

    name = "counting"
    sample_rate = 16000
    frame_hop_seconds = 100 / 16000
    dim = 2

    def __init__(self, version: int = 1, fail_after: int | None = None):
        self.version = version
        self.computed = 0
        self.fail_after = fail_after

    def frames(self, waveforms, lengths):
        if self.fail_after is not None and self.computed >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.computed += len(waveforms)
        frames = waveforms.shape[1] // 100
        blocks = waveforms[:, : frames * 100].reshape(len(waveforms), frames, 100)
        values = np.stack([blocks.mean(axis=2), blocks.max(axis=2)], axis=-1)
        mask = np.arange(frames)[None, :] < (lengths // 100)[:, None]
        return FrameEmbeddings(values.astype(np.float32), mask)

    def identity(self):
        return {"model": self.name, "version": self.version}


def test_second_run_is_served_from_the_store(synth_data, tmp_path):
    ds = load_dataset(synth_data)
    store = EmbeddingStore(tmp_path / "store")
    model = Counting()
    first = embed_dataset(ds, model, store)
    assert (first.stats.computed, first.stats.cached, model.computed) == (80, 0, 80)
    again = embed_dataset(ds, model, store)
    assert (again.stats.computed, again.stats.cached, model.computed) == (0, 80, 80)
    np.testing.assert_array_equal(again.vectors, first.vectors)
    # Another pooling, or another identity, is another key: computed afresh.
    embed_dataset(ds, model, store, EmbedConfig(pooling="max"))
    assert model.computed == 160
    other = Counting(version=2)
    embed_dataset(ds, other, store)
    assert other.computed == 80


def test_vectors_follow_the_audio_content_not_the_path(synth_data, tmp_path):
    data = tmp_path / "copy"
    shutil.copytree(synth_data, data)
    store = EmbeddingStore(tmp_path / "store")
    embed_dataset(load_dataset(synth_data), Counting(), store)
    moved = Counting()
    table = embed_dataset(load_dataset(data), moved, store)
    assert moved.computed == 0 and table.stats.cached == 80
    # Changing a file's bytes makes it a new clip.
    (data / "tone" / "tone_000.wav").write_bytes((synth_data / "tone" / "tone_001.wav").read_bytes())
    edited = bytearray((data / "tone" / "tone_002.wav").read_bytes())
    edited[1000] ^= 0xFF  # one sample changes
    (data / "tone" / "tone_002.wav").write_bytes(bytes(edited))
    changed = Counting()
    embed_dataset(load_dataset(data), changed, store)
    assert changed.computed == 1  # tone_002; tone_000 now equals tone_001, which is cached


def test_an_interrupted_run_resumes_and_the_store_stays_readable(synth_data, tmp_path):
    ds = load_dataset(synth_data)
    store = EmbeddingStore(tmp_path / "store")
    flaky = Counting(fail_after=40)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(ds, flaky, store, EmbedConfig(batch_size=8, flush_every=16))
    shards = list((tmp_path / "store").rglob("part-*.parquet"))
    assert shards and not list((tmp_path / "store").rglob("*.tmp"))
    resumed = Counting()
    table = embed_dataset(ds, resumed, store, EmbedConfig(batch_size=8))
    assert table.stats.cached == 40 and resumed.computed == 40
    reference = embed_dataset(ds, Counting(), EmbeddingStore(tmp_path / "fresh"))
    np.testing.assert_allclose(table.vectors, reference.vectors, rtol=1e-6)


def test_corrupt_clips_are_skipped_and_the_rest_cached(synth_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    (data / "noise" / "noise_001.wav").write_bytes(b"garbage")
    ds = load_dataset(data)
    table = embed_dataset(ds, Counting(), EmbeddingStore(tmp_path / "store"))
    assert [p.path for p in table.stats.skipped] == [str(data / "noise" / "noise_001.wav")]
    assert len(table.clips) == 79 and table.vectors.shape == (79, 2)
    with pytest.raises(Exception, match="noise_001.wav"):
        embed_dataset(ds, Counting(), EmbeddingStore(tmp_path / "other"), EmbedConfig(strict=True))


def test_frames_are_stored_with_their_shapes(synth_data, tmp_path):
    ds = load_dataset(synth_data)
    store = EmbeddingStore(tmp_path / "store")
    table = embed_dataset(ds, Counting(), store, EmbedConfig(pooling=FRAMES))
    assert all(v.shape == (160, 2) for v in table.vectors)
    again = embed_dataset(ds, Counting(), store, EmbedConfig(pooling=FRAMES))
    assert again.stats.cached == 80
    assert all(np.array_equal(a, b) for a, b in zip(table.vectors, again.vectors))
    table.write(tmp_path / "frames.parquet")
    back = pd.read_parquet(tmp_path / "frames.parquet")
    assert list(back["frames"]) == [160] * 80
    np.testing.assert_array_equal(np.asarray(back["vector"][3]).reshape(160, 2), table.vectors[3])


def test_pooled_table_round_trips_through_parquet(synth_data, tmp_path):
    ds = load_dataset(synth_data)
    table = embed_dataset(ds, Counting(), EmbeddingStore(tmp_path / "s"), EmbedConfig(pooling="mean+std"))
    table.write(tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert list(back.columns) == ["file", "label", "fold", "group", "e0000", "e0001", "e0002", "e0003"]
    assert back["group"].isna().all()  # the synthetic manifest has no groups
    pd.testing.assert_frame_equal(
        back.drop(columns="group").astype({"fold": "Int64"}), table.to_frame().drop(columns="group"), check_dtype=False
    )


def test_handcrafted_through_the_registry_equals_the_named_baseline(synth_data, tmp_path):
    from tfaudio.models.handcrafted.extract import extract

    ds = load_dataset(synth_data)
    model = registry.get("handcrafted")
    table = embed_dataset(ds, model, EmbeddingStore(tmp_path / "s"))
    assert table.pooling == "mean+std"
    np.testing.assert_allclose(table.vectors, extract(ds).matrix, rtol=1e-4, atol=1e-4)
    assert model.identity() == model.loaded().identity()


def test_registry_knows_its_models_and_refuses_unknown_ones(monkeypatch, tmp_path):
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TFAUDIO_MODELS", raising=False)
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    with pytest.raises(ValueError, match="unknown representation 'yamnett'"):
        registry.get("yamnett")
    with pytest.raises(registry.ModelUnavailable, match="yamnet.h5"):
        registry.get("yamnet")
    status = {row.info.name: row for row in registry.describe()}
    assert status["handcrafted"].available and not status["yamnet"].available


def test_cached_and_up_to_date_runs_do_not_import_tensorflow(synth_data, tmp_path):
    """The point of lazy loading: everything cached -> no TensorFlow, no network."""
    store = tmp_path / "store"

    def embed(out: str):
        return [str(synth_data), "--model", "handcrafted", "--out", str(tmp_path / out), "--store", str(store)]

    first = CliRunner().invoke(main, ["embed", *embed("a")])
    assert first.exit_code == 0, first.output
    assert "0 cached, 80 computed" in first.output
    script = (
        "import sys; from tfaudio.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('TF', 'tensorflow' in sys.modules)\nsys.exit(code)\n"
    )

    def run_in_fresh_process(out: str):
        result = subprocess.run([sys.executable, "-c", script, "embed", *embed(out)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    cached = run_in_fresh_process("b")  # a new output file, served from the store
    assert "80 cached, 0 computed" in cached and "TF False" in cached
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "handcrafted.parquet"), pd.read_parquet(tmp_path / "b" / "handcrafted.parquet"))
    assert pd.read_parquet(tmp_path / "b" / "handcrafted.parquet").shape == (80, 4 + 104)
    again = run_in_fresh_process("b")  # the same command again: nothing to do
    assert "is up to date (80 clips, 0 skipped)" in again and "TF False" in again


def test_an_output_is_rewritten_when_the_data_changes(synth_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    args = ["embed", str(data), "--model", "handcrafted", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "s")]
    CliRunner().invoke(main, args)
    (data / "clicks" / "clicks_007.wav").write_bytes(b"broken")
    result = CliRunner().invoke(main, args)
    assert "79 cached, 0 computed, 1 skipped" in result.output
    assert "clicks_007.wav" in result.output
    again = CliRunner().invoke(main, args)
    assert "up to date (79 clips, 1 skipped)" in again.output and "clicks_007.wav" in again.output
    assert len(pd.read_parquet(tmp_path / "out" / "handcrafted.parquet")) == 79


def test_models_command_lists_availability(monkeypatch, tmp_path):
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    monkeypatch.delenv("TFAUDIO_MODELS", raising=False)
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines() if line and not line.startswith(" ")}
    assert " yes " in lines["handcrafted"] and " no " in lines["yamnet"]


def test_embed_with_an_unavailable_model_says_where_to_put_the_weights(monkeypatch, tmp_path, synth_data):
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    monkeypatch.delenv("TFAUDIO_MODELS", raising=False)
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["embed", str(synth_data), "--model", "yamnet", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "yamnet.h5" in result.output and "TFAUDIO_MODELS" in result.output


def test_identity_file_describes_the_key(synth_data, tmp_path):
    embed_dataset(load_dataset(synth_data), Counting(), EmbeddingStore(tmp_path))
    (about,) = tmp_path.rglob("identity.json")
    assert json.loads(about.read_text())["model"] == "counting"


def test_model_cards_are_the_models_own_facts(monkeypatch):
    """One table: `tfaudio models` lists the cards, the report reasons with them, and their
    sizes and timings are what the representations themselves report."""
    from conftest import shared_path

    from tfaudio.models.vggish.model import CHECKPOINT_VARIABLES
    from tfaudio.models.wav2vec2 import config as wav2vec2_config
    from tfaudio.models.wav2vec2.model import keep_keras_3

    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    cards = registry.CARDS
    assert set(cards) == {*registry.names(), "autoencoder"}
    assert all(row.info is cards[row.info.name] for row in registry.describe())
    assert registry.card_for("hf:facebook/wav2vec2-base-960h") is cards["wav2vec2"]
    assert registry.card_for("hf:facebook/wav2vec2-large-xlsr-53") is None and registry.card_for("bands") is None

    handcrafted = registry.get("handcrafted")
    card = cards["handcrafted"]
    assert (card.dim, card.sample_rate, card.hop_seconds) == (
        handcrafted.pooled_dim(handcrafted.default_pooling), handcrafted.sample_rate, handcrafted.frame_hop_seconds)
    assert CHECKPOINT_VARIABLES["vggish/fc2/biases"] == (cards["vggish"].dim,) == (128,)
    with keep_keras_3():
        from transformers import Wav2Vec2Config

    base = Wav2Vec2Config()  # facebook/wav2vec2-base's architecture
    assert (base.hidden_size, tuple(base.conv_kernel), tuple(base.conv_stride)) == (
        wav2vec2_config.BASE_HIDDEN_SIZE, wav2vec2_config.BASE_CONV_KERNEL, wav2vec2_config.BASE_CONV_STRIDE)
    assert (cards["wav2vec2"].dim, cards["wav2vec2"].receptive_seconds, cards["wav2vec2"].hop_seconds) == (768, 0.025, 0.02)
    assert (cards["autoencoder"].domain, cards["autoencoder"].frames(30.0)) == ("this dataset", 1)

    yamnet = registry.get("yamnet", weights_path=str(shared_path("models", "yamnet", "yamnet.h5")))
    out = yamnet.frames(np.zeros((1, 32000), np.float32), np.array([32000]))
    card = cards["yamnet"]
    assert (out.embeddings.shape[-1], yamnet.sample_rate, yamnet.frame_hop_seconds) == (
        card.dim, card.sample_rate, card.hop_seconds) == (1024, 16000, 0.48)


def test_model_kinds_name_every_spelling_and_the_commands_list_them(monkeypatch, tmp_path):
    """`--model` help and `tfaudio models` come from the registry's list, autoencoder:PATH included."""
    from tfaudio.store.formats import FORMATS

    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path))
    kinds = dict(registry.model_kinds())
    assert list(kinds)[: len(registry.names())] == registry.names()
    assert {"autoencoder", "autoencoder:PATH", "hub:HANDLE", "hf:NAME"} <= set(kinds)
    assert all(text and "\n" not in text for text in kinds.values())
    assert set(dict(registry.model_kinds(learned=False))) == set(kinds) - {"autoencoder"}
    listed = " ".join(CliRunner().invoke(main, ["models"]).output.split())
    assert all(f"{spelling} {text}" in listed or spelling in registry.names() for spelling, text in kinds.items())
    help_text = " ".join(CliRunner().invoke(main, ["embed", "--help"]).output.split())
    assert all(spelling in help_text for spelling, _ in registry.model_kinds(learned=False))
    assert f"[{'|'.join(FORMATS)}]" in help_text
    with pytest.raises(registry.UnknownModel, match="autoencoder:PATH, hub:HANDLE, hf:NAME"):
        registry.get("yamnett")


def test_a_registered_model_is_listed_built_and_removed(synth_data, tmp_path):
    from tfaudio.models.card import ModelCard, ModelEntry, no_weights

    card = ModelCard("counting", 2, 16000, "none (computed)", "block means and maxima", "nothing", None, None,
                     "hand-crafted")
    registry.register(ModelEntry(card, no_weights("counting"), lambda source: Counting(version=7)))
    try:
        assert "counting" in registry.names() and registry.CARDS["counting"] is card
        assert dict(registry.model_kinds())["counting"] == "block means and maxima"
        assert registry.get("counting").identity() == {"model": "counting", "version": 7}
        with pytest.raises(ValueError, match="taken"):
            registry.register(ModelEntry(card, no_weights("counting"), lambda source: Counting()))
        result = CliRunner().invoke(main, ["embed", str(synth_data), "--model", "counting",
                                           "--out", str(tmp_path / "o"), "--store", str(tmp_path / "s")])
        assert result.exit_code == 0 and "80 clips" in result.output, result.output
    finally:
        registry.unregister("counting")
    assert "counting" not in registry.names() and "counting" not in registry.CARDS
    with pytest.raises(ValueError, match="built in"):
        registry.unregister("yamnet")
    with pytest.raises(registry.UnknownModel):
        registry.get("counting")
