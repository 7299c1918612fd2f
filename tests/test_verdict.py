"""The verdict says what McNemar's test allows: a significant win, a significant loss, no
significant difference, or a tie. Each case is built from predictions chosen so the counts (and
so the test's outcome) are certain, not from a dataset that happens to give them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tfaudio.comparison.classifiers import CVResult
from tfaudio.comparison.config import CompareConfig
from tfaudio.comparison.discussion import paragraphs
from tfaudio.comparison.metrics import difference_ci, mcnemar, score
from tfaudio.comparison.result import ComparisonResult, RepresentationInfo, Run
from tfaudio.data.splits import Split

CLIPS = 100
LABELS = np.arange(CLIPS) % 2  # two classes, alternating


def right_on(*ranges: tuple[int, int]) -> np.ndarray:
    """bool [CLIPS]: True on the clips of the half-open `ranges`."""
    mask = np.zeros(CLIPS, bool)
    for start, stop in ranges:
        mask[start:stop] = True
    return mask


def comparison(correct: dict[tuple[str, str], np.ndarray]) -> ComparisonResult:
    """A comparison whose run (representation, classifier) is right exactly on `correct[...]`
    (wrong clips get the other class), scored as `compare` scores them."""
    splits = [Split("fold1", np.arange(50, CLIPS), np.arange(50)), Split("fold2", np.arange(50), np.arange(50, CLIPS))]
    predictions = {key: np.where(mask, LABELS, 1 - LABELS).astype(np.int64) for key, mask in correct.items()}
    runs = []
    for (representation, classifier), predicted in predictions.items():
        folds = np.array([np.mean(predicted[s.test] == LABELS[s.test]) for s in splits])
        cv = CVResult(predicted, folds, np.zeros(2), np.zeros(2))
        versus = None if representation == "handcrafted" else mcnemar(
            LABELS, predicted, predictions[("handcrafted", classifier)])
        runs.append(Run(representation, classifier, cv, score(LABELS, cv, 2), versus))
    classifiers = tuple(dict.fromkeys(c for _, c in correct))
    return ComparisonResult(
        config=CompareConfig(models=("handcrafted", "yamnet"), classifiers=classifiers),
        dataset=SimpleNamespace(classes=("a", "b"), labels=LABELS),
        summary={"duration_seconds": {"median": 1.0}},
        splits=splits,
        split_strategy="stratified",
        representations=[RepresentationInfo("handcrafted", 104, "mean+std", {}),
                         RepresentationInfo("yamnet", 1024, "mean", {})],
        runs=runs,
        vectors={},
    )


def verdict(correct) -> str:
    return paragraphs(comparison(correct))[0]


def test_a_significant_win_is_a_win_against_the_best_baseline_named():
    # yamnet right on 90, the baseline on 70: 25 clips only yamnet gets, 5 only the baseline.
    text = verdict({("handcrafted", "rf"): right_on((0, 70)), ("yamnet", "rf"): right_on((0, 65), (70, 95))})
    assert mcnemar(LABELS, *(np.where(m, LABELS, 1 - LABELS) for m in (right_on((0, 65), (70, 95)),
                                                                    right_on((0, 70))))).p_value < 0.001
    assert text.startswith("**yamnet wins**: yamnet + random forest classifies 90.0 % of the clips")
    assert "against 70.0 % for the best hand-crafted model (handcrafted + random forest): +20.0 points" in text
    assert "wrong on 25 clips and the reverse happens on 5 clips" in text
    assert text.endswith("p < 0.001, so it is significantly better than the baseline.")


def test_a_win_significant_at_5_but_not_1_percent_says_so():
    # 12 clips against 3: p = 0.035.
    text = verdict({("handcrafted", "rf"): right_on((0, 70)), ("yamnet", "rf"): right_on((0, 67), (70, 82))})
    assert text.startswith("**yamnet wins**")
    assert "p = 0.035, so it is better than the baseline, significant at the 5 % level but not at 1 %" in text


def test_a_significant_loss_says_the_baseline_wins_and_why_the_same_classifier_differs():
    correct = {
        ("handcrafted", "rf"): right_on((0, 95)),
        ("handcrafted", "logreg"): right_on((0, 60)),
        ("yamnet", "rf"): right_on((0, 60)),
        ("yamnet", "logreg"): right_on((0, 80)),  # behind the baseline's best, ahead of its logreg
    }
    text = verdict(correct)
    assert text.startswith("**The hand-crafted baseline wins**: handcrafted + random forest reaches 95.0 %")
    assert "The best learned representation, yamnet + logistic regression (linear probe), reaches 80.0 % " \
           "(-15.0 points; 95 % CI of the difference" in text
    assert "that baseline is right where yamnet is wrong on 15 clips and the reverse happens on 0 clips" in text
    assert "p < 0.001, so the baseline is significantly better." in text
    # The same-classifier test points the other way, and the text says against which baseline.
    assert "Against the baseline with the same classifier (handcrafted + logistic regression (linear probe), " \
           "60.0 %) it is ahead of it: right where that baseline is wrong on 20 clips, wrong where it is right " \
           "on 0 clips; McNemar gives p < 0.001 (significant)." in text


@pytest.mark.parametrize("learned_first", [True, False])
def test_a_difference_that_is_not_significant_is_not_a_win(learned_first):
    # 3 clips against 2 (p = 1.0): whichever side is ahead by one clip, nobody wins.
    base, learned = right_on((0, 78), (80, 82)), right_on((0, 78), (82, 85))
    if not learned_first:
        base, learned = learned, base
    text = verdict({("handcrafted", "rf"): base, ("yamnet", "rf"): learned})
    assert text.startswith("**No significant difference** between the best learned representation and the "
                           "hand-crafted baseline")
    assert "wins" not in text
    sign = "+" if learned_first else "-"
    assert f"yamnet + random forest classifies {81 if learned_first else 80}.0 %" in text
    assert f": {sign}1.0 points (95 % CI of the difference " in text
    assert "McNemar's exact test gives p = 1.000, so chance could give a difference this large" in text
    # The interval of the difference printed is the paired bootstrap's, and it holds zero.
    test = mcnemar(LABELS, np.where(learned, LABELS, 1 - LABELS), np.where(base, LABELS, 1 - LABELS))
    low, high = difference_ci(test, CLIPS)
    assert low < 0 < high and f"{100 * low:+.1f} to {100 * high:+.1f} points" in text


def test_an_exact_tie_is_called_a_tie():
    # Both right on 80 clips, each on 4 the other misses.
    text = verdict({("handcrafted", "rf"): right_on((0, 76), (76, 80)), ("yamnet", "rf"): right_on((0, 76), (80, 84))})
    assert text.startswith("**A tie**: yamnet + random forest and the best hand-crafted model, handcrafted + random "
                           "forest, both classify 80.0 % of the clips correctly")
    assert "They disagree on 8 clips, each right on half of them; McNemar's exact test gives p = 1.000." in text
    assert "wins" not in text and "baseline wins" not in text
    same = verdict({("handcrafted", "rf"): right_on((0, 80)), ("yamnet", "rf"): right_on((0, 80))})
    assert same.startswith("**A tie**") and "right and wrong on exactly the same clips" in same


def test_difference_interval_is_paired_and_narrows_with_fewer_disagreements():
    from tfaudio.comparison.metrics import McNemar

    wide, narrow = difference_ci(McNemar(30, 20, 0.2), 200), difference_ci(McNemar(12, 2, 0.01), 200)
    assert wide[0] < 0.05 < wide[1] and narrow[0] > 0  # 10 / 200 = 5 points of difference in both
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert difference_ci(McNemar(0, 0, 1.0), 50) == (0.0, 0.0)
    assert difference_ci(McNemar(30, 20, 0.2), 200, seed=3) == difference_ci(McNemar(30, 20, 0.2), 200, seed=3)
