"""tf.signal front end: known answers on synthetic signals and parity with librosa 0.11.

Parity tests set librosa's conventions explicitly (centred frames with zero padding, Slaney or
HTK mel with or without area normalisation, power for mel, magnitude for descriptors,
``power_to_db`` with ref=1.0 / amin=1e-10 / top_db=80, orthonormal DCT-II). Tolerances only
cover float32 arithmetic: librosa windows in float64 and sums in a different order.
"""

import dataclasses

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf
from conftest import sine

from tfaudio.frontend import layers as frontend_layers
from tfaudio.frontend import ops as frontend

SR = 16000
N_FFT, HOP, WIN = 512, 160, 400
STFT_KW = dict(n_fft=N_FFT, hop_length=HOP, win_length=WIN)


@pytest.fixture(scope="module")
def signal():
    """2 s: a 100 Hz -> 7 kHz exponential chirp over white noise (seeded)."""
    rng = np.random.default_rng(1234)
    chirp = librosa.chirp(fmin=100, fmax=7000, sr=SR, duration=2.0)
    return (0.5 * chirp + 0.05 * rng.standard_normal(2 * SR)).astype(np.float32)


@pytest.fixture(scope="module")
def reference_magnitude(signal):
    """librosa |STFT| [bins, frames], centred with zero padding (librosa's default)."""
    return np.abs(librosa.stft(signal, **STFT_KW, center=True, pad_mode="constant"))


def _run(layer, waveform, *args):
    return layer(np.asarray(waveform, np.float32)[None], *args).numpy()[0]


def librosa_mel_params(**overrides):
    """librosa.feature.melspectrogram / mfcc defaults at our frame settings, 64 bands."""
    stft = frontend.STFTParams(center=True, power=2.0)
    return frontend.MelParams(stft=stft, num_mel_bins=64, fmin=0.0, fmax=None, **overrides)


# --- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("window_length, expected", [(400, 512), (512, 512), (513, 1024), (1, 1)])
def test_fft_length_defaults_to_next_power_of_two(window_length, expected):
    assert frontend.STFTParams(window_length=window_length).frame_length == expected
    assert frontend.STFTParams(window_length=400, fft_length=1024).frame_length == 1024


def test_invalid_params_are_rejected():
    with pytest.raises(ValueError, match="window"):
        frontend.STFTParams(window="kaiser")
    with pytest.raises(ValueError, match="fmax"):
        frontend.MelParams(fmin=100.0, fmax=9000.0)
    with pytest.raises(ValueError, match="power"):
        frontend.DescriptorParams(stft=frontend.STFTParams(power=2.0))


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("samples", [100, 512, 513, 16000, 16159])
def test_num_frames_matches_layer_and_librosa(center, samples):
    params = frontend.STFTParams(center=center)
    frames = frontend_layers.STFT(params)(np.zeros((1, samples), np.float32)).shape[1]
    assert frames == frontend.num_frames(samples, params)
    assert int(frontend.num_frames(tf.constant(samples), params)) == frames
    if samples >= N_FFT:  # librosa refuses shorter input when not centred
        y = np.zeros(samples, np.float32)
        assert frames == librosa.stft(y, **STFT_KW, center=center).shape[1]


def test_frame_mask_counts_each_clips_frames():
    params = frontend.STFTParams(center=True)
    mask = frontend.frame_mask(tf.constant([16000, 159, 0]), 101, params).numpy()
    assert mask.shape == (3, 101)
    assert mask.sum(axis=1).tolist() == [101, 1, 1]
    assert mask[1, 0] and not mask[1, 1:].any()


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("window", ["hann", "hamming"])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_stft_matches_librosa(signal, center, window, power):
    params = frontend.STFTParams(center=center, window=window, power=power)
    ours = _run(frontend_layers.STFT(params), signal)
    theirs = np.abs(librosa.stft(signal, **STFT_KW, window=window, center=center)).T ** power
    assert ours.shape == theirs.shape
    # float32 end to end against librosa's float64 windowing: 1e-5 of the peak.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * theirs.max())


