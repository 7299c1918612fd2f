"""The report's discussion, written from the measured numbers.

Each paragraph states a measurement first (who wins, by how much, whether significantly,
which classes gain, which confusions remain) and only then a hypothesis, tied to a fact about
the models: what each was trained on, its vector size against the training clips per split,
its receptive field against the clips' length (the facts `tfaudio models` lists too: the
registry's model cards). Nothing here is a canned verdict: change the numbers and the text
changes with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tfaudio.comparison.classifiers import CLASSIFIERS
from tfaudio.comparison.metrics import McNemar, difference_ci
from tfaudio.comparison.result import BASELINE
from tfaudio.models.registry import card_for

if TYPE_CHECKING:
    from tfaudio.comparison.calibration import Calibration
    from tfaudio.comparison.result import ComparisonResult, Run


#: Published results on ESC-10 (Piczak 2015, "ESC: Dataset for Environmental Sound Classification").
ESC10_CLASSES = {"dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing", "clock_tick",
                 "helicopter", "chainsaw"}
ESC10_ANCHORS = "Piczak (2015) reports 72.7 % for a random forest on MFCC and zero-crossing-rate features on ESC-10, " \
                "and 95.7 % for human listeners"


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _pp(value: float) -> str:
    return f"{100 * value:+.1f} points"


def _clips(count: int) -> str:
    return f"{count} clip{'' if count == 1 else 's'}"


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _label(run) -> str:
    return f"{run.representation} + {CLASSIFIERS[run.classifier].label}"


def paragraphs(result: ComparisonResult) -> list[str]:
    """The discussion, one paragraph per list item (plain text with **bold** for Markdown/HTML)."""
    out = [_verdict(result)]
    for part in (_leakage(result), _classes(result), _confusions(result), _others(result), _classifiers(result),
                 _calibration(result), _hypotheses(result), _anchors(result), _caveats(result)):
        if part:
            out.append(part)
    return out


def _ci(interval: tuple[float, float]) -> str:
    return f"{_pct(interval[0])}–{_pct(interval[1])}"


def _difference(test: McNemar, clips: int, seed: int) -> str:
    low, high = difference_ci(test, clips, seed=seed)
    return f"95 % CI of the difference {100 * low:+.1f} to {100 * high:+.1f} points"


def _verdict(result: ComparisonResult) -> str:
    """The first paragraph: the best learned run against the baseline's best run, worded as
    McNemar's test on their predictions allows: a tie, no significant difference (p >= 0.05),
    or a win for the side that is right on more of the clips where they disagree."""
    base, learned = result.best_of(BASELINE), result.best_learned()
    if learned is None:
        return (f"**Only the hand-crafted baseline was evaluated**: {_label(base)} reaches "
                f"{_pct(base.metrics.accuracy)} (95 % CI {_ci(base.metrics.accuracy_ci)}). Add a learned "
                "representation (--model yamnet) to compare.")
    test = result.learned_versus_baseline()
    if test.only_a == test.only_b:
        return _tie(result, learned, base, test)
    if test.p_value >= 0.05:
        return _no_difference(result, learned, base, test)
    return _learned_wins(result, learned, base, test) if test.only_a > test.only_b else \
        _baseline_wins(result, learned, base, test)


def _learned_wins(result: ComparisonResult, best: Run, base: Run, test: McNemar) -> str:
    strength = ("so it is significantly better than the baseline" if test.p_value < 0.01
                else "so it is better than the baseline, significant at the 5 % level but not at 1 %")
    return (f"**{best.representation} wins**: {_label(best)} classifies {_pct(best.metrics.accuracy)} of the clips "
            f"correctly over {len(result.splits)} splits (95 % bootstrap CI {_ci(best.metrics.accuracy_ci)}; per split "
            f"{_pct(best.metrics.fold_mean)} ± {_pct(best.metrics.fold_std)}), against {_pct(base.metrics.accuracy)} "
            f"for the best hand-crafted model ({_label(base)}): {_pp(best.metrics.accuracy - base.metrics.accuracy)}. On the same clips the winner is "
            f"right where the baseline is wrong on {_clips(test.only_a)} and the reverse happens on "
            f"{_clips(test.only_b)}; McNemar's exact test gives {_p(test.p_value)}, {strength}.")


def _baseline_wins(result: ComparisonResult, learned: Run, base: Run, test: McNemar) -> str:
    text = (f"**The hand-crafted baseline wins**: {_label(base)} reaches {_pct(base.metrics.accuracy)} "
            f"(95 % CI {_ci(base.metrics.accuracy_ci)}). The best learned representation, {_label(learned)}, reaches "
            f"{_pct(learned.metrics.accuracy)} ({_pp(learned.metrics.accuracy - base.metrics.accuracy)}; "
            f"{_difference(test, len(result.labels), result.config.seed)}). On the same clips that baseline is right "
            f"where {learned.representation} is wrong on {_clips(test.only_b)} and the reverse happens on "
            f"{_clips(test.only_a)}; McNemar's exact test gives {_p(test.p_value)}, so the baseline is significantly "
            "better.")
    same = result.run(BASELINE, learned.classifier)
    if same is base:
        return text
    # The learned run can beat the baseline with its own classifier while losing to the
    # baseline's best: say which side is ahead there too, as a bare p-value reads as either.
    versus = learned.versus_baseline
    ahead = "ahead of" if versus.only_a > versus.only_b else "behind" if versus.only_a < versus.only_b else "level with"
    significance = "significant" if versus.p_value < 0.05 else "not significant"
    return (f"{text} Against the baseline with the same classifier ({_label(same)}, {_pct(same.metrics.accuracy)}) "
            f"it is {ahead} it: right where that baseline is wrong on {_clips(versus.only_a)}, wrong where it is right "
            f"on {_clips(versus.only_b)}; McNemar gives {_p(versus.p_value)} ({significance}).")


def _no_difference(result: ComparisonResult, learned: Run, base: Run, test: McNemar) -> str:
    return (f"**No significant difference** between the best learned representation and the hand-crafted baseline: "
            f"{_label(learned)} classifies {_pct(learned.metrics.accuracy)} of the clips correctly (95 % bootstrap CI "
            f"{_ci(learned.metrics.accuracy_ci)}), the best hand-crafted model, {_label(base)}, "
            f"{_pct(base.metrics.accuracy)} ({_ci(base.metrics.accuracy_ci)}): "
            f"{_pp(learned.metrics.accuracy - base.metrics.accuracy)} "
            f"({_difference(test, len(result.labels), result.config.seed)}). On the same clips "
            f"{learned.representation} is right where the baseline is wrong on {_clips(test.only_a)} and the reverse "
            f"happens on {_clips(test.only_b)}; McNemar's exact test gives {_p(test.p_value)}, so chance could give a "
            "difference this large: neither is shown to be better.")


def _tie(result: ComparisonResult, learned: Run, base: Run, test: McNemar) -> str:
    disagreement = ("They are right and wrong on exactly the same clips." if test.only_a == 0 else
                    f"They disagree on {_clips(2 * test.only_a)}, each right on half of them; McNemar's exact test "
                    f"gives {_p(test.p_value)}.")
    return (f"**A tie**: {_label(learned)} and the best hand-crafted model, {_label(base)}, both classify "
            f"{_pct(base.metrics.accuracy)} of the clips correctly over {len(result.splits)} splits (95 % bootstrap CI "
            f"{_ci(base.metrics.accuracy_ci)}). {disagreement} Neither is better on these clips.")


def _leakage(result: ComparisonResult) -> str | None:
    """Right after the verdict: a representation tested on clips it was trained on."""
    if not result.leakage:
        return None
    return "**Test clips leaked into training**: " + " ".join(leak.sentence() for leak in result.leakage)


def _others(result: ComparisonResult) -> str | None:
    """One sentence per learned representation other than the winner: its best run against the
    baseline with the same classifier, and what it learned from."""
    sentences = []
    for info in result.representations:
        if info.name in (BASELINE, result.winner.representation):
            continue
        best = result.best_of(info.name)
        test = best.versus_baseline
        verdict = ("significantly better than" if test.p_value < 0.05 and test.only_a > test.only_b
                   else "significantly worse than" if test.p_value < 0.05 else "not significantly different from")
        card = card_for(info.name)
        learned = f"; it learned from {card.trained_on}" if card else ""
        sentences.append(f"{info.name} reaches {_pct(best.metrics.accuracy)} at best ({_label(best)}), "
                         f"{verdict} the baseline with the same classifier ({_p(test.p_value)}){learned}.")
    return " ".join(sentences) or None


def _f1_gain(result: ComparisonResult) -> np.ndarray:
    return result.winner.metrics.per_class["f1"] - result.best_of(BASELINE).metrics.per_class["f1"]


def _classes(result: ComparisonResult) -> str | None:
    best = result.winner
    if best.representation == BASELINE:
        return None
    gain = _f1_gain(result)
    order = np.argsort(-gain, kind="stable")
    top = [f"{result.classes[i]} ({_pp(gain[i])} F1)" for i in order[:3] if gain[i] > 0]
    worse = [f"{result.classes[i]} ({_pp(gain[i])})" for i in order[::-1] if gain[i] < 0][:3]
    text = ""
    if top:
        text = f"The classes that gain most from {best.representation} over the baseline are {', '.join(top)}."
    if worse:
        text += f" The baseline does better on {', '.join(worse)}."
    elif top:
        text += " No class has a lower F1 than with the baseline."
    return text or None


def _confusions(result: ComparisonResult) -> str:
    best = result.winner
    matrix = best.metrics.confusion.copy()
    np.fill_diagonal(matrix, 0)
    if matrix.sum() == 0:
        return f"{_label(best)} makes no error on any clip."
    pairs = np.dstack(np.unravel_index(np.argsort(-matrix, axis=None, kind="stable"), matrix.shape))[0]
    remaining = [f"{result.classes[i]} taken for {result.classes[j]} ({matrix[i, j]}×)"
                 for i, j in pairs[:3] if matrix[i, j] > 0]
    f1 = best.metrics.per_class["f1"]
    weakest = int(np.argmin(f1))
    return (f"The confusions that remain with {_label(best)}: {'; '.join(remaining)}. Its weakest class is "
            f"{result.classes[weakest]} (F1 {f1[weakest]:.2f}); {int(matrix.sum())} of {len(result.labels)} clips "
            f"are misclassified in all.")


def _classifiers(result: ComparisonResult) -> str | None:
    if len(result.config.classifiers) < 2:
        return None
    linear, sensitive = [], []
    for info in result.representations:
        accuracies = {r.classifier: r.metrics.accuracy for r in result.runs if r.representation == info.name}
        spread = max(accuracies.values()) - min(accuracies.values())
        probe = max((a for c, a in accuracies.items() if CLASSIFIERS[c].linear), default=None)
        if probe is not None and probe >= max(max(accuracies.values()) - 0.01, 0.9):
            linear.append(info.name)
        elif spread > 0.05:
            best = max(accuracies, key=accuracies.get)
            sensitive.append(f"{info.name} ({_pp(spread)} between classifiers; best: {CLASSIFIERS[best].short})")
    text = []
    if linear:
        text.append(f"a linear probe is within one point of the best classifier for {', '.join(linear)}, so "
                    f"{'its' if len(linear) == 1 else 'their'} classes are close to linearly separable")
    if sensitive:
        text.append("the classifier matters for " + "; ".join(sensitive))
    return ("Classifiers: " + "; ".join(text) + ".") if text else None


#: From this expected calibration error up, the discussion calls a run's probabilities badly calibrated.
BADLY_CALIBRATED = 0.10


def _confident(c: Calibration) -> str:
    """Which way the probabilities lean, from mean confidence against accuracy."""
    gap = c.overconfidence
    if abs(gap) < 0.02:
        return f"on average {_pct(c.mean_confidence)} confident and right on {_pct(c.accuracy)}"
    return f"{'over' if gap > 0 else 'under'}confident by {abs(100 * gap):.1f} points"


def _calibration(result: ComparisonResult) -> str | None:
    """How far the probabilities can be read as chances: the winner's ECE, the runs whose ECE
    is high, and how large an ECE the number of clips alone gives (calibration.py's bias)."""
    runs = [r for r in result.ranked() if r.metrics.calibration]
    if not runs:
        return None
    winner, clips = result.winner, len(result.labels)
    parts = ["Calibration (top-label expected calibration error, ECE, over equal-width confidence bins):"]
    if winner.metrics.calibration:
        c = winner.metrics.calibration
        parts.append(f"the winner's probabilities ({_label(winner)}) have ECE {c.ece:.3f} (95 % CI "
                     f"{c.ece_ci[0]:.3f}–{c.ece_ci[1]:.3f}), {_confident(c)}.")
    best = min(runs, key=lambda r: r.metrics.calibration.ece)
    if best is not winner:
        parts.append(f"The best calibrated is {_label(best)} (ECE {best.metrics.calibration.ece:.3f}).")
    bad = [r for r in runs if r.metrics.calibration.ece >= BADLY_CALIBRATED]
    if bad:
        named = [f"{_label(r)} (ECE {r.metrics.calibration.ece:.3f}, {_confident(r.metrics.calibration)})" for r in bad]
        more = f" and {len(named) - 4} more" if len(named) > 4 else ""
        votes = (" A random forest's probabilities are shares of tree votes, which seldom reach 0 or 1."
                 if any(r.classifier == "rf" and r.metrics.calibration.overconfidence < 0 for r in bad) else "")
        parts.append(f"Badly calibrated (ECE >= {BADLY_CALIBRATED:.2f}): {'; '.join(named[:4])}{more}; recalibrate "
                     "their probabilities on held-out clips (Platt or isotonic) before reading them as chances."
                     + votes)
    bias = np.sqrt(len(runs[0].metrics.calibration.counts) / (2 * np.pi * clips))
    if bias >= 0.02:
        parts.append(f"With {clips} clips even perfectly calibrated probabilities can show an ECE up to about "
                     f"{bias:.2f} from sampling noise alone.")
    return " ".join(parts)


def _hypotheses(result: ComparisonResult) -> str | None:
    """Why the numbers may look as they do: training data, vector size, receptive field."""
    parts = []
    best = result.winner
    card = card_for(best.representation)
    if card is not None and best.representation != BASELINE:
        parts.append(f"{best.representation} was trained on {card.trained_on}.")
    train_size = int(np.median([len(s.train) for s in result.splits]))
    for info in result.representations:
        if info.dim <= train_size:
            continue
        accuracies = [r.metrics.accuracy for r in result.runs if r.representation == info.name]
        if max(accuracies) - min(accuracies) > 0.05:
            parts.append(f"{info.name} has {info.dim} dimensions for {train_size} training clips per split and its "
                         f"classifiers disagree by {_pct(max(accuracies) - min(accuracies))}: possibly over-fitting "
                         "by the less regularized ones rather than a weaker representation.")
    median = result.summary["duration_seconds"]["median"]
    for info in result.representations:
        f = card_for(info.name)
        if f is None or not f.receptive_seconds or f.receptive_seconds < 0.5 or median <= 0:
            continue
        if median < f.receptive_seconds:
            parts.append(f"The median clip lasts {median:.2f} s, shorter than {info.name}'s {f.receptive_seconds} s "
                         "receptive field, so its single patch is partly zero padding.")
        elif f.frames(median) >= 4 and info.pooling in ("mean", "mean+std"):
            parts.append(f"A median clip ({median:.2f} s) gives {info.name} about {f.frames(median)} patches of "
                         f"{f.receptive_seconds} s every {f.hop_seconds} s, pooled by {info.pooling}: each vector "
                         "summarizes several views of the sound.")
    speech = [i.name for i in result.representations if (f := card_for(i.name)) and f.domain == "speech"]
    if speech:
        ranks = {r.representation: pos for pos, r in enumerate(result.ranked())}
        parts.append(f"{', '.join(speech)} learned from speech only; if these sounds are not speech, expect it to "
                     f"trail general-sound models (best rank here: {min(ranks[s] for s in speech) + 1}).")
    return ("Why: " + " ".join(parts)) if parts else None


def _anchors(result: ComparisonResult) -> str | None:
    if set(result.classes) != ESC10_CLASSES:
        return None
    base = result.best_of(BASELINE)
    return (f"For reference, {ESC10_ANCHORS}; our hand-crafted baseline reaches {_pct(base.metrics.accuracy)} "
            f"with {_label(base)}.")


def _caveats(result: ComparisonResult) -> str | None:
    parts = []
    if result.unavailable:
        parts.append("Not compared (unavailable here): " + ", ".join(u.name for u in result.unavailable) + ".")
    if result.skipped:
        parts.append(f"{len(result.skipped)} file(s) or class(es) were left out; see the list below.")
    per_split = [i.name for i in result.representations if i.per_split]
    if per_split:
        parts.append(f"{', '.join(per_split)} was trained on each split's training clips only, so its test clips "
                     "never leaked into it.")
    if result.fallback:
        parts.append(result.fallback)
    return " ".join(parts) or None
