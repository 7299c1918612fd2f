"""`tfaudio embed` as one function: a dataset embedded with each model into an output folder, on
this machine or on Apache Beam, in any output format of `tfaudio.store.formats`.

`run_embedding` is where the runner is chosen (the CLI only parses options and prints): the local
runner (`pipeline.local`: through the embedding store, the output rewritten only when its stamp
says it is not up to date) or a Beam runner (`pipeline.beam.run_beam`), and where a small
pooled output goes to one file rather than shards. Each model's run ends in a `RunSummary`,
whichever runner made it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tfaudio.data.dataset import Problem
from tfaudio.errors import TfaudioError
from tfaudio.pipeline.beam import RUNNERS as BEAM_RUNNERS
from tfaudio.store import FRAMES, output_name
from tfaudio.store.formats import FORMATS, SINGLE_FILE_CLIPS, output_format

if TYPE_CHECKING:
    # Imported where used: the CLI reads RUNNERS at start-up, which must not cost the pipeline's imports.
    from tfaudio.pipeline.local import EmbedConfig

#: Where `run_embedding` computes: this process, or one of Beam's runners.
LOCAL = "local"
RUNNERS = (LOCAL, *BEAM_RUNNERS)

#: progress(total clips, label) -> a context manager whose value has `update(clips)`, e.g. tqdm.
Progress = Callable[[int, str], contextlib.AbstractContextManager]


class RunSettingsError(TfaudioError, ValueError):
    """Settings that do not go together (an option of one runner given to another)."""


@dataclass(frozen=True)
class RunSettings:
    """Where and how `run_embedding` runs and writes.

    file_format: a name of `tfaudio.store.formats.FORMATS`. runner: one of RUNNERS.
    num_workers, pipeline_args, weights_path: Beam's (worker processes; Beam's own flags, passed
    through; the weights file every worker loads). store: the embedding store (None: the default;
    Beam workers read it, never write it). group_column: the manifest column that groups clips.
    precision: "float32" or "bfloat16" (the local runner only, for now).
    """

    file_format: str = "parquet"
    runner: str = LOCAL
    num_workers: int | None = None
    pipeline_args: tuple[str, ...] = ()
    weights_path: str | None = None
    store: str | None = None
    group_column: str | None = None
    precision: str = "float32"

    def check(self, config: EmbedConfig) -> None:
        """RunSettingsError for settings that do not go together; ValueError for unknown names."""
        output_format(self.file_format)
        if self.runner not in RUNNERS:
            raise ValueError(f"unknown runner {self.runner!r}; choose one of {', '.join(RUNNERS)}")
        if self.runner == LOCAL:
            return
        if self.precision != "float32":
            raise RunSettingsError("--precision bfloat16 runs on the local runner only for now")
        if config.strict:
            raise RunSettingsError("--strict applies to the local runner; Beam runners list unreadable files as "
                                   "dead letters")


@dataclass
class RunSummary:
    """What one model's run did, whichever runner made it.

    output: the file or folder written (a URL for Beam filesystems); clips: clips with a vector;
    skipped: the clips left out, with why (Beam's dead letters); ignored: the files of DATA that
    are not clips (missing manifest rows, pipes, unknown extensions, bad links); up_to_date:
    nothing was run, the output already held exactly this result; model_loads: Beam's count of
    model builds (None locally).
    """

    model: str
    output: str
    runner: str
    clips: int = 0
    cached: int = 0
    computed: int = 0
    skipped: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0
    up_to_date: bool = False
    model_loads: int | None = None
    ignored: list[Problem] = field(default_factory=list)


def run_embedding(
    data: str | os.PathLike,
    models: Sequence[str],
    out: str | os.PathLike,
    config: EmbedConfig | None = None,
    settings: RunSettings = RunSettings(),
    progress: Progress | None = None,
) -> Iterator[RunSummary]:
    """Embed `data` with each of `models` (registry names) into `out`, one summary per model as
    it finishes. data: any DATA `load_dataset(..., labelled=False)` reads (clips without a
    label get a null label). config: how clips are walked (`pipeline.local.EmbedConfig`; None: its defaults).

    Locally, a pooled run of up to SINGLE_FILE_CLIPS clips in a format that writes one file
    gives `out/<model><suffix>`; anything else `out/<model>/` shards with a `_manifest.json`
    (`<model>_frames/` for frames). Beam runners always write shards. Raises ModelUnavailable
    ("<model> is unavailable: ..."), registry.UnknownModel, RunSettingsError before a model's
    work starts.
    """
    from tfaudio.pipeline.local import EmbedConfig

    config = config or EmbedConfig()
    settings.check(config)
    if settings.runner == LOCAL:
        yield from _run_here(data, models, Path(out), config, settings, progress)
        return
    from tfaudio.data.dataset import load_dataset
    from tfaudio.pipeline.beam import run_beam
    from tfaudio.pipeline.sources import is_remote

    # Local DATA is listed once, here, by the local runner's rules (standard input can be read
    # only once); remote DATA is listed by `sources.list_clips` for each model.
    if not is_remote(data):
        data = load_dataset(data, group_column=settings.group_column, labelled=False)
    for name in models:
        beam = run_beam(data, name, out, runner=settings.runner, num_workers=settings.num_workers,
                        pipeline_args=settings.pipeline_args, config=config, weights_path=settings.weights_path,
                        store=settings.store, group_column=settings.group_column,
                        file_format=settings.file_format)
        yield RunSummary(name, beam.output, settings.runner, beam.clips, beam.cached, beam.computed,
                         [Problem(path, reason) for path, reason in beam.skipped], beam.seconds, beam.audio_seconds,
                         model_loads=beam.model_loads, ignored=[Problem(path, reason) for path, reason in beam.ignored])


def _run_here(data: str | os.PathLike, models: Sequence[str], out: Path, config: EmbedConfig, settings: RunSettings,
              progress: Progress | None) -> Iterator[RunSummary]:
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.precision import with_precision
    from tfaudio.models.registry import ModelUnavailable, get
    from tfaudio.pipeline.local import current_output, embed_dataset, embed_to_folder, expected_output, plan_embedding
    from tfaudio.store import EmbeddingStore

    fmt = FORMATS[settings.file_format]
    dataset = load_dataset(data, group_column=settings.group_column, labelled=False)
    cache = EmbeddingStore(settings.store)
    out.mkdir(parents=True, exist_ok=True)
    single = fmt.single_file and config.pooling != FRAMES and len(dataset) <= SINGLE_FILE_CLIPS
    for name in models:
        try:
            model = with_precision(get(name), settings.precision)
        except ModelUnavailable as err:  # say which of the models it is
            raise ModelUnavailable(f"{name} is unavailable: {err}") from None
        plan = plan_embedding(dataset, model, config)
        target = out / f"{output_name(name)}{fmt.suffix}" if single else expected_output(out, model, plan)
        skipped = current_output(target, plan)
        if skipped is not None:  # like make: the output already holds exactly this result
            yield RunSummary(name, str(target), LOCAL, len(dataset) - len(skipped), skipped=skipped, up_to_date=True,
                             ignored=list(dataset.ignored))
            continue
        with progress(len(dataset), name) if progress else contextlib.nullcontext() as bar:
            update = bar.update if bar is not None else None
            if single:
                table = embed_dataset(dataset, model, cache, config, progress=update, plan=plan)
                table.write(target, fmt.name)
                stats = table.stats
            else:
                _, stats = embed_to_folder(dataset, model, out, cache, config, progress=update, plan=plan,
                                           file_format=fmt.name)
        yield RunSummary(name, str(target), LOCAL, len(dataset) - len(stats.skipped), stats.cached, stats.computed,
                         list(stats.skipped), stats.seconds, stats.audio_seconds, ignored=list(dataset.ignored))
