"""Query by example: audio files (or regions of them) in, ranked hits of an index out.

A query is `FILE` or `FILE@START-END` (seconds; `FILE@START-` runs to the end, `FILE@-END` from
the start). Its windows are embedded by the index itself (`SearchIndex.embed`: the index's model,
weights, precision, windows and hop), scored against indexed windows by `Scorer` (several queries
and negative examples: see tfaudio.search.scoring), and the best windows are merged into hits.

Two ways to rank. Exact (`--exact`, or an index without graphs: small ones get none, see
`IndexConfig.exact_below`): every window is scored (`exact_top_k`). Approximate: each query window asks the graphs
for a generous number of neighbours, and their union is re-scored exactly on the stored float32
vectors, so every score shown is exact; only recall depends on the graph.

Hits: windows of one file that overlap, or lie less than one window length apart, merge into
one hit, scored by its best window, spanning their union (a steady sound's windows score alike,
so its best ones come scattered over it; a gap shorter than a window is not two events). Windows
are taken best first: one near a hit joins it (joining hits it bridges), another starts a new hit
while fewer than `top` exist; the first that would start hit `top + 1` ends the ranking, so each
hit's span holds only windows scoring at least the weakest hit's best. A query's own region is
never a hit of itself (its file is recognised by path or content hash); `other_files=True` leaves
out every window of the query files. A query's windows more than QUIET_DB below its loudest are
left out of it (silence matches all silence).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio.errors import TfaudioError, TfaudioWarning
from tfaudio.search.exact import exact_top_k
from tfaudio.search.scoring import Scorer

#: Query windows this many dB below the query's loudest window are left out of it: silence (ESC-10
#: pads its clips with it) matches every quiet stretch of the archive and says nothing of the sound.
QUIET_DB = 40.0
#: Candidate windows per query window asked of the graphs (at least), and of the exact ranking.
CANDIDATES_PER_HIT = 20
MIN_CANDIDATES = 200
_RANGE = re.compile(r"^\s*(?P<start>\d+(?:\.\d*)?|\.\d+)?\s*-\s*(?P<end>\d+(?:\.\d*)?|\.\d+)?\s*$")


class QueryError(TfaudioError, ValueError):
    """A query the search cannot use (bad FILE@START-END syntax, a range outside the file); one line."""


class SearchWarning(TfaudioWarning):
    """Something about a search worth knowing (a build running, hits in missing files)."""


@dataclass(frozen=True)
class Query:
    """One example: `path`, optionally only [start, end] seconds of it (None: from the start /
    to the end). text: how the user wrote it."""

    path: Path
    start: float | None = None
    end: float | None = None
    text: str = ""

    @property
    def region(self) -> str:
        if self.start is None and self.end is None:
            return ""
        return f"{self.start or 0:g}-{'' if self.end is None else f'{self.end:g}'}"


def _shown(path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def parse_query(text: str | os.PathLike | Query) -> Query:
    """`FILE` or `FILE@START-END` -> Query (nothing is read). A name holding `@` is split at its
    last `@` only when what follows is a range, or when the whole text is no existing file.
    Raises QueryError for a malformed or reversed range."""
    if isinstance(text, Query):
        return text
    if not isinstance(text, str):
        return Query(Path(text), text=_shown(text))
    name, at, suffix = text.rpartition("@")
    if not at or (Path(text).exists() and not _RANGE.match(suffix)):
        return Query(Path(text), text=text)
    match = _RANGE.match(suffix)
    if not match or (match["start"] is None and match["end"] is None) or not name:
        raise QueryError(f"{text}: a query is FILE or FILE@START-END in seconds (e.g. dog.wav@1.5-3, "
                         "dog.wav@2- to the end)")
    start = float(match["start"]) if match["start"] is not None else None
    end = float(match["end"]) if match["end"] is not None else None
    if start is not None and end is not None and end <= start:
        raise QueryError(f"{text}: the range ends ({end:g} s) before it starts ({start:g} s)")
    return Query(Path(name), start, end, text)


def check_query(query: Query) -> float:
    """The file's duration in seconds, after checking it can be read and holds the range.
    Raises AudioError (unreadable) or QueryError (range past the end), one line naming the file."""
    from tfaudio.data.audio import info

    duration = info(query.path).duration
    if query.start is not None and query.start >= duration:
        raise QueryError(f"{query.text or _shown(query.path)}: starts at {query.start:g} s, past the end of the file "
                         f"({duration:.2f} s)")
    if query.end is not None and query.end > duration + 0.01:
        raise QueryError(f"{query.text or _shown(query.path)}: ends at {query.end:g} s, past the end of the file "
                         f"({duration:.2f} s)")
    return duration


def parse_queries(items) -> list[Query]:
    """One query, or several, as Query objects (see parse_query)."""
    if isinstance(items, (str, os.PathLike, Query)):
        items = [items]
    return [parse_query(item) for item in items]


@dataclass
class Hit:
    """A merged run of windows of one file: [start, end] seconds, the best window's score and id."""

    file: str
    start: float
    end: float
    score: float
    window: int


