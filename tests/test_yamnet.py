"""YAMNet: architecture and padding with random weights; real recordings and weights from
../shared (skipped when absent) for the pretrained behaviour."""

from __future__ import annotations

import warnings

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import shared_path, traces_while
from helpers import chirp, randomize, write_legacy_h5

from tfaudio.models.base import pool
from tfaudio.models.yamnet import model as Y

SR = 16000
PARAMS = Y.YamnetParams()
PARAMETERS = 3_751_369  # the count of Google's yamnet.h5 (and of the rebuilt one in ../shared)


def tone(freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def random_yamnet() -> Y.Yamnet:
    keras.utils.set_random_seed(1234)
    model = Y.Yamnet()
    randomize(model.network)
    return model


@pytest.fixture(scope="module")
def pretrained() -> Y.Yamnet:
    return Y.Yamnet(weights_path=shared_path("models", "yamnet", "yamnet.h5"))


@pytest.fixture(scope="module")
def class_names() -> list[str]:
    return Y.load_class_map(shared_path("models", "yamnet", "yamnet_class_map.csv"))


# ------------------------------------------------------------------------------------ no shared


def test_params_derive_yamnet_sample_counts():
    p = PARAMS
    assert (p.stft_window_samples, p.stft_hop_samples, p.fft_length, p.num_spectrogram_bins) == (400, 160, 512, 257)
    assert (p.patch_frames, p.patch_hop_frames, p.patch_bands) == (96, 48, 64)
    assert (p.patch_samples, p.patch_hop_samples) == (15600, 7680)
    with pytest.raises(ValueError, match="mel_max_hz"):
        Y.YamnetParams(mel_max_hz=9000.0)


def test_network_shapes_and_parameter_count():
    network = Y.build_network()
    assert network.count_params() == PARAMETERS
    scores, embeddings = network(np.zeros((3, 96, 64), np.float32))
    assert scores.shape == (3, 521) and embeddings.shape == (3, 1024)
    assert np.all((scores.numpy() > 0) & (scores.numpy() < 1))  # sigmoid
    names = [layer.name for layer in network.layers]
    assert "layer1_conv" in names and "layer14_pointwise_conv_bn" in names and "dense" in names
    assert sum(1 for n in names if n.endswith("_bn")) == 27  # 1 + 13 * 2 batch norms
    assert not any(layer.weights and "gamma" in v.name for layer in network.layers for v in layer.weights)


@pytest.mark.parametrize(
    "seconds, patches",
    [(0.0, 1), (0.1, 1), (0.96, 1), (0.975, 1), (1.0, 2), (5.0, 10), (10.3, 21)],
)
def test_patch_count_follows_yamnet_padding(random_yamnet, seconds, patches):
    n = int(round(seconds * SR))
    assert Y.num_patches(n, PARAMS) == patches
    assert int(Y.num_patches(tf.constant(n), PARAMS)) == patches
    # The padded waveform frames into exactly that many patches, nothing left over.
    padded = Y.padded_length(n, PARAMS)
    frames = 1 + (padded - 400) // 160
    assert frames == 96 + 48 * (patches - 1) and (padded - 400) % 160 == 0
    out = random_yamnet.embed(np.zeros((1, n), np.float32) + 0.01)
    assert out.scores.shape == (1, patches, 521) and out.embeddings.shape == (1, patches, 1024)
    assert out.log_mel.shape == (1, frames, 64)
    assert out.patch_mask.tolist() == [[True] * patches]


def test_padding_boundaries():
    assert Y.num_patches(15600, PARAMS) == 1 and Y.num_patches(15601, PARAMS) == 2
    assert Y.num_patches(15600 + 7680, PARAMS) == 2 and Y.num_patches(15600 + 7681, PARAMS) == 3
    assert Y.padded_length(1, PARAMS) == 15600 and Y.padded_length(15601, PARAMS) == 15600 + 7680


def test_log_mel_known_answers():
    silence = Y.log_mel_spectrogram(tf.zeros((1, 16000)), PARAMS).numpy()
    np.testing.assert_allclose(silence, np.log(0.001), rtol=0, atol=1e-6)
    # A 1 kHz tone peaks in the band whose centre (HTK mel, edges even in mel) is nearest 1 kHz.
    log_mel = Y.log_mel_spectrogram(tf.constant(tone(1000.0, 1.0)[np.newaxis]), PARAMS).numpy()[0]
    mel = lambda hz: 1127.0 * np.log1p(hz / 700.0)  # noqa: E731
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    centres = 700.0 * np.expm1(edges[1:-1] / 1127.0)
    assert log_mel.mean(axis=0).argmax() == np.abs(centres - 1000.0).argmin()


def test_batched_equals_alone(random_yamnet):
    """A clip in a zero-padded batch gives the scores and log-mel it gives alone; padding content
    is ignored (embeddings: test_representation_contract.py)."""
    clips = [chirp(0.3), tone(440.0, 1.0), chirp(2.2), chirp(5.0, 300.0, 3000.0)]
    lengths = np.array([len(c) for c in clips], np.int32)
    batch = np.random.default_rng(0).normal(0, 0.5, (len(clips), lengths.max())).astype(np.float32)
    for row, clip in zip(batch, clips):
        row[: len(clip)] = clip  # the tail keeps noise: `lengths` must make it irrelevant
    together = random_yamnet.embed(batch, lengths)
    assert together.patch_mask.sum(axis=1).tolist() == [Y.num_patches(n, PARAMS) for n in lengths]
    for i, clip in enumerate(clips):
        alone = random_yamnet.embed(clip[np.newaxis])
        k = alone.scores.shape[1]
        np.testing.assert_allclose(together.scores[i, :k], alone.scores[0], atol=1e-4)
        np.testing.assert_allclose(together.log_mel[i, : alone.log_mel.shape[1]], alone.log_mel[0], atol=1e-4)
        assert not together.scores[i, k:].any() and not together.embeddings[i, k:].any()
    # Different patches of a sweep differ, so the comparison above can tell patches apart.
    assert np.abs(together.embeddings[3, 0] - together.embeddings[3, 5]).max() > 1e-3


def test_embed_does_not_retrace(random_yamnet):
    short_clips = (np.zeros((2, 9000), np.float32), [9000, 100])
    long_clips = (np.zeros((5, 31000), np.float32),)
    assert traces_while(random_yamnet.embed_graph, random_yamnet.embed, short_clips, long_clips) <= 1


def test_folded_inference_equals_keras_network(random_yamnet):
    patches = tf.constant(np.random.default_rng(1).normal(-3, 2, (6, 96, 64)).astype(np.float32))
    expected = random_yamnet.network(patches, training=False)
    got = Y.infer_patches(random_yamnet.network, patches)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-4, atol=1e-4)


