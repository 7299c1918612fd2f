"""Labels meet a search index's windows: which windows an annotation speaks for, and how.

An index cuts recordings into windows (file, sha256, start, end); labels are spans drawn by
people (a 0.8 s call, a whole file from a manifest). A window takes an annotation's kind when
they overlap by at least `min_overlap` of the shorter of the two: a short call inside a longer
window counts, and so does a window inside a long labelled span. Recordings are matched by
content (sha256) when the annotation has a hash, else by path (labels of files that were not
there to hash when they were imported).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from tfaudio.labels.store import Annotation

#: When annotations of one label disagree about a window, the stronger kind wins: a window that
#: holds a labelled call is a positive even inside a span (or file) judged negative as a whole.
PRECEDENCE = {"negative": 1, "unsure": 2, "positive": 3}


def window_kinds(windows, annotations: Iterable[Annotation], *, min_overlap: float = 0.5) -> np.ndarray:
    """The kind each window takes from `annotations` (of one label; e.g.
    `store.query(label="owl", latest=True)`).

    windows: pandas DataFrame with columns file, sha256, start, end (seconds), as an index's
    windows table. Returns object [len(windows)]: "positive", "negative", "unsure", or None for
    a window no annotation speaks for.
    """
    if not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap}")
    by_content: dict[str, list[Annotation]] = defaultdict(list)
    by_path: dict[str, list[Annotation]] = defaultdict(list)
    for annotation in annotations:
        (by_content[annotation.sha256] if annotation.sha256 else by_path[annotation.file]).append(annotation)
    strength = np.zeros(len(windows), np.int8)
    starts = windows["start"].to_numpy(np.float64)
    ends = windows["end"].to_numpy(np.float64)
    groups = windows.groupby([windows["file"], windows["sha256"].fillna("")], sort=False).indices
    for (file, digest), rows in groups.items():
        for annotation in by_content.get(digest, []) + by_path.get(file, []):
            overlap = np.minimum(ends[rows], annotation.end) - np.maximum(starts[rows], annotation.start)
            shorter = np.minimum(ends[rows] - starts[rows], annotation.end - annotation.start)
            covered = rows[(overlap > 0) & (overlap >= min_overlap * shorter - 1e-9)]
            strength[covered] = np.maximum(strength[covered], PRECEDENCE[annotation.kind])
    kinds = np.array([None, *sorted(PRECEDENCE, key=PRECEDENCE.get)], dtype=object)
    return kinds[strength]
