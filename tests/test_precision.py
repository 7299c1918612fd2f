"""bfloat16 against float32: identities that keep caches apart, a scope that stays in its thread
and block, hardware detection, and the fidelity of every network (test-built weights, and on
ESC-10 with the real YAMNet when ../shared is present)."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import padded_batch, shared_path
from helpers import TINY_WAV2VEC2 as TINY
from helpers import chirp, random_checkpoint, randomize

from tfaudio.models.base import FrameEmbeddings, LearnedRepresentation, Representation, pool
from tfaudio.models.precision import Bfloat16, LearnedBfloat16, with_precision
from tfaudio.runtime import (
    Hardware,
    PrecisionWarning,
    detect_hardware,
    keras_policy,
    precision_advice,
    precision_scope,
    precision_warning,
)
from tfaudio.store import representation_key

SR = 16000
NATIVE = Hardware("test CPU", amx=True, avx512_bf16=True)


class Doubler(Representation):
    """A graph-free stand-in: frames are the waveform's samples doubled, 1 per frame."""

    name = "doubler"
    sample_rate = SR
    frame_hop_seconds = 1 / SR
    dim = 1

    def frames(self, waveforms, lengths):
        mask = np.arange(waveforms.shape[1])[np.newaxis] < lengths[:, np.newaxis]
        return FrameEmbeddings(2 * waveforms[..., np.newaxis], mask)

    def identity(self):
        return {"model": "doubler", "version": 1}


def clips() -> tuple[np.ndarray, np.ndarray]:
    """Four clips of different lengths and content, zero-padded: (float32 [4, n], int32 [4])."""
    noise = 0.3 * np.random.default_rng(0).standard_normal(2 * SR)
    waves = [chirp(3.0), chirp(5.0, 300.0, 3000.0), noise.astype(np.float32), chirp(1.0)]
    return padded_batch(*waves)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two float [n, dim] matrices."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def compare_precisions(representation: Representation) -> tuple[np.ndarray, float]:
    """(per-clip cosine of mean-pooled bfloat16 vs float32 vectors, largest frame difference
    relative to the largest float32 value); also checks that the float32 representation gives
    exactly its float32 numbers again after the bfloat16 calls."""
    waveforms, lengths = clips()
    before = representation.frames(waveforms, lengths)
    low = with_precision(representation, "bfloat16", warn=False).frames(waveforms, lengths)
    after = representation.frames(waveforms, lengths)
    np.testing.assert_array_equal(after.embeddings, before.embeddings)  # float32 untouched
    np.testing.assert_array_equal(low.mask, before.mask)
    assert low.embeddings.dtype == np.float32
    valid = before.mask
    change = np.abs(low.embeddings - before.embeddings)[valid].max() / np.abs(before.embeddings[valid]).max()
    return cosines(pool(low.embeddings, low.mask), pool(before.embeddings, before.mask)), float(change)


# ------------------------------------------------------------------------------ identities


def test_float32_is_the_representation_itself_and_bfloat16_is_keyed_apart():
    doubler = Doubler()
    assert with_precision(doubler) is doubler and with_precision(doubler, "float32") is doubler
    low = with_precision(doubler, "bfloat16", warn=False)
    assert isinstance(low, Bfloat16)
    assert low.identity() == {"model": "doubler", "version": 1, "precision": "bfloat16"}
    assert doubler.identity() == {"model": "doubler", "version": 1}  # the wrapped one is not changed
    assert (low.name, low.sample_rate, low.dim, low.default_pooling) == ("doubler", SR, 1, "mean")
    decode = {"sample_rate": SR, "max_duration": None, "mix": "mean"}
    assert representation_key(low.identity(), "mean", decode) != representation_key(doubler.identity(), "mean", decode)
    assert with_precision(low, "bfloat16") is low  # wrapping twice changes nothing
    waveforms, lengths = clips()
    np.testing.assert_array_equal(low.embed(waveforms, lengths), doubler.embed(waveforms, lengths))
    with pytest.raises(ValueError, match="unknown precision 'float16'; choose one of float32, bfloat16"):
        with_precision(doubler, "float16")


