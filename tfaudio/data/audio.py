"""Audio input: decode, mix down, resample, pad / trim and stream long files.

Everything here returns float32 mono NumPy arrays in [-1, 1] at a requested sample rate.
Decoding goes through libsndfile (soundfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, ...);
resampling through soxr at "HQ" quality, the default of librosa, which is linear-phase and
so adds no delay. Every failure a user can cause raises `AudioError`, which names the file
and says what is wrong with it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

#: File extensions tfaudio treats as audio (lower case, with the dot).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au"}
)

_RESAMPLE_QUALITY = "HQ"
# WAV writers that stream (ffmpeg to a pipe, sox -) leave these placeholder chunk sizes;
# a file carrying one is not truncated even though libsndfile reports a size mismatch.
_PLACEHOLDER_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}
_DATA_SIZE_MISMATCH = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class AudioError(Exception):
    """A file that cannot be used as audio, with the file and the problem named."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says (nothing is decoded)."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class Chunk:
    """One window of a long file.

    samples: float32 [window] at the requested rate; the tail of the last window is zero
    padding, and `valid` counts the samples that are real audio.
    """

    start: float
    samples: np.ndarray
    valid: int


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")


def _open(path: Path) -> sf.SoundFile:
    """Open with libsndfile, turning its terse errors into named ones."""
    _check_exists(path)
    try:
        handle = sf.SoundFile(str(path))
    except sf.LibsndfileError as err:
        detail = (err.error_string or "").strip()
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            supported = ", ".join(sorted(AUDIO_EXTENSIONS))
            problem = f"unsupported format '{path.suffix or '(no extension)'}' (supported: {supported})"
        elif "not recognised" in detail.lower() or not detail:
            problem = f"corrupt or unsupported {path.suffix.lower()} file: the header is not recognised"
        else:
            problem = f"corrupt or header-only {path.suffix.lower()} file: {detail.removeprefix('Error : ')}"
        raise AudioError(path, problem) from None
    except (OSError, RuntimeError) as err:
        raise AudioError(path, f"cannot open: {err}") from None
    if handle.frames == 0:
        handle.close()
        raise AudioError(path, "contains no audio samples (header only, or truncated before the first frame)")
    return handle


def _check_declared_length(path: Path, handle: sf.SoundFile) -> None:
    """A WAV whose data chunk claims more bytes than the file holds was cut short."""
    if handle.format not in ("WAV", "WAVEX", "RF64"):
        return
    match = _DATA_SIZE_MISMATCH.search(handle.extra_info)
    if match and int(match.group(1)) not in _PLACEHOLDER_SIZES:
        declared, present = int(match.group(1)), int(match.group(2))
        if present < declared:
            raise AudioError(
                path, f"truncated: the header declares {declared} data bytes but only {present} are present"
            )


def info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header: sample rate, channels, length. Raises `AudioError`."""
    path = Path(path)
    with _open(path) as handle:
        _check_declared_length(path, handle)
        return AudioInfo(
            path=str(path),
            sample_rate=handle.samplerate,
            channels=handle.channels,
            frames=handle.frames,
            format=handle.format,
            subtype=handle.subtype,
        )


def _to_mono(block: np.ndarray, channel: int | None, path: Path) -> np.ndarray:
    """block: float32 [frames, channels] -> float32 [frames]."""
    if channel is None:
        return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
    if not -block.shape[1] <= channel < block.shape[1]:
        raise AudioError(path, f"has {block.shape[1]} channel(s); channel {channel} does not exist")
    return block[:, channel]


def _check_finite(samples: np.ndarray, path: Path, offset: int = 0) -> None:
    bad = ~np.isfinite(samples)
    if bad.any():
        first = offset + int(np.argmax(bad))
        raise AudioError(path, f"contains {int(bad.sum())} non-finite samples (NaN or inf), first at frame {first}")


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """float32 [samples] at source_rate -> float32 [samples'] at target_rate (soxr HQ)."""
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, source_rate, target_rate, quality=_RESAMPLE_QUALITY).astype(np.float32)


def fix_length(samples: np.ndarray, num_samples: int, align: str = "start") -> np.ndarray:
    """Pad with zeros or trim to exactly num_samples.

    align="start" keeps the beginning (pads or trims at the end); align="center" keeps the
    middle (pads or trims both ends equally, the extra sample at the end).
    """
    if align not in ("start", "center"):
        raise ValueError(f"align must be 'start' or 'center', not {align!r}")
    length = samples.shape[0]
    if length == num_samples:
        return samples
    if length > num_samples:
        begin = (length - num_samples) // 2 if align == "center" else 0
        return samples[begin : begin + num_samples]
    missing = num_samples - length
    before = missing // 2 if align == "center" else 0
    return np.pad(samples, (before, missing - before))


