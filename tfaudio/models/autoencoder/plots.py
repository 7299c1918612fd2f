"""Looking at a trained autoencoder: reconstructions, error per class, loss curves.

Writes PNG files (matplotlib) and one self-contained HTML page (plotly, works offline):

    reconstructions.png   original / reconstruction / |error| log-mel for a few clips per class
    class_error.png       masked MSE per class, training and validation clips
    loss.png              training and validation masked MSE per epoch
    autoencoder.html      the three, interactive (a menu picks the clip)
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio.data.batches import iter_batches
from tfaudio.data.dataset import Dataset

#: Frames of a clip shown in the HTML page at most (time is averaged down to this), so a page
#: with twenty 5 s clips stays a few MB.
_HTML_MAX_FRAMES = 256


@dataclass(frozen=True)
class Example:
    """One clip as the autoencoder sees it: log-mel and reconstruction float32 [frames, mels]
    in dB (valid frames only), its masked MSE in dB^2, and whether it was a validation clip."""

    name: str
    label: str
    validation: bool
    log_mel: np.ndarray
    reconstruction: np.ndarray

    @property
    def error_db2(self) -> float:
        return float(np.mean((self.log_mel - self.reconstruction) ** 2))


def choose_examples(dataset: Dataset, train_clips, val_clips, per_class: int = 2, seed: int = 0) -> list[int]:
    """Up to `per_class` clips per class (dataset order of classes), validation clips first
    (never fitted, so their reconstructions are honest), then training clips; seeded."""
    rng = np.random.default_rng(seed)
    labels = dataset.labels
    chosen = []
    for c in range(len(dataset.classes)):
        val = [i for i in rng.permutation(np.asarray(val_clips)) if labels[i] == c]
        fit = [i for i in rng.permutation(np.asarray(train_clips)) if labels[i] == c]
        chosen.extend(int(i) for i in (val + fit)[:per_class])
    return chosen


def examples(model, dataset: Dataset, indices: list[int], val_clips) -> list[Example]:
    """Decode the clips at `indices` and reconstruct them with `model` (an Autoencoder)."""
    val = set(int(i) for i in val_clips)
    clips = [dataset.clips[i] for i in indices]
    out = []
    for batch in iter_batches(clips, model.config.sample_rate, 8, max_duration=model.config.max_duration):
        log_mel, reconstruction, valid = model.reconstruct(batch.waveforms, batch.lengths)
        for row, position in enumerate(batch.indices):
            index = indices[position]
            n = int(valid[row])
            out.append(
                Example(
                    dataset.relative(dataset.clips[index]),
                    dataset.clips[index].label,
                    index in val,
                    log_mel[row, :n],
                    reconstruction[row, :n],
                )
            )
    return out


def class_errors(model, dataset: Dataset, patch_set, train_clips, val_clips) -> dict[str, dict[str, float]]:
    """Masked MSE (standardized units, as the loss) per class, over the training and the
    validation clips: {class: {"train": mse, "val": mse}} (NaN where a class has no clip)."""
    stacked = model.training_model.predict([patch_set.patches, patch_set.frame_mask], batch_size=256, verbose=0)
    squared = (stacked[..., 0] - stacked[..., 1]) ** 2 * patch_set.frame_mask[..., None]
    per_patch = squared.sum(axis=(1, 2))
    frames = patch_set.frame_mask.sum(axis=1) * patch_set.patches.shape[2]
    labels = dataset.labels[patch_set.clip]
    table = {}
    for c, name in enumerate(dataset.classes):
        row = {}
        for side, clips in (("train", train_clips), ("val", val_clips)):
            keep = (labels == c) & np.isin(patch_set.clip, clips)
            row[side] = float(per_patch[keep].sum() / frames[keep].sum()) if keep.any() else float("nan")
        table[name] = row
    return table


# ----------------------------------------------------------------------------------------------
# Static figures (matplotlib).


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def reconstruction_png(items: list[Example], path: Path, hop_seconds: float) -> Path:
    plt = _pyplot()
    rows = max(len(items), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(13, 1.7 * rows + 0.6), squeeze=False, constrained_layout=True)
    for row, item in enumerate(items):
        low = float(min(item.log_mel.min(), item.reconstruction.min()))
        high = float(max(item.log_mel.max(), item.reconstruction.max()))
        error = np.abs(item.log_mel - item.reconstruction)
        extent = (0, item.log_mel.shape[0] * hop_seconds, 0, item.log_mel.shape[1])
        panels = (
            (item.log_mel, "magma", low, high, "original (dB)"),
            (item.reconstruction, "magma", low, high, "reconstruction (dB)"),
            (error, "viridis", 0.0, max(float(error.max()), 1e-6), "|error| (dB)"),
        )
        for col, (values, cmap, vmin, vmax, title) in enumerate(panels):
            ax = axes[row, col]
            image = ax.imshow(values.T, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, extent=extent)
            fig.colorbar(image, ax=ax, pad=0.01, fraction=0.04)
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=10)
            if col == 0:
                side = "val" if item.validation else "train"
                ax.set_ylabel(f"{item.label}\n({side})", fontsize=8)
            if col == 2:
                ax.text(0.99, 0.95, f"MSE {item.error_db2:.1f} dB²", transform=ax.transAxes, ha="right",
                        va="top", fontsize=7, color="white")
            if row == rows - 1:
                ax.set_xlabel("seconds", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle("Autoencoder: log-mel originals, reconstructions and error maps (mel bands upward)", fontsize=11)
    fig.savefig(path, dpi=72)  # noisy spectrograms compress poorly: keep the file a few MB
    plt.close(fig)
    return path


def _save_error_plot(plt, fig, ax, title: str, path: Path) -> Path:
    """Label the masked-MSE axis, title and legend of `ax`, write `fig` to `path` and close it."""
    ax.set_ylabel("masked MSE (standardized log-mel)")
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def class_error_png(errors: dict[str, dict[str, float]], path: Path) -> Path:
    plt = _pyplot()
    names = list(errors)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) + 2), 4), constrained_layout=True)
    for offset, side, color in ((-0.2, "train", "#4c72b0"), (0.2, "val", "#dd8452")):
        ax.bar(x + offset, [errors[n][side] for n in names], 0.4, label=f"{side} clips", color=color)
    ax.set_xticks(x, names, rotation=30, ha="right")
    return _save_error_plot(plt, fig, ax, "Reconstruction error per class", path)


def loss_png(history: dict[str, list[float]], best_epoch: int, path: Path) -> Path:
    plt = _pyplot()
    epochs = np.arange(1, len(history["masked_mse"]) + 1)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.plot(epochs, history["masked_mse"], "o-", label="training clips")
    ax.plot(epochs, history["val_masked_mse"], "o-", label="validation clips")
    ax.axvline(best_epoch, color="gray", linestyle=":", label=f"kept: epoch {best_epoch}")
    ax.set_xlabel("epoch")
    return _save_error_plot(plt, fig, ax, "Autoencoder loss", path)


# ----------------------------------------------------------------------------------------------
# Interactive page (plotly).


def _shrink(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Average time down to at most _HTML_MAX_FRAMES frames: (float32 [frames', mels], factor)."""
    factor = max(1, -(-values.shape[0] // _HTML_MAX_FRAMES))
    usable = values.shape[0] // factor * factor or values.shape[0]
    if factor == 1 or usable < factor:
        return values.astype(np.float32), 1
    return values[:usable].reshape(-1, factor, values.shape[1]).mean(axis=1).astype(np.float32), factor


def _reconstruction_figure(items: list[Example], hop_seconds: float):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("original (dB)", "reconstruction (dB)", "|error| (dB)"),
                        horizontal_spacing=0.06)
    buttons = []
    for k, item in enumerate(items):
        original, factor = _shrink(item.log_mel)
        rebuilt, _ = _shrink(item.reconstruction)
        error = np.abs(original - rebuilt)
        seconds = (np.arange(original.shape[0]) * factor * hop_seconds).round(3)
        low, high = float(min(original.min(), rebuilt.min())), float(max(original.max(), rebuilt.max()))
        for col, (values, scale, vmin, vmax, bar_x) in enumerate(
            ((original, "Magma", low, high, 0.29), (rebuilt, "Magma", low, high, 0.645), (error, "Viridis", 0, None, 1.0)),
            start=1,
        ):
            fig.add_trace(
                go.Heatmap(z=values.T, x=seconds, colorscale=scale, zmin=vmin, zmax=vmax, visible=k == 0,
                           colorbar={"x": bar_x, "len": 0.9, "thickness": 10},
                           hovertemplate="%{x:.2f} s, band %{y}: %{z:.1f} dB<extra></extra>"),
                row=1, col=col,
            )
        side = "val" if item.validation else "train"
        visible = [j // 3 == k for j in range(3 * len(items))]
        buttons.append({
            "label": f"{item.label}: {Path(item.name).name} ({side})",
            "method": "update",
            "args": [{"visible": visible}, {"title.text": f"{item.label} — {item.name} ({side} clip), MSE {item.error_db2:.1f} dB²"}],
        })
    first = items[0] if items else None
    title = f"{first.label} — {first.name} ({'val' if first.validation else 'train'} clip), MSE {first.error_db2:.1f} dB²" if first else ""
    fig.update_layout(
        title={"text": title},
        height=420,
        # The clip menu sits top right, clear of the title on the left.
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right", "y": 1.32, "yanchor": "top"}],
        margin={"t": 120},
    )
    fig.update_xaxes(title_text="seconds")
    fig.update_yaxes(title_text="mel band", col=1)
    return fig


def _class_error_figure(errors):
    import plotly.graph_objects as go

    names = list(errors)
    fig = go.Figure([go.Bar(name=f"{side} clips", x=names, y=[errors[n][side] for n in names]) for side in ("train", "val")])
    fig.update_layout(title="Reconstruction error per class", yaxis_title="masked MSE (standardized log-mel)",
                      barmode="group", height=420)
    return fig


def _loss_figure(history, best_epoch):
    import plotly.graph_objects as go

    epochs = list(range(1, len(history["masked_mse"]) + 1))
    fig = go.Figure([
        go.Scatter(x=epochs, y=history["masked_mse"], mode="lines+markers", name="training clips"),
        go.Scatter(x=epochs, y=history["val_masked_mse"], mode="lines+markers", name="validation clips"),
    ])
    fig.add_vline(x=best_epoch, line_dash="dot", line_color="gray", annotation_text=f"kept: epoch {best_epoch}")
    fig.update_layout(title="Autoencoder loss", xaxis_title="epoch", yaxis_title="masked MSE (standardized log-mel)",
                      height=420)
    return fig


def write_page(path: Path, title: str, summary: str, items, errors, history, best_epoch, hop_seconds) -> Path:
    figures = [_reconstruction_figure(items, hop_seconds), _class_error_figure(errors), _loss_figure(history, best_epoch)]
    # plotly.js is inlined once, with the first figure: the page works offline.
    body = "\n".join(
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
        for i, fig in enumerate(figures)
    )
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:1300px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>{body}</body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return path


def write_figures(result, dataset: Dataset, out: Path, per_class: int = 2, title: str = "Autoencoder") -> dict:
    """All figures of an AutoencoderTrainResult into `out`; returns {"files": [...], "class_error": {...},
    "examples": [{name, label, validation, mse_db2}]} for the JSON record."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = result.model.config
    hop_seconds = config.hop_length / config.sample_rate
    chosen = choose_examples(dataset, result.train_clips, result.val_clips, per_class, config.seed)
    items = examples(result.model, dataset, chosen, result.val_clips)
    errors = class_errors(result.model, dataset, result.patches, result.train_clips, result.val_clips)
    val = result.history["val_masked_mse"]
    summary = (
        f"{len(result.train_clips)} training and {len(result.val_clips)} validation clips; "
        f"{config.patch_frames}-frame patches ({config.patch_seconds:.2f} s), latent {config.latent}. "
        f"Validation masked MSE {val[0]:.4f} after epoch 1, {val[result.best_epoch - 1]:.4f} at the kept "
        f"epoch {result.best_epoch} ({100 * result.val_drop:.0f} % lower)."
    )
    files = [
        reconstruction_png(items, out / "reconstructions.png", hop_seconds),
        class_error_png(errors, out / "class_error.png"),
        loss_png(result.history, result.best_epoch, out / "loss.png"),
        write_page(out / "autoencoder.html", title, summary, items, errors, result.history, result.best_epoch, hop_seconds),
    ]
    return {
        "files": [str(f) for f in files],
        "class_error": errors,
        "examples": [{"name": e.name, "label": e.label, "validation": e.validation, "mse_db2": e.error_db2} for e in items],
    }