def test_handcrafted_stays_float32():
    from tfaudio.models.registry import get

    handcrafted = get("handcrafted")
    assert with_precision(handcrafted, "bfloat16") is handcrafted


def test_learned_representations_embed_in_bfloat16_once_fitted():
    class Learner(LearnedRepresentation):
        name, sample_rate, frame_hop_seconds, dim = "learner", SR, 1 / SR, 1

        def configure(self, settings):
            return self

        def fit(self, dataset, train_indices, **kwargs):
            return Doubler()

        def fitting_note(self, fits):
            return f"fitted {fits} times"

    low = with_precision(Learner(), "bfloat16", warn=False)
    assert isinstance(low, LearnedBfloat16) and low.fitting_note(5) == "fitted 5 times"
    fitted = low.configure({}).fit(None, np.arange(3))
    assert fitted.identity() == {"model": "doubler", "version": 1, "precision": "bfloat16"}


# ------------------------------------------------------------------------------- hardware


@pytest.mark.parametrize(
    "flags, amx, avx, advice",
    [
        ("fpu avx512f avx512_bf16 amx_bf16 amx_tile", True, True, "this CPU has AMX"),
        ("fpu avx512f avx512_bf16", False, True, "AVX512-BF16 (no AMX)"),
        ("fpu avx2 fma", False, False, "no bfloat16 instructions"),
    ],
)
def test_hardware_from_cpu_flags(tmp_path, flags, amx, avx, advice):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    hardware = detect_hardware(cpuinfo, gpus=False)
    assert hardware == Hardware("Test CPU 9000", amx, avx)
    assert advice in precision_advice(hardware)
    assert precision_warning("float32", hardware) is None
    warning = precision_warning("bfloat16", hardware)
    if amx or avx:
        assert warning is None
    else:
        assert "Test CPU 9000" in warning and "slower than float32" in warning
    assert detect_hardware(tmp_path / "missing", gpus=False) == Hardware("", False, False)


def test_gpu_advice_and_warning_name_the_gpu():
    hardware = Hardware("test CPU", False, True, gpus=("/physical_device:GPU:0",))
    assert "GPU found (/physical_device:GPU:0)" in precision_advice(hardware)
    assert "no speed-up" in precision_warning("bfloat16", hardware)
    # Keras mixed precision trains in bfloat16 on the GPU itself: nothing to warn about there,
    # but a CPU that would emulate bfloat16 still gets its warning.
    assert precision_warning("bfloat16", hardware, training=True) is None
    assert "emulates" in precision_warning("bfloat16", Hardware("old CPU", False, False), training=True)


def test_bfloat16_inference_is_refused_when_onednn_is_off(monkeypatch, synth_data, tmp_path):
    """TF_ENABLE_ONEDNN_OPTS=0 switches off the rewrite: vectors would be float32 but cached as
    bfloat16, so the run stops before any work, in one line."""
    from click.testing import CliRunner

    from tfaudio.cli.main import main
    from tfaudio.runtime import PrecisionError, precision_scope

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    with pytest.raises(PrecisionError, match="TF_ENABLE_ONEDNN_OPTS=0"):
        with_precision(Doubler(), "bfloat16")
    with pytest.raises(PrecisionError):
        with precision_scope("bfloat16"):
            pass
    assert with_precision(Doubler(), "float32").identity() == Doubler().identity()  # float32 needs no oneDNN
    result = CliRunner().invoke(main, ["embed", str(synth_data), "--model", "handcrafted", "--out", str(tmp_path / "out"),
                                       "--store", str(tmp_path / "store"), "--precision", "bfloat16"])
    assert result.exit_code == 1, result.output
    assert "Error: --precision bfloat16 needs oneDNN" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.parquet"))


def test_missing_bfloat16_instructions_warn_once_asked(monkeypatch):
    import tfaudio.models.precision as P

    monkeypatch.setattr(P, "precision_warning", lambda precision: "no bfloat16 here")
    with pytest.warns(PrecisionWarning, match="no bfloat16 here"):
        with_precision(Doubler(), "bfloat16")


