"""Audio input: decode, mix down, resample, pad / trim and stream long files.

Everything here returns float32 mono NumPy arrays in [-1, 1] at a requested sample rate.
Decoding goes through libsndfile (soundfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, ...);
resampling through soxr at "HQ" quality, the default of librosa, which is linear-phase and
so adds no delay. Every failure a user can cause raises `AudioError`, which names the file
and says what is wrong with it.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from tfaudio.data.decoder_noise import decoder_messages_silenced
from tfaudio.errors import TfaudioError, TfaudioWarning

#: File extensions tfaudio treats as audio (lower case, with the dot).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au"}
)

_RESAMPLE_QUALITY = "HQ"
# WAV writers that stream (ffmpeg to a pipe, sox -) leave these placeholder chunk sizes;
# a file carrying one is not truncated even though libsndfile reports a size mismatch.
_PLACEHOLDER_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}
_DATA_SIZE_MISMATCH = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: The shortest analysis window of any tfaudio front end (the 25 ms log-mel frames of YAMNet,
#: VGGish and the hand-crafted features; wav2vec2's first convolution spans 400 samples at
#: 16 kHz): a clip shorter than this is embedded as the zero padding around it.
MIN_USEFUL_SECONDS = 0.025
# Sample magnitudes beyond this are garbage, not loud audio: 24-bit integer values stored
# unscaled as float peak at 8.4e6, and float32 power spectra overflow only near 1e16, so this
# flags the +-1e30 of a damaged float file (NaN vectors in every model) and nothing real.
_ABSURD_PEAK = 1e9
_VERIFY_BLOCK_FRAMES = 1 << 16  # frames decoded at a time by verify(): its memory bound


def printable_path(path: str | bytes | os.PathLike) -> str:
    """`path` as text that can always be printed or written to UTF-8 files: bytes of the name
    that are not valid UTF-8 (which Python keeps as surrogate escapes, `bad\\udcffbyte.wav`)
    are shown as `\\xNN` (`bad\\xffbyte.wav`), as `ls -b` would. Valid names come back unchanged."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class AudioError(TfaudioError):
    """A file that cannot be used as audio, with the file and the problem named.

    path is the file's name as the file system gives it (usable to open the file again);
    the message shows it through printable_path, so it can always be printed.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fsdecode(path)
        self.problem = problem
        super().__init__(f"{printable_path(self.path)}: {problem}")


class AudioWarning(TfaudioWarning):
    """A file that was used but whose result deserves a look (a clip shorter than one analysis
    window); the message names the file."""


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


def _open_problem(path: Path, detail: str) -> str:
    """What libsndfile's refusal to open the existing, non-empty file `path` means for its user."""
    suffix = path.suffix.lower()
    if suffix not in AUDIO_EXTENSIONS:
        supported = ", ".join(sorted(AUDIO_EXTENSIONS))
        return f"unsupported format '{path.suffix or '(no extension)'}' (supported: {supported})"
    if "not recognised" in detail.lower() or not detail:
        return f"corrupt or unsupported {suffix} file: the header is not recognised"
    if "regular file" in detail and path.is_file():
        # libsndfile's MP3 reader says "File does not exist or is not a regular file (possibly a
        # pipe?)" when it finds no complete frame in a file that is there: a damaged or cut file.
        return (f"damaged or too short to decode as {suffix} ({path.stat().st_size} bytes): "
                "no complete audio frame was found")
    return f"corrupt or header-only {suffix} file: {detail.removeprefix('Error : ')}"


def _open(path: Path, *, warn_short: bool = True) -> sf.SoundFile:
    """Open with libsndfile, turning its terse errors into named ones.

    warn_short: emit an AudioWarning when the file holds less than MIN_USEFUL_SECONDS of audio
    (the readers that decode it for a model; `info` and `verify` report it their own way).
    """
    _check_exists(path)
    try:
        # The name as bytes: soundfile encodes a str strictly, so a name holding a byte that
        # is not UTF-8 (kept by Python as a surrogate escape) would raise UnicodeEncodeError.
        with decoder_messages_silenced(path.suffix.lower() == ".mp3"):
            handle = sf.SoundFile(os.fsencode(path))
    except sf.LibsndfileError as err:
        raise AudioError(path, _open_problem(path, (err.error_string or "").strip())) from None
    except (OSError, RuntimeError) as err:
        raise AudioError(path, f"cannot open: {err}") from None
    if handle.frames == 0:
        handle.close()
        raise AudioError(path, "contains no audio samples (header only, or truncated before the first frame)")
    short = short_clip_problem(handle.frames, handle.samplerate) if warn_short else None
    if short:
        warnings.warn(AudioWarning(f"{printable_path(path)}: {short}"), stacklevel=3)
    return handle