def test_keras_weights_round_trip(random_yamnet, tmp_path):
    path = tmp_path / "yamnet.weights.h5"
    random_yamnet.network.save_weights(path)
    copy = Y.build_network()
    copy.load_weights(path)
    patches = np.random.default_rng(2).normal(-3, 2, (2, 96, 64)).astype(np.float32)
    for a, b in zip(copy(patches, training=False), random_yamnet.network(patches, training=False)):
        np.testing.assert_array_equal(a, b)


def test_load_weights_from_yamnet_layout(random_yamnet, tmp_path):
    path = tmp_path / "yamnet.h5"
    write_legacy_h5(random_yamnet.network, path)
    copy = Y.build_network()
    Y.load_weights(copy, path)
    for a, b in zip(copy.weights, random_yamnet.network.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_weights_names_what_is_wrong(random_yamnet, tmp_path):
    missing = tmp_path / "missing.h5"
    write_legacy_h5(random_yamnet.network, missing, drop="layer7/depthwise_conv/bn/moving_variance")
    fresh = Y.build_network()
    before = [v.numpy() for v in fresh.weights]
    with pytest.raises(Y.WeightsError, match=r"missing\.h5.*layer7_depthwise_conv_bn.*moving_variance"):
        Y.load_weights(fresh, missing)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, fresh.weights))  # nothing half-loaded

    complete = tmp_path / "complete.h5"
    write_legacy_h5(random_yamnet.network, complete)
    with pytest.raises(Y.WeightsError, match=r"'dense/kernel' has shape \(1024, 521\).*\(1024, 10\)"):
        Y.load_weights(Y.build_network(Y.YamnetParams(num_classes=10)), complete)
    with pytest.raises(Y.WeightsError, match="layer1_conv_bn.*gamma"):
        Y.load_weights(Y.build_network(Y.YamnetParams(batchnorm_scale=True)), complete)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(Y.WeightsError, match=r"junk\.h5: not an HDF5"):
        Y.load_weights(fresh, junk)
    with pytest.raises(Y.WeightsError, match="not found"):
        Y.load_weights(fresh, tmp_path / "absent.h5")


