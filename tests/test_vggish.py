"""VGGish: front end against a numpy re-implementation of the release's conventions, the TF1
checkpoint loader on a checkpoint written here with the official variable names (random
values: no real VGGish weights exist on these machines), padding, masks, PCA postprocessing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import traces_while
from helpers import chirp, random_checkpoint

from tfaudio.assets import files_sha256
from tfaudio.models.vggish import model as V

SR = 16000
PARAMS = V.VggishParams()
# vggish_slim.py's scopes: slim.repeat names its layers <scope>/<scope>_<i>; slim layers store
# `weights` and `biases`. Written out here rather than taken from the module under test.
OFFICIAL_NAMES = [
    f"vggish/{scope}/{leaf}"
    for scope in ("conv1", "conv2", "conv3/conv3_1", "conv3/conv3_2", "conv4/conv4_1", "conv4/conv4_2",
                  "fc1/fc1_1", "fc1/fc1_2", "fc2")
    for leaf in ("weights", "biases")
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    return random_checkpoint(tmp_path_factory.getbasetemp() / "vggish-random")


@pytest.fixture(scope="module")
def loaded(checkpoint) -> V.Vggish:
    return V.Vggish(checkpoint[0])


# ----------------------------------------------------------------------------- references


def reference_mel_matrix() -> np.ndarray:
    """mel_features.spectrogram_to_mel_matrix's conventions, band by band."""
    mel = lambda hz: 1127.0 * np.log(1.0 + hz / 700.0)  # noqa: E731
    bins = mel(np.linspace(0.0, SR / 2, 257))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    matrix = np.zeros((257, 64))
    for band in range(64):
        low, centre, high = edges[band : band + 3]
        matrix[:, band] = np.clip(np.minimum((bins - low) / (centre - low), (high - bins) / (high - centre)), 0, None)
    matrix[0] = 0.0
    return matrix


def reference_log_mel(waveform: np.ndarray) -> np.ndarray:
    """float64 [frames, 64] as vggish_input computes it: 400-sample frames every 160 samples,
    periodic Hann, |rfft| of 512 points, mel, log(+0.01)."""
    count = 1 + (len(waveform) - 400) // 160
    frames = np.stack([waveform[i * 160 : i * 160 + 400] for i in range(count)]).astype(np.float64)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    return np.log(np.abs(np.fft.rfft(frames * window, 512)) @ reference_mel_matrix() + 0.01)


def reference_network(examples: np.ndarray, w: dict[str, np.ndarray], relu_embedding: bool = False) -> np.ndarray:
    """vggish_slim with plain TF ops on the checkpoint's arrays: float [n, 96, 64] -> [n, 128]."""
    x = tf.constant(examples[..., np.newaxis], tf.float32)
    for convs in (["conv1"], ["conv2"], ["conv3/conv3_1", "conv3/conv3_2"], ["conv4/conv4_1", "conv4/conv4_2"]):
        for scope in convs:
            x = tf.nn.relu(tf.nn.conv2d(x, w[f"vggish/{scope}/weights"], 1, "SAME") + w[f"vggish/{scope}/biases"])
        x = tf.nn.max_pool2d(x, 2, 2, "SAME")
    x = tf.reshape(x, [len(examples), -1])
    for scope in ("fc1/fc1_1", "fc1/fc1_2", "fc2"):
        x = tf.matmul(x, w[f"vggish/{scope}/weights"]) + w[f"vggish/{scope}/biases"]
        if scope != "fc2" or relu_embedding:
            x = tf.nn.relu(x)
    return x.numpy()


# ------------------------------------------------------------------------------------ tests


def test_params_and_variable_table():
    p = PARAMS
    assert (p.stft_window_samples, p.stft_hop_samples, p.fft_length, p.num_spectrogram_bins) == (400, 160, 512, 257)
    assert (p.example_frames, p.example_hop_frames, p.example_samples, p.example_hop_samples) == (96, 96, 15600, 15360)
    assert list(V.CHECKPOINT_VARIABLES) == OFFICIAL_NAMES
    assert V.CHECKPOINT_VARIABLES["vggish/fc1/fc1_1/weights"] == (12288, 4096)
    assert V.CHECKPOINT_VARIABLES["vggish/conv4/conv4_2/weights"] == (3, 3, 512, 512)
    total = sum(int(np.prod(s)) for s in V.CHECKPOINT_VARIABLES.values())
    assert total == 72_141_184 == V.build_network().count_params()
    with pytest.raises(ValueError, match="96 frames x 64 bands"):
        V.VggishParams(mel_bands=128)


def test_written_checkpoint_has_the_official_names(checkpoint):
    path, _ = checkpoint
    assert path.is_file()  # V1: one file, like vggish_model.ckpt
    listed = dict(tf.train.list_variables(str(path)))
    assert sorted(listed) == sorted(OFFICIAL_NAMES)
    assert all(tuple(listed[name]) == V.CHECKPOINT_VARIABLES[name] for name in listed)


