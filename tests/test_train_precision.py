"""Training in bfloat16: Keras mixed precision on the backbone only (float32 front end, head and
loss, float32 cached features), a float32 export unless asked, settings that record it without
changing a float32 run's, and the CLI option."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tfaudio.runtime import Hardware
from tfaudio.training.config import TrainConfig, TrainingError

# The export's serving function against the same float32 network called directly: the same
# float32 computation traced in another graph, so only summation order differs (as in
# tests/test_export.py).
SAME_NETWORK = 1e-5
# The float32 export against the bfloat16 network it was rebuilt from: bfloat16 keeps 8
# significant bits (rounding 2^-9, about 0.2 %, per value), and the four conv blocks compound
# it; on these clips the probabilities differ by 6e-4 at most (measured), so 0.01 allows other
# CPUs' bfloat16 kernels and still fails for a network that lost or scrambled its trained
# weights (whose probabilities are off by tenths on these well-separated classes).
BFLOAT16_VS_FLOAT32 = 0.01


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory, synth_data):
    """small_cnn trained in bfloat16 (both phases) and exported; records every network built and
    the dtype of every frozen-part output cached."""
    from tfaudio.training import backbones, loop

    built, cached = [], []
    build, compute = backbones.build, loop.compute_features

    def recording_build(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    def recording_compute(*args, **kwargs):
        cached.append(compute(*args, **kwargs))
        return cached[-1]

    mp = pytest.MonkeyPatch()
    mp.setenv("TFAUDIO_HOME", str(tmp_path_factory.mktemp("home")))
    mp.setattr(backbones, "build", recording_build)
    mp.setattr(loop, "compute_features", recording_compute)
    out = tmp_path_factory.mktemp("saved_models") / "synth"
    logdir = tmp_path_factory.mktemp("runs") / "synth"
    config = TrainConfig(backbone="small_cnn", epochs=3, fine_tune_epochs=1, fine_tune_learning_rate=1e-4, batch_size=16,
                         patience=3, precision="bfloat16")
    try:
        result = loop.train(synth_data, config, out=out, logdir=logdir, progress=False)
    finally:
        mp.undo()
    return result, built, cached, logdir


def _policies(model) -> dict[str, keras.DTypePolicy]:
    """Layer name -> dtype policy of every layer inside `model`, nested models' layers included
    (nested models themselves left out: they only hold layers)."""
    layers = model._flatten_layers(include_self=False)
    return {layer.name: layer.dtype_policy for layer in layers if not isinstance(layer, keras.Model)}


def test_bfloat16_backbone_float32_head_loss_and_cached_features(bf16_run):
    result, built, cached, _ = bf16_run
    trained = built[0]  # built[1] is the float32 network the export gets
    convs = [layer for layer in trained.head.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.BatchNormalization))]
    assert len(convs) == 8
    for layer in convs:  # the small CNN is small_cnn's backbone: bfloat16 compute, float32 variables
        assert (layer.dtype_policy.compute_dtype, layer.dtype_policy.variable_dtype) == ("bfloat16", "float32"), layer.name
    (pooled,) = [layer for layer in trained.head.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    assert pooled.output.dtype == "bfloat16"  # what the backbone hands the float32 head
    # the front end (tf.signal has no bfloat16 kernels) and the classification layer stay float32
    for model, names in ((trained.frozen, ("log_mel", "standardize")), (trained.head, ("probabilities", "to_float32"))):
        policies = _policies(model)
        assert all(policies[name].compute_dtype == "float32" for name in names), policies
    assert trained.head.output.dtype == trained.classifier.output.dtype == "float32"
    assert {w.dtype for w in trained.classifier.weights} == {"float32"}
    # the frozen phase cached float32 spectrograms (train, validation)
    assert [features.dtype for features in cached] == [np.float32, np.float32]
    losses = [[row[k] for k in ("loss", "val_loss")] for row in result.history]
    assert [row["phase"] for row in result.history][:3] == [1, 1, 1] and np.all(np.isfinite(losses)), result.history
    assert result.metrics["accuracy"] >= 0.5, result.metrics  # 4 classes: it learned something in 3 epochs
    # the curves say how the run was trained
    assert "small_cnn, trained in bfloat16: validation accuracy" in (bf16_run[3] / "curves.html").read_text()


@pytest.mark.parametrize("backbone", ["yamnet", "mobilenet_v2"])
def test_pretrained_backbones_compute_in_bfloat16_between_float32_front_end_and_head(backbone):
    """Random weights: only the layer dtypes matter. YAMNet's front end runs inside the float32
    YamnetPooled layer (tf.signal, not Keras layers); its patch network is the Keras backbone."""
    from tfaudio.training.backbones import build

    parts = build(TrainConfig(backbone=backbone, precision="bfloat16"), 3, 16000, None)
    policies = _policies(parts.frozen)
    backbone_layers = {name for name, policy in policies.items() if policy.name == "mixed_bfloat16"}
    front = {"yamnet": {"yamnet"}, "mobilenet_v2": {"log_mel", "standardize", "spectrogram_image", "to_float32"}}[backbone]
    assert len(backbone_layers) > 80 and all(policies[name].name == "float32" for name in front), policies
    assert all(policy.name == "float32" for policy in _policies(parts.head).values())
    features = parts.frozen(np.zeros((2, 16000), np.float32))
    assert features.dtype == tf.float32 and parts.classifier.output.dtype == "float32"
    assert {w.dtype for w in parts.classifier.weights} == {"float32"}
    # float32 builds the network of before: no bfloat16 layer, no cast layer
    float32 = build(TrainConfig(backbone=backbone), 3, 16000, None)
    assert {policy.name for policy in _policies(float32.classifier).values()} == {"float32"}
    assert "to_float32" not in _policies(float32.classifier)


def test_export_of_a_bfloat16_run_is_float32_and_matches_the_trained_network(bf16_run, synth_data):
    from tfaudio.data.audio import load
    from tfaudio.training.export import load as load_export

    result, built, _, logdir = bf16_run
    trained, rebuilt = built[0].classifier, built[1].classifier
    assert result.classifier is rebuilt and {layer.dtype_policy.name for layer in rebuilt._flatten_layers()} == {"float32"}
    served = load_export(result.export_dir)
    inputs = served.signature.structured_input_signature[1]
    outputs = served.signature.structured_outputs
    assert inputs["waveform"].dtype == tf.float32 and outputs["probabilities"].dtype == tf.float32
    graph = str(served.signature.graph.as_graph_def())
    assert "DT_BFLOAT16" not in graph  # no bfloat16 anywhere in the exported computation
    waves = np.stack([load(path, 16000)[:16000] for path in sorted(synth_data.rglob("*.wav"))[::8]])
    probabilities, _ = served.predict(waves)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, np.asarray(rebuilt(waves, training=False)), atol=SAME_NETWORK)
    low = np.asarray(trained(waves, training=False))
    assert 0 < np.abs(probabilities - low).max() < BFLOAT16_VS_FLOAT32  # rounded differently, same weights
    meta = served.metadata["config"]
    assert meta["precision"] == "bfloat16" and "export_precision" not in meta
    import json

    assert json.loads((logdir / "metrics.json").read_text())["config"]["precision"] == "bfloat16"


def test_export_precision_bfloat16_keeps_the_float32_signature(bf16_run, tmp_path):
    """The bfloat16 network exported as trained: bfloat16 inside, the same float32 signature."""
    from tfaudio.training.backbones import at_precision
    from tfaudio.training.export import export_savedmodel
    from tfaudio.training.export import load as load_export

    result, built, _, _ = bf16_run
    float32_config = dataclasses.replace(result.config, precision="float32")
    low = at_precision(result.classifier, float32_config, 4, result.num_samples, "bfloat16")
    assert {layer.dtype_policy.name for layer in low._flatten_layers()} >= {"mixed_bfloat16", "float32"}
    served = load_export(export_savedmodel(low, result.metadata(), tmp_path / "low"))
    assert "DT_BFLOAT16" in str(served.signature.graph.as_graph_def())
    assert served.signature.structured_outputs["probabilities"].dtype == tf.float32
    waves = np.random.default_rng(3).uniform(-0.3, 0.3, (3, result.num_samples)).astype(np.float32)
    probabilities, _ = served.predict(waves)
    np.testing.assert_allclose(probabilities, np.asarray(built[0].classifier(waves, training=False)), atol=SAME_NETWORK)


def test_config_records_precision_and_float32_settings_are_unchanged():
    low = TrainConfig(precision="bfloat16", export_precision="bfloat16").to_dict()
    assert (low.pop("precision"), low.pop("export_precision")) == ("bfloat16", "bfloat16")
    # float32 is left out (as in representation identities): a float32 run's settings, stored in
    # metrics.json and the export's tfaudio.json, are the dict they were before the setting existed
    assert low == TrainConfig().to_dict() and "precision" not in str(TrainConfig().to_dict())
    assert TrainConfig(export_precision="bfloat16").to_dict()["export_precision"] == "bfloat16"
    with pytest.raises(TrainingError, match="precision: unknown precision 'float16'; choose one of float32, bfloat16"):
        TrainConfig(precision="float16")
    with pytest.raises(TrainingError, match="export_precision: unknown precision 'int8'"):
        TrainConfig(export_precision="int8")


def _cli(*args):
    from tfaudio.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_option_help_bad_value_and_warning(tmp_path, monkeypatch):
    from tfaudio import runtime
    from tfaudio.training import loop

    help_text = _cli("train", "--help").output
    assert "--precision [float32|bfloat16]" in help_text and "--export-precision [float32|bfloat16]" in help_text
    bad = _cli("train", tmp_path, "--precision", "float16")
    assert bad.exit_code == 2 and "Invalid value for '--precision'" in bad.output and "Traceback" not in bad.output
    seen = []

    def stop(data, config, **kwargs):  # records the config the CLI built, trains nothing
        seen.append(config)
        raise TrainingError("stopped before training")

    monkeypatch.setattr(loop, "train", stop)
    emulating = Hardware("old CPU", amx=False, avx512_bf16=False)
    for hardware, warned in ((emulating, True), (dataclasses.replace(emulating, gpus=("GPU:0",)), False)):
        monkeypatch.setattr(runtime, "detect_hardware", lambda hardware=hardware: hardware)
        result = _cli("train", tmp_path, "--precision", "bfloat16", "--export-precision", "bfloat16",
                      "--logdir", tmp_path / "runs")
        assert result.exit_code == 1 and "stopped before training" in result.output
        lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
        assert len(lines) == int(warned), result.output
        assert not warned or "this CPU (old CPU) has no bfloat16 instructions" in lines[0]
    assert {(c.precision, c.export_precision) for c in seen} == {("bfloat16", "bfloat16")} and len(seen) == 2
    float32 = _cli("train", tmp_path, "--logdir", tmp_path / "runs")
    assert "warning:" not in float32.output and seen[-1].precision == "float32" == seen[-1].export_precision


def test_tflite_of_a_bfloat16_export_is_refused_before_training(synth_data, tmp_path):
    from tfaudio.training import train

    config = TrainConfig(precision="bfloat16", export_precision="bfloat16")
    with pytest.raises(TrainingError, match="--tflite needs --export-precision float32"):
        train(synth_data, config, out=tmp_path / "model", logdir=tmp_path / "runs", tflite=True, progress=False)
    assert not (tmp_path / "runs").exists() and not list((tmp_path / "model").glob("*"))
