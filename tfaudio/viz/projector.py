"""TensorBoard embedding projector export.

One folder that `tensorboard --logdir FOLDER` opens in its Projector tab:

    projector_config.pbtxt        one embedding entry per representation
    checkpoint, embeddings.index, embeddings.data-00000-of-00001
                                  a TF checkpoint holding one float32 [clips, dim] tensor per
                                  representation, named after it ("yamnet", "handcrafted")
    metadata.tsv                  header label/file/fold, then one row per clip (tensor row order)
    sprite.png                    log-mel thumbnails of the clips, row by row on a square grid

Everything lives in the folder and is referenced relative to it (the projector refuses asset
paths outside its folder), so the export can be moved or copied as a whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio import outputs
from tfaudio.data.audio import printable_path
from tfaudio.viz.media import MediaConfig, png_bytes, render_clips, sprite
from tfaudio.viz.points import PointSet, VizError, check_finite

CHECKPOINT = "embeddings"
METADATA = "metadata.tsv"
SPRITE = "sprite.png"
CONFIG = "projector_config.pbtxt"


@dataclass(frozen=True)
class ProjectorExport:
    """What was written: logdir; tensors: name -> (clips, dim); sprite cell size in pixels;
    the command that opens it."""

    logdir: Path
    tensors: dict
    clips: int
    sprite_cell: int
    skipped: tuple

    @property
    def command(self) -> str:
        return f"tensorboard --logdir {_quote(str(self.logdir))}"


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def tensor_names(names) -> list[str]:
    """Checkpoint names for representation names: file-name safe, unique."""
    used: dict[str, int] = {}
    out = []
    for name in names:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "embedding"
        used[safe] = used.get(safe, 0) + 1
        out.append(safe if used[safe] == 1 else f"{safe}_{used[safe]}")
    return out


def _cell(value) -> str:
    """A metadata field: tabs and line breaks would split the row, so they become spaces; a name
    that is not UTF-8 is shown in its printable form."""
    text = "" if value is None else printable_path(str(value))
    return " ".join(text.replace("\t", " ").splitlines())


def metadata_tsv(points: PointSet) -> str:
    """Header label, file, fold; one row per clip in tensor row order."""
    rows = ["label\tfile\tfold"]
    for clip, file in zip(points.clips, points.files()):
        rows.append("\t".join(_cell(v) for v in (clip.label, file, clip.fold)))
    return "\n".join(rows) + "\n"


def _write_checkpoint(logdir: Path, tensors: dict[str, np.ndarray]) -> None:
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.quiet import tf

    # Saved under a hidden prefix, then each file renamed into place (the data before the index
    # that describes it), so an earlier export's checkpoint is replaced only by a whole one.
    partial = outputs.temporary_name(logdir / CHECKPOINT)
    try:
        # SaveV2 names each tensor exactly as given, so the projector lists "yamnet" rather than
        # tf.train.Checkpoint's "yamnet/.ATTRIBUTES/VARIABLE_VALUE".
        tf.raw_ops.SaveV2(
            prefix=str(partial),
            tensor_names=list(tensors),
            shape_and_slices=[""] * len(tensors),
            tensors=[tf.constant(v, tf.float32) for v in tensors.values()],
        )
        for suffix in (".data-00000-of-00001", ".index"):
            outputs.move_into_place(f"{partial}{suffix}", logdir / f"{CHECKPOINT}{suffix}")
    finally:
        for leftover in logdir.glob(f"{partial.name}*"):
            leftover.unlink()
    # The state file TensorBoard reads to find the latest checkpoint; a relative path keeps the
    # folder movable.
    outputs.write_text(
        logdir / "checkpoint", f'model_checkpoint_path: "{CHECKPOINT}"\nall_model_checkpoint_paths: "{CHECKPOINT}"\n'
    )


def write_projector(
    points: PointSet, logdir: str | os.PathLike, media: MediaConfig = MediaConfig(), progress: bool = True
) -> ProjectorExport:
    """Write the projector folder for `points` (see the module docstring)."""
    import sys

    from google.protobuf import text_format
    from tensorboard.plugins.projector import ProjectorConfig
    from tqdm import tqdm

    if not points.clips:
        raise VizError("no clip could be embedded, so there is nothing to export")
    check_finite(points)
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise VizError(f"--logdir {logdir} is a file; give a folder")
    logdir.mkdir(parents=True, exist_ok=True)
    names = tensor_names([item.name for item in points.embedded])
    tensors = {name: item.vectors.astype(np.float32) for name, item in zip(names, points.embedded)}

    with tqdm(total=len(points.clips), desc="thumbnails", unit="clip", file=sys.stderr,
              disable=not progress or len(points.clips) < 2, dynamic_ncols=True) as bar:
        rendered = render_clips(points.clips, media, with_audio=False, progress=bar.update)
    canvas, cell = sprite(rendered.images)
    outputs.write_bytes(logdir / SPRITE, png_bytes(canvas))
    outputs.write_text(logdir / METADATA, metadata_tsv(points))
    _write_checkpoint(logdir, tensors)

    config = ProjectorConfig()
    for name in names:
        entry = config.embeddings.add()
        entry.tensor_name = name
        entry.metadata_path = METADATA
        entry.sprite.image_path = SPRITE
        entry.sprite.single_image_dim.extend([cell, cell])
    outputs.write_text(logdir / CONFIG, text_format.MessageToString(config))
    shapes = {name: tuple(int(n) for n in v.shape) for name, v in tensors.items()}
    return ProjectorExport(logdir, shapes, len(points.clips), cell, points.skipped)