# --- mel ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mel_scale", ["htk", "slaney"])
@pytest.mark.parametrize("norm", [None, "slaney"])
@pytest.mark.parametrize(
    "fmin, fmax, bands", [(0.0, None, 64), (125.0, 7500.0, 64), (50.0, 4000.0, 40)]
)
def test_mel_filterbank_matches_librosa(mel_scale, norm, fmin, fmax, bands):
    params = frontend.MelParams(
        stft=frontend.STFTParams(power=2.0),
        num_mel_bins=bands,
        fmin=fmin,
        fmax=fmax,
        mel_scale=mel_scale,
        norm=norm,
    )
    ours = frontend.mel_filterbank(params)
    theirs = librosa.filters.mel(
        sr=SR, n_fft=N_FFT, n_mels=bands, fmin=fmin, fmax=fmax, htk=mel_scale == "htk", norm=norm
    ).T
    assert ours.shape == (257, bands)
    # Same float64 formula, both rounded to float32: a few ulp.
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)


def test_mel_scales_agree_with_librosa_conversions():
    hz = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0])
    for htk in (True, False):
        scale = "htk" if htk else "slaney"
        np.testing.assert_allclose(frontend.hz_to_mel(hz, scale), librosa.hz_to_mel(hz, htk=htk))
        mel = frontend.hz_to_mel(hz, scale)
        np.testing.assert_allclose(frontend.mel_to_hz(mel, scale), hz, atol=1e-9)


def test_log_mel_db_matches_power_to_db(signal):
    ours = _run(frontend_layers.LogMel(librosa_mel_params()), signal)
    mel = librosa.feature.melspectrogram(y=signal, sr=SR, **STFT_KW, n_mels=64)
    theirs = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0).T
    assert np.abs(ours - theirs).max() < 1e-3  # dB


def test_log_mel_natural_log_with_htk_mel(signal):
    params = librosa_mel_params(mel_scale="htk", norm=None, log="natural", log_offset=1e-6)
    ours = _run(frontend_layers.LogMel(params), signal)
    mel = librosa.feature.melspectrogram(y=signal, sr=SR, **STFT_KW, n_mels=64, htk=True, norm=None)
    assert np.abs(ours - np.log(mel.T + 1e-6)).max() < 1e-4  # nepers


