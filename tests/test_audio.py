"""tfaudio.audio on real signals with known answers, every supported format and bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from tfaudio.data.audio import AudioError, fix_length, info, iter_chunks, load


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


LOSSLESS = [
    ("WAV", "PCM_U8", "wav", 1 / 128),
    ("WAV", "PCM_16", "wav", 1 / 2**15),
    ("WAV", "PCM_24", "wav", 1 / 2**23),
    ("WAV", "PCM_32", "wav", 1 / 2**31),
    ("WAV", "FLOAT", "wav", 1e-7),
    ("WAV", "DOUBLE", "wav", 1e-7),
    ("FLAC", "PCM_16", "flac", 1 / 2**15),
    ("FLAC", "PCM_24", "flac", 1 / 2**23),
]


@pytest.mark.parametrize("fmt,subtype,ext,step", LOSSLESS, ids=[f"{f}-{s}" for f, s, _, _ in LOSSLESS])
def test_lossless_formats_decode_to_the_written_samples(tmp_path, fmt, subtype, ext, step):
    x = sine(440, 0.5, 16000)
    path = tmp_path / f"clip.{ext}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    y = load(path, 16000)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - x)) <= step  # at most one quantization step off


@pytest.mark.parametrize("fmt,subtype,ext", [("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")])
def test_lossy_formats_keep_pitch_and_length(tmp_path, fmt, subtype, ext):
    x = sine(1000, 1.0, 16000)
    path = tmp_path / f"clip.{ext}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    y = load(path, 16000)
    assert abs(len(y) - len(x)) <= 1152 * 2  # MP3 frames may add encoder padding
    assert abs(peak_frequency(y, 16000) - 1000) < 5
    assert 0.3 < np.max(np.abs(y)) < 0.7


def test_resampling_a_44k_sine_keeps_frequency_and_adds_no_delay(tmp_path):
    path = tmp_path / "sine44k.wav"
    sf.write(path, sine(440, 2.0, 44100), 44100, subtype="FLOAT")
    y = load(path, 16000)
    assert len(y) == 32000
    assert abs(peak_frequency(y, 16000) - 440) < 1
    # Cross-correlate with the ideal 16 kHz sine away from the filter's edge effects.
    reference = sine(440, 2.0, 16000)
    middle = slice(4000, 28000)
    lags = np.arange(-20, 21)
    scores = [np.dot(np.roll(y, -lag)[middle], reference[middle]) for lag in lags]
    assert lags[int(np.argmax(scores))] == 0
    assert np.max(np.abs(y[middle] - reference[middle])) < 1e-3


def test_offset_and_duration_select_the_right_samples(tmp_path):
    ramp = (np.arange(16000) / 16000).astype(np.float32) - 0.5
    path = tmp_path / "ramp.wav"
    sf.write(path, ramp, 16000, subtype="FLOAT")
    part = load(path, None, offset=0.25, duration=0.5)
    np.testing.assert_array_equal(part, ramp[4000:12000])
    with pytest.raises(AudioError, match="past the end"):
        load(path, None, offset=2.0)


def test_multichannel_downmix_and_channel_choice(tmp_path):
    left, right = sine(300, 0.5, 16000), sine(2000, 0.5, 16000, amplitude=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load(path, None), (left + right) / 2, atol=1e-7)
    np.testing.assert_array_equal(load(path, None, channel=1), right)
    with pytest.raises(AudioError, match="channel 2 does not exist") as caught:
        load(path, None, channel=2)
    assert str(path) in str(caught.value)
    assert info(path).channels == 2


def test_fix_length_pads_and_trims_at_start_or_centre():
    x = np.arange(1, 7, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(x, 4), [1, 2, 3, 4])
    np.testing.assert_array_equal(fix_length(x, 4, "center"), [2, 3, 4, 5])
    np.testing.assert_array_equal(fix_length(x, 9), [1, 2, 3, 4, 5, 6, 0, 0, 0])
    np.testing.assert_array_equal(fix_length(x, 9, "center"), [0, 1, 2, 3, 4, 5, 6, 0, 0])


def test_short_clip_is_padded_or_refused(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, sine(440, 0.2, 16000), 16000)
    padded = load(path, 16000, min_duration=1.0)
    assert len(padded) == 16000 and np.all(padded[3200:] == 0)
    with pytest.raises(AudioError, match="shorter than the required 1.000 s") as caught:
        load(path, 16000, min_duration=1.0, if_short="error")
    assert caught.value.path == str(path)


def _bad_files(tmp):
    """name -> (path, expected words in the message)"""
    good = sine(440, 1.0, 16000)
    cases = {}
    cases["missing"] = (tmp / "nope.wav", "not found")
    (tmp / "empty.wav").write_bytes(b"")
    cases["zero-length"] = (tmp / "empty.wav", "empty")
    sf.write(tmp / "full.flac", good, 16000)
    data = (tmp / "full.flac").read_bytes()
    (tmp / "header_only.flac").write_bytes(data[:42])
    cases["header-only"] = (tmp / "header_only.flac", "header")
    (tmp / "cut.flac").write_bytes(data[: len(data) // 2])
    cases["truncated flac"] = (tmp / "cut.flac", "corrupt")
    sf.write(tmp / "full.wav", good, 16000)
    wav = (tmp / "full.wav").read_bytes()
    (tmp / "cut.wav").write_bytes(wav[: len(wav) // 2])
    cases["truncated wav"] = (tmp / "cut.wav", "truncated")
    (tmp / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    cases["corrupt"] = (tmp / "noise.wav", "corrupt")
    (tmp / "notes.txt").write_text("not audio")
    cases["unsupported"] = (tmp / "notes.txt", "unsupported format")
    nan = good.copy()
    nan[100] = np.nan
    sf.write(tmp / "nan.wav", nan, 16000, subtype="FLOAT")
    cases["non-finite"] = (tmp / "nan.wav", "non-finite")
    sf.write(tmp / "head.wav", np.zeros(0, np.float32), 16000)
    cases["no samples"] = (tmp / "head.wav", "no audio samples")
    return cases


def test_every_bad_input_raises_audio_error_naming_the_file(tmp_path):
    for name, (path, words) in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as caught:
            load(path, 16000)
        message = str(caught.value)
        assert str(path) in message, name
        assert words in message, f"{name}: {message!r} lacks {words!r}"
        with pytest.raises(AudioError):
            list(iter_chunks(path, 0.5))


def test_chunks_equal_the_loaded_signal_across_block_boundaries(tmp_path):
    path = tmp_path / "long.wav"
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 44100 * 5).astype(np.float32)
    sf.write(path, x, 44100, subtype="FLOAT")
    whole = load(path, 16000)
    chunks = list(iter_chunks(path, window=1.0, hop=0.5, sample_rate=16000, block_seconds=0.37))
    assert [c.start for c in chunks] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    for chunk in chunks:
        begin = int(chunk.start * 16000)
        np.testing.assert_allclose(chunk.samples, whole[begin : begin + 16000], atol=1e-5)


def test_last_partial_chunk_is_padded_and_counted(tmp_path):
    path = tmp_path / "odd.wav"
    sf.write(path, np.ones(16000 * 2 + 4000, np.float32) * 0.5, 16000, subtype="FLOAT")
    chunks = list(iter_chunks(path, window=1.0))
    assert [c.valid for c in chunks] == [16000, 16000, 4000]
    assert np.all(chunks[-1].samples[4000:] == 0)
    assert len(list(iter_chunks(path, window=1.0, pad_last=False))) == 2
    short = tmp_path / "short.wav"
    sf.write(short, np.ones(800, np.float32) * 0.5, 16000, subtype="FLOAT")
    (only,) = iter_chunks(short, window=1.0)
    assert only.valid == 800 and only.samples.shape == (16000,)


@pytest.mark.slow
def test_chunking_a_one_hour_file_keeps_peak_memory_flat(tmp_path):
    """One hour at 44.1 kHz is 635 MB as float32; streaming must stay far below that."""
    path = tmp_path / "hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", 44100, 1, subtype="PCM_16") as out:
        for _ in range(60):
            out.write(rng.uniform(-0.3, 0.3, 44100 * 60).astype(np.float32))
    script = textwrap.dedent(
        f"""
        from tfaudio.data.audio import iter_chunks
        def peak_kb():  # VmHWM: ru_maxrss would start at the (large) pytest parent's peak
            return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        before = peak_kb()
        count = sum(1 for _ in iter_chunks({str(path)!r}, window=10.0, hop=5.0, sample_rate=16000))
        after = peak_kb()
        print(count, (after - before) / 1024)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    count, grown_mb = result.stdout.split()
    assert int(count) == 719  # windows at 0, 5, ..., 3590 s
    assert float(grown_mb) < 200, f"peak RSS grew by {grown_mb} MB"
