"""The detector's report: DET/report.html, self-contained (plotly.js inlined once, opens offline).

Per label: what it was trained on (labelled positives and negatives, unsure windows left out,
weak negatives, recordings), how well it ranks held-out windows (average precision with a 95 %
interval over recordings), how honest its probabilities are (ECE, reliability diagram with the
windows per bin), and what its threshold buys (precision and recall with intervals, whether the
target precision was reached), with a sentence drawn from those numbers. Every number comes from
the out-of-fold (held-out) predictions of `train_detector`, never from windows a head saw.

Labels are user text: every one is escaped (html.escape) in the page and in the figures.
`summary_html` is the table alone, for notebooks (`Detector._repr_html_`).

This module reads a Detector by its fields (labels, reports, held_out, thresholds, config,
source, path) and does not import tfaudio.detector.model, which imports it.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from tfaudio import outputs
from tfaudio.detector.stats import OperatingPoint, operating_point, pr_curve

#: From this ECE up, the headline calls a label's probabilities poorly calibrated.
POOR_ECE = 0.1
#: Below this many labelled positives the headline warns that the intervals are wide.
FEW_POSITIVES = 20
#: Bins of the held-out probability histograms.
_HISTOGRAM_BINS = 20
#: At most this many points of a precision-recall curve go into the page.
_CURVE_POINTS = 2000

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:1.5rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem} td,th{border:1px solid #ddd;padding:.3rem .55rem;text-align:left}
th{background:#f4f6f8} td.num{text-align:right;font-variant-numeric:tabular-nums} tr.missed td{background:#fff6e0}
.note{background:#fff6e0;border-left:4px solid #f0b400;padding:.6rem 1rem} .headline{font-size:1.05rem;max-width:70rem}
.muted{color:#666;font-size:.9rem} section.label{margin:1.5rem 0 2.5rem}
"""


def _value(value, digits: int = 2) -> str:
    """A number, or an en dash when it is missing (None or NaN)."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _with_interval(value, interval, digits: int = 2) -> str:
    """'0.93 (0.88–0.97)', the interval left out when it is missing."""
    text = _value(value, digits)
    if text == "–" or interval is None or not all(math.isfinite(float(v)) for v in interval):
        return text
    return f"{text} ({_value(interval[0], digits)}–{_value(interval[1], digits)})"


def _held_out(detector, label: str) -> dict[str, np.ndarray] | None:
    """The label's out-of-fold y, probability and groups, or None without cross-validation."""
    held = (detector.held_out or {}).get(label)
    if not held or len(held.get("y", ())) == 0:
        return None
    return held


def _held_count(detector, label: str) -> int:
    held = _held_out(detector, label)
    return 0 if held is None else len(held["y"])


def _point(detector, index: int) -> OperatingPoint | None:
    """The operating point at the detector's current threshold for label `index`: the trained
    one when the threshold is still the one chosen for the target precision, else measured anew
    on the held-out windows (after `with_thresholds`). None without cross-validation."""
    report = detector.reports[index]
    threshold = float(detector.thresholds[index])
    if report.point is not None and math.isclose(report.point.threshold, threshold, rel_tol=0, abs_tol=1e-9):
        return report.point
    held = _held_out(detector, report.label)
    if held is None:
        return None
    config = detector.config
    return operating_point(held["y"], held["probability"], threshold, held.get("groups"),
                           resamples=config.resamples, seed=config.seed)


def _archive(detector, index: int):
    """The archive estimate of label `index` when it was made at the current threshold, else None."""
    estimate = detector.reports[index].archive
    if estimate is None or not math.isclose(estimate.threshold, float(detector.thresholds[index]), rel_tol=0,
                                            abs_tol=1e-9):
        return None
    return estimate


def _reached(detector, point: OperatingPoint | None, index: int | None = None) -> bool | None:
    """Whether the precision at the threshold reaches the target: the archive estimate's when
    there is one for label `index`, else the held-out point's (None when unknown)."""
    estimate = None if index is None else _archive(detector, index)
    precision = estimate.precision if estimate is not None else (None if point is None else point.precision)
    if precision is None or not math.isfinite(precision):
        return None
    return bool(precision >= detector.config.target_precision)


