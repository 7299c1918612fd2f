"""Look at representations: interactive 2-D scatters you can listen to, and TensorBoard's
embedding projector.

    import tfaudio
    result = tfaudio.visualize("esc10/", ["yamnet", "handcrafted"], "esc10.html", method="tsne")
    print(result.summary())
    export = tfaudio.export_projector("esc10/", ["yamnet"], "runs/esc10")
    print(export.command)                      # tensorboard --logdir runs/esc10

`data` is a dataset folder, a CSV manifest, a `tfaudio.data.Dataset`, or a list of
(label, file) pairs. Vectors come from the embedding store, so a second page over the same
clips and models costs only the projection. `visualize_tables` / `export_tables` take
`EmbeddingTable`s computed elsewhere.

    __init__.py     visualize / export_projector (this module): embed, measure, write
    points.py       the clips and each model's vectors, aligned row for row (PointSet)
    projection.py   PCA, t-SNE, UMAP to 2-D (ProjectionConfig)
    separability.py silhouette and cross-validated k-NN accuracy, original space and 2-D
    media.py        each clip's audio and log-mel thumbnail for the page and the sprite
    page.py         the self-contained HTML page
    projector.py    the TensorBoard projector folder (tensors, metadata.tsv, sprite)
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tfaudio import outputs
from tfaudio.data.audio import printable_path
from tfaudio.viz.media import MediaConfig
from tfaudio.viz.points import PointSet, VizError, VizWarning, align, as_dataset, check_for_plot, embed_tables
from tfaudio.viz.projection import Projection, ProjectionConfig
from tfaudio.viz.projector import ProjectorExport, write_projector
from tfaudio.viz.separability import Separability, SeparabilityConfig

__all__ = [
    "MediaConfig", "PanelResult", "ProjectionConfig", "ProjectorExport", "SeparabilityConfig", "Visualization",
    "VizError", "VizWarning", "export_projector", "export_tables", "visualize", "visualize_tables",
]

_METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


@dataclass(frozen=True)
class PanelResult:
    """One representation on the page: its vectors' size, the projection and the figures."""

    name: str
    pooling: str
    dim: int
    projection: Projection
    separability: Separability


@dataclass(frozen=True)
class Visualization:
    """The written page and what it shows."""

    path: Path
    clips: int
    classes: int
    panels: tuple[PanelResult, ...]
    skipped: tuple
    notes: tuple[str, ...]
    bytes: int

    def summary(self) -> str:
        """A plain-text table of the separability figures, one line per representation."""

        def pct(value, std):
            return "n/a" if value is None else f"{100 * value:5.1f} % ± {100 * std:4.1f}"

        def sil(value):
            return "n/a" if value is None else f"{value:+.3f}"

        width = max(len(p.name) for p in self.panels)
        lines = [f"{'model':<{width}}  {'k-NN acc. original':>18}  {'k-NN acc. 2-D':>16}  {'silhouette orig / 2-D':>21}"]
        for p in self.panels:
            o, t = p.separability.original, p.separability.projected
            lines.append(
                f"{p.name:<{width}}  {pct(o.knn_accuracy, o.knn_std or 0):>18}  {pct(t.knn_accuracy, t.knn_std or 0):>16}  "
                f"{sil(o.silhouette) + ' / ' + sil(t.silhouette):>21}"
            )
        return "\n".join(lines)


def _warn(notes: Sequence[str]) -> None:
    for note in notes:
        warnings.warn(note, VizWarning, stacklevel=3)


def _percent(value, std) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} % ± {100 * std:.1f}"


