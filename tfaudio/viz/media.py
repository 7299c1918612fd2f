"""What a page or the projector shows of each clip besides its point: a log-mel thumbnail and
the audio itself.

Thumbnails come from the same in-graph front end as the features (`tfaudio.frontend.LogMel`,
librosa's dB conventions), so what a user sees is what the models were fed. Each clip's log-mel
is scaled to its own dynamic range (peak down to `top_db` below it), shrunk to a fixed pixel
grid by averaging and coloured with one colour map: thumbnails compare shapes, not loudness.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tfaudio.data.batches import iter_batches
from tfaudio.data.dataset import Clip
from tfaudio.viz.points import VizError

#: The thumbnail and page audio rate: what every built-in model hears.
MEDIA_RATE = 16000


@dataclass(frozen=True)
class MediaConfig:
    """How clips are shown and played.

    max_seconds: the part of each clip (from its start) drawn in the thumbnail and embedded as
        audio; long recordings would otherwise make a page of hundreds of megabytes.
    audio_rate: Hz of the embedded audio (16000 keeps what the models hear; 8000 is about a third smaller).
    link_audio: link the original files (relative to the page) instead of embedding audio.
    thumbnail_width, thumbnail_height: page thumbnail pixels (time x mel bands).
    """

    max_seconds: float = 10.0
    audio_rate: int = 16000
    link_audio: bool = False
    thumbnail_width: int = 128
    thumbnail_height: int = 64

    def __post_init__(self):
        if self.max_seconds <= 0:
            raise VizError(f"the thumbnail / audio length must be > 0 seconds, got {self.max_seconds}")
        if not 8000 <= self.audio_rate <= 48000:
            raise VizError(f"the page's audio rate must be in 8000..48000 Hz, got {self.audio_rate}")
        if self.thumbnail_width < 4 or self.thumbnail_height < 4:
            raise VizError("thumbnails need at least 4 x 4 pixels")


def shrink(values: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """float [r, c] -> float [rows, columns] by averaging the cells that fall into each pixel
    (a pixel narrower than a cell repeats it), so short and long clips fill the same grid."""
    values = np.asarray(values, dtype=np.float64)

    def along(array: np.ndarray, size: int, axis: int) -> np.ndarray:
        count = array.shape[axis]
        edges = np.linspace(0, count, size + 1)
        starts = np.minimum(np.floor(edges[:-1]).astype(int), count - 1)
        stops = np.maximum(np.ceil(edges[1:]).astype(int), starts + 1)
        # Cumulative sums give every pixel's mean in one pass, whatever the block sizes.
        cumulative = np.cumsum(np.moveaxis(array, axis, 0), axis=0)
        cumulative = np.concatenate([np.zeros_like(cumulative[:1]), cumulative])
        means = (cumulative[stops] - cumulative[starts]) / (stops - starts)[:, np.newaxis]
        return np.moveaxis(means, 0, axis)

    return along(along(values, rows, 0), columns, 1)


def log_mel_images(waveforms: np.ndarray, lengths: np.ndarray, top_db: float = 80.0) -> list[np.ndarray]:
    """float32 [batch, samples] at 16 kHz, int32 [batch] -> per clip float32 [64, frames] in
    [0, 1]: its log-mel (64 bands, 125-7500 Hz, 10 ms hop) from `top_db` below its peak (0) to
    the peak (1), low frequencies in the last row (as a spectrogram is drawn)."""
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.frontend.layers import LogMel
    from tfaudio.frontend.ops import num_frames
    from tfaudio.frontend.params import MelParams

    params = MelParams()
    log_mel = np.asarray(LogMel(params)(waveforms, lengths))  # [batch, frames, 64], dB
    images = []
    for row, length in enumerate(lengths):
        frames = max(int(num_frames(int(length), params.stft)), 1)
        db = log_mel[row, :frames].T[::-1]
        images.append(np.clip((db - (db.max() - top_db)) / top_db, 0.0, 1.0).astype(np.float32))
    return images


#: Colour levels of a thumbnail: 64 steps of the colour map look continuous, and a 64-entry
#: palette PNG is about a third of the size of the same picture in RGB.
LEVELS = 64


def quantize(image: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """float [h, w] in [0, 1] -> uint8 [h, w] palette indices 0..levels-1."""
    return np.round(np.clip(np.asarray(image), 0.0, 1.0) * (levels - 1)).astype(np.uint8)


def png_bytes(indices: np.ndarray, colormap: str = "magma", levels: int = LEVELS) -> bytes:
    """uint8 [h, w] palette indices (from `quantize`) -> PNG bytes with the colour map as palette."""
    from matplotlib import colormaps
    from PIL import Image  # Pillow: a dependency of matplotlib

    palette = (colormaps[colormap](np.linspace(0.0, 1.0, levels))[:, :3] * 255).round().astype(np.uint8)
    picture = Image.fromarray(np.ascontiguousarray(indices, np.uint8), mode="P")
    picture.putpalette(palette.ravel().tolist())
    buffer = io.BytesIO()
    picture.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def ogg_bytes(samples: np.ndarray, rate: int) -> bytes:
    """float32 [samples] -> OGG/Vorbis mono file bytes at Vorbis' lowest quality setting
    (about 28 kbit/s for noisy field recordings at 16 kHz, a third less than the default
    quality): enough to recognise a sound, and it keeps a page of hundreds of clips small."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), rate, format="OGG", subtype="VORBIS", compression_level=1.0)
    return buffer.getvalue()


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


