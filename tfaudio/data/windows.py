"""Long clips as windows: where to cut, how to read a window, how to pool its frames back.

A representation's frames depend on a bounded stretch of audio (a YAMNet patch on 0.975 s, a
hand-crafted frame with its deltas on ~0.1 s), so a long clip can be embedded window by window,
each read by seeking, with memory that does not grow with the clip. A `WindowGeometry` says what a
window needs so that its frames equal those of the whole clip:

* window cores start on the model's own grid (`step` samples: YAMNet's 0.48 s patch hop, the
  hand-crafted 10 ms hop, Wav2Vec2's 10 s windows), so frame `j` of a window is frame
  `start // hop + j` of the clip;
* `before` / `after` samples of context are read beyond the core and their frames dropped, so
  every kept frame saw exactly the audio it sees in the whole clip;
* the last window runs to the end of the clip and is never shorter than `tail`, so clip-level
  rules (YAMNet and VGGish pad a clip shorter than one patch to one) apply only where they apply
  to the whole clip;
* frames that depend on the whole clip as well (the hand-crafted baseline clips its decibels
  below the clip's loudest frame) get that from a clip state: a value the representation
  computes once per clip (`Representation.clip_state`) and every window carries (`clip_state`).

Each representation declares its geometry (`Representation.window_geometry`; None: whole clips
only), so the code that cuts and embeds windows never needs to know which model it runs.

`tfaudio.frontend.window_pooling.FramePool` pools the kept frames of a clip's windows as one clip
vector, in memory that does not grow with the clip.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tfaudio.data.audio import info, iter_spans, load, read_span

#: Clips longer than this (seconds) are embedded in windows of about this length, by default.
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class WindowGeometry:
    """What a window of a clip must hold for its frames to equal the whole clip's.

    step: window cores start at multiples of it (samples at the model rate).
    before, after: context samples read before / after the core (their frames are dropped).
    hop: samples between frames, so the context and core are whole frames; None for models that
        window internally without overlap (Wav2Vec2): context must be 0 and every frame is kept.
    span: samples one frame sees (the last window is at least `span + after` long).
    clip_state: the frames also depend on something of the whole clip (the hand-crafted
        baseline's loudest frame, which its top_db counts from): the windows of a clip cut in
        several carry the representation's `clip_state` of it in `Window.clip_state`.
    """

    step: int
    before: int = 0
    after: int = 0
    hop: int | None = None
    span: int = 0
    clip_state: bool = False

    @classmethod
    def patches(cls, hop: int, span: int) -> WindowGeometry:
        """Uncentred patches of `span` samples every `hop` from the clip's first sample (YAMNet,
        VGGish): windows read `span - hop` samples past their core."""
        return cls(step=hop, after=span - hop, hop=hop, span=span)

    @classmethod
    def centred(cls, hop: int, frame_length: int, context_frames: int, clip_state: bool = False) -> WindowGeometry:
        """Frames centred every `hop` samples, each seeing `frame_length` samples and depending on
        `context_frames` neighbours each side (deltas): that context, in whole hops, both sides."""
        context = math.ceil((frame_length // 2 + context_frames * hop) / hop) * hop
        return cls(step=hop, before=context, after=context, hop=hop, span=frame_length, clip_state=clip_state)

    def __post_init__(self):
        if self.hop is None and (self.before or self.after):
            raise ValueError("context needs a frame hop to drop whole frames")
        if self.hop is not None and (self.step % self.hop or self.before % self.hop):
            raise ValueError(f"step {self.step} and context {self.before} must be whole frames of {self.hop}")


@dataclass(frozen=True)
class Window:
    """One work unit: a stretch of a clip to decode and embed (picklable, for Beam).

    path, digest: the file and its content sha256; position: the clip's index in its dataset.
    index / count: this window's place among the clip's windows.
    start, stop: the core, samples at sample_rate (stop None: to the end of the clip).
    read_start, read_stop: the samples decoded (the core plus context; read_stop None: to the end).
    skip, keep: frames of the decoded window to drop at the start, then to keep (None: the rest).
    length: samples the window decodes to (exact for all but the last, which runs to the end).
    duration: seconds of the file used (max_duration), None for all; native_rate: the file's rate.
    clip_state: what the representation computed from the whole clip, for geometries with
        `clip_state` when the clip has several windows (else None; picklable, for Beam).
    """

    path: str
    digest: str | None
    position: int
    index: int
    count: int
    start: int
    stop: int | None
    read_start: int
    read_stop: int | None
    skip: int
    keep: int | None
    sample_rate: int
    native_rate: int
    length: int
    duration: float | None = None
    clip_state: object = None

    @property
    def whole(self) -> bool:
        """The window is the whole clip (decoded exactly as `audio.load` decodes it)."""
        return self.count == 1

    def with_clip_state(self, state: object) -> Window:
        return replace(self, clip_state=state)


def plan_windows(
    path: str | Path,
    geometry: WindowGeometry | None,
    *,
    sample_rate: int,
    window_seconds: float,
    digest: str | None = None,
    position: int = 0,
    duration: float | None = None,
) -> list[Window]:
    """The windows of one clip, from its header alone (raises `AudioError` if it has none).

    A clip up to `window_seconds` (plus the last window's tail), or any clip of a representation
    without a geometry, is one window; longer clips get cores of `window_seconds` rounded down to
    the geometry's step (at least one step).
    """
    header = info(path)
    frames = header.frames if duration is None else min(header.frames, int(round(duration * header.sample_rate)))
    total = math.ceil(frames * sample_rate / header.sample_rate)  # soxr's output length
    common = dict(path=str(path), digest=digest, position=position, sample_rate=sample_rate,
                  native_rate=header.sample_rate, duration=duration)
    limit = int(round(window_seconds * sample_rate))
    core = max(geometry.step, limit // geometry.step * geometry.step) if geometry else limit
    tail = max(core // 2, geometry.after + geometry.span) if geometry else 0
    if geometry is None or total < core + tail:
        return [Window(index=0, count=1, start=0, stop=None, read_start=0, read_stop=None, skip=0, keep=None,
                       length=total, **common)]
    # Every window but the last leaves at least `tail` samples after its core.
    starts = list(range(0, total - core - tail + 1, core))
    starts.append(starts[-1] + core)
    hop = geometry.hop
    windows = []
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        read_start = max(0, start - geometry.before)
        windows.append(
            Window(
                index=index,
                count=len(starts),
                start=start,
                stop=None if last else start + core,
                read_start=read_start,
                read_stop=None if last else start + core + geometry.after,
                skip=(start - read_start) // hop if hop else 0,
                keep=None if last or not hop else core // hop,
                length=(total if last else start + core + geometry.after) - read_start,
                **common,
            )
        )
    return windows


def read_window(window: Window) -> np.ndarray:
    """Decode a window: float32 [samples] at window.sample_rate (raises `AudioError`).

    A whole-clip window is `audio.load` itself; others are read by seeking (`audio.read_span`),
    exact for files at sample_rate; `iter_clip_windows` is exact for every file.
    """
    if window.whole:
        return load(window.path, window.sample_rate, duration=window.duration)
    end = None if window.duration is None else int(round(window.duration * window.native_rate))
    return read_span(window.path, window.read_start, window.read_stop, window.sample_rate, end_frames=end)


def iter_clip_windows(windows: Sequence[Window]) -> Iterator[tuple[Window, np.ndarray]]:
    """(window, float32 [samples]) for the windows of one clip in order, from one pass over the file.

    Exactly the samples of the whole-file decode, also for resampled files (`read_window` on one
    window alone reads it by seeking: ~1e-7 off when the file is resampled). Raises `AudioError`.
    """
    if len(windows) == 1 and windows[0].whole:
        yield windows[0], read_window(windows[0])
        return
    first = windows[0]
    end = None if first.duration is None else int(round(first.duration * first.native_rate))
    spans = [(w.read_start, w.read_stop) for w in windows]
    yield from zip(windows, iter_spans(first.path, spans, first.sample_rate, end_frames=end))


def kept_frames(window: Window, frames: np.ndarray) -> np.ndarray:
    """The frames of a decoded window that belong to its core: [frames, ...] -> [kept, ...]."""
    stop = None if window.keep is None else window.skip + window.keep
    return frames[window.skip : stop]
