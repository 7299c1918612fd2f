"""Rounds of labelling: which windows of an index are worth labelling next for one label.

    picks = next_windows("site.index", "labels.db", "owl", strategy="stratified", n=10)
    write_round(picks, "owl", "round3/")      # round3/next.csv to fill in, round3/index.html to listen

Every window of the index gets a score: the detector's calibrated probability of the label when
a detector is given, else the raw score of a head fitted now on the store's labels
(`fit_heads_now`: quick, no cross-validation). Windows already labelled for the label (any kind,
as `tfaudio.labels.windows.window_kinds` sees them) are never proposed, and no two proposals
overlap in one recording: a listener would judge the same sound twice. The strategies:

    top         the highest scores: confirms (or refutes) what the detector finds
    margin      closest to the decision: the detector's threshold for the label, or probability
                0.5 (raw score 0) without one; the labels that move a boundary most
    stratified  a seeded sample of the unlabelled windows in score strata weighted towards the
                top (see `strata`): labels across the range, most of them where a high threshold
                sits, each with the weight that makes them stand for the whole archive
    random      seeded, uniform: an unbiased sample (and the baseline strategies are judged against);
                the one strategy that works before the label has a positive (scores then NaN)

Why top-weighted strata: precision at a high threshold is measured on the labels above it, and the
archive's windows up there are few (a sound in 10 % of the archive, a threshold at its top few
per cent). Equal-count strata would put 1 pick in 10 there; `strata` cuts the ranking at the top
1/32, 1/16, 1/8 and 1/4 instead, so 6 of a round's 10 picks lie in the top eighth.

The weight of a pick (column `weight`) is its inclusion weight, 1 / the probability it was drawn:
for `stratified`, the unlabelled windows of its stratum / the picks taken from that stratum; for
`random`, the unlabelled windows / the picks. Each pick so stands for `weight` windows of the
archive not yet labelled, and a labelled round estimates archive-wide counts (positives above a
threshold: the sum of the weights of the positives above it; tfaudio.detector.archive). The
weights are exact because every stratum's quota is fixed before drawing: no stratum is refilled
from another when overlaps leave it short. `top` and `margin` picks are no sample: weight NaN.

The same index, labels, detector and seed give the same picks. Scores are computed a chunk of
vectors at a time, so memory stays flat (4 bytes a window for the scores themselves).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.detector.config import DetectorConfig

if TYPE_CHECKING:
    import pandas as pd

STRATEGIES = ("top", "margin", "stratified", "random")
#: The columns of `next_windows`' table.
COLUMNS = ("id", "file", "start", "end", "score", "strategy", "round", "weight")
#: Where `stratified` cuts the ranking (highest score first), as fractions of the unlabelled
#: windows: the top 1/32, 1/16, 1/8, 1/4 and the rest (fewer strata for fewer picks).
TOP_EDGES = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
#: Where `margin` centres without a detector: raw score 0 is probability 0.5.
RAW_MARGIN = 0.0
#: Vectors scored at once (flat memory on any index).
CHUNK = 65536


def _error(message: str):
    from tfaudio.detector.model import DetectorError

    return DetectorError(message)


def next_windows(index, store, label: str, *, strategy: str = "top", n: int = 10, detector=None,
                 config: DetectorConfig = DetectorConfig(), seed: int = 0) -> pd.DataFrame:
    """The `n` windows of `index` worth labelling next for `label`, by `strategy`.

    index: a SearchIndex or its folder; store: a LabelStore or its file. detector: a Detector
    (or its folder) with a head for `label` trained on the index's embeddings; None: a head is
    fitted now on the store's labels (which then need a positive of `label` in the index).
    config: the labels' overlap with windows (min_overlap) and the head fitted without a detector.
    Returns a pandas DataFrame, one row a window, best first: id (int64, the index's window id),
    file, start, end (seconds), score (float: calibrated probability with a detector, else the raw
    score; NaN for `random` without a detector or a positive, which needs none), strategy, round
    (int: the label's last round in the store + 1), weight (float: the inclusion weight of a
    stratified or random pick, see the module's docstring; NaN for top and margin). Fewer than `n`
    rows when fewer unlabelled, non-overlapping windows are left (or, stratified, when overlaps
    leave a stratum short). Raises DetectorError (one line).
    """
    from tfaudio.labels.store import LabelStore
    from tfaudio.labels.windows import window_kinds
    from tfaudio.search.index import SearchIndex

    if strategy not in STRATEGIES:
        raise _error(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    if int(n) < 1:
        raise _error(f"n must be at least 1, got {n}")
    if not isinstance(index, SearchIndex):
        index = SearchIndex.open(index)
    opened = not isinstance(store, LabelStore)
    store = LabelStore(store, create=False) if opened else store
    try:
        annotations = store.query(label=label, latest=True)
        kinds = window_kinds(index.windows, annotations, min_overlap=config.min_overlap)
        if strategy == "random" and detector is None and not np.any(kinds == "positive"):
            # A random sample needs no scores: it is how to start a label nobody has found yet.
            scores, centre = np.full(len(index), np.nan, np.float32), RAW_MARGIN
        else:
            scores, centre = window_scores(index, store, label, kinds, detector=detector, config=config)
        rounds = [a.round for a in store.query(label=label) if a.round is not None]
    finally:
        if opened:
            store.close()
    windows = index.windows
    unlabelled = np.equal(kinds, None)
    ids, weights = choose(scores, unlabelled, windows["file"].to_numpy(), windows["start"].to_numpy(np.float64),
                          windows["end"].to_numpy(np.float64), strategy=strategy, n=int(n), centre=centre, seed=seed)
    return _table(ids, weights, scores, windows, strategy, max(rounds, default=0) + 1)


def window_scores(index, store, label: str, kinds: np.ndarray, *, detector=None,
                  config: DetectorConfig = DetectorConfig()) -> tuple[np.ndarray, float]:
    """(float32 [len(index)] score of `label` for every window, the score `margin` centres on).

    With a detector: its calibrated probabilities and its threshold for the label. Without: the
    raw scores of a head fitted now (fit_heads_now) and 0. kinds: what window_kinds gave for the
    label (a positive is needed to fit a head).
    """
    if detector is not None:
        detector = _checked_detector(detector, index, label)
        column = list(detector.labels).index(label)
        score = lambda block: detector.probabilities(block)[:, column]  # noqa: E731
        centre = float(np.asarray(detector.thresholds)[column])
    else:
        if not np.any(kinds == "positive"):
            labelled = store.query(label=label, kind="positive")
            where = (f" among the windows of {_shown(index.path)} (its {len(labelled)} positive label(s) are of "
                     "other recordings)") if labelled else ""
            raise _error(f"label {label} has no positive yet{where}: search for an example and label it first")
        from tfaudio.detector.train import fit_heads_now

        heads = fit_heads_now(index, store, label, config)
        column = list(heads.labels).index(label)
        score = lambda block: heads.scores(block)[:, column]  # noqa: E731
        centre = RAW_MARGIN
    scores = np.empty(len(index), np.float32)
    for first, block in index.chunks(CHUNK):
        scores[first : first + len(block)] = score(block)
    return scores, centre


def _checked_detector(detector, index, label: str):
    """The Detector (loaded when a path), refused in one line when it has no head for `label` or
    was trained on other embeddings than the index holds."""
    from tfaudio.detector.model import Detector

    if not isinstance(detector, Detector):
        detector = Detector.load(detector)
    name = _shown(detector.path) if detector.path is not None else "the detector"
    if label not in detector.labels:
        raise _error(f"{name}: no head for label {label} (it has {', '.join(detector.labels) or 'none'}); train "
                     f"one with tfaudio detector train --label {label}, or leave --detector out")
    source = detector.source or {}
    key, dim = source.get("key"), source.get("dim")
    if (key is not None and key != index.header.get("key")) or (dim is not None and int(dim) != index.dim):
        raise _error(f"{name}: trained on {source.get('model')} embeddings other than those of {_shown(index.path)} "
                     f"({index.model}, {index.precision}); use a detector trained on this index, or leave --detector "
                     "out")
    return detector


def choose(scores: np.ndarray, candidates: np.ndarray, files: np.ndarray, starts: np.ndarray, ends: np.ndarray, *,
           strategy: str, n: int, centre: float = RAW_MARGIN, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 [k <= n] in the order shown, weights float64 [k]): the windows picked by
    `strategy` among those where `candidates` (bool [N]) holds, no two overlapping in one file.

    scores: float [N]; files: [N] recording of each window; starts, ends: float [N] seconds;
    centre: the score `margin` centres on. weights: each pick's inclusion weight (stratified: the
    candidates of its stratum / the picks taken from it; random: the candidates / the picks; NaN
    for top and margin). Ties go to the lower id, so a seed fixes the picks. Sorts the candidates
    once (top, margin, stratified): about 0.3 s for 2 M windows.
    """
    ids = np.flatnonzero(candidates)
    picker = _Picker(files, starts, ends, n)
    if strategy == "top":
        picker.take(_ranked(ids, -scores[ids]))
    elif strategy == "margin":
        picker.take(_ranked(ids, np.abs(scores[ids] - centre)))
    elif strategy == "random":
        picker.take(np.random.default_rng(seed).permutation(ids))
        picked = np.array(picker.picked, np.int64)
        return picked, np.full(len(picked), len(ids) / max(len(picked), 1))
    elif strategy == "stratified":
        return _stratified(scores, ids, picker, n, seed)
    else:
        raise _error(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    picked = np.array(picker.picked, np.int64)
    return picked, np.full(len(picked), np.nan)


def strata(size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """How `stratified` splits `size` candidates ranked highest score first for `n` picks:
    (bounds int64 [s + 1]: stratum h is ranks bounds[h] to bounds[h + 1] - 1, quotas int64 [s]).

    s = min(5, n) strata cut at the last s fractions of TOP_EDGES (n = 1: one stratum, the whole
    ranking; n = 3: top 1/8, 1/8-1/4, the rest), rounded up so the top stratum is never empty.
    Quota n // s each, the remainder to the top strata first. A quota larger than its stratum is
    cut to it and the rest goes to strata with room, top first: all fixed before any draw, so the
    weights stay exact.
    """
    s = max(1, min(len(TOP_EDGES), n))
    edges = np.array((0.0,) + TOP_EDGES[-s:])
    bounds = np.minimum(np.ceil(edges * size), size).astype(np.int64)
    sizes = np.diff(bounds)
    quotas = np.minimum(n // s + (np.arange(s) < n % s), sizes)
    spare = n - int(quotas.sum())
    while spare > 0 and (quotas < sizes).any():
        for h in np.flatnonzero(quotas < sizes)[:spare]:
            quotas[h] += 1
            spare -= 1
    return bounds, quotas.astype(np.int64)


def _stratified(scores: np.ndarray, ids: np.ndarray, picker: _Picker, n: int, seed: int):
    """choose's stratified picks (see `strata`), shown highest score first, with their weights."""
    rng = np.random.default_rng(seed)
    ranked = _ranked(ids, -scores[ids])  # stratum 0 is the top of the range
    bounds, quotas = strata(len(ranked), n)
    picked, weights = [], []
    for h, quota in enumerate(quotas):
        stratum = ranked[bounds[h] : bounds[h + 1]]
        before = len(picker.picked)
        picker.take(rng.permutation(stratum), limit=int(quota))
        taken = picker.picked[before:]
        # No refill from other strata when overlaps leave this one short: that would change the
        # probabilities the weights are made of.
        picked += taken
        weights += [len(stratum) / max(len(taken), 1)] * len(taken)
    order = sorted(range(len(picked)), key=lambda j: (-scores[picked[j]], picked[j]))
    return (np.array([picked[j] for j in order], np.int64), np.array([weights[j] for j in order], np.float64))


def _ranked(ids: np.ndarray, key: np.ndarray) -> np.ndarray:
    """`ids` (ascending) by `key`, smallest first, ties to the lower id (a stable sort keeps them
    in id order); NaN keys last."""
    return ids[np.argsort(key, kind="stable")]


class _Picker:
    """Picks windows in the order offered, skipping those that overlap a pick of the same file."""

    def __init__(self, files: np.ndarray, starts: np.ndarray, ends: np.ndarray, n: int):
        self.files, self.starts, self.ends, self.n = files, starts, ends, n
        self.picked: list[int] = []
        self._spans: dict[str, list[tuple[float, float]]] = {}

    def take(self, order: Sequence[int], limit: int | None = None) -> None:
        """Offer windows in `order` until n are picked in all (or `limit` from this offer)."""
        taken = 0
        for i in order:
            if len(self.picked) >= self.n or (limit is not None and taken >= limit):
                return
            if i in self.picked:
                continue
            i = int(i)
            spans = self._spans.setdefault(self.files[i], [])
            start, end = self.starts[i], self.ends[i]
            if any(start < other_end and other_start < end for other_start, other_end in spans):
                continue
            spans.append((start, end))
            self.picked.append(i)
            taken += 1


def _table(ids: np.ndarray, weights: np.ndarray, scores: np.ndarray, windows, strategy: str,
           round_: int) -> pd.DataFrame:
    import pandas as pd

    rows = windows.iloc[ids] if len(ids) else windows.iloc[:0]
    frame = pd.DataFrame({"id": ids.astype(np.int64), "file": rows["file"].to_numpy(dtype=object),
                          "start": rows["start"].to_numpy(np.float64), "end": rows["end"].to_numpy(np.float64),
                          "score": scores[ids].astype(np.float64), "strategy": strategy, "round": round_,
                          "weight": np.asarray(weights, np.float64)},
                         columns=list(COLUMNS))
    return frame.astype({"id": np.int64, "round": np.int64})


# -- for people: a table in the terminal, a sheet to fill in and a page to listen to --------------------


def _shown(path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def table_text(picks: pd.DataFrame) -> str:
    """The picks as terminal text: rank, score, start-end, file; and the weight (windows each
    pick stands for) when the picks are a sample (stratified, random)."""
    from tfaudio.search.results import _near

    weighted = "weight" in picks and bool(np.isfinite(picks["weight"].to_numpy(np.float64)).any())
    lines = [f"{'#':>3}  {'score':>8}  {'start-end (s)':>17}  " + (f"{'weight':>10}  " if weighted else "") + "file"]
    for rank, pick in enumerate(picks.itertuples(index=False), start=1):
        place = f"{pick.start:.2f}-{pick.end:.2f}"
        weight = f"{pick.weight:>10.6g}  " if weighted else ""
        lines.append(f"{rank:>3}  {pick.score:8.4f}  {place:>17}  {weight}{_shown(_near(pick.file))}")
    return "\n".join(lines)


def sheet(picks: pd.DataFrame, label: str) -> str:
    """next.csv's text: tfaudio.labels.formats.NEXT_COLUMNS, kind left empty for a person to fill
    with positive, negative or unsure (`tfaudio labels import` skips rows still empty); weight to
    6 significant digits, empty when NaN (top, margin), carried into the store on import."""
    import csv
    import io

    from tfaudio.labels.formats import NEXT_COLUMNS

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(NEXT_COLUMNS)
    for pick in picks.itertuples(index=False):
        values = {"file": _shown(pick.file), "start": _seconds(pick.start), "end": _seconds(pick.end), "label": label,
                  "kind": "", "score": f"{pick.score:.6g}", "strategy": pick.strategy, "round": int(pick.round),
                  "weight": _weight(getattr(pick, "weight", np.nan))}
        writer.writerow([values[column] for column in NEXT_COLUMNS])
    return buffer.getvalue()


def _weight(value: float) -> str:
    value = float(value)
    return f"{value:.6g}" if np.isfinite(value) else ""


def _seconds(value: float) -> str:
    """Seconds to the microsecond (what the store keeps), without trailing zeros."""
    return format(float(value), ".6f").rstrip("0").rstrip(".")


def page(picks: pd.DataFrame, label: str, *, missing: Sequence[str] = (), index_path: str = "",
         probability: bool = False) -> str:
    """The self-contained listening page of a round (tfaudio.search.page's table: each window with
    1 s of context, its spectrogram and place in the file; files missing since the build marked)."""
    import html
    from types import SimpleNamespace

    import pandas as pd

    from tfaudio.search.page import document, hits_table

    missing = set(missing)
    hits = pd.DataFrame({"rank": np.arange(1, len(picks) + 1), "file": picks["file"].to_numpy(dtype=object),
                         "start": picks["start"].to_numpy(np.float64), "end": picks["end"].to_numpy(np.float64),
                         "score": picks["score"].to_numpy(np.float64),
                         "missing": [file in missing for file in picks["file"]]})
    strategy = picks["strategy"].iloc[0] if len(picks) else ""
    round_ = int(picks["round"].iloc[0]) if len(picks) else 1
    meta = (f"{len(picks)} windows of {index_path} to label as {label}: round {round_}, strategy {strategy}; "
            f"scores are {'calibrated probabilities' if probability else 'raw scores of a head fitted now'}. Fill in "
            "the kind column of next.csv (positive, negative or unsure) and import it with tfaudio labels import.")
    if len(picks) and "weight" in picks and np.isfinite(picks["weight"].to_numpy(np.float64)).all():
        meta += (f" A {strategy} sample: next.csv's weight column says how many unlabelled windows each pick stands "
                 f"for ({picks['weight'].sum():.0f} in all), which archive precision estimates need.")
    table = hits_table(SimpleNamespace(hits=hits), score_name="probability" if probability else "score")
    return document(f"Next for {label}", html.escape(meta), table, title="tfaudio labels next")


def write_round(picks: pd.DataFrame, label: str, out: str | os.PathLike, *, missing: Sequence[str] = (),
                index_path: str = "", probability: bool = False) -> Path:
    """Write `out`/next.csv (see `sheet`) and `out`/index.html (see `page`), each whole or not at
    all; returns `out`. `out` is checked writable before anything is written."""
    from tfaudio.outputs import check_writable, write_text

    out = check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "next.csv", sheet(picks, label))
    write_text(out / "index.html", page(picks, label, missing=missing, index_path=index_path,
                                        probability=probability))
    return out


__all__ = ["COLUMNS", "STRATEGIES", "TOP_EDGES", "choose", "next_windows", "page", "sheet", "strata", "table_text",
           "window_scores", "write_round"]
