"""Pooling a clip that arrives window by window (long files), in memory that does not grow with it.

A clip given in one window gets exactly what `tfaudio.frontend.pooling.pool` gives it; a clip in
several gets the same statistics within float rounding: counts, means and the spread (Chan's
parallel update) are kept in float64, so an hour of frames pools as accurately as a second.
"""

from __future__ import annotations

import numpy as np

from tfaudio.frontend.pooling import POOLING, pool

#: Frame-level output: the frames themselves, concatenated in time order.
FRAMES = "frames"


class FramePool:
    """Pools the frames of one clip, given window by window in time order.

    method: one of POOLING ("mean", "max", "mean+std") or "frames". `state()` and `merge()` let a
    distributed runner pool windows in any grouping (a Beam CombineFn); `result()` gives the vector.
    """

    def __init__(self, method: str):
        if method not in (*POOLING, FRAMES):
            raise ValueError(f"unknown pooling {method!r}; choose one of {(*POOLING, FRAMES)}")
        self.method = method
        self._first: np.ndarray | None = None  # one window's frames, kept until a second comes
        self._parts: list[tuple[int, np.ndarray]] = []  # frame-level output only
        self._count = 0
        self._mean: np.ndarray | None = None  # float64 running statistics
        self._m2: np.ndarray | None = None
        self._max: np.ndarray | None = None

    def add(self, frames: np.ndarray, index: int | None = None) -> None:
        """frames: float32 [k, dim], one window's kept frames. index: the window's place in the
        clip, when windows may come out of order (frame-level output is put back in order;
        pooled statistics do not depend on it beyond float rounding)."""
        frames = np.asarray(frames, dtype=np.float32)
        if self.method == FRAMES:
            self._parts.append((len(self._parts) if index is None else index, frames))
        elif self._first is None and self._count == 0:
            self._first = frames
        else:
            self._fold_first()
            self._update(len(frames), *_moments(frames))

    def _fold_first(self) -> None:
        if self._first is not None:
            first, self._first = self._first, None
            self._update(len(first), *_moments(first))

    def _update(self, count: int, mean, m2, peak) -> None:
        if not count:
            return
        if self._count == 0:
            self._mean, self._m2, self._max = mean, m2, peak
        else:
            total = self._count + count
            delta = mean - self._mean
            self._m2 = self._m2 + m2 + delta**2 * (self._count * count / total)
            self._mean = self._mean + delta * (count / total)
            self._max = np.maximum(self._max, peak)
        self._count += count

    def state(self) -> tuple:
        """(count, mean, m2, max) in float64, for `merge` (pooled methods only)."""
        self._fold_first()
        return self._count, self._mean, self._m2, self._max

    def merge(self, state: tuple) -> None:
        """Add the frames summarised by another pool's `state()`."""
        self._fold_first()
        self._update(*state)

    def result(self) -> np.ndarray:
        """float32 [dim] ([2 * dim] for "mean+std"), or float32 [frames, dim] for "frames"."""
        if self.method == FRAMES:
            parts = [frames for _, frames in sorted(self._parts, key=lambda part: part[0])]
            return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        if self._first is not None:
            return pool(self._first[np.newaxis], np.ones((1, len(self._first)), bool), self.method)[0]
        if self._count == 0:
            raise ValueError("the clip has no valid frame")
        if self.method == "max":
            return self._max.astype(np.float32)
        if self.method == "mean":
            return self._mean.astype(np.float32)
        return np.concatenate([self._mean, np.sqrt(self._m2 / self._count)]).astype(np.float32)


def _moments(frames: np.ndarray):
    """float32 [k, dim] -> (mean, sum of squared deviations, max), float64 [dim] each."""
    if not len(frames):
        return None, None, None
    values = frames.astype(np.float64)
    mean = values.mean(axis=0)
    return mean, ((values - mean) ** 2).sum(axis=0), values.max(axis=0)