def test_top_db_clips_relative_to_the_loudest_valid_frame():
    loud_then_silent = np.concatenate([sine(1000.0, 0.5), np.zeros(SR // 2, np.float32)])
    db = _run(frontend_layers.LogMel(librosa_mel_params()), loud_then_silent)
    assert db.max() - db.min() == pytest.approx(80.0, abs=1e-3)


# --- MFCC and deltas --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mfcc_pair(signal):
    ours = _run(frontend_layers.MFCC(frontend.MFCCParams(mel=librosa_mel_params(), deltas=2)), signal)
    theirs = librosa.feature.mfcc(y=signal, sr=SR, **STFT_KW, n_mels=64, n_mfcc=13)
    return ours, theirs


def test_mfcc_matches_librosa(mfcc_pair):
    ours, theirs = mfcc_pair
    assert ours.shape == (theirs.shape[1], 39)
    # Values up to ~200 (dB-scaled); float32 sums over 64 bands give ~1e-5 error.
    assert np.abs(ours[:, :13] - theirs.T).max() < 1e-3


@pytest.mark.parametrize("order", [1, 2])
def test_deltas_match_librosa(mfcc_pair, order):
    ours, theirs = mfcc_pair
    expected = librosa.feature.delta(theirs, width=9, order=order).T
    assert np.abs(ours[:, 13 * order : 13 * (order + 1)] - expected).max() < 1e-3


@pytest.mark.parametrize(
    "order, series, expected", [(1, lambda t: 3.0 * t - 7.0, 3.0), (2, lambda t: 0.5 * t**2, 1.0)]
)
def test_delta_of_polynomial_is_exact_up_to_the_edges(order, series, expected):
    values = series(np.arange(20, dtype=np.float32))[None, :, None]
    out = frontend.delta(tf.constant(values), width=9, order=order).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-3)


@pytest.mark.parametrize("norm", ["ortho", None])
def test_dct_matrix_matches_scipy(norm):
    from scipy.fft import dct

    x = np.random.default_rng(3).standard_normal((5, 64))
    expected = dct(x, type=2, norm=norm)[:, :13]
    np.testing.assert_allclose(
        x @ frontend.dct_matrix(64, 13, norm), expected, rtol=1e-5, atol=1e-5
    )


def test_savgol_coefficients_match_scipy():
    from scipy.signal import savgol_coeffs

    for order in (1, 2):
        ours = frontend.savgol_coefficients(9, order)
        np.testing.assert_allclose(
            ours, savgol_coeffs(9, order, deriv=order, use="dot"), atol=1e-12
        )


def test_mfcc_of_padded_clip_equals_clip_alone(signal):
    params = frontend.MFCCParams(mel=librosa_mel_params(), deltas=2)
    clip = signal[:11_111]
    alone = _run(frontend_layers.MFCC(params), clip)
    batch = np.zeros((2, len(signal)), np.float32)
    batch[0], batch[1, : len(clip)] = signal, clip
    padded = frontend_layers.MFCC(params)(batch, tf.constant([len(signal), len(clip)])).numpy()[1]
    np.testing.assert_allclose(padded[: len(alone)], alone, atol=1e-4)


# --- spectral descriptors ----------------------------------------------------------------------


DESCRIPTORS = frontend.DescriptorParams(stft=frontend.STFTParams(center=True))
COLUMN = {name: i for i, name in enumerate(DESCRIPTORS.names)}


def test_descriptor_names():
    assert DESCRIPTORS.names == [
        "centroid",
        "bandwidth",
        "rolloff",
        "flatness",
        *[f"contrast_{k}" for k in range(7)],
        "zcr",
        "rms",
    ]


@pytest.fixture(scope="module")
def descriptors(signal):
    return _run(frontend_layers.SpectralDescriptors(DESCRIPTORS), signal)


def test_centroid_bandwidth_flatness_rms_match_librosa(signal, descriptors, reference_magnitude):
    S = reference_magnitude
    centroid = librosa.feature.spectral_centroid(S=S, sr=SR, n_fft=N_FFT)[0]
    bandwidth = librosa.feature.spectral_bandwidth(S=S, sr=SR, n_fft=N_FFT, p=2)[0]
    flatness = librosa.feature.spectral_flatness(S=S, power=2.0, amin=1e-10)[0]
    rms = librosa.feature.rms(y=signal, frame_length=N_FFT, hop_length=HOP, center=True)[0]
    # Ratios of float32 sums over 257 bins: 1e-4 relative, far inside the 1 % a user would notice.
    np.testing.assert_allclose(descriptors[:, COLUMN["centroid"]], centroid, rtol=1e-4)
    np.testing.assert_allclose(descriptors[:, COLUMN["bandwidth"]], bandwidth, rtol=1e-4)
    np.testing.assert_allclose(descriptors[:, COLUMN["flatness"]], flatness, rtol=1e-4)
    np.testing.assert_allclose(descriptors[:, COLUMN["rms"]], rms, rtol=1e-5)


def test_rolloff_matches_librosa(descriptors, reference_magnitude):
    theirs = librosa.feature.spectral_rolloff(
        S=reference_magnitude, sr=SR, n_fft=N_FFT, roll_percent=0.85
    )[0]
    ours = descriptors[:, COLUMN["rolloff"]]
    # A threshold on a cumulative sum: float32 rounding may move a tie by one bin, rarely.
    bin_hz = SR / N_FFT
    assert np.abs(ours - theirs).max() <= bin_hz + 1e-3
    assert np.mean(ours == theirs) >= 0.99


def test_contrast_matches_librosa(descriptors, reference_magnitude):
    theirs = librosa.feature.spectral_contrast(S=reference_magnitude, sr=SR, n_fft=N_FFT).T
    ours = descriptors[:, COLUMN["contrast_0"] : COLUMN["contrast_6"] + 1]
    # Means of a few sorted bins, then a log ratio: 1e-2 of librosa's "dB" unit (values ~20-40).
    # No band is 80 dB below the loudest here, so librosa's top_db clip (not applied by
    # tfaudio) does not bite.
    assert np.abs(ours - theirs).max() < 1e-2


def test_zcr_matches_librosa_on_the_same_frames(signal):
    params = frontend.DescriptorParams(stft=frontend.STFTParams(center=False))
    ours = _run(frontend_layers.SpectralDescriptors(params), signal)[:, COLUMN["zcr"]]
    theirs = librosa.feature.zero_crossing_rate(
        signal, frame_length=N_FFT, hop_length=HOP, center=False
    )[0]
    np.testing.assert_array_equal(ours, theirs.astype(np.float32))


def test_zcr_centred_differs_from_librosa_only_in_edge_frames(signal, descriptors):
    # librosa pads with copies of the edge samples, we pad with zeros (as the STFT does).
    theirs = librosa.feature.zero_crossing_rate(
        signal, frame_length=N_FFT, hop_length=HOP, center=True
    )[0]
    interior = slice(N_FFT // 2 // HOP + 1, -(N_FFT // 2 // HOP + 1))
    np.testing.assert_array_equal(
        descriptors[interior, COLUMN["zcr"]], theirs[interior].astype(np.float32)
    )


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_sine_descriptors(freq):
    out = _run(frontend_layers.SpectralDescriptors(DESCRIPTORS), sine(freq))[3:-3]  # skip padded edges
    main_lobe = 2 * SR / WIN  # Hann main lobe half-width: 80 Hz
    np.testing.assert_allclose(out[:, COLUMN["centroid"]], freq, rtol=0.02)
    # A pure tone's spread is the window's, independent of freq: inside the main lobe.
    assert out[:, COLUMN["bandwidth"]].max() < main_lobe
    assert np.all(
        (out[:, COLUMN["rolloff"]] >= freq - SR / N_FFT)
        & (out[:, COLUMN["rolloff"]] <= freq + main_lobe)
    )
    # 2 * freq crossings per second; a frame edge can add or drop one crossing.
    np.testing.assert_allclose(out[:, COLUMN["zcr"]], 2 * freq / SR, atol=1.0 / N_FFT + 1e-6)
    np.testing.assert_allclose(out[:, COLUMN["rms"]], 0.5 / np.sqrt(2), rtol=0.01)
    assert out[:, COLUMN["flatness"]].max() < 1e-3  # tonal


def test_white_noise_is_flat():
    noise = np.random.default_rng(7).standard_normal(SR).astype(np.float32)
    flatness = _run(frontend_layers.SpectralDescriptors(DESCRIPTORS), noise)[:, COLUMN["flatness"]]
    # Periodogram bins of white noise are exponential: E[log P] = log E[P] - Euler's gamma,
    # so geometric / arithmetic mean -> exp(-gamma) = 0.561 (librosa gives the same).
    assert flatness.mean() == pytest.approx(np.exp(-np.euler_gamma), abs=0.02)


def test_silence_is_finite():
    silence = np.zeros((2, 8000), np.float32)
    layers = [
        frontend_layers.STFT(),
        frontend_layers.LogMel(),
        frontend_layers.LogMel(frontend.MelParams(log="natural")),
        frontend_layers.MFCC(frontend.MFCCParams(deltas=2)),
        frontend_layers.SpectralDescriptors(),
    ]
    for layer in layers:
        out = layer(silence).numpy()
        assert np.isfinite(out).all(), type(layer).__name__
    assert np.all(frontend_layers.LogMel()(silence).numpy() == -100.0)  # 10 log10(amin)
    desc = frontend_layers.SpectralDescriptors()(silence).numpy()
    np.testing.assert_allclose(desc[..., COLUMN["flatness"]], 1.0, rtol=1e-5)
    assert np.all(np.delete(desc, COLUMN["flatness"], axis=-1) == 0.0)


# --- serialisation ---------------------------------------------------------------------------


ALL_LAYERS = [
    frontend_layers.STFT(frontend.STFTParams(center=True, window="hamming", power=2.0)),
    frontend_layers.LogMel(librosa_mel_params(mel_scale="htk", norm=None, log="natural")),
    frontend_layers.MFCC(frontend.MFCCParams(deltas=2, delta_width=5)),
    frontend_layers.SpectralDescriptors(frontend.DescriptorParams(rolloff_percent=0.9)),
]


@pytest.mark.parametrize("layer", ALL_LAYERS, ids=lambda layer: type(layer).__name__)
def test_keras_serialisation_round_trip(layer, signal):
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer) and clone.params == layer.params
    assert dataclasses.is_dataclass(clone.params)
    np.testing.assert_array_equal(_run(clone, signal[:4000]), _run(layer, signal[:4000]))


def test_saved_model_round_trip(tmp_path, signal):
    class Frontend(tf.Module):
        def __init__(self):
            super().__init__()
            self.layers = list(ALL_LAYERS)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
        def __call__(self, waveform):
            return {type(layer).__name__: layer(waveform) for layer in self.layers}

    module = Frontend()
    tf.saved_model.save(module, str(tmp_path))
    restored = tf.saved_model.load(str(tmp_path))
    batch = np.stack([signal[:6000], signal[-6000:]])
    expected, actual = module(batch), restored(tf.constant(batch))
    assert set(actual) == {type(layer).__name__ for layer in ALL_LAYERS}
    for name in expected:
        np.testing.assert_array_equal(actual[name].numpy(), expected[name].numpy())