@pytest.mark.parametrize(
    "seconds, examples", [(0.0, 1), (0.1, 1), (0.96, 1), (1.0, 1), (5.0, 5), (10.3, 10)]
)
def test_example_count(seconds, examples):
    n = int(round(seconds * SR))
    assert V.num_examples(n) == examples == int(V.num_examples(tf.constant(n)))


def test_example_count_follows_vggish_input_from_one_example_on():
    for n in [15600, 15601, 30959, 30960, 30961, 46319, 46320, 164800]:
        frames = 1 + (n - 400) // 160
        assert V.num_examples(n) == 1 + (frames - 96) // 96, n


def test_mel_matrix_reproduces_mel_features():
    ours = V.mel_matrix()
    np.testing.assert_allclose(ours, reference_mel_matrix(), rtol=0, atol=1e-12)
    assert not ours[0].any()
    # TensorFlow's float32 filterbank builds the same triangles.
    tf_matrix = tf.signal.linear_to_mel_weight_matrix(64, 257, SR, 125.0, 7500.0).numpy()
    np.testing.assert_allclose(ours, tf_matrix, atol=2e-5)


def test_log_mel_equals_numpy_reference():
    waveform = chirp(1.3)
    ours = V.log_mel_spectrogram(tf.constant(waveform[np.newaxis]))[0].numpy()
    expected = reference_log_mel(waveform)
    assert ours.shape == expected.shape == (1 + (len(waveform) - 400) // 160, 64)
    # Bands far below the peak differ by float32 FFT round-off (~1e-7 of the peak energy), which
    # log(mel + 0.01) magnifies to ~3e-4; in energy the two agree to float32 precision.
    np.testing.assert_allclose(ours, expected, atol=1e-3)
    energy = np.exp(expected) - 0.01
    np.testing.assert_allclose(np.exp(ours) - 0.01, energy, rtol=0, atol=1e-6 * energy.max())
    silence = V.log_mel_spectrogram(tf.zeros((1, 16000)))[0].numpy()
    np.testing.assert_allclose(silence, np.log(0.01), atol=1e-6)


def test_checkpoint_loads_every_variable(checkpoint, loaded):
    _, weights = checkpoint
    for scope, layer, kind, _ in V._LAYERS:
        if kind != "pool":
            np.testing.assert_array_equal(loaded.network.get_layer(layer).kernel.numpy(), weights[f"{scope}/weights"])
            np.testing.assert_array_equal(loaded.network.get_layer(layer).bias.numpy(), weights[f"{scope}/biases"])


def test_embeddings_equal_reference_on_the_loaded_arrays(checkpoint, loaded):
    """Whole pipeline against the numpy front end and a plain-TF network built from the arrays."""
    _, weights = checkpoint
    waveform = chirp(3.0)
    out = loaded.infer(waveform[np.newaxis])
    examples = V.num_examples(len(waveform))
    assert out.embeddings.shape == (1, examples, 128) and examples == 3
    log_mel = reference_log_mel(waveform)[: 96 * examples].reshape(examples, 96, 64)
    expected = reference_network(log_mel, weights)
    scale = np.abs(expected).max()
    assert scale > 0.1 and np.abs(expected[0] - expected[1]).max() > 0.01 * scale  # non-degenerate
    np.testing.assert_allclose(out.embeddings[0], expected, rtol=0, atol=1e-4 * scale)
    assert (expected < 0).any()  # the release's embedding layer is linear
    random = V.Vggish().infer(waveform[np.newaxis]).embeddings
    assert np.abs(random - out.embeddings).max() > 0.1 * scale


def test_embedding_relu_option(checkpoint):
    relu = V.Vggish(checkpoint[0], params=V.VggishParams(embedding_relu=True))
    out = relu.infer(chirp(1.0)[np.newaxis]).embeddings[0]
    expected = reference_network(reference_log_mel(chirp(1.0))[:96][np.newaxis], checkpoint[1], relu_embedding=True)
    np.testing.assert_allclose(out, expected, atol=1e-4 * np.abs(expected).max())
    assert out.min() >= 0


def test_frames_mask_follows_the_example_count(loaded):
    """Each clip's valid frames are its examples, the padding frames zeros (batch invariance,
    masks and pooling of every representation: test_representation_contract.py)."""
    seconds = [0.1, 0.96, 1.0, 5.0, 10.3]
    clips = [chirp(s, 300.0 + 100 * i, 5000.0) for i, s in enumerate(seconds)]
    lengths = np.array([len(c) for c in clips], np.int32)
    batch = np.random.default_rng(0).normal(0, 0.5, (len(clips), lengths.max())).astype(np.float32)
    for row, clip in zip(batch, clips):
        row[: len(clip)] = clip  # the tail keeps noise: `lengths` must make it irrelevant
    together = loaded.frames(batch, lengths)
    assert together.embeddings.shape == (5, 10, 128) and together.embeddings.dtype == np.float32
    assert together.mask.sum(axis=1).tolist() == [1, 1, 1, 5, 10] == [V.num_examples(n) for n in lengths]
    assert not together.embeddings[~together.mask].any()


def test_embed_does_not_retrace(loaded):
    short_clips = (np.zeros((2, 9000), np.float32), [9000, 100])
    long_clips = (np.zeros((3, 40000), np.float32),)
    assert traces_while(loaded.embed_graph, loaded.infer, short_clips, long_clips) <= 1


def test_checkpoint_errors_name_file_and_variables(tmp_path):
    """All names and shapes are checked before anything is read or assigned."""
    weights = {
        "vggish/conv1/weights": np.zeros((3, 3, 1, 32), np.float32),  # wrong shape
        "vggish/conv1/biases": np.zeros(64, np.float32),
        "vggish/fc3/weights": np.zeros((128, 10), np.float32),  # not VGGish's
    }
    prefix = tmp_path / "broken.ckpt"  # V2 this time: an index and a data file
    names = list(weights)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * 3,
                      tensors=[tf.constant(weights[n]) for n in names])
    network = V.build_network()
    before = [v.numpy() for v in network.weights]
    with pytest.raises(V.WeightsError) as error:
        V.load_checkpoint(network, prefix)
    message = str(error.value)
    assert message.startswith(str(prefix))
    assert "missing variables ['vggish/conv2/weights', 'vggish/conv2/biases'" in message
    assert "'vggish/fc2/biases']" in message
    assert "variables ['vggish/fc3/weights'] have no counterpart" in message
    assert "'vggish/conv1/weights' has shape (3, 3, 1, 32), VGGish needs (3, 3, 1, 64)" in message
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, network.weights))

    with pytest.raises(V.WeightsError, match="checkpoint not found.*vggish_model.ckpt"):
        V.load_checkpoint(network, tmp_path / "absent.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(V.WeightsError, match=r"junk\.ckpt: not a TensorFlow checkpoint"):
        V.load_checkpoint(network, junk)


def write_pca(path: Path, embeddings: np.ndarray, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """PCA parameters in the release's npz layout, scaled so that the rotated values spread over
    and beyond the [-2, 2] quantization range."""
    rng = np.random.default_rng(seed)
    means = embeddings.mean(axis=0).reshape(128, 1)
    spread = (embeddings - means[:, 0]).std() + 1e-6
    vectors = rng.normal(0, 1.5 / (spread * np.sqrt(128)), (128, 128))
    np.savez(path, pca_eigen_vectors=vectors, pca_means=means)
    return vectors, means


def test_pca_postprocessing_equals_release_formula(tmp_path):
    raw_model = V.Vggish()
    clips = np.stack([chirp(2.0), chirp(2.0, 500.0, 2000.0)])
    lengths = np.array([32000, 20000], np.int32)
    raw = raw_model.infer(clips, lengths)
    path = tmp_path / "vggish_pca_params.npz"
    vectors, means = write_pca(path, raw.embeddings[raw.example_mask])

    post = V.Vggish(pca_params_path=path, postprocess=True)
    post.network.set_weights(raw_model.network.get_weights())
    out = post.frames(clips, lengths)
    # vggish_postprocess: PCA on column vectors, clip, scale to 0..255, truncate to uint8.
    valid = raw.embeddings[raw.example_mask].astype(np.float64)
    rotated = np.dot(vectors, valid.T - means).T
    expected = ((np.clip(rotated, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)
    np.testing.assert_array_equal(out.embeddings[out.mask], expected.astype(np.float32))
    assert (expected == 0).any() and (expected == 255).any() and ((expected > 0) & (expected < 255)).any()
    assert not out.embeddings[~out.mask].any()
    assert post.identity()["postprocess"] is True and len(post.identity()["pca_params"]) == 64


def test_pca_file_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, pca_eigen_vectors=np.zeros((128, 64)), pca_means=np.zeros(128))
    with pytest.raises(V.WeightsError, match=r"bad\.npz: array 'pca_eigen_vectors' has shape \(128, 64\)"):
        V.load_pca_params(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, pca_eigen_vectors=np.zeros((128, 128)))
    with pytest.raises(V.WeightsError, match=r"partial\.npz: no array 'pca_means'"):
        V.load_pca_params(partial)
    with pytest.raises(ValueError, match="needs pca_params_path"):
        V.Vggish(postprocess=True)


def test_identity(checkpoint, loaded):
    path, _ = checkpoint
    identity = loaded.identity()
    assert identity["model"] == "vggish" and identity["postprocess"] is False
    assert identity["weights"] == files_sha256([path])
    assert identity["weights"] != hashlib.sha256(b"").hexdigest()
    assert identity["params"]["log_offset"] == 0.01
    assert V.Vggish().identity()["weights"] == "random"
    assert (loaded.name, loaded.sample_rate, loaded.frame_hop_seconds, loaded.dim) == ("vggish", 16000, 0.96, 128)