def test_set_trainable_freezes_all_but_the_last_blocks():
    network = Y.build_network()
    Y.set_trainable(network, last_blocks=2)
    trainable = {v.path.split("/")[0] for v in network.trainable_weights}
    assert trainable == {"layer13_depthwise_conv", "layer13_pointwise_conv", "layer14_depthwise_conv",
                         "layer14_pointwise_conv", "dense"}
    Y.set_trainable(network, last_blocks=2, batchnorm=True, classifier=False)
    trainable = {v.path.split("/")[0] for v in network.trainable_weights}
    assert "dense" not in trainable and "layer14_pointwise_conv_bn" in trainable and "layer12_pointwise_conv" not in trainable
    Y.set_trainable(network, last_blocks=0, classifier=False)
    assert network.trainable_weights == []
    Y.set_trainable(network, last_blocks=14, batchnorm=True)
    moving = sum(int(np.prod(v.shape)) for v in network.non_trainable_weights)
    assert sum(int(np.prod(v.shape)) for v in network.trainable_weights) == PARAMETERS - moving
    with pytest.raises(ValueError, match="0..14"):
        Y.set_trainable(network, last_blocks=15)


def test_load_class_map(tmp_path):
    good = tmp_path / "map.csv"
    good.write_text('index,mid,display_name\n0,/m/09x0r,Speech\n1,/m/0ytgt,"Child speech, kid speaking"\n')
    assert Y.load_class_map(good) == ["Speech", "Child speech, kid speaking"]
    bad = tmp_path / "bad.csv"
    bad.write_text("index,mid,display_name\n1,/m/09x0r,Speech\n")
    with pytest.raises(ValueError, match="indices must run"):
        Y.load_class_map(bad)


# ------------------------------------------------------------------------------- with ../shared


@pytest.mark.shared
def test_shared_weights_load_into_every_variable(pretrained, class_names):
    with h5py.File(shared_path("models", "yamnet", "yamnet.h5"), "r") as handle:
        kernel = handle["layer14/depthwise_conv/layer14/depthwise_conv/depthwise_kernel:0"][()]
        logits = handle["dense/dense/kernel:0"][()]
    np.testing.assert_array_equal(pretrained.network.get_layer("layer14_depthwise_conv").kernel.numpy(), kernel)
    np.testing.assert_array_equal(pretrained.network.get_layer("dense").kernel.numpy(), logits)
    assert len(class_names) == 521 and class_names[0] == "Speech"


@pytest.mark.shared
@pytest.mark.slow
def test_speech_commands_top1_is_speech(pretrained, class_names):
    from tfaudio.data.batches import iter_batches
    from tfaudio.data.dataset import load_dataset

    dataset = load_dataset(shared_path("datasets", "speech_commands"))
    top = np.empty(len(dataset), np.int64)
    for batch in iter_batches(dataset.clips, SR, 64):
        out = pretrained.embed(batch.waveforms, batch.lengths)
        top[batch.indices] = pool(out.scores, out.patch_mask, "mean").argmax(axis=1)
    labels = np.array([clip.label for clip in dataset.clips])
    speech = top == class_names.index("Speech")
    # Measured: 296 / 300 words (98.7 %), 5 / 398 noise cuts (1.3 %).
    assert (labels == "speech").sum() == 300 and (labels == "noise").sum() == 398
    assert speech[labels == "speech"].mean() >= 0.95
    assert speech[labels == "noise"].mean() <= 0.05


