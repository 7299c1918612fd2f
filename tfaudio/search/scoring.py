"""How a search scores an indexed window against several query examples and negative examples.

Every query is a set of windows (a file, or a region of one, cut as the index cuts files). For an
indexed window w and query i, `sim_i(w)` is the highest cosine between w and any window of query
i: a window need resemble only some part of the query (a 5-s query holding a 1-s call finds the
call). With several queries the positive score is the **mean of the per-query maxima**, not the
similarity to the mean query vector: examples that differ (a call close by and one far off, or two
variants of a sound) average to a vector near neither of them, while the mean of maxima rewards a
window that is near each example in turn, and a window near all of them most.

Negative examples push windows down by a margin, not by their raw similarity:

    score(w) = pos(w) - weight * max(0, neg(w) - pos(w)),   neg(w) = max cosine to a negative window

Subtracting raw negative similarity would shift every window by how much it resembles the
negatives in general; embeddings share a large common part (YAMNet's are non-negative, so even
unrelated sounds have cosines around 0.3-0.6), so that shift reorders unrelated hits by noise.
The margin moves only windows that are nearer a negative example than the query examples, by how
much nearer they are; a window nearer the queries keeps its score, so without negatives, or far
from them, the score is the plain cosine ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scorer:
    """Scores float32 cosines [n, columns] -> float32 [n].

    The columns are the query windows of query 0, then of query 1, ... (`windows` of each), then
    the windows of every negative example (`negatives` in all). weight: how strongly being nearer a
    negative than the queries counts (>= 0).
    """

    windows: tuple[int, ...]
    negatives: int = 0
    weight: float = 1.0

    def __post_init__(self):
        if not self.windows or min(self.windows) < 1:
            raise ValueError(f"every query needs at least one window, got {self.windows}")
        if self.weight < 0:
            raise ValueError(f"the negative weight must be >= 0, got {self.weight}")

    @property
    def columns(self) -> int:
        return sum(self.windows) + self.negatives

    @property
    def sensitivity(self) -> float:
        """The most the score moves when each cosine moves by at most 1 (for the exact search's
        bfloat16 margin): pos moves by 1, and neg - pos by 2."""
        return 1.0 + (2.0 * self.weight if self.negatives else 0.0)

    def positive(self, cosines: np.ndarray) -> np.ndarray:
        """float32 [n]: the mean over queries of each query's best window cosine."""
        starts = np.cumsum((0,) + self.windows[:-1])
        return np.maximum.reduceat(cosines[:, : sum(self.windows)], starts, axis=1).mean(axis=1)

    def __call__(self, cosines: np.ndarray) -> np.ndarray:
        cosines = np.asarray(cosines, dtype=np.float32)
        positive = self.positive(cosines)
        if not self.negatives:
            return positive.astype(np.float32)
        negative = cosines[:, sum(self.windows) :].max(axis=1)
        return (positive - self.weight * np.maximum(negative - positive, 0.0)).astype(np.float32)
