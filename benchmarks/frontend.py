"""Log-mel + MFCC throughput: batched tf.signal graph against librosa clip by clip.

Decodes every clip first, so only feature extraction is timed, then runs both on the same
audio with the same settings (16 kHz, 25 ms Hann window, 10 ms hop, 512-point FFT, centred
frames, 64 Slaney mel bands 0-8 kHz, power_to_db with top_db=80, 13 MFCCs, orthonormal DCT).
Each side runs once to warm up, then --repeats times in turn (the median counts: these
machines are shared, and alternating spreads other processes' load over both sides). Before
the speed-up is printed, both sides' log-mel and MFCCs are checked to agree to 0.01 (dB).

    python benchmarks/frontend.py                  # ESC-10 from ../shared/datasets/esc10
    python benchmarks/frontend.py --data DIR       # any folder with audio/*.flac at 16 kHz
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000


def load_clips(data: Path, synthetic: int, seconds: float) -> tuple[np.ndarray, str]:
    """float32 [clips, samples] from data/audio/*.flac, or seeded synthetic clips if absent."""
    files = sorted((data / "audio").glob("*.flac"))
    if not files:
        rng = np.random.default_rng(0)
        n = int(seconds * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        freqs = rng.uniform(100, 4000, size=(synthetic, 1))
        clips = 0.3 * np.sin(2 * np.pi * freqs * t) + 0.05 * rng.standard_normal((synthetic, n))
        return clips.astype(
            np.float32
        ), f"{synthetic} synthetic {seconds:g} s clips (no {data}/audio)"

    import soundfile

    decoded = []
    for path in files:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            raise SystemExit(
                f"{path}: {rate} Hz, expected {SAMPLE_RATE} Hz; resample the folder first"
            )
        decoded.append(audio.mean(axis=1))
    batch = np.zeros((len(decoded), max(map(len, decoded))), np.float32)
    for row, clip in zip(batch, decoded, strict=True):
        row[: len(clip)] = clip
    return batch, f"{len(files)} clips from {data}"


#: Largest difference allowed between the two sides' log-mel (dB) and MFCCs. Both compute in
#: float32 with different FFTs; over ESC-10's 25 M log-mel values the largest round-off is
#: 0.0016 dB, in the quietest bins (tests/test_frontend.py holds 1e-3 on a 2 s chirp). A real
#: mismatch (a frame shift, another mel scale) is decibels, not hundredths.
TOLERANCE = 0.01


def median_times(runs: dict, repeats: int) -> dict[str, float]:
    """Median wall seconds of each run over ``repeats`` rounds in turn (runs are warm already)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def tf_runner(clips: np.ndarray, batch_size: int, xla: bool):
    """A callable computing log-mel and MFCC of all clips, batch by batch, in one graph."""
    import tensorflow as tf

    from tfaudio.frontend import ops as frontend

    mel = frontend.MelParams(
        stft=frontend.STFTParams(center=True, power=2.0), num_mel_bins=64, fmin=0.0, fmax=None
    )
    mfcc_params = frontend.MFCCParams(mel=mel, num_mfcc=13)

    # XLA fuses the element-wise passes around the FFT (windowing, |X|^2, log) into fewer sweeps
    # over memory; the front end needs no change for it.
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)], jit_compile=xla)
    def features(waveform):
        log_mel = frontend.mel_from_spectrogram(frontend.stft(waveform, mel.stft), mel)
        return log_mel, frontend.mfcc_from_log_mel(log_mel, mfcc_params)

    def run():
        """-> (log-mel float32 [clips, frames, 64] dB, MFCC float32 [clips, frames, 13])."""
        parts = [features(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)]
        return tuple(np.concatenate([part[k].numpy() for part in parts]) for k in (0, 1))

    run()  # trace and warm up once
    return run


def librosa_runner(clips: np.ndarray):
    """A callable computing the same features with librosa, one clip at a time."""
    import librosa

    def run():
        """-> (log-mel [clips, frames, 64] dB, MFCC [clips, frames, 13]), as the tf side."""
        log_mels, mfccs = [], []
        for clip in clips:
            mel = librosa.feature.melspectrogram(
                y=clip, sr=SAMPLE_RATE, n_fft=512, hop_length=160, win_length=400, n_mels=64
            )
            log_mel = librosa.power_to_db(mel, top_db=80.0)
            log_mels.append(log_mel.T)
            mfccs.append(librosa.feature.mfcc(S=log_mel, n_mfcc=13).T)
        return np.stack(log_mels), np.stack(mfccs)

    run()  # warm up (imports, FFT plans) once, like the tf side
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "datasets" / "esc10",
        help="folder holding audio/*.flac at 16 kHz (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="clips per tf.function call")
    parser.add_argument(
        "--synthetic", type=int, default=400, help="clips to generate without --data"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of generated clips")
    parser.add_argument(
        "--no-xla",
        dest="xla",
        action="store_false",
        help="run the tf.function without XLA compilation (jit_compile=False)",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per side after a warm-up; the median counts"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    clips, source = load_clips(args.data, args.synthetic, args.seconds)
    audio_seconds = clips.shape[0] * clips.shape[1] / SAMPLE_RATE
    print(f"{source}: {audio_seconds:.0f} s of audio")
    tf_name = f"tf.signal, batches of {args.batch_size}" + (" + XLA" if args.xla else "")
    runs = {tf_name: tf_runner(clips, args.batch_size, args.xla), "librosa, clip by clip": librosa_runner(clips)}
    outputs = [run() for run in runs.values()]
    for what, ours, theirs in zip(("log-mel (dB)", "MFCC"), outputs[0], outputs[1]):
        difference = float(np.abs(ours - theirs).max())
        print(f"{what}: largest difference between the sides {difference:.2g}")
        if not difference <= TOLERANCE:
            raise SystemExit(f"the sides' {what} differ by more than {TOLERANCE}: no speed-up printed")
    times = median_times(runs, args.repeats)
    print(f"median of {args.repeats} runs each, after a warm-up")
    for name, seconds in times.items():
        print(f"{name:32s} {seconds:7.2f} s ({audio_seconds / seconds:6.0f}x real time)")
    print(f"speed-up: {times['librosa, clip by clip'] / times[tf_name]:.1f}x")


if __name__ == "__main__":
    main()
