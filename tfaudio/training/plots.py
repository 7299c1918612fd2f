"""Training curves (loss and accuracy, train and validation, the phase boundary marked) and
the final confusion matrix: self-contained HTML (plotly) and PNG (matplotlib)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from tfaudio import outputs
from tfaudio.training.result import describe_fine_tuning


def _series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    rows = [r for r in history if key in r]
    return [r["epoch"] for r in rows], [r[key] for r in rows]


def epoch_step(epochs: int, most_ticks: int = 10) -> int:
    """Epochs between labelled ticks of the curves: 1, 2, 5, 10, 20, 50, ..., the smallest that
    shows at most `most_ticks` ticks. Ticks then fall on whole epochs (an automatic axis labels
    1.5, 2.5, ... on a short run)."""
    scale = 1
    while True:
        for step in (scale, 2 * scale, 5 * scale):
            if epochs <= most_ticks * step:
                return step
        scale *= 10


def _title(result) -> str:
    m = result.metrics
    config = result.config
    trained = "" if config.precision == "float32" else f", trained in {config.precision}"
    return (
        f"{config.backbone}{trained}: validation accuracy {m['accuracy']:.1%} "
        f"(frozen phase {m['phase1_val_accuracy']:.1%}) on {m['val_clips']} clips"
    )


def write_curves_html(result, path: Path) -> None:
    """One page: loss and accuracy per epoch (dashed line at the phase boundary), the
    confusion matrix and the metrics table. plotly.js is inlined, so it opens offline."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "accuracy", "confusion matrix (validation)"), horizontal_spacing=0.08)
    colours = {"": "#1f77b4", "val_": "#d62728"}
    for col, metric in ((1, "loss"), (2, "accuracy")):
        for prefix, colour in colours.items():
            x, y = _series(result.history, prefix + metric)
            name = ("validation " if prefix else "train ") + metric
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, line={"color": colour}), row=1, col=col)
        if 0 < result.phase_boundary < len(result.history):
            fig.add_vline(x=result.phase_boundary + 0.5, line_dash="dash", line_color="grey", row=1, col=col)
            fig.add_annotation(x=result.phase_boundary + 0.5, y=1.0, yref=f"y{col if col > 1 else ''} domain",
                               text="fine-tuning →", showarrow=False, xanchor="left", row=1, col=col)
    names = list(result.class_names)
    confusion = np.array(result.metrics["confusion"])
    fig.add_trace(
        go.Heatmap(z=confusion, x=names, y=names, colorscale="Blues", showscale=False, text=confusion, texttemplate="%{text}",
                   hovertemplate="true %{y}<br>predicted %{x}<br>%{z} clips<extra></extra>"),
        row=1, col=3,
    )
    # category axes: class names such as "0", "1" would otherwise become a numeric axis
    fig.update_yaxes(type="category", autorange="reversed", title_text="true", row=1, col=3)
    fig.update_xaxes(type="category", title_text="predicted", row=1, col=3)
    step = epoch_step(len(result.history))
    for col in (1, 2):
        fig.update_xaxes(title_text="epoch", tick0=0, dtick=step, row=1, col=col)
    # No fixed width: the figure fills the page (responsive), so it fits a 1280 px laptop screen.
    # The page's heading already says what the title would.
    fig.update_layout(height=460, autosize=True, margin={"l": 50, "r": 20, "t": 40},
                      legend={"orientation": "h", "y": -0.25})
    m = result.metrics
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in m.items() if isinstance(v, float)
    ) + "".join(f"<tr><td>recall: {html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in m["per_class_recall"].items())
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(_title(result))}</title>
<style>body{{font-family:sans-serif;margin:1em;max-width:1600px}} table{{border-collapse:collapse}} td{{border:1px solid #ccc;padding:2px 8px}}</style>
</head><body>
<h2>{html.escape(_title(result))}</h2>
<p>Validation: {html.escape(result.split.how)}. Phase 1: backbone frozen, {result.phase_boundary} epochs on cached outputs;
phase 2: fine-tuning {html.escape(describe_fine_tuning(m))}.
Curves are per window of the training duration; the final metrics are per whole clip, as the export serves them.</p>
{fig.to_html(include_plotlyjs=True, full_html=False, default_width="100%", config={"responsive": True})}
<table>{rows}</table>
</body></html>
"""
    outputs.write_text(path, page)  # whole or not at all, like every file of a run


def write_curves_png(result, path: Path) -> None:
    """The same three panels as the HTML page, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MultipleLocator

    # 1280 x 480 px at dpi 100, a laptop screen's width; constrained layout keeps the rotated
    # class names and the axis titles inside it
    fig, axes = plt.subplots(1, 3, figsize=(12.8, 4.8), layout="constrained")
    step = epoch_step(len(result.history))
    for ax, metric in zip(axes[:2], ("loss", "accuracy")):
        ax.xaxis.set_major_locator(MultipleLocator(step))
        for prefix, colour, label in (("", "tab:blue", "train"), ("val_", "tab:red", "validation")):
            x, y = _series(result.history, prefix + metric)
            ax.plot(x, y, marker="o", markersize=3, color=colour, label=f"{label} {metric}")
        if 0 < result.phase_boundary < len(result.history):
            # in the legend rather than written on the plot, where a legend or a curve could cover it
            ax.axvline(result.phase_boundary + 0.5, linestyle="--", color="grey", label="fine-tuning from here")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    confusion = np.array(result.metrics["confusion"])
    ax = axes[2]
    ax.imshow(confusion, cmap="Blues")
    names = list(result.class_names)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(confusion.shape[0]):
        for j in range(confusion.shape[1]):
            dark = confusion[i, j] > confusion.max() / 2
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", color="white" if dark else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (validation)")
    fig.suptitle(_title(result))
    try:
        with outputs.replacing(path) as temporary:  # the format follows the (kept) .png suffix
            fig.savefig(temporary, dpi=100)
    finally:
        plt.close(fig)
