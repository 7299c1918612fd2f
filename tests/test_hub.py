"""TF-Hub wrappers, offline: SavedModels with the hub models' signatures are built here from the
native YAMNet and VGGish and put where tensorflow_hub caches the real handles; every socket is
blocked, so loading must come from the cache (or fail fast and say how to fill it)."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import SHARED
from helpers import chirp, random_checkpoint, randomize

from tfaudio.models import hub as H
from tfaudio.models.vggish import model as V
from tfaudio.models.yamnet import model as Y

SR = 16000


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach the network fails at once."""

    def refuse(*args, **kwargs):
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "tfhub"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    monkeypatch.delenv("TFHUB_MODEL_LOAD_FORMAT", raising=False)
    monkeypatch.delenv("TFAUDIO_OFFLINE", raising=False)
    return cache


def cache_folder(cache, handle: str):
    return cache / hashlib.sha1(handle.encode("utf8")).hexdigest()


class OneClip(tf.Module):
    """A native model behind the hub models' signature: one 1-D float32 waveform per call."""

    def __init__(self, network: keras.Model, graph, pick):
        super().__init__()
        self.network = network  # tracked, so that the SavedModel holds its variables
        self._graph, self._pick = graph, pick

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, waveform):
        return self._pick(self._graph(waveform[tf.newaxis], tf.shape(waveform)[:1]))


@pytest.fixture(scope="module")
def native_yamnet() -> Y.Yamnet:
    weights = SHARED / "models" / "yamnet" / "yamnet.h5"
    if weights.is_file():
        return Y.Yamnet(weights_path=weights)
    keras.utils.set_random_seed(7)
    model = Y.Yamnet()
    randomize(model.network)
    return model


@pytest.fixture(scope="module")
def native_vggish(tmp_path_factory) -> V.Vggish:
    path, _ = random_checkpoint(tmp_path_factory.getbasetemp() / "vggish-random")
    return V.Vggish(path)


def clips_batch(seconds, seed=0):
    clips = [chirp(s, 200.0 + 150 * i, 6000.0 - 300 * i) for i, s in enumerate(seconds)]
    lengths = np.array([len(c) for c in clips], np.int32)
    batch = np.random.default_rng(seed).normal(0, 0.3, (len(clips), lengths.max())).astype(np.float32)
    for row, clip in zip(batch, clips):
        row[: len(clip)] = clip
    return batch, lengths


def test_hub_yamnet_from_cache_equals_native(native_yamnet, hub_cache):
    exported = OneClip(native_yamnet.network, native_yamnet.embed_graph, lambda o: (o.scores[0], o.embeddings[0], o.log_mel[0]))
    # Only the SavedModel itself: tensorflow_hub needs no descriptor file to take a non-empty
    # <sha1> folder as a complete download.
    tf.saved_model.save(exported, str(cache_folder(hub_cache, H.TFHUB_YAMNET)))

    model = H.HubYamnet()
    assert (model.dim, model.frame_hop_seconds, model.sample_rate) == (1024, 0.48, 16000)
    batch, lengths = clips_batch([0.3, 1.0, 2.2, 5.0])
    hub_out = model.frames(batch, lengths)
    native = native_yamnet.embed(batch, lengths)
    assert hub_out.mask.tolist() == native.patch_mask.tolist()
    assert hub_out.mask.sum(axis=1).tolist() == [1, 2, 4, 10]
    np.testing.assert_allclose(hub_out.embeddings, native.embeddings, rtol=0, atol=1e-4)
    identity = model.identity()
    assert identity["handle"] == H.TFHUB_YAMNET and len(identity["module"]) == 64


def test_hub_vggish_from_cache_equals_native(native_vggish, hub_cache):
    exported = OneClip(native_vggish.network, native_vggish.embed_graph, lambda o: o.embeddings[0])
    tf.saved_model.save(exported, str(cache_folder(hub_cache, H.TFHUB_VGGISH)))

    model = H.HubVggish()
    assert (model.dim, model.frame_hop_seconds) == (128, 0.96)
    batch, lengths = clips_batch([0.1, 0.96, 1.0, 5.0, 10.3])
    hub_out = model.frames(batch, lengths)
    native = native_vggish.frames(batch, lengths)
    assert hub_out.mask.sum(axis=1).tolist() == native.mask.sum(axis=1).tolist() == [1, 1, 1, 5, 10]
    scale = np.abs(native.embeddings).max()
    np.testing.assert_allclose(hub_out.embeddings, native.embeddings, rtol=0, atol=max(1e-4, 1e-5 * scale))


class FrameStats(tf.Module):
    """A tiny waveform -> embeddings model: per 20 ms frame, [mean, rms] times a learned matrix."""

    def __init__(self):
        super().__init__()
        self.projection = tf.Variable(np.arange(16, dtype=np.float32).reshape(2, 8) / 8.0)

    def embed(self, waveform):
        frames = tf.signal.frame(waveform, 320, 320)
        stats = tf.stack([tf.reduce_mean(frames, -1), tf.sqrt(tf.reduce_mean(frames**2, -1))], -1)
        return stats @ self.projection