@pytest.fixture(scope="module")
def esc10_first_patch():
    """The first 0.975 s (one YAMNet patch) of every ESC-10 clip: float32 [400, 15600]."""
    from tfaudio.data.audio import load
    from tfaudio.data.dataset import load_dataset

    dataset = load_dataset(shared_path("datasets", "esc10"))
    return np.stack([load(clip.path, SR)[: PARAMS.patch_samples] for clip in dataset.clips])


@pytest.mark.shared
@pytest.mark.slow
def test_agrees_with_tfhub_tflite(pretrained, esc10_first_patch):
    """The TF-Hub model as int8 TFLite, an independent conversion, on the same 0.975 s windows.

    TFLite quantizes activations at run time (its mel matmul too), so agreement is not exact.
    Measured on the 400 clips: top-1 82.8 %, mean |score difference| 0.0014, median per-clip
    log-mel difference on bands within 2 nats of the frame maximum 0.005 (a 56-sample framing
    shift, or librosa's framing and filterbank, give 0.21).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(
            model_path=str(shared_path("models", "yamnet", "yamnet_tfhub_int8.tflite")),
            experimental_preserve_all_tensors=True,
        )
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert source["shape"].tolist() == [15600] and target["shape"].tolist() == [1, 521]
    log_mel_index = next(
        d["index"] for d in interpreter.get_tensor_details() if d["name"].startswith("yamnet_frames/tf_op_layer_Log/")
    )
    reference, log_mel_errors = [], []
    ours = pretrained.embed(esc10_first_patch)
    for waveform, log_mel in zip(esc10_first_patch, ours.log_mel):
        interpreter.set_tensor(source["index"], waveform)
        interpreter.invoke()
        reference.append(interpreter.get_tensor(target["index"])[0])
        theirs = interpreter.get_tensor(log_mel_index)
        strong = theirs > theirs.max(axis=1, keepdims=True) - 2.0
        log_mel_errors.append(np.abs(theirs - log_mel)[strong].mean())
    reference = np.array(reference)
    scores = ours.scores[:, 0]
    assert np.median(log_mel_errors) < 0.03
    assert np.mean(scores.argmax(axis=1) == reference.argmax(axis=1)) >= 0.75
    assert np.abs(scores - reference).mean() < 0.004


@pytest.fixture(scope="module")
def esc10_embeddings(pretrained):
    """Mean-pooled embeddings of all 400 ESC-10 clips: (dataset, float32 [400, 1024])."""
    from tfaudio.data.batches import iter_batches
    from tfaudio.data.dataset import load_dataset

    dataset = load_dataset(shared_path("datasets", "esc10"))
    vectors = np.empty((len(dataset), 1024), np.float32)
    for batch in iter_batches(dataset.clips, SR, 32):
        out = pretrained.embed(batch.waveforms, batch.lengths)
        vectors[batch.indices] = pool(out.embeddings, out.patch_mask, "mean")
    return dataset, vectors


@pytest.mark.shared
@pytest.mark.slow
def test_esc10_linear_probe(esc10_embeddings):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    dataset, vectors = esc10_embeddings
    labels, folds = dataset.labels, dataset.folds
    assert sorted(set(folds.tolist())) == [1, 2, 3, 4, 5]
    accuracies = []
    for fold in range(1, 6):
        test = folds == fold
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        probe.fit(vectors[~test], labels[~test])
        accuracies.append(probe.score(vectors[test], labels[test]))
    # Measured: 97.0 % (folds 100, 98.75, 92.5, 97.5, 96.25).
    assert np.mean(accuracies) >= 0.95