def load(
    path: str | os.PathLike,
    sample_rate: int | None = 16000,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    channel: int | None = None,
    min_duration: float | None = None,
    if_short: str = "pad",
) -> np.ndarray:
    """Decode a file to float32 mono [samples] at sample_rate (None: the file's own rate).

    offset / duration (seconds) select a part of the file. channel picks one channel of a
    multichannel file; None averages them. A clip shorter than min_duration seconds is
    zero-padded at the end (if_short="pad") or refused (if_short="error").
    """
    if if_short not in ("pad", "error"):
        raise ValueError(f"if_short must be 'pad' or 'error', not {if_short!r}")
    if offset < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"offset must be >= 0 and duration > 0, got offset={offset}, duration={duration}")
    path = Path(path)
    with _open(path) as handle:
        _check_declared_length(path, handle)
        native = handle.samplerate
        start = int(round(offset * native))
        if start >= handle.frames:
            raise AudioError(path, f"offset {offset:.3f} s is past the end ({handle.frames / native:.3f} s)")
        wanted = handle.frames - start if duration is None else min(int(round(duration * native)), handle.frames - start)
        try:
            handle.seek(start)
            block = handle.read(wanted, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(path, f"corrupt data: decoding failed ({err})") from None
    if block.shape[0] == 0:
        raise AudioError(path, "contains no decodable audio (corrupt or truncated)")
    # A compressed stream whose header promised more than it delivered was cut short; a few
    # frames of slack absorb MP3 encoder/decoder padding differences.
    if block.shape[0] < wanted - max(2048, wanted // 100):
        raise AudioError(path, f"truncated or corrupt: expected {wanted} frames, decoded only {block.shape[0]}")
    samples = _to_mono(block, channel, path)
    _check_finite(samples, path, start)
    rate = native if sample_rate is None else sample_rate
    samples = resample(samples, native, rate)
    if min_duration is not None:
        needed = int(round(min_duration * rate))
        if samples.shape[0] < needed:
            if if_short == "error":
                raise AudioError(
                    path, f"is {samples.shape[0] / rate:.3f} s long, shorter than the required {min_duration:.3f} s"
                )
            samples = fix_length(samples, needed)
    return np.ascontiguousarray(samples, dtype=np.float32)


def iter_chunks(
    path: str | os.PathLike,
    window: float,
    hop: float | None = None,
    sample_rate: int = 16000,
    *,
    channel: int | None = None,
    pad_last: bool = True,
    block_seconds: float = 10.0,
) -> Iterator[Chunk]:
    """Stream a file as windows of `window` seconds every `hop` seconds (default: window).

    The file is read block by block and resampled with soxr's streaming resampler, so peak
    memory depends on window and block size, never on the file's length. The final, partial
    window is zero-padded (pad_last=True) or dropped.
    """
    hop = window if hop is None else hop
    if not 0 < hop <= window:
        raise ValueError(f"hop must be in (0, window]; got window={window}, hop={hop}")
    win, step = int(round(window * sample_rate)), int(round(hop * sample_rate))
    path = Path(path)
    with _open(path) as handle:
        _check_declared_length(path, handle)
        native = handle.samplerate
        stream = None if native == sample_rate else soxr.ResampleStream(
            native, sample_rate, 1, dtype="float32", quality=_RESAMPLE_QUALITY
        )
        pending = np.zeros(0, dtype=np.float32)  # samples at the target rate not yet emitted
        emitted = 0  # windows yielded so far; window i starts at sample i * step
        read = 0
        blocksize = max(1, int(block_seconds * native))
        blocks = handle.blocks(blocksize=blocksize, dtype="float32", always_2d=True)
        while True:
            try:
                block = next(blocks)
                last = False
            except StopIteration:
                block, last = np.zeros((0, handle.channels), dtype=np.float32), True
            except (sf.LibsndfileError, RuntimeError) as err:
                raise AudioError(path, f"corrupt data after {read / native:.2f} s: {err}") from None
            mono = _to_mono(block, channel, path)
            _check_finite(mono, path, read)
            read += block.shape[0]
            if stream is not None:
                mono = stream.resample_chunk(mono, last=last)
            pending = np.concatenate([pending, mono])
            while pending.shape[0] >= win:
                yield Chunk(start=emitted * step / sample_rate, samples=pending[:win].copy(), valid=win)
                pending = pending[step:]
                emitted += 1
            if last:
                break
    # Samples past the end of the last full window (or a file shorter than one window).
    covered = win - step if emitted else 0
    if pad_last and pending.shape[0] > covered:
        yield Chunk(start=emitted * step / sample_rate, samples=fix_length(pending, win), valid=pending.shape[0])