class Framer(FrameStats):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, waveform):
        return {"embedding": self.embed(waveform), "frames": tf.signal.frame(waveform, 320, 320)}


class TrillLike(FrameStats):
    """TRILL's calling convention: samples [batch, samples] plus a scalar sample_rate."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([], tf.int32)])
    def __call__(self, samples, sample_rate):
        tf.debugging.assert_equal(sample_rate, 16000)
        return {"embedding": self.embed(samples[0])[tf.newaxis], "layer19": tf.zeros([1, 3])}


def expected_frames(waveform: np.ndarray) -> np.ndarray:
    frames = waveform[: len(waveform) // 320 * 320].reshape(-1, 320).astype(np.float64)
    stats = np.stack([frames.mean(-1), np.sqrt((frames**2).mean(-1))], -1)
    return stats @ (np.arange(16).reshape(2, 8) / 8.0)


def test_generic_hub_model_from_a_local_saved_model(tmp_path):
    path = tmp_path / "framer"
    tf.saved_model.save(Framer(), str(path))
    with pytest.raises(H.HubError, match=r"outputs are \['embedding', 'frames'\]; choose one with output_key="):
        H.HubModel(str(path))
    model = H.HubModel(str(path), output_key="embedding")
    assert model.name == f"hub:{path}" and model.dim == 8
    assert model.frame_hop_seconds == pytest.approx(0.02)
    batch, lengths = clips_batch([0.05, 0.3, 1.0])
    out = model.frames(batch, lengths)
    assert out.mask.sum(axis=1).tolist() == [2, 15, 50]
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(out.embeddings[i, out.mask[i]], expected_frames(batch[i, :n]), atol=1e-5)
    assert not out.embeddings[~out.mask].any()
    assert len(model.identity()["module"]) == 64


def test_generic_hub_model_with_trill_convention_and_signature_only(tmp_path):
    trill = tmp_path / "trill"
    tf.saved_model.save(TrillLike(), str(trill))
    model = H.HubModel(str(trill), output_key="embedding")
    waveform = chirp(0.5)
    np.testing.assert_allclose(model.clip_frames(waveform), expected_frames(waveform), atol=1e-5)

    # An object that is not callable is used through its serving signature.
    module = FrameStats()
    signature_only = tmp_path / "signature"
    function = tf.function(lambda audio: {"emb": module.embed(audio)}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(signature_only), signatures={"serving_default": function.get_concrete_function()})
    model = H.HubModel(str(signature_only))
    np.testing.assert_allclose(model.clip_frames(waveform), expected_frames(waveform), atol=1e-5)


def test_generic_hub_model_rejects_other_signatures(tmp_path):
    class Images(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32)])
        def __call__(self, images):
            return tf.reduce_mean(images, [1, 2])

    path = tmp_path / "images"
    tf.saved_model.save(Images(), str(path))
    with pytest.raises(H.HubError, match=r"inputs \(images: float32\[None, 224, 224, 3\]\) do not look like one waveform"):
        H.HubModel(str(path))
    with pytest.raises(H.HubError, match="not a SavedModel directory"):
        H.HubModel(str(tmp_path / "absent"))


def test_offline_flag_fails_fast_naming_handle_and_cache(hub_cache, monkeypatch):
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    folder = cache_folder(hub_cache, H.TFHUB_YAMNET)
    start = time.monotonic()
    with pytest.raises(H.HubError) as error:
        H.HubYamnet()
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert H.TFHUB_YAMNET in message and str(folder) in message
    assert "offline mode" in message and "tf-hub-format=compressed" in message


def test_unreachable_host_fails_fast(hub_cache):
    handle = "https://www.kaggle.com/models/google/yamnet/TensorFlow2/yamnet/1"
    start = time.monotonic()
    with pytest.raises(H.HubError, match=r"www\.kaggle\.com cannot be reached") as error:
        H.HubYamnet(handle)
    assert time.monotonic() - start < 5
    assert str(cache_folder(hub_cache, handle)) in str(error.value)


def test_hanging_dns_fails_fast(hub_cache, monkeypatch):
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(30)
        raise OSError("released")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: hang())
    start = time.monotonic()
    try:
        with pytest.raises(H.HubError, match="cannot be reached"):
            H.HubVggish()
        assert time.monotonic() - start < 5
    finally:
        release.set()


def test_incomplete_cache_folder_is_reported(hub_cache):
    folder = cache_folder(hub_cache, H.TFHUB_VGGISH)
    folder.mkdir(parents=True)
    (folder / "partial.bin").write_bytes(b"x")
    with pytest.raises(H.HubError, match="not empty but holds no saved_model.pb"):
        H.HubVggish()