def merge_windows(ids: np.ndarray, scores: np.ndarray, windows, top: int, gap: float = 0.0) -> tuple[list[Hit], bool]:
    """Hits from windows ranked best first (ids int64 [m], scores float32 [m]; `windows` the
    index's window table); windows of a file at most `gap` seconds apart join. Returns (at most
    `top` hits, best first; whether the ranking ended because a window would have started hit
    top + 1, rather than by running out of windows)."""
    gap += 1e-6  # touching windows join whatever the rounding of their times
    files = windows["file"].to_numpy()
    starts, ends = windows["start"].to_numpy(), windows["end"].to_numpy()
    hits: list[Hit] = []
    for window, score in zip(ids.tolist(), scores.tolist()):
        file, start, end = files[window], float(starts[window]), float(ends[window])
        joined = [hit for hit in hits if hit.file == file and start <= hit.end + gap and hit.start <= end + gap]
        if joined:
            keep = joined[0]  # the best of them: hits are kept best first
            keep.start = min([start] + [hit.start for hit in joined])
            keep.end = max([end] + [hit.end for hit in joined])
            hits = [hit for hit in hits if hit is keep or hit not in joined]
        elif len(hits) < top:
            hits.append(Hit(file, start, end, score, window))
        else:
            return hits, True
    return hits, False


def _own_windows(index, queries: Sequence[Query], other_files: bool) -> np.ndarray:
    """bool [n]: windows a hit may not come from (the queries' regions, or files with other_files)."""
    from tfaudio.assets import sha256_of

    table = index.windows
    excluded = np.zeros(len(table), bool)
    for query in queries:
        same = ((table["file"] == str(query.path.resolve())) | (table["sha256"] == sha256_of(query.path))).to_numpy()
        if not other_files:
            low = -math.inf if query.start is None else query.start
            high = math.inf if query.end is None else query.end
            same = same & (table["start"].to_numpy() < high) & (table["end"].to_numpy() > low)
        excluded |= same
    return excluded


def audible(path: Path, starts: np.ndarray, ends: np.ndarray, rate: int = 16000) -> np.ndarray:
    """bool [m]: which windows [starts, ends] (seconds) of the file have an RMS level within
    QUIET_DB of the loudest one's (all of them when every window is silent)."""
    from tfaudio.data.audio import load

    first = float(starts.min())
    samples = load(path, rate, offset=first, duration=float(ends.max()) - first)
    levels = np.zeros(len(starts))
    for row, (start, end) in enumerate(zip(starts, ends)):
        part = samples[int((start - first) * rate) : int((end - first) * rate)]
        levels[row] = np.sqrt(np.mean(np.square(part))) if len(part) else 0.0
    if levels.max() <= 0:
        return np.ones(len(starts), bool)
    return levels >= levels.max() * 10 ** (-QUIET_DB / 20)