# ---------------------------------------------------------------------------------- scope


def test_scope_rewrites_graphs_in_its_thread_and_block_only():
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.standard_normal((64, 256)), tf.float32) for _ in range(2))
    product = tf.function(lambda x, y: tf.matmul(x, y, transpose_b=True))
    exact = product(a, b).numpy()
    entered, other_done = threading.Event(), threading.Event()
    other = {}

    def float32_thread():
        entered.wait()
        other["value"] = product(a, b).numpy()  # called while the main thread is in its scope
        other_done.set()

    thread = threading.Thread(target=float32_thread)
    thread.start()
    with precision_scope("bfloat16"):
        low = product(a, b).numpy()
        entered.set()
        assert other_done.wait(60)
        with precision_scope("bfloat16"):  # nested: still bfloat16
            np.testing.assert_array_equal(product(a, b).numpy(), low)
        with precision_scope("float32"):  # nested float32: float32 again, inside the block only
            np.testing.assert_array_equal(product(a, b).numpy(), exact)
        np.testing.assert_array_equal(product(a, b).numpy(), low)
    thread.join()
    assert low.dtype == np.float32
    assert not np.array_equal(low, exact)  # bfloat16 rounding shows (8-bit mantissas)
    np.testing.assert_allclose(low, exact, atol=0.1 * np.abs(exact).max())
    np.testing.assert_array_equal(other["value"], exact)  # the other thread kept float32
    np.testing.assert_array_equal(product(a, b).numpy(), exact)  # and so does this one after the block
    assert tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16") is not True


# ------------------------------------------------------------------------------- fidelity


def test_yamnet_bfloat16_fidelity():
    from tfaudio.models.yamnet import model as Y

    keras.utils.set_random_seed(1234)
    representation = Y.YamnetRepresentation()
    randomize(representation.model.network)
    cosine, change = compare_precisions(representation)
    # Measured: cosine >= 0.99998, largest frame change about 1 % of the largest value.
    assert cosine.min() >= 0.999
    assert change > 1e-4  # bfloat16 really ran (float32 reassociation alone is ~1e-6)
    waveforms, lengths = clips()
    exact = representation.model.embed(waveforms, lengths)
    with precision_scope("bfloat16"):
        low = representation.model.embed(waveforms, lengths)
    valid = exact.patch_mask
    agreement = np.mean(low.scores[valid].argmax(axis=1) == exact.scores[valid].argmax(axis=1))
    assert agreement >= 0.95, agreement  # measured: 1.0 over the 22 patches


def test_vggish_bfloat16_fidelity(tmp_path_factory):
    from tfaudio.models.vggish import model as V

    path, _ = random_checkpoint(tmp_path_factory.getbasetemp() / "vggish-random")
    cosine, change = compare_precisions(V.Vggish(path))
    assert cosine.min() >= 0.999 and change > 1e-4


def test_wav2vec2_bfloat16_fidelity(tmp_path):
    from tfaudio.models.wav2vec2 import model as W

    with W.keep_keras_3():
        from transformers import TFWav2Vec2Model, Wav2Vec2Config, Wav2Vec2FeatureExtractor

        tf.random.set_seed(0)
        network = TFWav2Vec2Model(Wav2Vec2Config(**TINY))
        network.build_in_name_scope()
        network.save_pretrained(tmp_path)
        Wav2Vec2FeatureExtractor().save_pretrained(tmp_path)
    cosine, change = compare_precisions(W.Wav2Vec2(W.Wav2Vec2Params(model=str(tmp_path))))
    assert cosine.min() >= 0.999 and change > 1e-4


def test_autoencoder_bfloat16_fidelity():
    from tfaudio.models.autoencoder.config import AutoencoderConfig
    from tfaudio.models.autoencoder.model import Autoencoder, AutoencoderRepresentation

    keras.utils.set_random_seed(0)
    config = AutoencoderConfig(patch_frames=32, num_mel_bins=32, filters=(8, 16), latent=16)
    cosine, change = compare_precisions(AutoencoderRepresentation(Autoencoder(config), "random"))
    assert cosine.min() >= 0.999 and change > 1e-4


