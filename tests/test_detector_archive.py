"""Precision and recall on the whole archive from stratified rounds (tfaudio.detector.archive):
the estimator on synthetic archives whose truth is known, the rounds read back from a label
store, and a detector trained with a stratified round (threshold chosen on the estimate, saved,
reported, printed)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from test_detector_train import FAST, indexed_recordings, labels

from tfaudio.detector.archive import ArchiveEstimate, SampledRound, archive_estimate, sampled_rounds
from tfaudio.detector.rounds import choose

N = 20000


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    return indexed_recordings(tmp_path_factory.mktemp("archive"))


def archive(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(scores float [N], truth bool [N]): a tenth of the windows positive, scored higher."""
    rng = np.random.default_rng(seed)
    truth = rng.random(N) < 0.1
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1, N) + 3.0 * truth - 1.5)))
    return scores, truth


def stratified_round(scores, truth, n: int, seed: int, labelled=None) -> SampledRound:
    """A stratified round of `n` picks drawn by rounds.choose among windows not in `labelled`."""
    labelled = np.zeros(0, np.int64) if labelled is None else labelled
    candidates = np.ones(len(scores), bool)
    candidates[labelled] = False
    files = np.arange(len(scores)).astype(str)  # one window per file: no overlaps
    ids, weights = choose(scores, candidates, files, np.zeros(len(scores)), np.ones(len(scores)),
                          strategy="stratified", n=n, seed=seed)
    return SampledRound(round=1, certain=labelled.astype(np.int64), picks=ids, weights=weights,
                        y=truth[ids].astype(np.int8))


def known_of(truth, labelled) -> np.ndarray:
    known = np.full(len(truth), -1, np.int8)
    known[labelled] = truth[labelled]
    return known


def test_the_estimate_covers_the_archive_where_unweighted_picks_do_not():
    scores, truth = archive()
    threshold = 0.6
    true_precision = truth[scores >= threshold].mean()
    true_recall = (scores[truth] >= threshold).mean()
    covered, recall_covered, points, naive = [], [], [], []
    for seed in range(60):
        r = stratified_round(scores, truth, 40, seed)
        e = archive_estimate(scores, known_of(truth, []), [r], 0.9, threshold=threshold, seed=seed)
        covered.append(e.precision_ci[0] <= true_precision <= e.precision_ci[1])
        recall_covered.append(e.recall_ci[0] <= true_recall <= e.recall_ci[1])
        points.append(e.precision)
        naive.append(r.y[scores[r.picks] >= threshold].mean())  # the picks above, weights ignored
        assert e.predicted == int((scores >= threshold).sum()) and e.picks == 40 and e.rounds == 1
        assert e.precision_ci[0] <= e.precision <= e.precision_ci[1]
    assert np.mean(covered) >= 0.85 and np.mean(recall_covered) >= 0.85
    assert abs(np.mean(points) - true_precision) < 0.05
    # Top-weighted strata put most picks high above the threshold: unweighted, they overstate it.
    assert np.mean(naive) - true_precision > 0.05


def test_labelled_windows_count_exactly_and_a_fully_labelled_archive_is_known():
    scores, truth = archive(1)
    everything = np.arange(N)
    r = SampledRound(round=1, certain=everything[:-5], picks=everything[-5:], weights=np.ones(5),
                     y=truth[-5:].astype(np.int8))
    e = archive_estimate(scores, known_of(truth, everything), [r], 0.9, threshold=0.5)
    assert e.precision == pytest.approx(truth[scores >= 0.5].mean(), abs=1e-3)
    assert e.precision_ci[1] - e.precision_ci[0] < 0.01


def test_the_threshold_chosen_reaches_the_target_on_the_archive_and_too_few_picks_give_none():
    scores, truth = archive(2)
    reached = []
    for seed in range(20):
        e = archive_estimate(scores, known_of(truth, []), [stratified_round(scores, truth, 60, seed)], 0.9,
                             seed=seed)
        assert e.reached and e.precision >= 0.9
        reached.append(truth[scores >= e.threshold].mean())
    assert np.mean(reached) >= 0.87  # held to the target on average, across draws
    assert archive_estimate(scores, known_of(truth, []), [stratified_round(scores, truth, 4, 0)], 0.9) is None
    # A target nothing reaches: the best candidate, marked.
    e = archive_estimate(scores, known_of(truth, []), [stratified_round(scores, truth, 40, 0)], 0.999)
    assert not e.reached


