"""The comparison report: index.html (self-contained, opens offline), report.md, metrics.json,
predictions.csv and timings.json.

metrics.json holds only what the same command reproduces exactly (scores, splits, identities,
versions); wall-clock times vary from run to run, so they live in timings.json.
"""

from __future__ import annotations

import html
import json
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio import outputs
from tfaudio.comparison.classifiers import CLASSIFIERS
from tfaudio.comparison.discussion import paragraphs
from tfaudio.comparison.result import BASELINE
from tfaudio.data.audio import printable_path

if TYPE_CHECKING:
    from tfaudio.comparison.result import ComparisonResult

_PACKAGES = ("tfaudio", "tensorflow", "keras", "numpy", "scikit-learn", "scipy", "librosa", "soundfile", "soxr",
             "transformers", "tensorflow-hub", "plotly")
_DIGITS = 6  # enough for any metric here, few enough that float noise never shows


def _round(value):
    if isinstance(value, float):
        return round(value, _DIGITS)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    if isinstance(value, np.ndarray):
        return _round(value.tolist())
    if isinstance(value, np.generic):
        return _round(value.item())
    return value


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def metrics_dict(result: ComparisonResult) -> dict:
    """Everything measured, JSON-ready and deterministic for a given command."""
    winner = result.winner
    versus = result.winner_versus_baseline()
    config = result.config
    return _round({
        "dataset": {**result.summary, "root": printable_path(result.dataset.root), "classes_compared": list(result.classes),
                    "clips_compared": len(result.dataset)},
        "fallback": result.fallback,
        "splits": {"strategy": result.split_strategy,
                   "splits": [{"name": s.name, "train": len(s.train), "test": len(s.test)} for s in result.splits]},
        "representations": [{"name": i.name, "dim": i.dim, "pooling": i.pooling, "identity": i.identity,
                             "trained_per_split": i.per_split} for i in result.representations],
        "unavailable": [{"name": u.name, "reason": u.reason} for u in result.unavailable],
        "skipped": [{"path": p.shown, "reason": p.reason} for p in result.skipped],
        "runs": [
            {
                "representation": r.representation,
                "classifier": r.classifier,
                "hyperparameters": {k: (list(v) if isinstance(v, tuple) else v)
                                    for k, v in config.spec(r.classifier).resolved().items()},
                "accuracy": r.metrics.accuracy,
                "accuracy_fold_mean": r.metrics.fold_mean,
                "accuracy_fold_std": r.metrics.fold_std,
                "accuracy_ci95": list(r.metrics.accuracy_ci),
                "fold_accuracy": r.cv.fold_accuracy,
                "macro_precision": r.metrics.macro_precision,
                "macro_recall": r.metrics.macro_recall,
                "macro_f1": r.metrics.macro_f1,
                "per_class": {name: {k: v[i] for k, v in r.metrics.per_class.items()}
                              for i, name in enumerate(result.classes)},
                "confusion": r.metrics.confusion,
                "calibration": r.metrics.calibration.to_dict() if r.metrics.calibration else None,
                "mcnemar_vs_baseline": None if r.versus_baseline is None else {
                    "only_this_right": r.versus_baseline.only_a, "only_baseline_right": r.versus_baseline.only_b,
                    "p_value": r.versus_baseline.p_value},
            }
            for r in result.ranked()
        ],
        "winner": {"representation": winner.representation, "classifier": winner.classifier,
                   "accuracy": winner.metrics.accuracy,
                   "mcnemar_vs_best_baseline": None if versus is None else {
                       "baseline_classifier": result.best_of(BASELINE).classifier,
                       "only_winner_right": versus.only_a, "only_baseline_right": versus.only_b,
                       "p_value": versus.p_value}},
        "discussion": paragraphs(result),
        "notes": result.notes,
        "reproducibility": {"command": result.command, "seed": config.seed, "folds": config.folds,
                            "split": config.split, "classifiers": list(config.classifiers),
                            "models": list(config.model_list), "versions": versions(),
                            # float32 runs keep the metrics.json they always had
                            **({"precision": config.precision} if config.precision != "float32" else {})},
    })