def _archive_sentence(detector, index: int) -> str:
    """What the archive estimate says, or how to get one (empty without cross-validation)."""
    report, estimate = detector.reports[index], _archive(detector, index)
    if estimate is None:
        if report.archive is not None:
            return (f" The archive estimate was made at threshold {_value(report.archive.threshold)}, not the "
                    "current one.")
        return (" These figures are of labelled windows, which hold more of the sound than the archive does; "
                "label a stratified round (tfaudio labels next --strategy stratified) to estimate precision on the "
                "whole archive and choose the threshold on it.")
    reached = "" if estimate.reached else f" (below the target {estimate.target:.2f})"
    return (f" On the whole archive, estimated from {estimate.picks} stratified labels in {estimate.rounds} "
            f"round(s): precision {_with_interval(estimate.precision, estimate.precision_ci)}{reached}, recall "
            f"{_with_interval(estimate.recall, estimate.recall_ci)}, {estimate.predicted} windows at or above the "
            f"threshold, about {estimate.positives:.0f} [{estimate.positives_ci[0]:.0f}-"
            f"{estimate.positives_ci[1]:.0f}] windows of the sound in all; the threshold is chosen on this estimate.")


def headline(detector, index: int) -> str:
    """One plain-text sentence per label drawn from its numbers (escape it for HTML)."""
    report = detector.reports[index]
    point = _point(detector, index)
    if point is None:
        return f"{report.label}: no held-out measurement. {report.note or 'Too few labels to cross-validate.'}"
    parts = [f"{report.label}: at threshold {_value(point.threshold)}, on labelled windows, precision "
             f"{_with_interval(point.precision, point.precision_ci)}, recall {_with_interval(point.recall, point.recall_ci)} "
             f"({point.predicted} of {_held_count(detector, report.label)} held-out windows at or above it, "
             f"{report.positives} labelled positive, in {report.recordings} recordings)"]
    calibration = report.calibration
    if calibration is not None:
        quality = "poorly calibrated" if calibration.ece >= POOR_ECE else "calibrated within"
        parts.append(f"{quality} ECE {_with_interval(calibration.ece, calibration.ece_ci)}")
    parts.append(f"AP {_with_interval(report.average_precision, report.average_precision_ci)}")
    sentence = "; ".join(parts) + "." + _archive_sentence(detector, index)
    target = detector.config.target_precision
    if _reached(detector, point, index) is False:
        sentence += (f" The target precision {target:.2f} is not reached on the held-out windows: label more "
                     "positives and the hard negatives above the threshold, or accept a lower target.")
    if report.positives < FEW_POSITIVES:
        sentence += f" Only {report.positives} positives: the intervals are wide."
    if report.note:
        sentence += f" {report.note}"
    return sentence


_HEAD = ["label", "positives", "negatives", "unsure", "weak negatives", "recordings", "AP (95 % CI)", "ROC AUC",
         "ECE (95 % CI)", "threshold", "precision (95 % CI)", "recall (95 % CI)", "archive precision (95 % CI)",
         "archive recall (95 % CI)", "target reached"]


def _row(detector, index: int) -> list[str]:
    report = detector.reports[index]
    point = _point(detector, index)
    calibration = report.calibration
    reached = _reached(detector, point, index)
    estimate = _archive(detector, index)
    return [
        report.label, str(report.positives), str(report.negatives), str(report.unsure), str(report.weak_negatives),
        str(report.recordings), _with_interval(report.average_precision, report.average_precision_ci),
        _value(report.roc_auc),
        "–" if calibration is None else _with_interval(calibration.ece, calibration.ece_ci, 3),
        _value(detector.thresholds[index]),
        "–" if point is None else _with_interval(point.precision, point.precision_ci),
        "–" if point is None else _with_interval(point.recall, point.recall_ci),
        "–" if estimate is None else _with_interval(estimate.precision, estimate.precision_ci),
        "–" if estimate is None else _with_interval(estimate.recall, estimate.recall_ci),
        {True: "yes", False: "no", None: "–"}[reached],
    ]


