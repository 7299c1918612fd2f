"""Wav2Vec2 / Hugging Face encoders on tiny random models the tests save with save_pretrained:
input normalisation, frames against direct model calls, batching invariance for group-norm and
layer-norm models, windows, hidden-layer choice, the hub cache offline, and the Keras switch."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import types
import warnings

import numpy as np
import pytest
import tensorflow as tf
from conftest import padded_batch
from helpers import TINY_WAV2VEC2 as TINY

from tfaudio.models.wav2vec2 import model as W
from tfaudio.models.wav2vec2.config import Preprocessing, Wav2Vec2Params

SR = 16000
HUB_ID = "tfaudio/tiny-wav2vec2"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def chirp(seconds: float, low: float = 100.0, high: float = 7000.0, amplitude: float = 0.3) -> np.ndarray:
    """A sweep with a DC offset: every stretch differs, and normalisation has work to do."""
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.05 + amplitude * np.sin(2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds)))).astype(np.float32)


def alone(rep: W.HFAudioEncoder, clip: np.ndarray) -> np.ndarray:
    """float32 [frames, dim]: the clip embedded on its own."""
    out = rep.frames(clip[np.newaxis], np.array([len(clip)]))
    assert out.mask.all()
    return out.embeddings[0]


@pytest.fixture(scope="module")
def hf():
    """transformers' classes, imported the way the backend does so the test process keeps Keras 3."""
    with W.keep_keras_3():
        import transformers

        return types.SimpleNamespace(
            **{
                name: getattr(transformers, name)
                for name in (
                    "Wav2Vec2Config",
                    "TFWav2Vec2Model",
                    "Wav2Vec2FeatureExtractor",
                    "HubertConfig",
                    "TFHubertModel",
                )
            }
        )


