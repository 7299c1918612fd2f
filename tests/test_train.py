"""Transfer learning: checks before training, splits, augmentation, freezing, the two phases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import shared_path

from tfaudio.data.dataset import load_dataset
from tfaudio.training.config import AugmentConfig, TrainConfig, TrainingError
from tfaudio.training.inputs import WaveAugmenter, check_classes, class_weights, validation_split


@pytest.fixture(autouse=True)
def _tmp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))


def _write(path: Path, seconds: float = 0.5, freq: float = 440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)


def _run_cli(*args):
    from tfaudio.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args])


# ----------------------------------------------------------------------------- bad input, before training


def test_one_class_is_refused_before_training(tmp_path):
    for i in range(3):
        _write(tmp_path / "data" / "dog" / f"{i}.wav")
    with pytest.raises(TrainingError, match="only one class \\('dog', 3 clips\\)"):
        from tfaudio.training import train

        train(tmp_path / "data", TrainConfig(), logdir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # nothing was started
    result = _run_cli("train", tmp_path / "data", "--logdir", tmp_path / "runs")
    assert result.exit_code == 1 and "only one class" in result.output and "Traceback" not in result.output


def test_class_with_a_single_clip_is_named(tmp_path):
    for i in range(3):
        _write(tmp_path / "data" / "dog" / f"{i}.wav")
    _write(tmp_path / "data" / "cat" / "lonely.wav")
    dataset = load_dataset(tmp_path / "data")
    with pytest.raises(TrainingError, match="'cat' have a single clip \\(.*lonely.wav\\)"):
        check_classes(dataset)
    result = _run_cli("train", tmp_path / "data", "--logdir", tmp_path / "runs")
    assert result.exit_code == 1 and "lonely.wav" in result.output and not (tmp_path / "runs").exists()


def test_no_validation_clips_is_refused(synth_data, tmp_path):
    dataset = load_dataset(synth_data)
    with pytest.raises(TrainingError, match="no validation clips: no clip is in fold 9"):
        validation_split(dataset, TrainConfig(val_fold=9))
    result = _run_cli("train", synth_data, "--val-fold", "9", "--logdir", tmp_path / "runs")
    assert result.exit_code == 1 and "no validation clips" in result.output and not (tmp_path / "runs").exists()


def test_mobilenet_weights_unavailable_offline_fail_before_training(synth_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    monkeypatch.delenv("TFAUDIO_MODELS", raising=False)
    result = _run_cli("train", synth_data, "--backbone", "mobilenet_v2", "--logdir", tmp_path / "runs")
    assert result.exit_code == 1
    assert "mobilenet_v2 weights are unavailable" in result.output
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5" in result.output
    assert "TFAUDIO_OFFLINE=1" in result.output and "Traceback" not in result.output
    assert "--backbone small_cnn" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_bad_settings_are_refused():
    with pytest.raises(TrainingError, match="unknown backbone"):
        TrainConfig(backbone="resnet")
    with pytest.raises(TrainingError, match="needs a folder of background-noise clips"):
        AugmentConfig(kinds=("noise",))
    with pytest.raises(TrainingError, match="unknown augmentation"):
        AugmentConfig(kinds=("pitch",))


# ----------------------------------------------------------------------------- splits and weights


def test_group_aware_split_keeps_each_speaker_on_one_side(tmp_path):
    rows = ["filename,label,speaker"]
    for speaker in range(10):
        for label in ("yes", "no"):
            for take in range(2):
                name = f"{label}/{speaker}_{take}.wav"
                _write(tmp_path / name, 0.2, 300 + 100 * speaker)
                rows.append(f"{name},{label},s{speaker}")
    (tmp_path / "meta.csv").write_text("\n".join(rows) + "\n")
    dataset = load_dataset(tmp_path, group_column="speaker")
    split = validation_split(dataset, TrainConfig())
    assert "group-aware" in split.how
    groups = dataset.groups
    assert not set(groups[split.train]) & set(groups[split.val])
    assert 0.1 <= len(split.val) / len(dataset) <= 0.3


def test_stratified_split_and_class_weights(tmp_path):
    for label, count in (("a", 30), ("b", 10)):
        for i in range(count):
            _write(tmp_path / label / f"{i}.wav", 0.2)
    dataset = load_dataset(tmp_path)
    split = validation_split(dataset, TrainConfig(val_fraction=0.2))
    assert split.how.startswith("stratified") and len(split.val) == 8
    assert np.bincount(dataset.labels[split.val]).tolist() == [6, 2]  # class proportions kept
    weights = class_weights(dataset.labels[split.train], 2)
    counts = np.bincount(dataset.labels[split.train])
    assert np.allclose(weights * counts, weights[0] * counts[0])  # every class weighs the same in total


# ----------------------------------------------------------------------------- augmentation


def test_wave_augmentation_gain_shift_and_noise_snr(tmp_path):
    rng = np.random.default_rng(0)
    wave = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)[np.newaxis].repeat(64, axis=0)
    gain = WaveAugmenter(AugmentConfig(kinds=("gain",), gain_db=6.0))(wave, rng)
    ratio_db = 20 * np.log10(np.abs(gain).max(axis=1) / np.abs(wave).max(axis=1))
    assert np.all(np.abs(ratio_db) <= 6.0 + 1e-4) and ratio_db.std() > 1.0

    impulse = np.zeros((8, 1000), np.float32)
    impulse[:, 500] = 1.0
    shifted = WaveAugmenter(AugmentConfig(kinds=("shift",), max_shift=0.1))(impulse, rng)
    where = shifted.argmax(axis=1)
    assert np.all(np.abs(where - 500) <= 100) and len(set(where)) > 1 and np.allclose(shifted.sum(axis=1), 1.0)

    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    sf.write(noise_dir / "hiss.wav", rng.standard_normal(8000).astype(np.float32) * 0.1, 16000)
    mixer = WaveAugmenter(AugmentConfig(kinds=("noise",), noise_dir=noise_dir, snr_db=(10.0, 10.0)))
    mixed = mixer(wave[:4], rng)
    added = mixed - wave[:4]
    snr = 10 * np.log10(np.mean(wave[:4] ** 2, axis=1) / np.mean(added**2, axis=1))
    assert np.allclose(snr, 10.0, atol=0.01)


def test_noise_bank_leaves_out_validation_clips(tmp_path):
    rng = np.random.default_rng(0)
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    for name in ("train_hiss.wav", "val_hiss.wav"):
        sf.write(noise_dir / name, rng.standard_normal(800).astype(np.float32), 16000)
    config = AugmentConfig(kinds=("noise",), noise_dir=noise_dir)
    mixer = WaveAugmenter(config, exclude=frozenset({(noise_dir / "val_hiss.wav").resolve()}))
    assert mixer.excluded == 1 and len(mixer.noise) == 1
    with pytest.raises(TrainingError, match="2 are validation clips"):
        WaveAugmenter(config, exclude=frozenset(p.resolve() for p in noise_dir.iterdir()))


def test_spec_augment_masks_only_in_training():
    from tfaudio.training.layers import SpecAugment

    x = np.random.default_rng(1).standard_normal((4, 100, 64)).astype(np.float32)
    layer = SpecAugment(freq_masks=2, freq_mask_bins=8, time_masks=2, time_mask_fraction=0.1, seed=3)
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    masked = np.asarray(layer(x, training=True))
    changed = masked != x
    assert changed.any()
    freq_rows = changed.all(axis=1).sum(axis=1)  # whole frequency bands masked per example
    assert np.all(freq_rows <= 16)
    # masked cells hold the example's mean
    for i in range(4):
        assert np.allclose(masked[i][changed[i]], x[i].mean(), atol=1e-5)


# ----------------------------------------------------------------------------- freezing and fine-tuning


def test_mobilenet_unfreezes_only_the_last_blocks_without_batchnorm():
    import keras

    from tfaudio.training.backbones import build

    parts = build(TrainConfig(backbone="mobilenet_v2", resize=False), 3, 8000, None)
    assert not any(w.trainable for w in parts.frozen.weights)  # phase 1: nothing in the backbone trains
    unfrozen = parts.unfreeze(2)
    assert unfrozen and all(n.startswith(("block_16_", "Conv_1")) for n in unfrozen)
    base = next(layer for layer in parts.frozen.layers if isinstance(layer, keras.Model))
    assert not any(layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert base.get_layer("block_15_project").trainable is False
    assert base.get_layer("block_16_project").trainable is True


def test_yamnet_fine_tuning_keeps_batchnorm_in_inference_mode():
    import keras

    from tfaudio.training.backbones import build

    parts = build(TrainConfig(backbone="yamnet"), 2, 16000, None)
    unfrozen = parts.unfreeze(2)
    assert {n.split("_")[0] for n in unfrozen} == {"layer13", "layer14"}
    network = parts.frozen.get_layer("yamnet").network
    bn = network.get_layer("layer14_pointwise_conv_bn")
    moving = np.array(bn.moving_mean)
    x = np.random.default_rng(0).standard_normal((4, 16000)).astype(np.float32) * 0.1
    # training=True gives the same features: batch norm uses its moving statistics
    assert np.allclose(np.asarray(parts.frozen(x, training=True)), np.asarray(parts.frozen(x, training=False)), atol=1e-6)
    # what the optimizer updates: the last two blocks' convolutions and the head, nothing else
    trainable = {w.path for w in parts.classifier.trainable_weights}
    assert trainable == {
        "layer13_depthwise_conv/kernel", "layer13_pointwise_conv/kernel",
        "layer14_depthwise_conv/kernel", "layer14_pointwise_conv/kernel", "logit/kernel", "logit/bias",
    }
    parts.classifier.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    parts.classifier.train_on_batch(x, np.array([0, 1, 0, 1]))
    assert np.array_equal(np.array(bn.moving_mean), moving)  # a training step leaves the statistics alone


# ----------------------------------------------------------------------------- the whole run


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, synth_data):
    """small_cnn on the generated data, both phases, augmented, counting frozen-part passes."""
    import tfaudio.training.loop as loop

    home = tmp_path_factory.mktemp("home")
    calls = []
    original = loop.compute_features

    def counting(model, waves, *args, **kwargs):
        calls.append((model.name, len(waves)))
        return original(model, waves, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setenv("TFAUDIO_HOME", str(home))
    mp.setattr(loop, "compute_features", counting)
    logdir = tmp_path_factory.mktemp("runs") / "synth"
    config = TrainConfig(
        backbone="small_cnn", epochs=8, fine_tune_epochs=2, fine_tune_learning_rate=1e-4, batch_size=16, patience=8,
        augment=AugmentConfig(kinds=("gain", "shift", "specaugment"), copies=1),
    )
    try:
        result = loop.train(synth_data, config, logdir=logdir, progress=False)
    finally:
        mp.undo()
    return result, calls, logdir


def test_run_learns_and_computes_the_frozen_part_once(small_run):
    result, calls, _ = small_run
    assert result.metrics["accuracy"] >= 0.8, result.metrics
    assert result.metrics["val_clips"] == 16 and result.metrics["train_clips"] == 64
    # 8 frozen-phase epochs, yet the frozen part ran once over the training clips, once over
    # their augmented copy and once over the validation clips
    assert [c for c in calls if c[0] == "frozen"] == [("frozen", 64), ("frozen", 64), ("frozen", 16)]
    assert result.phase_boundary == 8
    phases = [row["phase"] for row in result.history]
    assert phases[:8] == [1] * 8 and set(phases[8:]) <= {2}
    assert all(row["learning_rate"] == pytest.approx(1e-3) for row in result.history if row["phase"] == 1)
    assert all(row["learning_rate"] == pytest.approx(1e-4) for row in result.history if row["phase"] == 2)


def test_run_writes_logs_curves_and_metrics(small_run):
    result, _, logdir = small_run
    saved = json.loads((logdir / "metrics.json").read_text())
    assert saved["metrics"]["accuracy"] == pytest.approx(result.metrics["accuracy"])
    confusion = np.array(saved["metrics"]["confusion"])
    assert confusion.shape == (4, 4) and confusion.sum() == 16
    assert np.trace(confusion) / 16 == pytest.approx(result.metrics["accuracy"])
    lines = (logdir / "history.csv").read_text().strip().splitlines()
    assert lines[0] == "epoch,phase,loss,accuracy,val_loss,val_accuracy,learning_rate"
    assert len(lines) - 1 == len(result.history)  # both phases in one log
    assert lines[-1].startswith(f"{len(result.history)},2,")
    assert list((logdir / "tensorboard").rglob("events.out.tfevents.*"))
    assert (logdir / "checkpoints" / "phase1_best.weights.h5").is_file()
    page = (logdir / "curves.html").read_text()
    assert "fine-tuning" in page and "confusion matrix" in page and "validation loss" in page
    assert (logdir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_numbers(synth_data, tmp_path):
    from tfaudio.training import train

    config = TrainConfig(backbone="small_cnn", epochs=2, fine_tune_epochs=0, batch_size=16)
    first = train(synth_data, config, progress=False)
    second = train(synth_data, config, progress=False)
    assert [r["val_loss"] for r in first.history] == [r["val_loss"] for r in second.history]


@pytest.mark.shared
@pytest.mark.slow
def test_speech_vs_noise_frozen_mobilenet_reaches_97_percent(monkeypatch):
    """Acceptance on real recordings: frozen ImageNet MobileNetV2, speaker-disjoint fold 1 held out."""
    data = shared_path("datasets", "speech_commands")
    monkeypatch.setenv("KERAS_HOME", str(shared_path("models", "keras")))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    from tfaudio.training import train

    dataset = load_dataset(data, group_column="speaker")
    result = train(dataset, TrainConfig(backbone="mobilenet_v2", epochs=15, fine_tune_epochs=1, patience=15), progress=False)
    speakers = dataset.groups
    real = {g for g in speakers[result.split.train] if not g.startswith("<clip")}  # noise clips have no speaker
    assert not real & set(speakers[result.split.val])
    assert result.metrics["phase1_val_accuracy"] >= 0.97, result.metrics
    # fine-tuning afterwards does not lower it (phase 2 is kept only if it does not)
    assert result.metrics["accuracy"] >= result.metrics["phase1_val_accuracy"], result.metrics
    assert any(row["phase"] == 2 for row in result.history)


def test_train_cli_prints_metrics_and_exports(synth_data, tmp_path):
    out = tmp_path / "saved_models" / "synth"
    result = _run_cli(
        "train", synth_data, "--backbone", "small_cnn", "--epochs", "3", "--fine-tune-epochs", "0", "--out", out,
        "--logdir", tmp_path / "runs", "--batch-size", "16"
    )
    assert result.exit_code == 0, result.output
    assert "validation (fold 1 of the manifest held out, 16 clips): accuracy" in result.output
    assert "confusion (rows true, columns predicted" in result.output
    assert (out / "1" / "saved_model.pb").is_file()
    assert f"exported: {out / '1'}" in result.stdout and "nothing exported" not in result.stdout
    shutil.rmtree(tmp_path / "runs")


# ----------------------------------------------------------------------------- review fixes


def test_frontend_sample_rate_other_than_16k_is_refused():
    from tfaudio.training.config import FrontendConfig

    with pytest.raises(TrainingError, match="sample_rate must be 16000.*got 22050"):
        FrontendConfig(sample_rate=22050)
    assert FrontendConfig(sample_rate=16000).mel_params().stft.sample_rate == 16000


def test_native_size_with_a_short_duration_names_duration(synth_data, tmp_path):
    from tfaudio.training.backbones import build

    config = TrainConfig(backbone="mobilenet_v2", resize=False, duration=0.2)
    with pytest.raises(TrainingError, match="21 \\(hop 160 samples\\); use --duration 0.31 or more"):
        build(config, 2, 3200, None)
    result = _run_cli("train", synth_data, "--backbone", "mobilenet_v2", "--native-size", "--duration", "0.2",
                      "--weights", tmp_path / "w.h5", "--logdir", tmp_path / "runs")
    assert result.exit_code == 1 and "--duration" in result.output and "cannot load" not in result.output


def test_classes_are_rechecked_after_decoding(tmp_path):
    from tfaudio.training import train

    for i in range(4):
        _write(tmp_path / "data" / "a" / f"{i}.wav", 0.2)
        (tmp_path / "data" / "b").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / "b" / f"{i}.wav").write_bytes(b"RIFF not really audio" * 10)
    config = TrainConfig(backbone="small_cnn", duration=0.2, epochs=1, fine_tune_epochs=0, batch_size=4)
    with pytest.raises(TrainingError, match="class\\(es\\) 'b' have no training clip that could be decoded.*Failed: .*b/"):
        train(tmp_path / "data", config, progress=False)
    for i in range(4):
        (tmp_path / "data" / "a" / f"{i}.wav").write_bytes(b"garbage" * 10)
    with pytest.raises(TrainingError, match="none of the training clips could be decoded"):
        train(tmp_path / "data", config, progress=False)


def test_never_finite_validation_loss_is_a_clear_error(tmp_path, monkeypatch):
    import tfaudio.training.loop as loop

    for label, freq in (("low", 300.0), ("high", 2000.0)):
        for i in range(4):
            _write(tmp_path / "data" / label / f"{i}.wav", 0.2, freq)
    import keras

    def diverging(model, lr):  # a run whose loss blew up: NaN every epoch
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=lambda y, p: keras.ops.mean(p) * np.nan,
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    monkeypatch.setattr(loop, "_compile", diverging)
    with pytest.raises(TrainingError, match="validation loss was never finite in 2 frozen-phase epoch"):
        config = TrainConfig(backbone="small_cnn", duration=0.2, epochs=2, fine_tune_epochs=0, batch_size=4)
        loop.train(tmp_path / "data", config, progress=False)


def test_long_clips_train_on_windows_and_metrics_describe_the_export(tmp_path):
    """Clips of 1-1.45 s, duration 0.3 s: the first 0.3 s of every clip is the same kind of noise,
    the class is only in what follows. The reported metrics must be the export's."""
    from tfaudio.training import train
    from tfaudio.training.export import load

    rng = np.random.default_rng(3)
    for label, freq in (("low", 300.0), ("high", 2500.0)):
        for i in range(10):
            seconds = 1.0 + 0.05 * i
            t = np.arange(int(seconds * 16000)) / 16000
            wave = 0.3 * np.sin(2 * np.pi * freq * t)
            wave[:4800] = 0.3 * rng.standard_normal(4800)
            path = tmp_path / "data" / label / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave.astype(np.float32), 16000)
    out = tmp_path / "saved_models" / "long"
    config = TrainConfig(backbone="small_cnn", duration=0.3, epochs=4, fine_tune_epochs=0, batch_size=16)
    result = train(tmp_path / "data", config, out=out,
                   logdir=tmp_path / "runs", progress=False)
    m = result.metrics
    assert m["train_clips"] == 16 and m["val_clips"] == 4 and m["train_windows"] > 3 * 16 and m["val_windows"] > 3 * 4
    served = load(out)
    dataset = load_dataset(tmp_path / "data")
    from tfaudio.data.audio import load as load_audio

    predicted = np.concatenate([served.predict(load_audio(dataset.clips[i].path, 16000))[0] for i in result.split.val])
    np.testing.assert_allclose(result.val_probabilities, predicted, atol=1e-5)
    labels = dataset.labels[result.split.val]
    assert m["accuracy"] == pytest.approx(float(np.mean(predicted.argmax(axis=1) == labels)))
    saved = json.loads((tmp_path / "runs" / "metrics.json").read_text())["metrics"]
    assert saved["confusion"] == m["confusion"] and saved["accuracy"] == m["accuracy"]


def test_confusion_heatmap_uses_category_axes_for_numeric_class_names(tmp_path):
    from types import SimpleNamespace

    from tfaudio.training.plots import write_curves_html

    metrics = {"accuracy": 0.5, "phase1_val_accuracy": 0.5, "val_clips": 4, "fine_tuning_kept": False,
               "fine_tuning": "skipped", "fine_tuning_reason": "0 fine-tuning epochs",
               "confusion": [[1, 1], [1, 1]], "per_class_recall": {"0": 0.5, "1": 0.5}}
    result = SimpleNamespace(
        config=TrainConfig(), metrics=metrics, class_names=("0", "1"), phase_boundary=1, split=SimpleNamespace(how="stratified"),
        history=[{"epoch": 1, "phase": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}],
    )
    write_curves_html(result, tmp_path / "curves.html")
    page = (tmp_path / "curves.html").read_text()
    assert page.count('"type":"category"') >= 2