def test_two_rounds_pool_their_picks_and_the_estimate_round_trips_through_json():
    scores, truth = archive(3)
    first = stratified_round(scores, truth, 20, 0)
    second = stratified_round(scores, truth, 20, 1, labelled=first.picks)
    one = archive_estimate(scores, known_of(truth, first.picks), [first], 0.9, threshold=0.6)
    both = archive_estimate(scores, known_of(truth, np.concatenate([first.picks, second.picks])),
                            [first, second], 0.9, threshold=0.6)
    assert both.picks == 40 and both.rounds == 2
    width = lambda e: e.precision_ci[1] - e.precision_ci[0]
    assert width(both) < width(one)
    again = ArchiveEstimate.from_dict(both.to_dict())
    assert again == both


def test_rounds_are_read_from_annotations_with_weights(tmp_path, indexed):
    from tfaudio.labels import LabelStore, window_kinds

    data, index = indexed
    store = LabelStore(tmp_path / "l.db")
    store.add(data / "tone0.wav", 0.5, 1.0, "tone", "positive")  # round None: before every round
    w = index.windows
    tone1 = np.flatnonzero((w["file"] == str(data / "tone1.wav")).to_numpy())
    for k, row in enumerate(tone1[:6]):
        kind = "unsure" if k == 5 else ("positive" if 5 <= k <= 9 else "negative")
        store.add(w["file"][row], float(w["start"][row]), float(w["end"][row]), "tone", kind, round=2,
                  strategy="stratified", weight=3.0, sha256=w["sha256"][row])
    store.add(data / "tone2.wav", 0.5, 1.0, "tone", "positive", round=3, strategy="stratified", weight=2.0)  # no window
    annotations = store.query(label="tone", latest=True)
    kinds = window_kinds(w, annotations, min_overlap=0.5)
    (r,) = sampled_rounds(w, annotations, kinds, 0.5)
    assert r.round == 2 and list(r.picks) == list(tone1[:5]) and list(r.weights) == [3.0] * 5
    assert r.y.tolist() == [0, 0, 0, 0, 0]
    tone0 = set(np.flatnonzero((w["file"] == str(data / "tone0.wav")).to_numpy()))
    assert set(r.certain) <= tone0 and len(r.certain) >= 4  # the round-less label's windows
    store.close()


def truth_of(index, data) -> np.ndarray:
    """bool [windows]: a window of a tone recording overlapping its burst (0.5-1.0 s) by half."""
    w = index.windows
    tone = w["file"].str.contains("tone").to_numpy()
    overlap = np.minimum(w["end"], 1.0) - np.maximum(w["start"], 0.5)
    return tone & (overlap.to_numpy() >= 0.5 * (w["end"] - w["start"]).to_numpy())


def test_a_stratified_round_gives_the_detector_an_archive_threshold(tmp_path, indexed):
    from tfaudio.cli.main import main
    from tfaudio.detector import next_windows, train_detector
    from tfaudio.detector.model import Detector
    from tfaudio.detector.report import page

    data, index = indexed
    store = labels(tmp_path, data, tone=range(3), chirp=False)
    before = train_detector(index, store, labels=["tone"], config=FAST)
    assert before.reports[0].archive is None
    picks = next_windows(index, store, "tone", strategy="stratified", n=20, detector=before, config=FAST)
    truth = truth_of(index, data)
    for pick in picks.itertuples(index=False):
        store.add(pick.file, pick.start, pick.end, "tone", "positive" if truth[pick.id] else "negative",
                  round=int(pick.round), strategy="stratified", weight=float(pick.weight))
    detector = train_detector(index, store, labels=["tone"], config=FAST)
    store.close()
    estimate = detector.reports[0].archive
    assert estimate is not None and estimate.picks == len(picks) and estimate.rounds == 1
    assert detector.thresholds[0] == pytest.approx(estimate.threshold)
    # Scored as the estimate scores: out-of-fold where labelled, the detector elsewhere.
    scores = detector.probabilities(index.vectors(np.arange(len(index))))[:, 0]
    held = detector.held_out["tone"]
    scores[held["ids"]] = held["probability"]
    predicted = scores >= estimate.threshold
    assert predicted.sum() == estimate.predicted > 0
    assert estimate.precision_ci[0] <= truth[predicted].mean() <= estimate.precision_ci[1]
    detector.save(tmp_path / "det")
    loaded = Detector.load(tmp_path / "det")
    assert loaded.reports[0].archive == estimate
    assert "On the whole archive" in page(loaded)
    shown = CliRunner().invoke(main, ["detector", "info", str(tmp_path / "det")])
    assert shown.exit_code == 0 and "on the whole archive (20 stratified labels)" in shown.output
    # The table's precision is the held-out one at the threshold in use (the archive's), not the CV one.
    held_point = loaded.operating_point("tone", estimate.threshold)
    row = next(line for line in shown.output.splitlines() if line.startswith("tone "))
    assert f"{estimate.threshold:.3f}  {held_point.precision:.2f} [" in row
    assert "label a stratified round" in page(before)