# ------------------------------------------------------------------------------- training


def test_keras_policy_trains_a_bfloat16_body_with_a_float32_head():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    with keras_policy("bfloat16"):
        hidden = keras.layers.Dense(16, activation="relu", name="body")(inputs)
    logits = keras.layers.Dense(3, dtype="float32", name="head")(hidden)
    model = keras.Model(inputs, logits)
    assert keras.config.dtype_policy().name == "float32"  # the policy was put back
    body, head = model.get_layer("body"), model.get_layer("head")
    assert (body.compute_dtype, body.variable_dtype) == ("bfloat16", "float32")
    assert head.compute_dtype == "float32"
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    history = model.fit(x, (x[:, 0] > 0).astype(np.int32), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.predict(x[:2], verbose=0).dtype == np.float32
    with keras_policy("float32"):
        assert keras.config.dtype_policy().name == "float32"


# ------------------------------------------------------------------------------- ESC-10


@pytest.mark.shared
@pytest.mark.slow
def test_esc10_yamnet_bfloat16_keeps_embeddings_and_the_linear_probe():
    from tfaudio.comparison.classifiers import ClassifierSpec, cross_validate
    from tfaudio.data.batches import iter_batches
    from tfaudio.data.dataset import load_dataset
    from tfaudio.data.splits import predefined_folds
    from tfaudio.models.yamnet.model import YamnetRepresentation

    dataset = load_dataset(shared_path("datasets", "esc10"))
    exact = YamnetRepresentation(shared_path("models", "yamnet", "yamnet.h5"))
    low = with_precision(exact, "bfloat16", warn=False)
    vectors = {name: np.empty((len(dataset), 1024), np.float32) for name in ("float32", "bfloat16")}
    for batch in iter_batches(dataset.clips, SR, 32):
        vectors["float32"][batch.indices] = exact.embed(batch.waveforms, batch.lengths)
        vectors["bfloat16"][batch.indices] = low.embed(batch.waveforms, batch.lengths)
    assert cosines(vectors["bfloat16"], vectors["float32"]).min() >= 0.999
    splits = predefined_folds(dataset)
    accuracy = {
        name: np.mean(cross_validate(x, dataset.labels, splits, ClassifierSpec("logreg")).predictions == dataset.labels)
        for name, x in vectors.items()
    }
    assert abs(accuracy["bfloat16"] - accuracy["float32"]) <= 0.01, accuracy


def test_compare_records_a_non_default_precision_and_the_cli_offers_it(synth_data, tmp_path):
    """float32 runs keep the metrics.json they always had; a bfloat16 run says so."""
    import json

    from click.testing import CliRunner

    from tfaudio.cli.main import main
    from tfaudio.comparison.report import write_report
    from tfaudio.comparison.run import CompareConfig, compare

    reports = {}
    for precision in ("float32", "bfloat16"):
        config = CompareConfig(models=("handcrafted",), classifiers=("logreg",), split="stratified", folds=2,
                               store=str(tmp_path / "store"), precision=precision)
        out = write_report(compare(synth_data, config, log=lambda m: None), tmp_path / precision).parent
        reports[precision] = json.loads((out / "metrics.json").read_text())["reproducibility"]
        pages = (out / "report.md").read_text(), (out / "index.html").read_text()
        # what a reader sees: the report says the networks ran in bfloat16, and only then
        assert all(("bfloat16 for the networks" in page) == (precision == "bfloat16") for page in pages)
        assert ("Networks computed in bfloat16." in pages[1]) == (precision == "bfloat16")
    assert "precision" not in reports["float32"]
    assert reports["bfloat16"]["precision"] == "bfloat16"
    for command in ("embed", "compare", "visualize", "projector", "tag"):
        assert "--precision [float32|bfloat16]" in CliRunner().invoke(main, [command, "--help"]).output, command
