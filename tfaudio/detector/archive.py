"""Precision and recall on the whole archive, estimated from labels drawn as probability samples.

Cross-validation measures a threshold on labelled windows, and those are not the archive: the
search round and the active rounds seek the sound out, so labelled windows are often half
positives where the archive holds a tenth. On ESC-10 the threshold cross-validation put at
precision 0.9 gave 0.31 to 0.96 on a held-out fold (docs/detector.md, "Measured").

A stratified or random round of `labels next` is a known-probability sample of the windows not
labelled when it was drawn (its frame), and every pick keeps its inclusion weight w = 1/pi in the
label store. For a threshold t, one round's estimate of the archive's precision is

    (A + M r) / (B + M)

A, B: positives and all windows labelled before the round (outside its frame) at or above t,
known exactly; M: windows of its frame at or above t, counted exactly on every window's score;
r: the positive share of those M, from the picks at or above t (their weights make the picks
stand for their strata). r gets a Jeffreys posterior on the picks' effective count (Kish's
n = (sum w)^2 / sum w^2): r ~ Beta(r_hat n + 1/2, (1 - r_hat) n + 1/2). Its draws give the
interval; its mean gives the point, which keeps a threshold backed by three picks from reading as
precision 1. Recall takes the same estimate below t. With several rounds, A, B and M are averaged
over them and r comes from all their picks together: one share with every pick behind it, rather
than an average of shares each pulled to 1/2 by its own prior.

A window's score is what a model that did not train on it gives: the out-of-fold probability for
a labelled window, the final detector's for the others (unlabelled windows are trained on only as
weak negatives, at a tenth of a label's weight).

The threshold, when an estimate exists: of the candidate thresholds (every labelled window's
score and 500 quantiles of the upper half of all scores) whose estimated precision reaches the
target, take the contiguous run that holds the highest, and its lowest threshold: the most recall
without crossing a dip where the estimate falls short.

Approximations, stated: picks that overlap an earlier pick of the same file are skipped, so the
inclusion probabilities are nearly, not exactly, n_h / N_h; an unsure pick (or one left blank in a
sheet) is left out as if never drawn; labels without a round count as labelled before every
round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Fewest labelled picks a round needs before its estimate is made.
MIN_PICKS = 5
#: Posterior draws for the intervals.
DRAWS = 4000
#: Candidate thresholds from the scores: quantiles of their upper half (besides labelled scores).
GRID = np.linspace(0.5, 1.0, 501)


@dataclass(frozen=True)
class SampledRound:
    """One probability round of one label, as windows of the index.

    round: its number; certain: int64 [c] ids of the windows labelled (positive or negative)
    before it, outside its frame; picks: int64 [k] ids of its labelled picks; weights:
    float64 [k] their inclusion weights; y: int8 [k] 1 positive, 0 negative.
    """

    round: int
    certain: np.ndarray
    picks: np.ndarray
    weights: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class ArchiveEstimate:
    """Precision and recall of `probability >= threshold` over every window of the index.

    precision_ci, recall_ci, positives_ci: 95 % posterior intervals. positives: the estimated
    number of windows of the sound in the index; predicted: windows at or above the threshold
    (counted). picks: labelled probability-sampled windows used, of `rounds` rounds; above: how
    many of them score at or above the threshold. reached: the estimate reached `target`.
    """

    threshold: float
    target: float
    precision: float
    precision_ci: tuple[float, float]
    recall: float
    recall_ci: tuple[float, float]
    positives: float
    positives_ci: tuple[float, float]
    predicted: int
    picks: int
    above: int
    rounds: int
    reached: bool

    def to_dict(self) -> dict:
        """JSON-ready (NaN becomes None)."""
        def plain(value):
            return None if value is None or not np.isfinite(value) else float(value)

        return {"threshold": plain(self.threshold), "target": float(self.target), "precision": plain(self.precision),
                "precision_ci95": [plain(v) for v in self.precision_ci], "recall": plain(self.recall),
                "recall_ci95": [plain(v) for v in self.recall_ci], "positives": plain(self.positives),
                "positives_ci95": [plain(v) for v in self.positives_ci], "predicted": int(self.predicted),
                "picks": int(self.picks), "above": int(self.above), "rounds": int(self.rounds),
                "reached": bool(self.reached)}

    @classmethod
    def from_dict(cls, state: dict) -> ArchiveEstimate:
        def number(value):
            return float("nan") if value is None else float(value)

        return cls(threshold=number(state["threshold"]), target=float(state["target"]),
                   precision=number(state["precision"]), precision_ci=tuple(map(number, state["precision_ci95"])),
                   recall=number(state["recall"]), recall_ci=tuple(map(number, state["recall_ci95"])),
                   positives=number(state["positives"]), positives_ci=tuple(map(number, state["positives_ci95"])),
                   predicted=int(state["predicted"]), picks=int(state["picks"]), above=int(state["above"]),
                   rounds=int(state["rounds"]), reached=bool(state["reached"]))


def usable(rounds: list[SampledRound]) -> list[SampledRound]:
    """The rounds with enough labelled picks to estimate from."""
    return [r for r in rounds if len(r.picks) >= MIN_PICKS]


def archive_estimate(scores: np.ndarray, known: np.ndarray, rounds: list[SampledRound], target: float, *,
                     threshold: float | None = None, seed: int = 0) -> ArchiveEstimate | None:
    """The archive's precision and recall at `threshold` (None: chosen at `target` as the module
    docstring says), or None without a round of MIN_PICKS labelled picks.

    scores: float [N] every window's probability (out-of-fold where labelled); known: int8 [N],
    1 positive, 0 negative, -1 not labelled (the label's current kinds); rounds: its probability
    rounds. The same inputs and seed give the same intervals.
    """
    rounds = usable(rounds)
    if not rounds:
        return None
    scores = np.asarray(scores, np.float64)
    ordered = np.sort(scores)
    if threshold is None:
        threshold = choose_threshold(scores, ordered, known, rounds, target)
    rng = np.random.default_rng(seed)
    (known_above, frame_above, share_above), (known_below, frame_below, share_below) = _sides(
        threshold, scores, ordered, known, rounds)
    above = known_above + frame_above * _mean(*share_above)
    below = known_below + frame_below * _mean(*share_below)
    above_draws = known_above + frame_above * rng.beta(*share_above, DRAWS)
    below_draws = known_below + frame_below * rng.beta(*share_below, DRAWS)
    count = int(len(scores) - np.searchsorted(ordered, threshold, side="left"))
    nan = (float("nan"), float("nan"))
    precision = above / count if count else float("nan")
    precision_ci = nan
    if count:
        low, high = _interval(above_draws / count)
        # Jeffreys' interval is closed at the end its data sit on (Brown, Cai & DasGupta 2001):
        # with every pick on this side positive (or none), r may be exactly 1 (or 0).
        if share_above[1] == 0.5:
            high = (known_above + frame_above) / count
        if share_above[0] == 0.5:
            low = known_above / count
        precision_ci = (float(low), float(high))
    return ArchiveEstimate(
        threshold=float(threshold), target=float(target), precision=precision, precision_ci=precision_ci,
        recall=above / (above + below) if above + below > 0 else float("nan"),
        recall_ci=_interval(above_draws / np.maximum(above_draws + below_draws, 1e-12)),
        positives=above + below, positives_ci=_interval(above_draws + below_draws), predicted=count,
        picks=int(sum(len(r.picks) for r in rounds)),
        above=int(sum(np.sum(scores[r.picks] >= threshold) for r in rounds)), rounds=len(rounds),
        reached=bool(count and precision >= target))


def choose_threshold(scores: np.ndarray, ordered: np.ndarray, known: np.ndarray, rounds: list[SampledRound],
                     target: float) -> float:
    """The threshold the module docstring describes; ordered: scores sorted. When no candidate's
    estimated precision reaches target, the candidate of the highest."""
    labelled = np.flatnonzero(known >= 0)
    grid = np.unique(np.concatenate([scores[labelled], np.quantile(ordered, GRID)]))
    precision = np.array([_precision_point(t, scores, ordered, known, rounds) for t in grid])
    ok = np.nan_to_num(precision, nan=-1.0) >= target
    if not ok.any():
        best = np.nan_to_num(precision, nan=-1.0)
        return float(grid[np.flatnonzero(best == best.max())[0]])
    i = np.flatnonzero(ok)[-1]
    while i > 0 and ok[i - 1]:
        i -= 1
    return float(grid[i])


def _precision_point(t: float, scores, ordered, known, rounds) -> float:
    count = len(ordered) - np.searchsorted(ordered, t, side="left")
    if count == 0:
        return float("nan")
    (known_above, frame_above, share), _ = _sides(t, scores, ordered, known, rounds)
    return (known_above + frame_above * _mean(*share)) / count


def _sides(t: float, scores, ordered, known, rounds: list[SampledRound]):
    """Per side of t (at or above, below): labelled positives outside the frames and frame
    windows, each averaged over the rounds, and the Beta posterior (alpha, beta) of the frames'
    positive share from every round's picks on that side together (each round's weights add up
    to its frame, so the rounds weigh alike)."""
    above_all = len(ordered) - np.searchsorted(ordered, t, side="left")
    known_sides, frame_sides = np.zeros(2), np.zeros(2)
    weights, y, sides = [], [], []
    for r in rounds:
        certain_above = scores[r.certain] >= t
        certain_positive = known[r.certain] == 1
        known_sides += [(certain_positive & certain_above).sum(), (certain_positive & ~certain_above).sum()]
        frame_sides += [above_all - certain_above.sum(), len(ordered) - above_all - (~certain_above).sum()]
        weights.append(r.weights)
        y.append(r.y)
        sides.append(scores[r.picks] >= t)
    known_sides, frame_sides = known_sides / len(rounds), frame_sides / len(rounds)
    weights, y, picked_above = np.concatenate(weights), np.concatenate(y), np.concatenate(sides)
    return ((known_sides[0], frame_sides[0], _posterior(weights[picked_above], y[picked_above])),
            (known_sides[1], frame_sides[1], _posterior(weights[~picked_above], y[~picked_above])))


def _posterior(weights: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Jeffreys Beta(alpha, beta) of a positive share from weighted picks (Kish's effective n)."""
    if len(weights) == 0:
        return 0.5, 0.5
    share = float(np.sum(weights * y) / np.sum(weights))
    n = float(np.sum(weights) ** 2 / np.sum(weights**2))
    return share * n + 0.5, (1 - share) * n + 0.5