def _silhouette(value) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def visualize_tables(
    tables: Sequence,
    out: str | os.PathLike,
    *,
    projection: ProjectionConfig = ProjectionConfig(),
    separability: SeparabilityConfig = SeparabilityConfig(),
    media: MediaConfig = MediaConfig(),
    title: str | None = None,
    progress: bool = True,
) -> Visualization:
    """Write the page for EmbeddingTables of one dataset (one panel per table)."""
    points = align(tables)
    check_for_plot(points)
    out = Path(out)
    if out.is_dir():
        raise VizError(f"--out {out} is a folder; give an .html file name")
    results, notes = _measure(points, projection, separability)
    notes = [printable_path(note) for note in notes]  # they quote class names, which may not be UTF-8
    clips, thumbs = _media(points, media, out, progress)
    document = _page(points, results, notes, clips, thumbs, projection, media, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    outputs.write_text(out, document)  # whole or not at all: an earlier page survives a failed write
    _warn(notes)
    classes = len(points.dataset.classes)
    size = len(document.encode("utf-8", "backslashreplace"))  # as write_text wrote it
    return Visualization(out, len(clips), classes, tuple(results), points.skipped, tuple(notes), size)


def _measure(points: PointSet, projection: ProjectionConfig,
             separability: SeparabilityConfig) -> tuple[list[PanelResult], list[str]]:
    """Each representation projected to 2-D and its separability measured; with the notes
    (clamped settings, figures that could not be computed), each led by the model's name."""
    from tfaudio.viz.projection import project
    from tfaudio.viz.separability import measure

    notes: list[str] = []
    results = []
    for item in points.embedded:
        projected = project(item.vectors, projection)
        scores = measure(item.vectors, projected.coords, points.dataset, separability, projection.scaling)
        notes += [f"{item.name}: {n}" for n in (*projected.notes, *scores.notes)]
        results.append(PanelResult(item.name, item.pooling, int(item.vectors.shape[1]), projected, scores))
    return results, notes


def _media(points: PointSet, media: MediaConfig, out: Path, progress: bool) -> tuple[list, list[str]]:
    """The page's clip rows (file, label, fold, audio source: embedded or linked relative to
    `out`) and each clip's log-mel thumbnail as a data URI."""
    from tqdm import tqdm

    from tfaudio.viz import page
    from tfaudio.viz.media import data_uri, render_clips, thumbnail_png

    files = points.files()
    with tqdm(total=len(files), desc="audio + thumbnails", unit="clip", file=sys.stderr,
              disable=not progress or len(files) < 2, dynamic_ncols=True) as bar:
        rendered = render_clips(points.clips, media, with_audio=not media.link_audio, progress=bar.update)
    if media.link_audio:
        sources = page.linked_sources([c.path for c in points.clips], out)
    else:
        sources = [None if a is None else data_uri(a, "audio/ogg") for a in rendered.audio]
    thumbs = [
        data_uri(thumbnail_png(image, media.thumbnail_width, media.thumbnail_height), "image/png")
        for image in rendered.images
    ]
    # Names reach the page in their printable form: a class folder named in bytes that are not
    # UTF-8 shows as `noi\xfese`, as on the terminal, not as a surrogate no encoder accepts.
    labels = [printable_path(c.label) for c in points.clips]
    clips = page.clip_rows([printable_path(f) for f in files], labels, [c.fold for c in points.clips], sources)
    return clips, thumbs


def _panel(result: PanelResult, method: str):
    """One panel of the page: the scatter and its figures in the original space and in 2-D."""
    from tfaudio.viz import page

    sep, settings = result.separability, result.projection.settings
    detail = {
        "pca": "",
        "tsne": f", perplexity {settings.get('perplexity')}, {settings.get('iterations')} iterations, seed {settings.get('seed')}",
        "umap": f", {settings.get('neighbors')} neighbours, seed {settings.get('seed')}",
    }[method]
    return page.Panel(
        title=printable_path(result.name),
        subtitle=f"{result.dim}-d, {result.pooling} pooling · {_METHOD_NAMES[method]}{detail}",
        coords=result.projection.coords,
        x_title=result.projection.x_title,
        y_title=result.projection.y_title,
        rows=(
            (f"{sep.neighbors}-NN accuracy ({sep.splits})",
             _percent(sep.original.knn_accuracy, sep.original.knn_std),
             _percent(sep.projected.knn_accuracy, sep.projected.knn_std)),
            ("silhouette", _silhouette(sep.original.silhouette), _silhouette(sep.projected.silhouette)),
        ),
        original_label=f"original ({result.dim}-d)",
    )


def _page(points: PointSet, results: list[PanelResult], notes: list[str], clips, thumbs: list[str],
          projection: ProjectionConfig, media: MediaConfig, title: str | None) -> str:
    """The whole HTML document."""
    from tfaudio.viz import page

    dataset = points.dataset
    scaling = "each dimension z-scored" if projection.scaling == "standard" else "vectors used as they are"
    method_note = (
        f"Vectors: {scaling}. Original space: cosine distance; 2-D: Euclidean distance. k-NN accuracy is the mean ± "
        "standard deviation over the cross-validation splits. The 2-D points come from a projection of all clips "
        "(labels unused), so the 2-D figure measures the picture, not a model on unseen clips."
    )
    classes = [printable_path(name) for name in dataset.classes]  # as the clip rows name them (_media)
    return page.render(
        title=(printable_path(title) if title
               else f"{_METHOD_NAMES[projection.method]} of {printable_path(dataset.root.name or dataset.root)}"),
        about=[
            f"{len(clips)} clips, {len(classes)} classes, from {printable_path(dataset.root)}",
            "Audio linked relative to this page" if media.link_audio
            else f"Audio embedded: first {media.max_seconds:g} s of each clip at {media.audio_rate} Hz",
        ],
        notes=notes,
        skipped=[(printable_path(p.path), p.reason) for p in points.skipped],
        clips=clips,
        classes=classes,
        thumbs=thumbs,
        panels=[_panel(result, projection.method) for result in results],
        method_note=method_note,
    )


def visualize(
    data,
    models: Sequence = ("yamnet",),
    out: str | os.PathLike = "embeddings.html",
    *,
    method: str | None = None,
    projection: ProjectionConfig = ProjectionConfig(),
    separability: SeparabilityConfig = SeparabilityConfig(),
    media: MediaConfig = MediaConfig(),
    pooling: str | None = None,
    store=None,
    batch_size: int = 32,
    max_duration: float | None = None,
    group_column: str | None = None,
    precision: str = "float32",
    title: str | None = None,
    progress: bool = True,
) -> Visualization:
    """Embed `data` with each model and write an interactive page to `out` (see the module doc).

    method: shortcut for projection.method ("pca", "tsne", "umap"). pooling: clip pooling
    (default: each model's own). precision: "float32" or "bfloat16" for the networks. store: an EmbeddingStore or its folder (default:
    $TFAUDIO_HOME/embeddings). Adjustments (a clamped perplexity, a missing figure) are issued
    as VizWarning and listed on the page. Raises VizError for input that cannot be drawn.
    """
    if method is not None:
        projection = replace(projection, method=method)
    dataset = as_dataset(data, group_column=group_column)
    tables = embed_tables(
        dataset, list(models), pooling=pooling, store=store, batch_size=batch_size,
        max_duration=max_duration, precision=precision, progress=progress,
    )
    return visualize_tables(
        tables, out, projection=projection, separability=separability, media=media, title=title, progress=progress
    )


def export_tables(
    tables: Sequence, logdir: str | os.PathLike, *, media: MediaConfig = MediaConfig(), progress: bool = True
) -> ProjectorExport:
    """Write a TensorBoard projector folder for EmbeddingTables of one dataset."""
    points: PointSet = align(tables)
    return write_projector(points, logdir, media, progress)


def export_projector(
    data,
    models: Sequence = ("yamnet",),
    logdir: str | os.PathLike = "runs/embeddings",
    *,
    media: MediaConfig = MediaConfig(),
    pooling: str | None = None,
    store=None,
    batch_size: int = 32,
    max_duration: float | None = None,
    group_column: str | None = None,
    precision: str = "float32",
    progress: bool = True,
) -> ProjectorExport:
    """Embed `data` with each model and write a TensorBoard embedding projector folder: one
    tensor per model, metadata.tsv (label, file, fold), a sprite of log-mel thumbnails and
    projector_config.pbtxt. `result.command` is the tensorboard command that opens it."""
    dataset = as_dataset(data, group_column=group_column)
    tables = embed_tables(
        dataset, list(models), pooling=pooling, store=store, batch_size=batch_size,
        max_duration=max_duration, precision=precision, progress=progress,
    )
    return export_tables(tables, logdir, media=media, progress=progress)
