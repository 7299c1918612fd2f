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

from tfaudio.comparison.result import BASELINE
from tfaudio.models.registry import card_for

if TYPE_CHECKING:
    from tfaudio.comparison.result import ComparisonResult


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
    from tfaudio.comparison.classifiers import CLASSIFIERS

    return f"{run.representation} + {CLASSIFIERS[run.classifier]}"


def paragraphs(result: ComparisonResult) -> list[str]:
    """The discussion, one paragraph per list item (plain text with **bold** for Markdown/HTML)."""
    out = [_verdict(result)]
    for part in (_classes(result), _confusions(result), _others(result), _classifiers(result), _hypotheses(result),
                 _anchors(result), _caveats(result)):
        if part:
            out.append(part)
    return out


def _verdict(result: ComparisonResult) -> str:
    best, base = result.winner, result.best_of(BASELINE)
    if best.representation == BASELINE:
        runner = next((r for r in result.ranked() if r.representation != BASELINE), None)
        if runner is None:
            return (f"**Only the hand-crafted baseline was evaluated**: {_label(best)} reaches "
                    f"{_pct(best.metrics.accuracy)} (95 % CI {_pct(best.metrics.accuracy_ci[0])}–"
                    f"{_pct(best.metrics.accuracy_ci[1])}). Add a learned representation (--model yamnet) to compare.")
        test, same = runner.versus_baseline, result.run(BASELINE, runner.classifier)
        # Say which side is ahead: the runner can beat the baseline with its own classifier while
        # losing to the baseline's best, and a bare p-value would read as either.
        ahead = ("ahead of" if test.only_a > test.only_b else "behind" if test.only_a < test.only_b
                 else "level with")
        significance = "significant" if test.p_value < 0.05 else "not significant"
        return (f"**The hand-crafted baseline wins**: {_label(best)} reaches {_pct(best.metrics.accuracy)} "
                f"(95 % CI {_pct(best.metrics.accuracy_ci[0])}–{_pct(best.metrics.accuracy_ci[1])}). The best learned "
                f"representation, {_label(runner)}, reaches {_pct(runner.metrics.accuracy)} "
                f"({_pp(runner.metrics.accuracy - best.metrics.accuracy)}). Against the baseline with the same "
                f"classifier ({_label(same)}, {_pct(same.metrics.accuracy)}) it is {ahead} it: right where that "
                f"baseline is wrong on {_clips(test.only_a)}, wrong where it is right on {_clips(test.only_b)}; "
                f"McNemar gives {_p(test.p_value)} ({significance}).")
    test = result.winner_versus_baseline()
    margin = best.metrics.accuracy - base.metrics.accuracy
    if test.p_value < 0.05 and test.only_a <= test.only_b:
        strength = "yet the baseline is right on more of the clips where they disagree: treat the ranking as a tie"
    elif test.p_value < 0.01:
        strength = "so it is significantly better than the baseline"
    elif test.p_value < 0.05:
        strength = "so it is better than the baseline, significant at the 5 % level but not at 1 %"
    else:
        strength = "so it is not significantly different from the baseline"
    return (f"**{best.representation} wins**: {_label(best)} classifies {_pct(best.metrics.accuracy)} of the clips "
            f"correctly over {len(result.splits)} splits (95 % bootstrap CI {_pct(best.metrics.accuracy_ci[0])}–"
            f"{_pct(best.metrics.accuracy_ci[1])}; per split {_pct(best.metrics.fold_mean)} ± "
            f"{_pct(best.metrics.fold_std)}), against {_pct(base.metrics.accuracy)} for the best hand-crafted model "
            f"({_label(base)}): {_pp(margin)}. On the same clips the winner is right where the baseline is wrong on "
            f"{_clips(test.only_a)} and the reverse happens on {_clips(test.only_b)}; McNemar's exact test gives "
            f"{_p(test.p_value)}, {strength}.")


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
        if "logreg" in accuracies and accuracies["logreg"] >= max(max(accuracies.values()) - 0.01, 0.9):
            linear.append(info.name)
        elif spread > 0.05:
            best = max(accuracies, key=accuracies.get)
            sensitive.append(f"{info.name} ({_pp(spread)} between classifiers; best: {CLASSIFIERS_SHORT[best]})")
    text = []
    if linear:
        text.append(f"a linear probe is within one point of the best classifier for {', '.join(linear)}, so "
                    f"{'its' if len(linear) == 1 else 'their'} classes are close to linearly separable")
    if sensitive:
        text.append("the classifier matters for " + "; ".join(sensitive))
    return ("Classifiers: " + "; ".join(text) + ".") if text else None


CLASSIFIERS_SHORT = {"rf": "random forest", "mlp": "MLP", "logreg": "logistic regression"}


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