@pytest.fixture(scope="module")
def tiny(hf, tmp_path_factory):
    """{"group", "layer", "hubert"} -> directory of a tiny random model saved with save_pretrained."""
    root = tmp_path_factory.mktemp("tiny")
    tf.random.set_seed(0)
    dirs = {}
    for kind, (config_class, model_class) in {
        "group": (hf.Wav2Vec2Config, hf.TFWav2Vec2Model),
        "layer": (hf.Wav2Vec2Config, hf.TFWav2Vec2Model),
        "hubert": (hf.HubertConfig, hf.TFHubertModel),
    }.items():
        norm = "layer" if kind == "layer" else "group"
        config = config_class(**TINY, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
        model = model_class(config)
        model.build_in_name_scope()
        dirs[kind] = root / kind
        model.save_pretrained(dirs[kind])
        # As on the hub: base models return no attention mask, lv60-style ones do.
        hf.Wav2Vec2FeatureExtractor(return_attention_mask=norm == "layer").save_pretrained(dirs[kind])
    return dirs


@pytest.fixture(scope="module")
def reps(tiny):
    """The tiny group-norm and layer-norm models with 2 s windows, so short test clips cross them."""
    params = {kind: W.Wav2Vec2Params(model=str(tiny[kind]), window_seconds=2.0) for kind in ("group", "layer")}
    return {kind: W.Wav2Vec2(value) for kind, value in params.items()}


def test_import_is_lazy_and_keras3_survives_loading(tiny):
    script = textwrap.dedent(
        f"""
        import os, sys
        from tfaudio.models.wav2vec2 import model as W
        from tfaudio.models.wav2vec2.config import Wav2Vec2Params
        assert "transformers" not in sys.modules, "importing the module imported transformers"
        rep = W.Wav2Vec2(Wav2Vec2Params(model={str(tiny["group"])!r}))
        assert "transformers" in sys.modules
        assert "TF_USE_LEGACY_KERAS" not in os.environ, os.environ["TF_USE_LEGACY_KERAS"]
        import keras, numpy as np, tensorflow as tf
        assert tf.keras.Sequential is keras.Sequential, "tf.keras was switched to tf_keras"
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        model.compile("adam", "mse")
        model.fit(np.ones((16, 4), "float32"), np.ones((16, 1), "float32"), epochs=1, verbose=0)
        assert model.predict(np.ones((2, 4), "float32"), verbose=0).shape == (2, 1)
        print(rep.embed(np.ones((1, 4000), "float32"), np.array([4000])).shape)
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "32)"


def test_frame_arithmetic_matches_the_model(hf, reps):
    rep = reps["group"]
    main_layer = rep.model.wav2vec2
    lengths = [85, 100, 164, 165, 4000, 32000]
    expected = main_layer._get_feat_extract_output_lengths(tf.constant(lengths)).numpy()
    assert [W.conv_frames(n, TINY["conv_kernel"], TINY["conv_stride"]) for n in lengths] == expected.tolist()
    assert rep.receptive_field == 85 and W.conv_frames(84, TINY["conv_kernel"], TINY["conv_stride"]) == 0
    assert rep.frame_hop_seconds == 80 / SR and rep.dim == 32 and rep.sample_rate == SR
    base = hf.Wav2Vec2Config()  # facebook/wav2vec2-base's feature encoder
    assert W.receptive_field(base.conv_kernel, base.conv_stride) == 400
    assert W.conv_frames(10 * SR, base.conv_kernel, base.conv_stride) == 499
    assert np.prod(base.conv_stride) / SR == 0.02


def test_normalization_matches_the_feature_extractor(hf):
    clip, other = chirp(0.7), chirp(0.3, low=300) * 3
    extractor = hf.Wav2Vec2FeatureExtractor()
    reference = extractor(clip, sampling_rate=SR, return_tensors="np")["input_values"][0]
    np.testing.assert_allclose(W.normalize(clip), reference, atol=1e-5)
    assert abs(W.normalize(clip).mean()) < 1e-6 and abs(W.normalize(clip).std() - 1) < 1e-5
    # With an attention mask, the extractor normalises each clip over its own samples only.
    padded = hf.Wav2Vec2FeatureExtractor(return_attention_mask=True)(
        [clip, other], sampling_rate=SR, padding=True, return_tensors="np"
    )["input_values"]
    np.testing.assert_allclose(padded[1, : len(other)], W.normalize(other), atol=1e-5)
    assert np.all(padded[1, len(other) :] == 0)


def test_preprocessor_config_is_read_and_defaults_warn(tiny, tmp_path):
    resolved = W.resolve_model(str(tiny["group"]))
    assert W.read_preprocessing(resolved) == Preprocessing(source=str(tiny["group"] / "preprocessor_config.json"))
    bare = tmp_path / "bare"
    shutil.copytree(tiny["group"], bare)
    settings = json.loads((bare / "preprocessor_config.json").read_text())
    (bare / "preprocessor_config.json").write_text(json.dumps({**settings, "do_normalize": False}))
    assert W.read_preprocessing(W.resolve_model(str(bare))).do_normalize is False
    (bare / "preprocessor_config.json").unlink()
    with pytest.warns(UserWarning, match="no preprocessor_config.json"):
        defaults = W.read_preprocessing(W.resolve_model(str(bare)))
    assert (defaults.sample_rate, defaults.do_normalize) == (SR, True)


@pytest.mark.parametrize("kind", ["group", "layer"])
def test_frames_equal_a_direct_model_call(hf, tiny, reps, kind):
    rep, clip = reps[kind], chirp(1.3)
    model = hf.TFWav2Vec2Model.from_pretrained(str(tiny[kind]))
    direct = model(W.normalize(clip)[np.newaxis], output_hidden_states=True, training=False)
    np.testing.assert_allclose(alone(rep, clip), direct.last_hidden_state[0].numpy(), atol=1e-5)
    assert len(direct.hidden_states) == TINY["num_hidden_layers"] + 1
    for layer in (0, -2):
        chosen = W.Wav2Vec2(W.Wav2Vec2Params(model=str(tiny[kind]), layer=layer))
        np.testing.assert_allclose(alone(chosen, clip), direct.hidden_states[layer][0].numpy(), atol=1e-5)
    every = W.Wav2Vec2(W.Wav2Vec2Params(model=str(tiny[kind]), layer="all"))
    assert every.dim == 3 * 32
    stacked = alone(every, clip)
    for index, state in enumerate(direct.hidden_states):
        np.testing.assert_allclose(stacked[:, index * 32 : (index + 1) * 32], state[0].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="outside the 3 hidden states"):
        W.Wav2Vec2(W.Wav2Vec2Params(model=str(tiny[kind]), layer=3))


@pytest.mark.parametrize("kind", ["group", "layer"])
def test_a_clip_is_the_same_alone_and_in_a_batch(reps, kind):
    rep = reps[kind]
    clips = [chirp(3.5), chirp(0.4, low=500, amplitude=0.8), chirp(0.003), chirp(1.5, low=50)]
    waveforms, lengths = padded_batch(*clips)
    out = rep.frames(waveforms, lengths)
    # 3.5 s: windows of 2 s and 1.5 s; 0.003 s: 48 samples, padded to the 85 of one frame.
    assert out.mask.sum(axis=1).tolist() == [rep.num_frames(n) for n in lengths.tolist()] == [399 + 299, 79, 1, 299]
    for row, clip in enumerate(clips):
        mine = out.embeddings[row, out.mask[row]]
        np.testing.assert_allclose(mine, alone(rep, clip), atol=1e-4)
    # "layer" models share calls through attention masks; "group" ones only at equal lengths.
    windows = [32000, 24000, 6400, 85, 24000]  # the network inputs of the clips above, in order
    assert rep._batches(windows) == ([[3, 2, 1, 4, 0]] if kind == "layer" else [[3], [2], [1, 4], [0]])


def test_padding_without_a_mask_would_change_a_group_norm_model(reps):
    """Why group-norm models run unpadded: HF's recipe (pad with zeros, no mask) moves the frames."""
    rep, short, long = reps["group"], chirp(0.4), chirp(1.5)
    padded = np.zeros(len(long), np.float32)
    padded[: len(short)] = W.normalize(short)
    naive = rep.model(np.stack([padded, W.normalize(long)]), training=False).last_hidden_state[0].numpy()
    drift = np.abs(naive[: rep.num_frames(len(short))] - alone(rep, short)).max()
    assert drift > 1e-2, drift


@pytest.mark.parametrize("kind", ["group", "layer"])
def test_long_inputs_run_in_windows(tiny, kind):
    rep = W.Wav2Vec2(Wav2Vec2Params(model=str(tiny[kind])))  # 10 s windows
    clip = chirp(25.0)
    out = rep.frames(*padded_batch(clip, chirp(0.5)))
    windows = [clip[: 10 * SR], clip[10 * SR : 20 * SR], clip[20 * SR :]]
    per_window = [alone(rep, window) for window in windows]
    assert [len(frames) for frames in per_window] == [1999, 1999, 999]
    assert out.mask[0].sum() == rep.num_frames(len(clip)) == 1999 + 1999 + 999
    np.testing.assert_allclose(out.embeddings[0, out.mask[0]], np.concatenate(per_window), atol=1e-4)
    assert out.mask[1].sum() == 99 and not out.mask[1, 99:].any()


def test_identity_and_generic_encoder(tiny, reps):
    rep = reps["group"]
    identity = rep.identity()
    weights = hashlib.sha256(b"tf_model.h5\0" + (tiny["group"] / "tf_model.h5").read_bytes()).hexdigest()
    assert identity["weights_sha256"] == weights  # names and contents of the checkpoint files
    assert identity["name"] == "wav2vec2" and identity["model"] == str(tiny["group"])
    assert identity["layer"] == "last" and identity["window_seconds"] == 2.0
    assert identity["normalization"] == {"do_normalize": True, "epsilon": 1e-7, "padding_value": 0.0}
    generic = W.HFAudioEncoder(W.Wav2Vec2Params(model=str(tiny["group"]), window_seconds=2.0))
    assert generic.name == f"hf:{tiny['group']}" and type(generic.model).__name__ == "TFWav2Vec2Model"
    clip = chirp(0.5)
    np.testing.assert_allclose(alone(generic, clip), alone(rep, clip), atol=1e-6)
    hubert = W.HFAudioEncoder(W.Wav2Vec2Params(model=str(tiny["hubert"])))
    assert type(hubert.model).__name__ == "TFHubertModel" and not hubert.uses_attention_mask
    direct = hubert.model(W.normalize(clip)[np.newaxis], training=False).last_hidden_state[0].numpy()
    np.testing.assert_allclose(alone(hubert, clip), direct, atol=1e-5)
    with pytest.raises(W.ModelFilesError, match="model_type 'hubert', not 'wav2vec2'.*hf:"):
        W.Wav2Vec2(W.Wav2Vec2Params(model=str(tiny["hubert"])))


def test_ctc_checkpoints_load_from_h5_and_safetensors(hf, tiny, tmp_path):
    """Like facebook/wav2vec2-base-960h: a CTC checkpoint whose encoder feeds TFWav2Vec2Model."""
    with W.keep_keras_3():
        from transformers import TFWav2Vec2ForCTC

        ctc = TFWav2Vec2ForCTC(hf.Wav2Vec2Config(**TINY))
    ctc.build_in_name_scope()
    ctc.save_pretrained(tmp_path / "h5")
    ctc.save_pretrained(tmp_path / "st", safe_serialization=True)
    with pytest.warns(UserWarning, match="no preprocessor_config.json"):
        from_h5 = W.Wav2Vec2(W.Wav2Vec2Params(model=str(tmp_path / "h5")))
    with pytest.warns(UserWarning, match="no preprocessor_config.json"):
        from_st = W.Wav2Vec2(W.Wav2Vec2Params(model=str(tmp_path / "st")))
    assert from_st.identity()["weights_files"] == ["model.safetensors"]
    clip = chirp(0.5)
    direct = ctc.wav2vec2(W.normalize(clip)[np.newaxis], training=False)[0][0].numpy()
    np.testing.assert_allclose(alone(from_h5, clip), direct, atol=1e-5)
    np.testing.assert_allclose(alone(from_st, clip), direct, atol=1e-5)


def test_directory_errors_name_the_file_and_the_fix(tiny, tmp_path):
    with pytest.raises(W.ModelFilesError, match="no config.json"):
        W.resolve_model(str(tmp_path))
    shutil.copy(tiny["group"] / "config.json", tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(W.ModelFilesError, match="needs torch"):
        W.resolve_model(str(tmp_path))
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(W.ModelFilesError, match="no TF weights"):
        W.resolve_model(str(tmp_path))


# ----------------------------------------------------------------------------------------------
# The Hugging Face cache, offline.


@pytest.fixture
def hub_cache(tiny, tmp_path, monkeypatch):
    """An HF cache holding HUB_ID (the tiny group-norm model) as the hub lays it out."""
    import huggingface_hub.constants

    cache = tmp_path / "hf" / "hub"
    repo = cache / "models--tfaudio--tiny-wav2vec2"
    shutil.copytree(tiny["group"], repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # huggingface_hub read the variables at import; its functions read this constant per call.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    for variable in ("TFAUDIO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    return cache


@pytest.fixture
def network_calls(monkeypatch):
    """Blocks the network for the test; the list records every attempt."""
    calls = []

    def refuse(kind):
        def blocked(*args, **kwargs):
            calls.append((kind, args[1:] if kind == "connect" else args[:2]))
            raise OSError(f"network blocked by the test ({kind})")

        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    return calls


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "TFAUDIO_OFFLINE", None])
def test_loads_from_the_cache_without_the_network(hub_cache, network_calls, reps, monkeypatch, offline):
    if offline:
        monkeypatch.setenv(offline, "1")
    rep = W.Wav2Vec2(Wav2Vec2Params(model=HUB_ID, window_seconds=2.0))
    if offline:
        assert network_calls == []
    else:  # the hub probe was refused, so the cache was used
        assert network_calls and all(kind in ("connect", "getaddrinfo") for kind, _ in network_calls)
    identity = rep.identity()
    assert identity["revision"] == REVISION and identity["model"] == HUB_ID
    assert identity["weights_sha256"] == reps["group"].identity()["weights_sha256"]
    clip = chirp(0.8)
    np.testing.assert_allclose(alone(rep, clip), alone(reps["group"], clip), atol=1e-6)


@pytest.mark.parametrize("offline", ["TFAUDIO_OFFLINE", None])
def test_a_missing_model_fails_fast_and_says_how_to_fill_the_cache(hub_cache, network_calls, monkeypatch, offline):
    if offline:
        monkeypatch.setenv(offline, "1")
    start = time.monotonic()
    with pytest.raises(W.ModelFilesError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W.Wav2Vec2(W.Wav2Vec2Params(model="facebook/wav2vec2-base-960h"))
    assert time.monotonic() - start < 5
    message = str(caught.value)
    for part in ("facebook/wav2vec2-base-960h", "config.json", str(hub_cache), "hf download", "pass their directory"):
        assert part in message, message
    assert ("TFAUDIO_OFFLINE=1" if offline else "is unreachable") in message
    if offline:
        assert network_calls == []


def test_registry_names_load_local_models_and_embed_through_the_store(tiny, synth_data, tmp_path):
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models import registry
    from tfaudio.pipeline.local import embed_dataset
    from tfaudio.store import EmbeddingStore

    model = registry.get("wav2vec2", weights_path=str(tiny["group"]))
    assert model.name == "wav2vec2" and model.dim == 32
    generic = registry.get(f"hf:{tiny['hubert']}")
    assert generic.name == f"hf:{tiny['hubert']}"
    ds = load_dataset(synth_data)
    table = embed_dataset(ds, model, EmbeddingStore(tmp_path))
    assert table.vectors.shape == (80, 32) and np.isfinite(table.vectors).all()
    again = embed_dataset(ds, registry.get("wav2vec2", weights_path=str(tiny["group"])), EmbeddingStore(tmp_path))
    assert again.stats.cached == 80


def test_registry_reports_wav2vec2_unavailable_offline(monkeypatch, tmp_path):
    import huggingface_hub.constants

    from tfaudio.models import registry

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(registry.ModelUnavailable, match="facebook/wav2vec2-base-960h is not in the Hugging Face cache"):
        registry.get("wav2vec2")
    assert time.monotonic() - start < 1
    status = {row.info.name: row for row in registry.describe()}
    assert not status["wav2vec2"].available
