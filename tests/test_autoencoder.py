"""The log-mel autoencoder: patching, masked loss, seeded training, the representation, saving,
export, the CLI and its figures; on ESC-10 when ../shared is present."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from helpers import TINY_AUTOENCODER as TINY
from helpers import TINY_AUTOENCODER_ARGS as TINY_ARGS
from helpers import cli
from helpers import noisy_tone as tone

from tfaudio.models.autoencoder.config import AutoencoderConfig, AutoencoderError


@pytest.fixture(scope="module")
def ae():
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.models.autoencoder import export, model, patches, train

    # One namespace over the autoencoder's modules, as the tests below read them.
    return SimpleNamespace(**{k: v for m in (model, patches, train, export) for k, v in vars(m).items()
                              if not k.startswith("__")})


@pytest.fixture(scope="module")
def dataset(synth_data):
    from tfaudio.data.dataset import load_dataset

    return load_dataset(synth_data)


@pytest.fixture(scope="module")
def trained(ae, dataset):
    return ae.train(dataset, None, TINY)


@pytest.fixture(scope="module")
def saved(synth_data, tmp_path_factory):
    """A model trained and saved by the CLI, with TensorBoard logs."""
    root = tmp_path_factory.mktemp("ae_cli")
    result = cli("autoencoder", "train", synth_data, "--out", root / "model", "--logdir", root / "runs",
                 "--examples-per-class", "1", *TINY_ARGS)
    assert result.exit_code == 0, result.output
    return root, result.output


# ------------------------------------------------------------------------------- configuration


def test_latent_larger_than_the_input_is_refused_with_the_sizes():
    with pytest.raises(AutoencoderError, match=r"32 frames x 64 mel bands = 2048 values"):
        AutoencoderConfig(patch_frames=32, latent=5000)
    with pytest.raises(AutoencoderError, match="multiple of 8"):
        AutoencoderConfig(patch_frames=36)


def test_cli_refuses_a_latent_larger_than_the_input(synth_data, tmp_path):
    result = cli("autoencoder", "train", synth_data, "--out", tmp_path / "m", "--latent", "9000")
    assert result.exit_code == 1
    assert "latent size 9000 is not smaller than the input" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------- front end


def test_patches_cover_each_clip_and_mask_its_padding(ae):
    import tensorflow as tf

    config = TINY  # 32-frame patches every 16 frames, 10 ms frames, centred
    long, short = tone(1.0), tone(0.2, 1000.0)
    batch = np.zeros((2, long.size), np.float32)
    batch[0], batch[1, : short.size] = long, short
    lengths = tf.constant([long.size, short.size], tf.int32)
    spectrogram, valid = ae.log_mel(tf.constant(batch), lengths, config)
    cut, frame_mask, patch_mask = (t.numpy() for t in ae.patches(spectrogram, valid, config))
    assert valid.numpy().tolist() == [101, 21]  # 1 + samples // 160
    # 101 frames need 1 + ceil((101 - 32) / 16) = 6 patches; 21 frames fit in one padded patch.
    assert patch_mask.sum(axis=1).tolist() == [6, 1]
    assert frame_mask[1, 0].sum() == 21 and not frame_mask[1, 1:].any()
    assert frame_mask[0, 5].sum() == 101 - 5 * 16
    # The short clip's valid frames are those of the clip alone, whatever the batch held.
    alone, alone_valid = ae.log_mel(tf.constant(short[np.newaxis]), tf.constant([short.size]), config)
    np.testing.assert_allclose(cut[1, 0, :21], alone.numpy()[0, :21], atol=1e-4)


def test_masked_loss_ignores_padding_frames(ae):
    rng = np.random.default_rng(0)
    stacked = rng.standard_normal((2, 8, 4, 2)).astype(np.float32)
    mask = np.zeros((2, 8), np.float32)
    mask[:, :3] = 1.0
    loss = np.asarray(ae.masked_squared_error(mask, stacked))
    expected = ((stacked[:, :3, :, 0] - stacked[:, :3, :, 1]) ** 2).sum(axis=(1, 2)) / (8 * 4)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    noisy = stacked.copy()
    noisy[:, 3:] += 100.0  # garbage in the padding changes nothing
    np.testing.assert_allclose(np.asarray(ae.masked_squared_error(mask, noisy)), expected, rtol=1e-5)
    metric = ae.MaskedMSE()
    metric.update_state(mask, noisy)
    np.testing.assert_allclose(float(metric.result()), expected.sum() * 32 / (2 * 3 * 4), rtol=1e-5)


# ------------------------------------------------------------------------------- training


def test_training_lowers_the_validation_error_and_keeps_the_best_epoch(trained):
    val = trained.history["val_masked_mse"]
    assert len(val) == TINY.epochs
    assert min(val) < val[0]
    assert trained.best_epoch == int(np.argmin(val)) + 1
    assert 0 < trained.val_drop < 1
    # 8 of 80 clips held out, stratified: two per class.
    assert len(trained.val_clips) == 8 and not set(trained.val_clips) & set(trained.train_clips)


def test_training_records_the_clips_it_learned_from(ae, dataset, trained, tmp_path):
    from tfaudio.assets import sha256_of
    from tfaudio.models import registry

    # Every decoded clip: the validation clips chose the epoch kept, so they shaped the weights too.
    assert trained.trained_on == tuple(sorted(sha256_of(c.path) for c in dataset.clips))
    assert trained.representation().trained_on == frozenset(trained.trained_on)
    folder = ae.save(trained, tmp_path / "model")
    assert json.loads((folder / "autoencoder.json").read_text())["trained_on_sha256"] == list(trained.trained_on)
    assert registry.get(f"autoencoder:{folder}").trained_on == frozenset(trained.trained_on)
    assert ae.load_representation(folder).trained_on == frozenset(trained.trained_on)
    part = ae.train(dataset, np.flatnonzero(dataset.folds == 3), TINY)
    assert part.trained_on == tuple(sorted(sha256_of(dataset.clips[i].path) for i in np.flatnonzero(dataset.folds == 3)))


def test_models_of_one_config_share_one_traced_graph(ae, caplog):
    """A comparison loads one model per split: each used to trace its own graph, and from the
    fifth TensorFlow logged its retracing warning. Now one trace serves every model of a config,
    and each still computes with its own weights."""
    import logging

    import keras
    import tensorflow as tf

    config = AutoencoderConfig(**{**TINY.to_dict(), "latent": 12})  # a config no other test traces
    batch, lengths = np.stack([tone(1.3), tone(1.3, 2500.0)]), np.array([20800, 9000])
    encode, reconstruct = ae._graphs(config, "float32")
    outputs = []
    with caplog.at_level(logging.WARNING):
        for seed in range(6):
            keras.utils.set_random_seed(seed)
            model = ae.Autoencoder(config)
            latent, mask = model.encode(batch, lengths)
            own, own_mask = model._encode(tf.constant(batch), tf.constant(lengths, tf.int32))  # its own weights, eager
            np.testing.assert_allclose(latent, own.numpy(), atol=1e-5)
            assert mask.tolist() == own_mask.numpy().tolist()
            spectrogram, rebuilt, _ = model.reconstruct(batch, lengths)
            assert rebuilt.shape == spectrogram.shape
            outputs.append(latent)
    assert encode.experimental_get_tracing_count() == 1 and reconstruct.experimental_get_tracing_count() == 1
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3  # other weights, other vectors: nothing shared but the graph
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_same_seed_same_embeddings(ae, dataset, trained):
    again = ae.train(dataset, None, TINY)
    batch, lengths = np.stack([tone(1.0), tone(1.0, 3000.0)]), np.array([16000, 16000])
    first = trained.representation().embed(batch, lengths)
    np.testing.assert_array_equal(again.representation().embed(batch, lengths), first)
    assert trained.representation().identity() == again.representation().identity()
    assert np.abs(first[0] - first[1]).max() > 1e-3  # not a constant map: two tones differ


def test_too_few_clips_for_one_batch_is_a_clear_error(ae, dataset, synth_data, tmp_path):
    with pytest.raises(AutoencoderError, match="fewer than one batch of 512"):
        ae.train(dataset, np.arange(10), AutoencoderConfig(batch_size=512, epochs=1))
    with pytest.raises(AutoencoderError, match="at least 2 clips"):
        ae.train(dataset, np.arange(1), TINY)
    result = cli("autoencoder", "train", synth_data, "--out", tmp_path / "m", "--batch-size", "100000")
    assert result.exit_code == 1 and "fewer than one batch of 100000" in result.output
    assert "Traceback" not in result.output


def test_clips_shorter_than_a_patch_are_padded_and_trained_on(ae, tmp_path):
    from tfaudio.data.dataset import load_dataset
    from tfaudio.data.synth import SynthConfig, make_dataset

    short = load_dataset(make_dataset(tmp_path / "short", SynthConfig(clips_per_class=6, duration=0.15)))
    result = ae.train(short, None, AutoencoderConfig(**{**TINY.to_dict(), "epochs": 1, "batch_size": 8}))
    assert len(result.patches.patches) == len(short)  # one patch per clip
    assert result.patches.frame_mask.sum(axis=1).max() == 1 + 2400 // 160  # 16 of 32 frames are real
    frames = result.representation().frames(np.stack([tone(0.15)]), np.array([2400]))
    assert frames.mask.tolist() == [[True]] and np.isfinite(frames.embeddings).all()


def test_fit_autoencoder_trains_on_the_given_clips_only(ae, dataset, trained, monkeypatch):
    seen = []
    original = ae.extract_patches

    def spy(data, indices, *args, **kwargs):
        seen.extend(int(i) for i in indices)
        return original(data, indices, *args, **kwargs)

    from tfaudio.models.autoencoder import train as train_module

    monkeypatch.setattr(train_module, "extract_patches", spy)
    train_indices = np.flatnonzero(dataset.folds != 1)
    representation = ae.fit_autoencoder(dataset, train_indices, TINY)
    assert sorted(seen) == sorted(train_indices.tolist())
    assert representation.dim == TINY.latent
    assert len(representation.identity()["weights_sha256"]) == 64
    # Other training clips, other weights: the cache key differs.
    assert representation.identity() != trained.representation().identity()


def test_registry_autoencoder_is_learned_and_must_be_fitted_first():
    from tfaudio.models import registry
    from tfaudio.models.base import LearnedRepresentation

    learner = registry.get("autoencoder")
    assert isinstance(learner, LearnedRepresentation)
    assert (learner.dim, learner.default_pooling, learner.sample_rate) == (64, "mean+std", 16000)
    for call in (learner.identity, lambda: learner.frames(np.zeros((1, 16000), np.float32), np.array([16000]))):
        with pytest.raises(registry.ModelUnavailable, match="must be fitted on training clips first.*autoencoder:FOLDER"):
            call()
    tiny = learner.configure({**TINY.to_dict(), "not_a_setting": 1})  # each learner takes what it knows
    assert tiny.config == TINY and tiny.dim == TINY.latent and learner.config == AutoencoderConfig()
    assert "trained 5 times" in tiny.fitting_note(5) and "3 epochs max, latent 16" in tiny.fitting_note(5)
    with pytest.raises(registry.ModelUnavailable, match="latent size 9000 is not smaller than the input"):
        learner.configure({"latent": 9000})
    with pytest.raises(ValueError, match="do not pass weights_path"):
        registry.get("autoencoder", weights_path="x.h5")


def test_fit_keeps_one_model_per_training_set_and_reloads_it(dataset, tmp_path, monkeypatch):
    from tfaudio.models import registry
    from tfaudio.models.autoencoder import train as train_module

    learner = registry.get("autoencoder").configure(TINY.to_dict())
    train_indices = np.flatnonzero(dataset.folds != 2)
    logs = []
    first = learner.fit(dataset, train_indices, models_dir=tmp_path, part="fold2", log=logs.append)
    assert logs == ["autoencoder: training on the 64 training clips of fold2"]
    (folder,) = (tmp_path / "autoencoders").iterdir()
    assert len(folder.name) == 16 and (folder / "autoencoder.weights.h5").is_file()

    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("a cached model was trained again"))
    again = learner.fit(dataset, train_indices, models_dir=tmp_path, part="fold2", log=logs.append)
    assert logs[1] == f"autoencoder: fold2's model is cached ({folder})"
    assert again.identity() == first.identity() and again.name == "autoencoder"
    batch = np.stack([tone(1.0), tone(1.0, 2500.0)])
    np.testing.assert_array_equal(again.embed(batch, np.array([16000, 16000])), first.embed(batch, np.array([16000, 16000])))
    monkeypatch.undo()
    with pytest.raises(registry.ModelUnavailable, match="at least 2 clips"):  # other clips: not cached, trained
        learner.fit(dataset, np.arange(1), models_dir=tmp_path)


# ------------------------------------------------------------------------------- representation


def test_save_and_load_give_the_same_embeddings(ae, trained, tmp_path):
    folder = ae.save(trained, tmp_path / "model")
    loaded = ae.load_representation(folder)
    batch, lengths = np.stack([tone(1.2), tone(1.2, 2500.0)]), np.array([19200, 12000])
    np.testing.assert_array_equal(loaded.embed(batch, lengths), trained.representation().embed(batch, lengths))
    assert loaded.identity()["config"] == trained.representation().identity()["config"]
    (folder / "autoencoder.json").write_text(json.dumps({"config": {**TINY.to_dict(), "latent": 8}}))
    with pytest.raises(AutoencoderError, match="weights do not fit"):
        ae.load_representation(folder)


def test_saved_model_loads_through_the_registry_with_a_weights_digest(ae, saved, trained):
    from tfaudio.assets import sha256_of
    from tfaudio.models import registry

    root, _ = saved
    lazy = registry.get(f"autoencoder:{root / 'model'}")
    identity = lazy.identity()
    assert identity["weights_sha256"] == sha256_of(root / "model" / "autoencoder.weights.h5")
    assert identity["config"]["latent"] == 16 and lazy.dim == 16
    loaded = lazy.loaded()
    assert loaded.identity() == identity
    record = json.loads((root / "model" / "autoencoder.json").read_text())
    assert record["weights_sha256"] == identity["weights_sha256"] and record["train_clips"] == 72
    assert AutoencoderConfig.from_dict(record["config"]).filters == (16, 32, 64)  # JSON list -> tuple
    batch = np.stack([tone(1.0)])
    assert lazy.embed(batch, np.array([16000])).shape == (1, 32)  # mean+std by default
    with pytest.raises(registry.ModelUnavailable, match="not a saved autoencoder"):
        registry.get(f"autoencoder:{root}")


def test_cli_train_writes_weights_logs_and_figures(saved):
    root, output = saved
    assert "validation masked MSE" in output and "autoencoder:" in output
    # Each state of the epochs bar shows the losses of the epoch it counts, not the one before.
    history = json.loads((root / "model" / "autoencoder.json").read_text())["history"]
    states = [line for line in re.split(r"[\r\n]", output) if line.startswith("training:") and "mse=" in line]
    assert states
    for line in states:
        epoch = int(re.search(r"\| (\d+)/3 \[", line).group(1))
        assert f"mse={history['masked_mse'][epoch - 1]:.4f}" in line, line
        assert f"val={history['val_masked_mse'][epoch - 1]:.4f}" in line, line
    figures = root / "model" / "figures"
    for name in ("reconstructions.png", "class_error.png", "loss.png"):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((root / "model" / "autoencoder.json").read_text())
    assert set(record["figures"]["class_error"]) == {"chirp", "clicks", "noise", "tone"}
    assert len(record["figures"]["examples"]) == 4  # one per class
    assert len(record["history"]["val_masked_mse"]) == 3
    assert list((root / "runs").glob("train/events.out.tfevents.*"))
    assert list((root / "runs").glob("validation/events.out.tfevents.*"))


@pytest.mark.slow
def test_html_page_renders_without_console_errors(saved):
    from browser import chromium, console_errors, open_page

    page = saved[0] / "model" / "figures" / "autoencoder.html"
    with chromium() as driver:
        open_page(driver, page)
        plots = driver.find_elements("css selector", ".plotly-graph-div")
        assert len(plots) == 3
        assert "Reconstruction error per class" in driver.page_source
        assert console_errors(driver) == []


def test_cli_embed_uses_the_autoencoder_and_its_cache(saved, synth_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))
    model = saved[0] / "model"
    args = ("embed", synth_data, "--model", f"autoencoder:{model}", "--out", tmp_path / "out")
    first = cli(*args)
    assert first.exit_code == 0, first.output
    files = list((tmp_path / "out").glob("*.parquet"))
    assert len(files) == 1
    table = pd.read_parquet(files[0])
    assert len(table) == 80 and sum(c.startswith("e0") for c in table.columns) == 2 * 16  # mean+std
    (files[0]).unlink()
    second = cli(*args)
    assert "80 cached, 0 computed" in second.output
    missing = cli("embed", synth_data, "--model", f"autoencoder:{tmp_path / 'nope'}", "--out", tmp_path / "o2")
    assert missing.exit_code == 1 and "no such folder" in missing.output and "Traceback" not in missing.output


def test_export_serves_waveforms_to_embeddings(ae, saved, tmp_path):
    import tensorflow as tf

    model = saved[0] / "model"
    result = cli("autoencoder", "export", model, "--out", tmp_path / "encoder")
    assert result.exit_code == 0, result.output
    served = tf.saved_model.load(str(tmp_path / "encoder")).signatures["serving_default"]
    wave = tone(2.0, 800.0)
    out = served(waveform=tf.constant(wave[np.newaxis]))
    representation = ae.load_representation(model)
    # the export's embedding is what `autoencoder:PATH` embeds: its default pooling (mean+std)
    expected = representation.embed(wave[np.newaxis], np.array([wave.size]))
    assert representation.default_pooling == "mean+std" and out["embedding"].shape == (1, 2 * 16)
    np.testing.assert_allclose(out["embedding"].numpy(), expected, atol=1e-4)
    mean = representation.embed(wave[np.newaxis], np.array([wave.size]), "mean")
    np.testing.assert_allclose(out["embedding_mean"].numpy(), mean, atol=1e-4)
    assert out["frames"].shape[-1] == 16


# ------------------------------------------------------------------------------- real data


@pytest.mark.shared
@pytest.mark.slow
def test_esc10_fold1_error_halves_and_random_forest_beats_55_percent(ae):
    from sklearn.ensemble import RandomForestClassifier

    from tfaudio.data.batches import iter_batches
    from tfaudio.data.dataset import load_dataset

    esc10 = load_dataset(shared_path("datasets", "esc10"))
    train_idx, test_idx = np.flatnonzero(esc10.folds != 1), np.flatnonzero(esc10.folds == 1)
    result = ae.train(esc10, train_idx, AutoencoderConfig())
    assert result.val_drop >= 0.5, result.history
    representation = result.representation()
    vectors = np.zeros((len(esc10), representation.pooled_dim("mean+std")), np.float32)
    for batch in iter_batches(esc10.clips, 16000, 100):
        vectors[batch.indices] = representation.embed(batch.waveforms, batch.lengths, "mean+std")
    labels = esc10.labels
    forest = RandomForestClassifier(300, random_state=0, n_jobs=2).fit(vectors[train_idx], labels[train_idx])
    accuracy = float((forest.predict(vectors[test_idx]) == labels[test_idx]).mean())
    assert accuracy >= 0.55, accuracy
