"""Decoded batches of a dataset's clips, or of windows of long clips: zero-padded waveforms with
their lengths, decoded in background threads while the caller works on the previous batch."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tfaudio.data.audio import AudioError, fix_length, load
from tfaudio.data.dataset import Clip
from tfaudio.data.windows import Window, iter_clip_windows, read_window

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    """Decoded clips, zero-padded to the longest one.

    indices: int64 [batch] positions in the clip list; waveforms: float32 [batch, samples];
    lengths: int32 [batch] real samples per clip.
    """

    indices: np.ndarray
    waveforms: np.ndarray
    lengths: np.ndarray


def iter_batches(
    clips: Sequence[Clip],
    sample_rate: int = 16000,
    batch_size: int = 32,
    *,
    max_duration: float | None = None,
    min_duration: float | None = None,
    on_error: Callable[[AudioError], None] | None = None,
    workers: int = 4,
) -> Iterator[Batch]:
    """Decode clips in parallel threads and yield them in order, `batch_size` at a time; the next
    batch decodes while the caller works on this one.

    A clip that fails to decode is passed to on_error and left out of its batch; without
    on_error the AudioError propagates (fail fast).
    """

    def decode(clip: Clip):
        try:
            return load(clip.path, sample_rate, duration=max_duration, min_duration=min_duration), None
        except AudioError as err:
            return None, err

    starts = range(0, len(clips), batch_size)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # pool.map submits at once: the next batch decodes while the caller works on this one.
        upcoming = pool.map(decode, clips[:batch_size])
        for start in starts:
            decoded = list(upcoming)
            upcoming = pool.map(decode, clips[start + batch_size : start + 2 * batch_size])
            keep, waves = [], []
            for offset, (wave, err) in enumerate(decoded):
                if err is not None:
                    if on_error is None:
                        raise err
                    on_error(err)
                    continue
                keep.append(start + offset)
                waves.append(wave)
            if not waves:
                continue
            lengths = np.array([w.shape[0] for w in waves], dtype=np.int32)
            padded = np.stack([fix_length(w, int(lengths.max())) for w in waves])
            yield Batch(np.array(keep, dtype=np.int64), padded, lengths)


# ----------------------------------------------------------------------------------------------
# Windows of long clips: bucketed by length, bounded by total audio, decoded ahead.

#: Batch widths are this many samples times 1, 1.5, 2, 3, 4, 6, 8, ...: a dataset of any mix of
#: lengths gives a graph a handful of shapes (a clip pads by at most half its length).
BUCKET_QUANTUM = 1024


def bucket_width(samples: int) -> int:
    """The smallest width of the ladder BUCKET_QUANTUM * {1, 1.5} * 2**k that holds `samples`."""
    width = BUCKET_QUANTUM
    while width < samples:
        width = width * 3 // 2 if width & (width - 1) == 0 else width * 4 // 3  # 2**k -> 1.5 * 2**k -> 2**(k+1)
    return width


@dataclass(frozen=True)
class WindowBatch:
    """Decoded windows, zero-padded to one bucket width.

    windows: the work units, in batch order; waveforms: float32 [batch, width];
    lengths: int32 [batch] real samples per window.
    """

    windows: tuple[Window, ...]
    waveforms: np.ndarray
    lengths: np.ndarray


def pad_windows(windows: Sequence[Window], samples: Sequence[np.ndarray]) -> WindowBatch:
    """Decoded windows -> a WindowBatch padded to `bucket_width` of the longest."""
    lengths = np.array([len(s) for s in samples], dtype=np.int32)
    width = bucket_width(int(lengths.max()) if len(lengths) else 0)
    waveforms = np.zeros((len(samples), width), np.float32)
    for row, wave in enumerate(samples):
        waveforms[row, : len(wave)] = wave
    return WindowBatch(tuple(windows), waveforms, lengths)


class _Buckets:
    """Windows (with any payload) kept by `bucket_width(window.length)`: `add` returns the bucket
    that the window would overflow (to be batched now), `rest` what remains, smallest width first."""

    def __init__(self, max_samples: int, max_windows: int):
        self.max_samples, self.max_windows = max_samples, max_windows
        self.buckets: dict[int, list] = {}

    def add(self, window: Window, entry) -> list | None:
        width = bucket_width(window.length)
        bucket = self.buckets.setdefault(width, [])
        full = None
        if bucket and (len(bucket) >= self.max_windows or (len(bucket) + 1) * width > self.max_samples):
            full, bucket = bucket, []
            self.buckets[width] = bucket
        bucket.append(entry)
        return full

    def rest(self) -> Iterator[list]:
        for width in sorted(self.buckets):
            if self.buckets[width]:
                yield self.buckets[width]
        self.buckets = {}


def group_windows(windows: Iterable[Window], *, max_samples: int, max_windows: int = 32) -> Iterator[list[Window]]:
    """The batches `iter_window_batches` forms from these windows, in its order: windows bucketed by
    `bucket_width(window.length)`, a bucket emitted when the next window would overflow it (more
    than max_windows, or more than max_samples padded samples), the rest at the end, smallest
    width first. Batch composition decides the last bits of a model's output, so a distributed
    runner that groups alike gets the local runner's vectors bit for bit."""
    buckets = _Buckets(max_samples, max_windows)
    for window in windows:
        full = buckets.add(window, window)
        if full:
            yield full
    yield from buckets.rest()