def _mean(alpha: float, beta: float) -> float:
    return alpha / (alpha + beta)


def _interval(draws: np.ndarray) -> tuple[float, float]:
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


def sampled_rounds(windows, annotations, kinds: np.ndarray, min_overlap: float) -> list[SampledRound]:
    """The probability rounds of one label from its annotations (latest judgements).

    windows: the index's windows table (file, start, end, sha256); kinds: window_kinds of all the
    annotations. A pick is an annotation with a weight whose span is exactly one index window
    (the round drew index windows); one of another span (an index rebuilt since) is left out.
    """
    from tfaudio.labels.windows import window_kinds

    weighted = [a for a in annotations if a.weight is not None and a.round is not None and a.kind != "unsure"]
    # Only the windows of recordings with picks are looked up (an index may hold millions).
    shas = {a.sha256 for a in weighted if a.sha256}
    rows = np.flatnonzero(windows["file"].isin({a.file for a in weighted}).to_numpy()
                          | windows["sha256"].isin(shas).to_numpy())
    by_span = {}
    for i, file, sha, start, end in zip(rows, windows["file"].to_numpy()[rows], windows["sha256"].to_numpy()[rows],
                                        windows["start"].to_numpy()[rows], windows["end"].to_numpy()[rows]):
        span = (round(float(start), 6), round(float(end), 6))
        by_span[(file, *span)] = int(i)
        if isinstance(sha, str) and sha:
            by_span[(sha, *span)] = int(i)  # a recording moved since it was labelled is found by its content
    picked: dict[int, list] = {}
    for a in weighted:
        span = (round(a.start, 6), round(a.end, 6))
        window = by_span.get((a.sha256, *span)) if a.sha256 else None
        if window is None:
            window = by_span.get((a.file, *span))
        if window is not None:
            picked.setdefault(int(a.round), []).append((window, float(a.weight), int(a.kind == "positive")))
    rounds = []
    judged = (kinds == "positive") | (kinds == "negative")
    for number, picks in sorted(picked.items()):
        before = [a for a in annotations if a.round is None or a.round < number]
        before_kinds = window_kinds(windows, before, min_overlap=min_overlap)
        certain = np.flatnonzero(((before_kinds == "positive") | (before_kinds == "negative")) & judged)
        ids, weights, y = (np.array(column) for column in zip(*picks))
        rounds.append(SampledRound(round=number, certain=certain.astype(np.int64), picks=ids.astype(np.int64),
                                   weights=weights.astype(np.float64), y=y.astype(np.int8)))
    return rounds