def timings_dict(result: ComparisonResult) -> dict:
    return _round({
        "embedding": {i.name: {"seconds": i.embed_seconds, "cached": i.cached, "computed": i.computed}
                      for i in result.representations},
        "classifiers": {f"{r.representation}/{r.classifier}": {
            "fit_seconds_mean": float(r.cv.fit_seconds.mean()), "predict_seconds_mean": float(r.cv.predict_seconds.mean())}
            for r in result.runs},
    })


# --------------------------------------------------------------------------- figures


def _figures(result: ComparisonResult) -> list[tuple[str, object]]:
    """(title, plotly Figure) for the page, in order."""
    best_runs = [result.best_of(i.name) for i in result.representations]
    figures = [("Accuracy with 95 % intervals", _accuracy_figure(result)),
               ("Confusion matrices", _confusion_figure(result, best_runs)),
               ("Per-class F1", _f1_figure(result, best_runs))]
    if any(r.metrics.calibration for r in result.runs):
        figures.append(("Reliability diagrams", _reliability_figure(result)))
    if result.vectors:
        figures.append(("PCA thumbnails", _pca_figure(result)))
    return figures


def _accuracy_figure(result: ComparisonResult):
    """Every run's pooled accuracy with its bootstrap interval, best first; the baseline grey."""
    import plotly.graph_objects as go

    ranked = result.ranked()
    labels = [f"{r.representation} / {r.classifier}" for r in ranked]
    accuracy = np.array([r.metrics.accuracy for r in ranked])
    low = np.array([r.metrics.accuracy_ci[0] for r in ranked])
    high = np.array([r.metrics.accuracy_ci[1] for r in ranked])
    colors = ["#888888" if r.representation == BASELINE else "#1f77b4" for r in ranked]
    bars = go.Figure(go.Bar(
        x=accuracy * 100, y=labels, orientation="h", marker_color=colors,
        error_x={"type": "data", "symmetric": False, "array": (high - accuracy) * 100,
                 "arrayminus": (accuracy - low) * 100},
        hovertemplate="%{y}: %{x:.1f} %<extra></extra>",
    ))
    bars.update_layout(title="Accuracy of the pooled out-of-fold predictions with 95 % bootstrap interval; grey: hand-crafted baseline",
                       xaxis_title="accuracy (%)", yaxis={"autorange": "reversed"},
                       height=120 + 28 * len(ranked), margin={"l": 220})
    return bars


def _confusion_figure(result: ComparisonResult, best_runs: list):
    """The normalized confusion matrix of each representation's best run, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    classes = list(result.classes)
    heat = make_subplots(rows=1, cols=len(best_runs), subplot_titles=[f"{r.representation} / {r.classifier}"
                                                                       for r in best_runs], horizontal_spacing=0.06)
    for col, run in enumerate(best_runs, 1):
        normalized = run.metrics.confusion_normalized
        heat.add_trace(go.Heatmap(
            z=normalized, x=classes, y=classes, zmin=0, zmax=1, colorscale="Blues", showscale=col == len(best_runs),
            customdata=run.metrics.confusion, text=np.round(normalized, 2), texttemplate="%{text}" if len(classes) <= 12 else None,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata} clips (%{z:.0%} of the row)<extra></extra>",
        ), row=1, col=col)
        heat.update_yaxes(autorange="reversed", row=1, col=col, showticklabels=col == 1)
    heat.update_layout(title="Confusion matrices (rows: true class, normalized; hover for counts), best classifier "
                             "per representation", height=260 + 22 * len(classes), width=None)
    return heat


def _f1_figure(result: ComparisonResult, best_runs: list):
    """Per-class F1 of each representation's best run, grouped by class."""
    import plotly.graph_objects as go

    f1 = go.Figure()
    for run in best_runs:
        f1.add_trace(go.Bar(name=f"{run.representation} / {run.classifier}", x=list(result.classes),
                            y=run.metrics.per_class["f1"], hovertemplate="%{x}: F1 %{y:.2f}<extra></extra>"))
    f1.update_layout(barmode="group", title="Per-class F1, best classifier per representation", yaxis_title="F1",
                     yaxis_range=[0, 1.02], height=420)
    return f1


