"""The hand-crafted clip vector: names, masked pooling, known answers, librosa parity, export."""

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf
from conftest import sine

from tfaudio.models.handcrafted import model as handcrafted

SR = 16000
PARAMS = handcrafted.HandcraftedParams()
NAMES = handcrafted.feature_names(PARAMS)
INDEX = {name: i for i, name in enumerate(NAMES)}


@pytest.fixture(scope="module")
def clips():
    """Three different clips of different lengths: chirp + noise, a tone, noise (seeded)."""
    rng = np.random.default_rng(99)
    chirp = 0.4 * librosa.chirp(
        fmin=200, fmax=6000, sr=SR, duration=1.5
    ) + 0.02 * rng.standard_normal(int(1.5 * SR))
    return [
        chirp.astype(np.float32),
        sine(1000.0, 0.73),
        (0.1 * rng.standard_normal(12_345)).astype(np.float32),
    ]


@pytest.fixture(scope="module")
def padded_batch(clips):
    batch = np.zeros((len(clips), max(map(len, clips))), np.float32)
    for row, clip in zip(batch, clips, strict=True):
        row[: len(clip)] = clip
    return batch, np.array([len(c) for c in clips], np.int32)


@pytest.fixture(scope="module")
def batch_features(padded_batch):
    return handcrafted.compute(*padded_batch, params=PARAMS)


def test_names_are_unique_and_match_the_output_width(batch_features):
    assert len(NAMES) == len(set(NAMES)) == batch_features.shape[1] == 104
    assert NAMES[:2] == ["mfcc_00_mean", "mfcc_01_mean"]
    assert NAMES[len(NAMES) // 2 :][:2] == ["mfcc_00_std", "mfcc_01_std"]
    for name in [
        "dmfcc_12_std",
        "ddmfcc_00_mean",
        "centroid_mean",
        "contrast_3_std",
        "zcr_mean",
        "rms_std",
    ]:
        assert name in INDEX
    fewer = handcrafted.HandcraftedParams(deltas=0, num_mfcc=20)
    assert len(handcrafted.feature_names(fewer)) == 2 * (20 + 13)
    assert handcrafted.compute(np.zeros((1, 4000)), params=fewer).shape == (1, 66)


def test_padded_clip_gives_the_same_vector_as_the_clip_alone(clips, batch_features):
    for i, clip in enumerate(clips):
        alone = handcrafted.compute(clip[None], params=PARAMS)[0]
        scale = np.maximum(np.abs(alone), 1e-3)  # relative, with a floor for values near zero
        assert np.max(np.abs(batch_features[i] - alone) / scale) <= 1e-4, i


def test_ignoring_lengths_would_change_the_vector(padded_batch, batch_features):
    # Guards the test above: padding does matter when the mask is not applied.
    unmasked = handcrafted.compute(padded_batch[0], params=PARAMS)
    assert not np.allclose(unmasked[1], batch_features[1], rtol=1e-2)


def test_batching_does_not_change_results(padded_batch, batch_features):
    np.testing.assert_allclose(
        handcrafted.compute(*padded_batch, batch_size=1), batch_features, rtol=1e-5, atol=1e-5
    )


def test_tone_has_known_statistics(clips, batch_features):
    tone = batch_features[1]
    assert tone[INDEX["centroid_mean"]] == pytest.approx(1.0, rel=0.02)  # kHz
    # Means include the centred edge frames, which are partly zero padding: 5 %.
    assert tone[INDEX["zcr_mean"]] == pytest.approx(2 * 1000 / SR, rel=0.05)
    assert tone[INDEX["rms_mean"]] == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    assert tone[INDEX["flatness_mean"]] < 0.05


def test_pooled_mfcc_and_descriptors_match_librosa(clips, batch_features):
    y = clips[0]
    kw = dict(n_fft=512, hop_length=160, win_length=400)
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13, n_mels=64, **kw)
    per_frame = {
        "mfcc_00": mfcc[0],
        "mfcc_05": mfcc[5],
        "dmfcc_02": librosa.feature.delta(mfcc, order=1)[2],
        "ddmfcc_07": librosa.feature.delta(mfcc, order=2)[7],
        "centroid": librosa.feature.spectral_centroid(y=y, sr=SR, **kw)[0] / 1000.0,
        "bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=SR, **kw)[0] / 1000.0,
        "flatness": librosa.feature.spectral_flatness(y=y, **kw)[0],
        "contrast_2": librosa.feature.spectral_contrast(y=y, sr=SR, **kw)[2],
        "rms": librosa.feature.rms(y=y, frame_length=512, hop_length=160)[0],
    }
    for name, values in per_frame.items():
        for stat, reduce in (("mean", np.mean), ("std", np.std)):
            expected = reduce(values)
            got = batch_features[0][INDEX[f"{name}_{stat}"]]
            assert got == pytest.approx(expected, rel=1e-3, abs=1e-4), f"{name}_{stat}"


def test_silence_and_empty_clips_are_finite():
    silence = np.zeros((3, 16000), np.float32)
    out = handcrafted.compute(silence, lengths=[16000, 100, 0])
    assert np.isfinite(out).all()
    assert np.all(out[:, INDEX["rms_mean"]] == 0.0) and np.all(
        out[:, INDEX["centroid_mean"]] == 0.0
    )


def test_features_are_well_scaled(batch_features):
    # Hz-valued descriptors are in kHz; nothing but c0 (dB-scaled energy) reaches the hundreds.
    non_c0 = np.delete(batch_features, [INDEX["mfcc_00_mean"], INDEX["mfcc_00_std"]], axis=1)
    assert np.abs(non_c0).max() < 150


def test_bad_lengths_are_rejected():
    with pytest.raises(ValueError, match="lengths"):
        handcrafted.compute(np.zeros((2, 100)), lengths=[100, 101])


@pytest.fixture(scope="module")
def keras_model():
    waveform = keras.Input(shape=(None,), name="waveform")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")
    features = handcrafted.HandcraftedFeatures(PARAMS, name="handcrafted")(waveform, lengths)
    return keras.Model([waveform, lengths], features)


def test_keras_serialisation_round_trip(keras_model, padded_batch, batch_features, tmp_path):
    layer = keras_model.get_layer("handcrafted")
    clone = handcrafted.HandcraftedFeatures.from_config(layer.get_config())
    assert clone.params == layer.params
    path = tmp_path / "model.keras"
    keras_model.save(path)
    restored = keras.saving.load_model(path)
    out = restored.predict(list(padded_batch), verbose=0)
    np.testing.assert_allclose(out, batch_features, rtol=1e-5, atol=1e-5)


def test_saved_model_round_trip(keras_model, padded_batch, tmp_path):
    class Export(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None], tf.float32),
                tf.TensorSpec([None], tf.int32),
            ]
        )
        def serve(self, waveform, lengths):
            return self.model([waveform, lengths])

    module = Export(keras_model)
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    restored = tf.saved_model.load(str(tmp_path))
    waveform, lengths = (tf.constant(x) for x in padded_batch)
    np.testing.assert_array_equal(
        restored.serve(waveform, lengths).numpy(), module.serve(waveform, lengths).numpy()
    )
    signature = restored.signatures["serving_default"]
    served = next(iter(signature(waveform=waveform, lengths=lengths).values()))
    np.testing.assert_array_equal(served.numpy(), module.serve(waveform, lengths).numpy())