def iter_window_batches(
    items: Iterable[T],
    plan: Callable[[T], list[Window]],
    *,
    max_samples: int,
    max_windows: int = 32,
    on_error: Callable[[AudioError, T], None] | None = None,
    prepare: Callable[[list[Window]], list[Window]] | None = None,
    workers: int = 4,
) -> Iterator[WindowBatch]:
    """Batches of windows of similar length, each at most `max_samples` padded samples (and
    `max_windows` windows), decoded in a background thread one batch ahead of the caller.

    plan(item) gives an item's windows (a clip's, from its header); prepare(windows), if given,
    may replace them (run in the background too: a representation's clip state). Batches are
    formed as `group_windows` forms them; a long clip's windows are decoded as soon as it is
    planned, in one pass over the file (`iter_clip_windows`), the others when their batch is. An item whose planning,
    preparation or decoding fails is passed to on_error (in the caller's thread) and none of its
    windows are yielded after that; without on_error the AudioError propagates.
    """
    producer = _Producer(plan, prepare, _Buckets(max_samples, max_windows), workers)
    thread = threading.Thread(target=producer.run, args=(items,), name="tfaudio-decode", daemon=True)
    thread.start()
    try:
        while True:
            kind, value, item = producer.events.get()
            if kind == "batch":
                yield value
            elif kind == "error":
                if on_error is None:
                    raise value
                on_error(value, item)
            elif kind == "raise":
                raise value
            else:
                return
    finally:
        producer.stop.set()
        thread.join()


class _Producer:
    """The background half of `iter_window_batches`: plans each item, buckets its windows and
    decodes full buckets, handing ("batch", WindowBatch, None), ("error", AudioError, item),
    ("raise", exception, None) and finally ("done", None, None) to the caller through `events`,
    which holds one decoded batch at most (bounded memory)."""

    def __init__(self, plan, prepare, buckets: _Buckets, workers: int):
        self.plan, self.prepare, self.buckets, self.workers = plan, prepare, buckets, workers
        self.events: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.by_position: dict[int, object] = {}  # window.position -> its item
        self.failed: set[int] = set()  # positions already reported

    def put(self, event) -> None:
        """Hand an event to the caller, waiting while it works, unless it has stopped listening."""
        while not self.stop.is_set():
            try:
                self.events.put(event, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(self, items: Iterable) -> None:
        try:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                for item in items:
                    if self.stop.is_set():
                        return
                    self._plan(item, pool)
                for bucket in self.buckets.rest():
                    if not self.stop.is_set():
                        self._decode(bucket, pool)
            self.put(("done", None, None))
        except BaseException as err:  # a bug, or an interruption: the caller re-raises it
            self.put(("raise", err, None))

    def _plan(self, item, pool) -> None:
        """One item's windows into their buckets (a long clip's decoded now, in one pass)."""
        windows: list[Window] = []
        try:
            windows = self.plan(item)
            windows = self.prepare(windows) if self.prepare is not None else windows
            for window in windows:
                self.by_position[window.position] = item
            if len(windows) == 1:  # decoded when its batch is: in parallel with others
                self._add(windows[0], None, pool)
                return
            # A long clip is decoded now, in one pass (exact for resampled files too).
            for window, samples in iter_clip_windows(windows):
                self._add(window, samples, pool)
        except AudioError as err:
            if not (windows and windows[0].position in self.failed):  # not reported yet
                self.failed.update(w.position for w in windows[:1])
                self.put(("error", err, item))

    def _add(self, window: Window, samples: np.ndarray | None, pool) -> None:
        full = self.buckets.add(window, (window, samples))
        if full:
            self._decode(full, pool)

    def _decode(self, entries: list[tuple[Window, np.ndarray | None]], pool) -> None:
        """Decode a full bucket's windows not decoded yet, in parallel; report each failed clip
        once and hand on the rest as one batch."""
        waves = list(pool.map(lambda e: _read_or_error(e[0]) if e[1] is None else e[1], entries))
        good = []
        for (window, _), wave in zip(entries, waves):
            if isinstance(wave, AudioError):
                if window.position not in self.failed:
                    self.failed.add(window.position)
                    self.put(("error", wave, self.by_position[window.position]))
            elif window.position not in self.failed:
                good.append((window, wave))
        if good:
            self.put(("batch", pad_windows([w for w, _ in good], [v for _, v in good]), None))


def _read_or_error(window: Window) -> np.ndarray | AudioError:
    try:
        return read_window(window)
    except AudioError as err:
        return err