def _reliability_figure(result: ComparisonResult):
    """Per representation, each probabilistic classifier's top-label accuracy against its mean
    confidence in equal-width bins (marker area ~ clips); on the diagonal is calibrated."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = [i.name for i in result.representations]
    runs = {name: [r for r in result.runs if r.representation == name and r.metrics.calibration] for name in names}
    titles = [f"{name}<br><sub>ECE "
              + " · ".join(f"{r.classifier} {r.metrics.calibration.ece:.3f}" for r in runs[name]) + "</sub>"
              for name in names]
    figure = make_subplots(rows=1, cols=len(names), subplot_titles=titles, horizontal_spacing=0.05)
    palette = dict(zip(result.config.classifiers, ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]))
    for col, name in enumerate(names, 1):
        figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"},
                                    hoverinfo="skip", showlegend=False), row=1, col=col)
        for run in runs[name]:
            bins = run.metrics.calibration.to_dict()["reliability"]
            figure.add_trace(go.Scatter(
                x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins], mode="lines+markers",
                name=CLASSIFIERS[run.classifier].label, legendgroup=run.classifier, showlegend=col == 1,
                line={"color": palette.get(run.classifier)},
                marker={"size": [4 + 16 * np.sqrt(b["clips"] / len(result.labels)) for b in bins]},
                customdata=[[b["bin"][0], b["bin"][1], b["clips"]] for b in bins],
                hovertemplate=(f"{name} / {run.classifier}<br>confidence "
                               "%{customdata[0]:.1f}–%{customdata[1]:.1f}: %{customdata[2]} clips<br>mean confidence %{x:.2f}, accuracy %{y:.2f}<extra></extra>"),
            ), row=1, col=col)
        figure.update_xaxes(range=[-0.02, 1.04], title_text="confidence (top-label probability)", row=1, col=col)
        figure.update_yaxes(range=[-0.02, 1.04], title_text="accuracy" if col == 1 else None, row=1, col=col)
    figure.update_layout(title="Reliability of the out-of-fold probabilities (top label, equal-width bins; "
                               "dotted: calibrated; below it: overconfident)", height=460,
                         legend={"orientation": "h", "y": -0.2}, margin={"t": 110})
    return figure


def _pca_figure(result: ComparisonResult):
    """2-D PCA of every representation's clip vectors, one panel each, coloured by class."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    classes = list(result.classes)
    names = list(result.vectors)
    per_split = {i.name for i in result.representations if i.per_split}
    titles = [f"{n} (split 1's model)" if n in per_split else n for n in names]
    scatter = make_subplots(rows=1, cols=len(names), subplot_titles=titles, horizontal_spacing=0.04)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    files = [result.dataset.relative(c) for c in result.dataset.clips]
    for col, name in enumerate(names, 1):
        X = result.vectors[name]
        if name == BASELINE:  # its columns have different units (Hz, dB, ratios): standardize
            X = StandardScaler().fit_transform(X)
        points = PCA(2, random_state=0).fit_transform(X)
        for k, label in enumerate(classes):
            rows = result.labels == k
            scatter.add_trace(go.Scattergl(
                x=points[rows, 0], y=points[rows, 1], mode="markers", name=label, legendgroup=label,
                showlegend=col == 1, marker={"size": 5, "color": palette[k % len(palette)],
                                             "symbol": ["circle", "square", "diamond", "cross", "x"][k // 10 % 5]},
                text=[files[i] for i in np.flatnonzero(rows)], customdata=[label] * int(rows.sum()),
                hovertemplate="%{text}<extra>%{customdata}</extra>",
            ), row=1, col=col)
        scatter.update_xaxes(showticklabels=False, row=1, col=col)
        scatter.update_yaxes(showticklabels=False, row=1, col=col)
    scatter.update_layout(title="PCA of the clip vectors (2-D thumbnails of all clips; the baseline standardized)",
                          height=460, legend={"orientation": "h", "y": -0.08})
    return scatter


# --------------------------------------------------------------------------- text


def _ranking_rows(result: ComparisonResult) -> list[list[str]]:
    dims = {i.name: i.dim for i in result.representations}
    rows = []
    for rank, run in enumerate(result.ranked(), 1):
        m, versus = run.metrics, run.versus_baseline
        rows.append([
            str(rank), run.representation, CLASSIFIERS[run.classifier].label, str(dims[run.representation]),
            f"{100 * m.accuracy:.1f}",
            f"{100 * m.accuracy_ci[0]:.1f}–{100 * m.accuracy_ci[1]:.1f}",
            f"{100 * m.fold_mean:.1f} ± {100 * m.fold_std:.1f}",
            f"{m.macro_precision:.3f}", f"{m.macro_recall:.3f}", f"{m.macro_f1:.3f}",
            "–" if m.calibration is None else
            f"{m.calibration.ece:.3f} ({m.calibration.ece_ci[0]:.3f}–{m.calibration.ece_ci[1]:.3f})",
            "baseline" if versus is None else (f"{versus.p_value:.2g}" if versus.p_value >= 1e-4 else "< 1e-4"),
            f"{run.cv.fit_seconds.mean():.2f} / {1000 * run.cv.predict_seconds.mean():.0f} ms",
        ])
    return rows


_RANK_HEAD = ["#", "representation", "classifier", "dim", "accuracy %", "95 % CI", "per split % (mean ± std)", "macro P",
              "macro R", "macro F1", "ECE (95 % CI)", f"McNemar p vs {BASELINE} with the same classifier",
              "fit s / predict per split"]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _dataset_rows(result: ComparisonResult) -> list[list[str]]:
    s = result.summary
    d = s["duration_seconds"]
    return [
        ["source", f"{printable_path(result.dataset.root)} ({s['source']})"],
        ["clips", f"{s['clips']} readable in {len(s['classes'])} classes; {len(result.dataset)} compared in "
                  f"{len(result.classes)} classes"],
        ["duration", f"median {d['median']:.2f} s (min {d['min']:.2f}, max {d['max']:.2f}); "
                     f"total {d['total'] / 60:.1f} min"],
        ["sample rates", ", ".join(f"{k} Hz ({v})" for k, v in sorted(s["sample_rates"].items()))],
        ["channels", ", ".join(f"{k} ({v})" for k, v in sorted(s["channels"].items()))],
        ["splits", f"{result.split_strategy}: " + ", ".join(f"{x.name} ({len(x.train)}/{len(x.test)})"
                                                             for x in result.splits)],
        ["clips per class", ", ".join(f"{k} {v}" for k, v in s["clips_per_class"].items())],
    ]


def _repro_rows(result: ComparisonResult) -> list[list[str]]:
    rows = [["command", result.command or "(Python API)"], ["seed", str(result.config.seed)]]
    if result.config.precision != "float32":
        rows.append(["precision", f"{result.config.precision} for the networks (float32 for the hand-crafted baseline)"])
    for info in result.representations:
        # Where each backend keeps its weights' digest (YAMNet / autoencoder, VGGish, TF-Hub).
        digest = next((str(info.identity[k]) for k in ("weights_sha256", "weights", "module")
                       if isinstance(info.identity.get(k), str)), "")
        rows.append([f"{info.name}", f"{info.dim}-d, pooling {info.pooling}"
                     + (f", weights sha256 {digest[:16]}…" if digest else "")
                     + (f", computed in {info.identity['precision']}" if "precision" in info.identity else "")])
    rows.append(["versions", ", ".join(f"{k} {v}" for k, v in versions().items())])
    return rows


def markdown(result: ComparisonResult) -> str:
    name = printable_path(result.dataset.root.name)
    parts = [f"# Which representation for {name}?", ""]
    if result.fallback:
        parts += [f"> **Note:** {result.fallback}", ""]
    parts += ["## Verdict", "", *[p + "\n" for p in paragraphs(result)]]
    parts += ["## Ranking", "", _md_table(_RANK_HEAD, _ranking_rows(result)), ""]
    parts += _calibration_md(result)
    parts += ["## Dataset", "", _md_table(["", ""], _dataset_rows(result)), ""]
    per_class = result.per_class
    best = [result.best_of(i.name) for i in result.representations]
    head = ["class", *[f"{r.representation}/{r.classifier}" for r in best]]
    rows = [[c, *[f"{per_class[(per_class.representation == r.representation) & (per_class.classifier == r.classifier) & (per_class['class'] == c)]['f1'].item():.2f}" for r in best]]
            for c in result.classes]
    parts += ["## Per-class F1 (best classifier per representation)", "", _md_table(head, rows), ""]
    for run in best:
        parts += [f"### Confusion matrix: {run.representation} / {run.classifier} (rows true, columns predicted)", "",
                  _md_table(["", *result.classes], [[c, *map(str, row)] for c, row in zip(result.classes, run.metrics.confusion)]), ""]
    parts += _left_out_md(result)
    parts += ["## Reproducibility", "", _md_table(["", ""], _repro_rows(result)), ""]
    return "\n".join(parts)


def _calibration_md(result: ComparisonResult) -> list[str]:
    """The runs with probabilities: ECE, confidence against accuracy, and the reliability curve
    as text (mean confidence → accuracy, clips, per non-empty bin)."""
    runs = [r for r in result.ranked() if r.metrics.calibration]
    if not runs:
        return []
    rows = [[f"{r.representation}/{r.classifier}", f"{c.ece:.3f}", f"{c.ece_ci[0]:.3f}–{c.ece_ci[1]:.3f}",
             f"{100 * c.mean_confidence:.1f}", f"{100 * c.accuracy:.1f}",
             ", ".join(f"{b['confidence']:.2f}→{b['accuracy']:.2f} ({b['clips']})"
                       for b in c.to_dict()["reliability"])]
            for r in runs for c in [r.metrics.calibration]]
    head = ["run", "ECE", "95 % CI", "mean confidence %", "accuracy %",
            "reliability: confidence→accuracy (clips) per bin"]
    return ["## Calibration (top-label, equal-width bins, out-of-fold)", "", _md_table(head, rows), ""]


def _left_out_md(result: ComparisonResult) -> list[str]:
    parts = []
    if result.unavailable:
        parts += ["## Unavailable representations", ""]
        parts += [f"- **{u.name}**: {(u.reason.splitlines() or [''])[0]}" for u in result.unavailable] + [""]
    if result.skipped or result.dataset_ignored:
        parts += ["## Skipped files and classes", ""]
        parts += [f"- `{p.shown}`: {p.reason}" for p in [*result.skipped, *result.dataset_ignored]] + [""]
    worth = _worth_a_look(result)
    if worth:
        parts += ["## Worth a look", ""] + [f"- `{path}`: {reason}" for path, reason in worth] + [""]
    if result.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return parts


def _worth_a_look(result: ComparisonResult) -> list[tuple[str, str]]:
    """Clips kept but worth a look (repeated manifest rows, one file under two labels, identical
    audio at two paths, clips shorter than one analysis window), from the dataset summary."""
    return [(printable_path(row["path"]), row["reason"]) for key in ("warnings", "duplicates", "short")
            for row in result.summary.get(key, [])]


# --------------------------------------------------------------------------- HTML


def _bold(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def _html_table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:1.5rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem} td,th{border:1px solid #ddd;padding:.3rem .55rem;text-align:left}
th{background:#f4f6f8} tr.winner td{background:#eef6ee} .note{background:#fff6e0;border-left:4px solid #f0b400;padding:.6rem 1rem}
.discussion p{line-height:1.5;max-width:70rem} .muted{color:#666;font-size:.9rem} .figure{margin:1rem 0}
"""


def page(result: ComparisonResult) -> str:
    """The self-contained HTML report (plotly.js inlined once, so it opens offline)."""
    import plotly.io as pio

    name = printable_path(result.dataset.root.name)
    figures = _figures(result)
    blocks = []
    for i, (title, figure) in enumerate(figures):
        div = pio.to_html(figure, full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False},
                          div_id=f"figure-{i}")
        blocks.append(f'<section class="figure"><h3>{html.escape(title)}</h3>{div}</section>')
    ranking = _html_table(_RANK_HEAD, _ranking_rows(result), "ranking").replace("<tbody><tr>", '<tbody><tr class="winner">', 1)
    left_out = ""
    if result.unavailable:
        left_out += "<h2>Unavailable representations</h2><ul>" + "".join(
            f"<li><strong>{html.escape(u.name)}</strong>: <span class='muted'>{html.escape(u.reason)}</span></li>"
            for u in result.unavailable) + "</ul>"
    problems = [*result.skipped, *result.dataset_ignored]
    if problems:
        left_out += "<h2>Skipped files and classes</h2>" + _html_table(["file or class", "reason"],
                                                                      [[p.shown, p.reason] for p in problems])
    worth = _worth_a_look(result)
    if worth:
        left_out += "<h2>Worth a look</h2>" + _html_table(["file", "why"], [list(row) for row in worth])
    if result.notes:
        left_out += "<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>"
    note = f'<p class="note"><strong>Note:</strong> {html.escape(result.fallback)}</p>' if result.fallback else ""
    discussion = "".join(f"<p>{_bold(p)}</p>" for p in paragraphs(result))
    precision = "" if result.config.precision == "float32" else f" Networks computed in {result.config.precision}."
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>tfaudio comparison: {html.escape(name)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Which representation for {html.escape(name)}?</h1>
<p class="muted">{len(result.representations)} representations × {len(result.config.classifiers)} classifiers on the
same {len(result.splits)} {html.escape(result.split_strategy)} splits of {len(result.dataset)} clips.{precision} Written by tfaudio.</p>
{note}
<h2>Verdict</h2><div class="discussion">{discussion}</div>
<h2>Ranking</h2>{ranking}
{''.join(blocks)}
<h2>Dataset</h2>{_html_table(['', ''], _dataset_rows(result))}
{left_out}
<h2>Reproducibility</h2>{_html_table(['', ''], _repro_rows(result))}
<p class="muted">Files beside this page: report.md, metrics.json (every number above), predictions.csv (out-of-fold
prediction per clip), timings.json.</p>
</body></html>
"""


def write_report(result: ComparisonResult, out: str | Path) -> Path:
    """Write the report files into `out`; returns the path of index.html.

    Each file is written whole or not at all (tfaudio.outputs): a failure part-way leaves an
    earlier report's file in its place, never a truncated one. The page goes last, so a new
    index.html means the files beside it are new too.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    outputs.write_text(out / "metrics.json", json.dumps(metrics_dict(result), indent=2, sort_keys=True) + "\n")
    outputs.write_text(out / "timings.json", json.dumps(timings_dict(result), indent=2, sort_keys=True) + "\n")
    with outputs.replacing(out / "predictions.csv") as temporary:
        result.predictions.to_csv(temporary, index=False)
    outputs.write_text(out / "report.md", markdown(result))
    return outputs.write_text(out / "index.html", page(result))