def _embed(index, queries: Sequence[Query]) -> list[np.ndarray]:
    """Each query's window vectors float32 [m_i, dim] (the index's own embedding), less its
    quiet windows (see `audible`)."""
    found = []
    for query in queries:
        vectors, starts, ends = index.embed(query.path, query.start, query.end)
        if not len(vectors):
            raise QueryError(f"{query.text or _shown(query.path)}: no window of {index.model} fits in it")
        found.append(np.asarray(vectors, np.float32)[audible(query.path, starts, ends)])
    return found


def _approximate_candidates(index, positives: np.ndarray, count: int, excluded: np.ndarray) -> np.ndarray:
    """The union of each query window's `count` graph neighbours, less the excluded: int64 ids."""
    ids, _ = index.approximate(positives, min(count, len(index)))
    ids = np.unique(ids[ids >= 0])
    return ids[~excluded[ids]]


def rank_windows(index, vectors: np.ndarray, scorer: Scorer, excluded: np.ndarray, top: int,
                 exact: bool) -> tuple[list[Hit], bool]:
    """(hits best first, whether the exact path ranked them). vectors: float32 [columns, dim]
    as `scorer` lays them out. Candidates grow (x4) until `top` hits are settled or the index is spent."""
    exact = exact or not index.has_approximate
    available = int((~excluded).sum())
    positives = vectors[: sum(scorer.windows)]
    gap = float(np.median(index.windows["end"] - index.windows["start"])) if len(index) else 0.0
    count = max(MIN_CANDIDATES, CANDIDATES_PER_HIT * top)
    while True:
        if exact:
            ids, scores = exact_top_k(index, vectors, min(count, max(available, 1)), score=scorer,
                                      sensitivity=scorer.sensitivity, exclude=excluded)
        else:
            ids = _approximate_candidates(index, positives, count, excluded)
            scores = scorer(index.vectors(ids) @ vectors.T)
            order = np.lexsort((ids, -scores))
            ids, scores = ids[order], scores[order]
        hits, settled = merge_windows(ids, scores, index.windows, top, gap)
        if settled or count >= available:
            return hits, exact
        count *= 4


def search(
    index,
    queries,
    *,
    top: int = 10,
    exact: bool = False,
    negatives: Iterable = (),
    negative_weight: float = 1.0,
    other_files: bool = False,
):
    """Search `index` (a SearchIndex or its folder) with example audio.

    queries: a file, `FILE@START-END` (seconds), a Query, or a list of them (scored together: the
    mean of each query's best cosine). negatives: the same forms; windows nearer them than the
    queries are pushed down by `negative_weight` times how much nearer (tfaudio.search.scoring).
    exact: rank every window (else the graphs propose and exact scores rank; small indexes are
    always exact). other_files: no hits from the query files at all (else only the query regions
    themselves are left out). Returns SearchResults, at most `top` hits, best first.
    """
    from tfaudio.search.index import SearchIndex
    from tfaudio.search.results import SearchResults

    if top < 1:
        raise QueryError(f"--top must be at least 1, got {top}")
    queries, negatives = parse_queries(queries), parse_queries(negatives)
    if not queries:
        raise QueryError("give at least one query file")
    if not isinstance(index, SearchIndex):
        index = SearchIndex.open(index)
    for query in (*queries, *negatives):
        check_query(query)
    if index.building:
        warnings.warn(f"{_shown(index.path)}: a build is running; this search reads the index as it was before it",
                      SearchWarning, stacklevel=2)
    positive, negative = _embed(index, queries), _embed(index, negatives)
    scorer = Scorer(tuple(len(v) for v in positive), sum(len(v) for v in negative), negative_weight)
    vectors = np.concatenate(positive + negative)
    hits, ranked_exactly = rank_windows(index, vectors, scorer, _own_windows(index, queries, other_files), top, exact)
    missing = set(index.missing_files()) if hits else set()
    if missing & {hit.file for hit in hits}:
        warnings.warn(f"{len(missing)} indexed file(s) are missing or changed since the build: their hits are listed "
                      "without playback; rebuild the index to refresh it", SearchWarning, stacklevel=2)
    return SearchResults.from_hits(hits, missing, index=index, queries=queries, negatives=negatives,
                                   exact=ranked_exactly, other_files=other_files)