@dataclass(frozen=True)
class ClipMedia:
    """Per clip, in clip order: images float32 [64, frames] in [0, 1] (None for a clip that
    could not be decoded); audio OGG bytes at the configured rate (None when not embedded)."""

    images: list[np.ndarray | None]
    audio: list[bytes | None]


def render_clips(
    clips: Sequence[Clip],
    config: MediaConfig = MediaConfig(),
    *,
    with_audio: bool = True,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> ClipMedia:
    """Decode the first `config.max_seconds` of each clip once and make its log-mel image and
    (when with_audio) its OGG audio. A clip that fails to decode gets None for both."""
    from tfaudio.data.audio import resample

    images: list[np.ndarray | None] = [None] * len(clips)
    audio: list[bytes | None] = [None] * len(clips)

    def skipped(_err) -> None:  # reported where the clip was embedded; here it just has no media
        if progress:
            progress(1)

    for batch in iter_batches(list(clips), MEDIA_RATE, batch_size, max_duration=config.max_seconds, on_error=skipped):
        for position, image in zip(batch.indices, log_mel_images(batch.waveforms, batch.lengths)):
            images[position] = image
        if with_audio:
            def encode(row: int) -> bytes:
                wave = batch.waveforms[row, : batch.lengths[row]]
                return ogg_bytes(resample(wave, MEDIA_RATE, config.audio_rate), config.audio_rate)

            # libsndfile encodes outside the GIL, so threads share the work across cores.
            with ThreadPoolExecutor(max_workers=4) as pool:
                for position, payload in zip(batch.indices, pool.map(encode, range(len(batch.indices)))):
                    audio[position] = payload
        if progress:
            progress(len(batch.indices))
    return ClipMedia(images, audio)


def thumbnail_png(image: np.ndarray | None, width: int, height: int) -> bytes:
    """A clip's log-mel image as a `width` x `height` PNG (dark when it has none)."""
    if image is None:
        return png_bytes(np.zeros((height, width), np.uint8))
    return png_bytes(quantize(shrink(image, height, width)))


def sprite(images: Sequence[np.ndarray | None], max_side: int = 8192, cell: int = 64) -> tuple[np.ndarray, int]:
    """TensorBoard projector sprite: thumbnails row by row on a square grid.

    Returns (uint8 [side, side] palette indices for `png_bytes`, cell pixels); a clip without
    an image gets a dark cell. The projector takes sprites up to 8192 px a
    side, so cells shrink below `cell` pixels when there are many clips.
    """
    count = max(len(images), 1)
    per_side = int(np.ceil(np.sqrt(count)))
    cell = max(1, min(cell, max_side // per_side))
    canvas = np.zeros((per_side * cell, per_side * cell), np.uint8)
    for i, image in enumerate(images):
        if image is not None:
            top, left = (i // per_side) * cell, (i % per_side) * cell
            canvas[top : top + cell, left : left + cell] = quantize(shrink(image, cell, cell))
    return canvas, cell