def _read(handle: sf.SoundFile, frames: int) -> np.ndarray:
    """Up to `frames` frames from the current position: float32 [frames', channels]."""
    with decoder_messages_silenced(handle.format == "MPEG"):
        return handle.read(frames, dtype="float32", always_2d=True)


def short_clip_problem(frames: int, sample_rate: int) -> str | None:
    """Why a clip of `frames` samples at `sample_rate` Hz gives vectors of its zero padding
    rather than of its sound, or None when it spans at least MIN_USEFUL_SECONDS."""
    if frames >= MIN_USEFUL_SECONDS * sample_rate:
        return None
    return (f"only {frames} sample(s) ({1000 * frames / sample_rate:.2f} ms) of audio, shorter than one "
            f"{1000 * MIN_USEFUL_SECONDS:.0f} ms analysis window: its vectors describe the zero padding "
            "around it (close to silence), not its sound")


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
    with _open(path, warn_short=False) as handle:
        _check_declared_length(path, handle)
        return _describe(path, handle)


def _describe(path: Path, handle: sf.SoundFile) -> AudioInfo:
    return AudioInfo(path=str(path), sample_rate=handle.samplerate, channels=handle.channels,
                     frames=handle.frames, format=handle.format, subtype=handle.subtype)


def verify(path: str | os.PathLike) -> AudioInfo:
    """`info` after decoding the whole file, block by block (the memory of one block).

    Finds what a header cannot show: a compressed stream cut short (fewer frames decode than
    the header promises, with the slack `load` allows for MP3 padding), data that does not
    decode, NaN or infinite samples, and samples so large (beyond 1e9) that every
    representation would return non-finite vectors. Raises `AudioError` naming the problem.
    """
    path = Path(path)
    with _open(path, warn_short=False) as handle:
        _check_declared_length(path, handle)
        described = _describe(path, handle)
        decoded = 0
        try:
            # read() rather than blocks(): blocks() yields whole blocks even when the decoder
            # delivers fewer frames (a cut MP3), their tail uninitialised memory.
            while (block := _read(handle, _VERIFY_BLOCK_FRAMES)).shape[0]:
                check_samples(block, path, decoded)
                decoded += block.shape[0]
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(path, f"corrupt data: decoding failed ({err})") from None
    if decoded < described.frames - max(2048, described.frames // 100):
        raise AudioError(path, f"truncated or corrupt: the header promises {described.frames} frames, "
                               f"only {decoded} decode")
    return described


def check_samples(block: np.ndarray, path: str | os.PathLike, offset: int = 0) -> None:
    """The decoding verdict on decoded samples, the same for every reader (`info`, `load`, the
    streaming readers, so every command and the Beam pipeline): NaN or infinite samples, or
    samples beyond 1e9 in magnitude (garbage, not loud audio: every representation would give
    non-finite or absurd vectors), make the file unusable. Raises AudioError naming the file.

    block: float32 [frames] or [frames, channels], starting at frame `offset` of the file.
    """
    frames = block if block.ndim == 2 else block.reshape(-1, 1)
    bad = ~np.isfinite(frames).all(axis=1)
    if bad.any():
        first = offset + int(np.argmax(bad))
        raise AudioError(path, f"contains non-finite samples (NaN or inf), first at frame {first}")
    peak = float(np.abs(frames).max()) if frames.size else 0.0
    if peak > _ABSURD_PEAK:
        raise AudioError(path, f"holds samples of magnitude {peak:.3g} (float audio lies within ±1): "
                               "every representation would return non-finite or absurd vectors")


def _to_mono(block: np.ndarray, channel: int | None, path: Path) -> np.ndarray:
    """block: float32 [frames, channels] -> float32 [frames]."""
    if channel is None:
        return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
    if not -block.shape[1] <= channel < block.shape[1]:
        raise AudioError(path, f"has {block.shape[1]} channel(s); channel {channel} does not exist")
    return block[:, channel]


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
            block = _read(handle, wanted)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(path, f"corrupt data: decoding failed ({err})") from None
    if block.shape[0] == 0:
        raise AudioError(path, "contains no decodable audio (corrupt or truncated)")
    # A compressed stream whose header promised more than it delivered was cut short; a few
    # frames of slack absorb MP3 encoder/decoder padding differences.
    if block.shape[0] < wanted - max(2048, wanted // 100):
        raise AudioError(path, f"truncated or corrupt: expected {wanted} frames, decoded only {block.shape[0]}")
    check_samples(block, path, start)
    samples = _to_mono(block, channel, path)
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


#: Samples (at the target rate) decoded beyond each end of a resampled span and then dropped: soxr's
#: HQ filter reaches ~256 of them, so the span's own samples match a whole-file decode to ~1e-7.
_RESAMPLE_MARGIN = 1024


def read_span(
    path: str | os.PathLike,
    start: int,
    stop: int | None,
    sample_rate: int = 16000,
    *,
    end_frames: int | None = None,
    channel: int | None = None,
) -> np.ndarray:
    """Samples [start, stop) at sample_rate of the file, read by seeking: float32 mono [stop - start].

    The span of what `load(path, sample_rate)` returns, without decoding the rest of the file
    (stop=None or past the end: to the end). end_frames: native frames the file is cut to first
    (what `load(..., duration=...)` reads). A file at sample_rate gives exactly load's samples; a
    resampled one is read with `_RESAMPLE_MARGIN` extra samples each side, starting where the rate
    ratio puts a native sample on the output grid, so it differs from the whole-file decode only by
    the filter's block rounding (~1e-7).
    """
    path = Path(path)
    with _open(path, warn_short=False) as handle:  # a span is read from a long clip
        _check_declared_length(path, handle)
        native, frames = handle.samplerate, handle.frames
        if end_frames is not None:
            frames = min(frames, end_frames)
        if native == sample_rate:
            first, last, lead = start, frames if stop is None else min(stop, frames), 0
        else:
            # Native sample n sits on output sample n * sample_rate / native: start the read where
            # that is a whole number, so the output grid of the span is the file's grid.
            unit_out = sample_rate // math.gcd(native, sample_rate)
            unit_in = native // math.gcd(native, sample_rate)
            aligned = max(0, start - _RESAMPLE_MARGIN) // unit_out
            first, lead = aligned * unit_in, start - aligned * unit_out
            last = frames if stop is None else min(frames, -(-(stop + _RESAMPLE_MARGIN) * unit_in // unit_out))
        if first >= last:
            raise AudioError(path, f"sample {start} is past the end of the file")
        try:
            handle.seek(first)
            block = _read(handle, last - first)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(path, f"corrupt data after {first / native:.2f} s: decoding failed ({err})") from None
    if block.shape[0] < (last - first) - max(2048, (last - first) // 100):
        raise AudioError(path, f"truncated or corrupt: expected {last - first} frames at {first}, decoded {block.shape[0]}")
    check_samples(block, path, first)
    samples = _to_mono(block, channel, path)
    samples = resample(samples, native, sample_rate)[lead:]
    return np.ascontiguousarray(samples if stop is None else samples[: stop - start], dtype=np.float32)


def iter_spans(
    path: str | os.PathLike,
    spans: list[tuple[int, int | None]],
    sample_rate: int = 16000,
    *,
    end_frames: int | None = None,
    block_seconds: float = 10.0,
) -> Iterator[np.ndarray]:
    """Samples [start, stop) at sample_rate for each span in turn, from one pass over the file.

    spans: (start, stop) pairs in increasing order, possibly overlapping (stop None: to the end).
    Unlike `read_span`, a resampled file goes through soxr's streaming resampler from its first
    sample, which gives exactly the samples of the whole-file `load`, bit for bit; memory holds
    one span and one block. end_frames: native frames the file is cut to (load's duration).
    """
    path = Path(path)
    if info(path).sample_rate == sample_rate:  # seeking is exact: no resampler state to carry
        for start, stop in spans:
            yield read_span(path, start, stop, sample_rate, end_frames=end_frames)
        return
    with _open(path, warn_short=False) as handle:
        _check_declared_length(path, handle)
        native = handle.samplerate
        frames = handle.frames if end_frames is None else min(handle.frames, end_frames)
        stream = soxr.ResampleStream(native, sample_rate, 1, dtype="float32", quality=_RESAMPLE_QUALITY)
        buffered, offset, read = np.zeros(0, np.float32), 0, 0  # buffered[0] is output sample `offset`
        blocksize = max(1, int(block_seconds * native))
        for start, stop in spans:
            while read < frames and (stop is None or offset + len(buffered) < stop):
                try:
                    block = _read(handle, min(blocksize, frames - read))
                except (sf.LibsndfileError, RuntimeError) as err:
                    raise AudioError(path, f"corrupt data after {read / native:.2f} s: {err}") from None
                if not len(block):
                    raise AudioError(path, f"truncated or corrupt: decoding stopped at frame {read} of {frames}")
                check_samples(block, path, read)
                mono = _to_mono(block, None, path)
                read += len(block)
                buffered = np.concatenate([buffered, stream.resample_chunk(mono, last=read >= frames)])
            if start < offset:
                raise ValueError(f"spans must come in increasing order; {start} is before {offset}")
            yield buffered[start - offset : None if stop is None else stop - offset].copy()
            buffered, offset = buffered[start - offset :], start  # later spans start no earlier


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
                with decoder_messages_silenced(handle.format == "MPEG"):
                    block = next(blocks)
                last = False
            except StopIteration:
                block, last = np.zeros((0, handle.channels), dtype=np.float32), True
            except (sf.LibsndfileError, RuntimeError) as err:
                raise AudioError(path, f"corrupt data after {read / native:.2f} s: {err}") from None
            check_samples(block, path, read)
            mono = _to_mono(block, channel, path)
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