def summary_html(detector) -> str:
    """The per-label table (HTML, labels and notes escaped), for the report and notebooks;
    rows whose target precision is not reached are marked (class "missed")."""
    rows = [_row(detector, i) for i in range(len(detector.labels))]
    notes = [report.note for report in detector.reports]
    head = _HEAD + (["note"] if any(notes) else [])
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = []
    for row, note in zip(rows, notes):
        cells = [f"<th>{html.escape(row[0])}</th>"] + [
            f'<td class="num">{html.escape(cell)}</td>' for cell in row[1:]]
        if any(notes):
            cells.append(f"<td>{html.escape(note)}</td>")
        body.append(f'<tr{" class=missed" if row[-1] == "no" else ""}>' + "".join(cells) + "</tr>")
    target = f"target precision {detector.config.target_precision:.2f}"
    return (f'<table class="tfaudio-detector"><caption class="muted">Held-out (out-of-fold) labelled windows, 95 % '
            f'intervals resampling recordings; archive: the whole index, estimated from stratified rounds; '
            f'{html.escape(target)}</caption><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _figure(detector, index: int):
    """A row of three panels for one label: the precision-recall curve with the operating point,
    the reliability diagram with its windows per bin, and the held-out probabilities of
    positives against negatives with the threshold."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    report = detector.reports[index]
    held = _held_out(detector, report.label)
    point = _point(detector, index)
    y, p = np.asarray(held["y"]).astype(int), np.asarray(held["probability"], dtype=np.float64)
    figure = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=[
        "precision–recall (dotted: target, dashed: chance)", "reliability (text: windows per bin)", "held-out probability by class"])
    precision, recall, thresholds = pr_curve(y, p)
    keep = _thinned(len(thresholds))
    precision, recall, thresholds = precision[keep], recall[keep], thresholds[keep]
    figure.add_trace(go.Scatter(
        x=recall, y=precision, mode="lines", line={"color": "#1f77b4"}, name="PR curve",
        customdata=thresholds, showlegend=False,
        hovertemplate="threshold %{customdata:.3f}<br>recall %{x:.2f}, precision %{y:.2f}<extra></extra>"), 1, 1)
    figure.add_hline(y=detector.config.target_precision, line={"dash": "dot", "color": "#999"}, row=1, col=1)
    figure.add_hline(y=float(y.mean()), line={"dash": "dash", "color": "#ccc"}, row=1, col=1)
    if point is not None and math.isfinite(point.precision) and math.isfinite(point.recall):
        figure.add_trace(go.Scatter(
            x=[point.recall], y=[point.precision], mode="markers", showlegend=False,
            marker={"size": 11, "color": "#d62728", "symbol": "diamond"},
            error_x={"type": "data", "symmetric": False, "array": [point.recall_ci[1] - point.recall],
                     "arrayminus": [point.recall - point.recall_ci[0]]},
            error_y={"type": "data", "symmetric": False, "array": [point.precision_ci[1] - point.precision],
                     "arrayminus": [point.precision - point.precision_ci[0]]},
            hovertemplate=(f"threshold {point.threshold:.3f}<br>recall %{{x:.2f}}, precision %{{y:.2f}}"
                           "<extra>operating point</extra>")), 1, 1)
    figure.update_xaxes(range=[-0.02, 1.02], title_text="recall", row=1, col=1)
    figure.update_yaxes(range=[-0.02, 1.04], title_text="precision", row=1, col=1)
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"},
                                hoverinfo="skip", showlegend=False), 1, 2)
    if report.calibration is not None:
        bins = report.calibration.to_dict()["reliability"]
        counts = np.array([b["clips"] for b in bins], dtype=np.float64)
        figure.add_trace(go.Scatter(
            x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins], mode="lines+markers+text",
            cliponaxis=False,
            text=[str(int(c)) for c in counts], textposition="top center", textfont={"size": 10},
            marker={"size": 5 + 15 * np.sqrt(counts / counts.sum()), "color": "#2ca02c"}, showlegend=False,
            line={"color": "#2ca02c"}, customdata=[[b["bin"][0], b["bin"][1], b["clips"]] for b in bins],
            hovertemplate=("probability %{customdata[0]:.1f}–%{customdata[1]:.1f}: %{customdata[2]} windows<br>"
                           "mean probability %{x:.2f}, positive rate %{y:.2f}<extra></extra>")), 1, 2)
    figure.update_xaxes(range=[-0.02, 1.02], title_text="mean predicted probability", row=1, col=2)
    figure.update_yaxes(range=[-0.02, 1.1], title_text="share positive", row=1, col=2)
    _histograms(figure, y, p)
    figure.add_vline(x=float(detector.thresholds[index]), line={"color": "#d62728", "dash": "dash"}, row=1, col=3)
    figure.update_xaxes(range=[0, 1], title_text="calibrated probability", row=1, col=3)
    figure.update_yaxes(title_text="% of the class", row=1, col=3)
    # The legend sits under the histogram it belongs to, clear of the bars near 0 and 1.
    figure.update_layout(barmode="overlay", height=420, margin={"t": 50, "b": 90},
                         legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": -0.22})
    return figure


def _thinned(count: int, limit: int = _CURVE_POINTS) -> np.ndarray:
    """Indices of at most `limit` points spread evenly over `count`, both ends kept: the curve
    looks the same and the page stays small for an archive's worth of held-out windows."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


def _histograms(figure, y: np.ndarray, p: np.ndarray) -> None:
    """Held-out probabilities of negatives and positives as overlaid bars (% of each class),
    binned here so the page carries counts, not every window's probability."""
    import plotly.graph_objects as go

    width = 1.0 / _HISTOGRAM_BINS
    centres = (np.arange(_HISTOGRAM_BINS) + 0.5) * width
    for name, chosen, color in (("negatives", y == 0, "#7f7f7f"), ("positives", y == 1, "#d62728")):
        counts = np.histogram(p[chosen], bins=_HISTOGRAM_BINS, range=(0.0, 1.0))[0]
        share = 100.0 * counts / max(int(counts.sum()), 1)
        figure.add_trace(go.Bar(
            x=centres, y=share, width=width, name=f"{name} ({int(chosen.sum())})", opacity=0.6, marker_color=color,
            legendgroup=name, customdata=np.stack([centres - width / 2, centres + width / 2, counts], axis=1),
            hovertemplate=(f"{name}: %{{customdata[2]}} windows (%{{y:.1f}} %) at probability "
                           "%{customdata[0]:.2f}–%{customdata[1]:.2f}<extra></extra>")), 1, 3)


def _source_rows(detector) -> list[list[str]]:
    source, config = detector.source or {}, detector.config
    shown = ("index", "model", "precision", "hop", "frames_per_window", "frame_hop", "frame_span", "dim",
             "sample_rate")
    rows = [[name, str(source[name])] for name in shown if source.get(name) is not None]
    rows.append(["head", f"{config.classifier}" + (f", {config.hidden} hidden units" if config.classifier == "mlp"
                                                   else "") + f", C = {config.regularization:g}"])
    rows.append(["weak negatives", f"up to {config.weak_negatives} unlabelled windows per label, weight "
                                   f"{config.weak_negative_weight:g} (training folds only, never scored)"])
    rows.append(["cross-validation", f"up to {config.folds} folds grouped by recording; Platt scaling on the "
                                     "out-of-fold scores; label–window overlap ≥ "
                                     f"{config.min_overlap:g}"])
    rows.append(["intervals", f"{config.resamples} bootstrap resamples of recordings, seed {config.seed}"])
    return rows


def _table(rows: list[list[str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows) + (
        "</table>")


def page(detector) -> str:
    """The self-contained HTML report (plotly.js inlined once)."""
    import plotly.io as pio

    sections, plotly_js = [], True
    for index, label in enumerate(detector.labels):
        title = f'<h2 id="label-{index}">{html.escape(label)}</h2>'
        sentence = f'<p class="headline">{html.escape(headline(detector, index))}</p>'
        if _held_out(detector, label) is None:
            note = detector.reports[index].note or "too few labels to cross-validate"
            sections.append(f'<section class="label">{title}<p class="note">{html.escape(note)}</p></section>')
            continue
        div = pio.to_html(_figure(detector, index), full_html=False, include_plotlyjs=plotly_js,
                          config={"displaylogo": False}, div_id=f"figure-{index}")
        plotly_js = False
        sections.append(f'<section class="label">{title}{sentence}{div}</section>')
    names = ", ".join(detector.labels)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>tfaudio detector: {html.escape(names)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Detector: {html.escape(names)}</h1>
<p class="muted">{len(detector.labels)} label(s), {html.escape(str(detector.config.classifier))} heads on
{html.escape(str((detector.source or {}).get('model', 'embeddings')))} windows. Every number is measured on held-out
windows (cross-validation grouped by recording); intervals are 95 % bootstrap intervals over recordings.
Labelled windows hold more of the sound than the archive, so their precision overstates the archive's; where
stratified rounds were labelled, precision and recall on the whole archive are estimated from them (95 % posterior
intervals) and the threshold is chosen on that estimate. Written by tfaudio.</p>
<h2>Summary</h2>
{summary_html(detector)}
{''.join(sections)}
<h2>How it was trained</h2>{_table(_source_rows(detector))}
<p class="muted">Files beside this page: detector.json, heads.npz, held_out.npz (the held-out probabilities every
number above comes from).</p>
</body></html>
"""


def write_report(detector, out: str | Path | None = None) -> Path:
    """Write the report page to `out` (default: detector.path / "report.html"), whole or not at
    all; returns its path."""
    if out is None:
        if getattr(detector, "path", None) is None:
            raise outputs.OutputError("the detector has no folder yet: save it first (detector.save(DET)) or pass "
                                      "out= to write_report")
        out = Path(detector.path) / "report.html"
    out = outputs.check_writable(out, folder=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    return outputs.write_text(out, page(detector))
