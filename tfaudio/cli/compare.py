"""`tfaudio compare` and `tfaudio demo`: which representation works, cross-validated, with a report.

Every choice an option offers comes from the table that defines it: classifiers from
`tfaudio.comparison.classifiers.CLASSIFIERS`, split strategies from
`tfaudio.data.splits.CROSS_VALIDATION`, poolings from `tfaudio.frontend.pooling.POOLING`, model
spellings from `tfaudio.models.registry.model_kinds`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tfaudio.cli.common import (COUNT, SECONDS, SEED, check_precision_runs, check_store, count, friendly_errors,
                                precision_option, renamed_option)
from tfaudio.comparison.classifiers import CLASSIFIERS
from tfaudio.data.splits import CROSS_VALIDATION
from tfaudio.frontend.pooling import POOLING
from tfaudio.models.registry import model_kinds
from tfaudio.outputs import check_writable
from tfaudio.quiet import import_tensorflow_quietly

#: What `compare` runs unless told otherwise.
DEFAULT_MODELS = ("handcrafted", "yamnet")


def _fit_alias(old: str, setting: str):
    """`old` N (`--ae-epochs`, `--latent`), kept from before `--fit`: the value becomes the first
    `--fit autoencoder.SETTING=N`, so an explicit `--fit` for the same setting wins."""
    return renamed_option(old, f"--fit autoencoder.{setting}=N", "fit", type=COUNT,
                          into=lambda value, fit: (f"autoencoder.{setting}={value}", *(fit or ())))


def _compare_options(command):
    """Options shared by `compare` and `demo`."""
    options = [
        click.option("--classifier", "classifiers", multiple=True, type=click.Choice(list(CLASSIFIERS)),
                     help="; ".join(f"{c.name}: {c.label}" for c in CLASSIFIERS.values())
                     + ". Repeat for several (default: all)."),
        click.option("--folds", type=count(2), default=5, show_default=True,
                     help="k for generated folds (ignored when the manifest has folds)."),
        click.option("--split", default="auto", show_default=True, type=click.Choice(CROSS_VALIDATION),
                     help="auto: the manifest's folds, else group-aware folds, else stratified k-fold."),
        click.option("--param", "params", multiple=True, metavar="CLF.NAME=VALUE",
                     help="Classifier hyperparameter, e.g. rf.n_estimators=300 or mlp.hidden_layer_sizes=256,128."),
        click.option("--pooling", type=click.Choice(POOLING), help="Clip pooling (default: per model)."),
        click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for folds, classifiers and bootstrap."),
        click.option("--fit", "fit", multiple=True, metavar="MODEL.SETTING=VALUE",
                     help="A setting of a representation trained on each split's training clips, e.g. "
                          "autoencoder.epochs=5 or autoencoder.latent=32; repeat for several."),
        _fit_alias("--ae-epochs", "epochs"),
        _fit_alias("--latent", "latent"),
        click.option("--batch-size", type=COUNT, default=32, show_default=True, help="Clips per embedding batch."),
        click.option("--max-duration", type=SECONDS, help="Use at most this many seconds of each clip."),
        click.option("--store", type=click.Path(file_okay=False, path_type=Path),
                     help="Embedding cache (default: $TFAUDIO_HOME/embeddings)."),
        click.option("--strict", is_flag=True,
                     help="Stop at an unavailable model or unreadable file instead of leaving it out."),
        precision_option(),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _compare_config(models, classifiers, folds, split, params, pooling, seed, fit, batch_size,
                    max_duration, store, strict, precision, group_column=None):
    from tfaudio.comparison.classifiers import parse_params
    from tfaudio.comparison.config import CompareConfig
    from tfaudio.comparison.settings import as_overrides, parse_overrides

    check_precision_runs(precision)
    try:
        overrides = parse_params(params)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--param") from None
    try:
        return CompareConfig(
            models=tuple(models), classifiers=tuple(classifiers) or tuple(CLASSIFIERS), split=split, folds=folds,
            seed=seed, params=as_overrides(overrides), pooling=pooling, batch_size=batch_size,
            max_duration=max_duration, strict=strict, group_column=group_column, store=str(store) if store else None,
            fit=as_overrides(parse_overrides(fit, None, "fit setting", "MODEL.SETTING=VALUE", "autoencoder.epochs=5")),
            precision=precision,
        )
    except ValueError as err:  # a --fit that does not parse, or names a model not compared
        raise click.BadParameter(str(err), param_hint="--fit") from None


def _print_ranking(result, report: Path) -> None:
    from tfaudio.comparison.config import BASELINE
    from tfaudio.comparison.discussion import paragraphs

    runs = result.ranked()
    # Columns as wide as their longest entry: an autoencoder:PATH name would push a fixed width out of line.
    names = max([len("representation"), *(len(run.representation) for run in runs)])
    labels = max([len("classifier"), *(len(CLASSIFIERS[run.classifier].label) for run in runs)])
    click.echo("")
    click.echo(f"{'#':>2}  {'representation':<{names}} {'classifier':<{labels}} {'accuracy ± split std':>20}  "
               f"{'95 % CI':>11}  {'F1':>5}  McNemar p")
    for rank, run in enumerate(runs, 1):
        m, test = run.metrics, run.versus_baseline
        p = "baseline" if test is None else f"{test.p_value:.2g}"
        click.echo(f"{rank:>2}  {run.representation:<{names}} {CLASSIFIERS[run.classifier].label:<{labels}} "
                   f"{'':>5}{100 * m.accuracy:6.1f} ± {100 * m.fold_std:4.1f} %  "
                   f"{100 * m.accuracy_ci[0]:4.1f}–{100 * m.accuracy_ci[1]:4.1f}  {m.macro_f1:.3f}  {p}")
    click.echo(f"    McNemar p: each run against {BASELINE} with the same classifier; the verdict below tests the "
               f"best learned run against the best {BASELINE} run.")
    for item in result.unavailable:
        click.echo(f"    {item.name}: unavailable ({(item.reason.splitlines() or [''])[0]})")
    if result.skipped or result.dataset_ignored:
        click.echo(f"    {len(result.skipped) + len(result.dataset_ignored)} file(s) or class(es) left out; see the report")
    click.echo("\n" + paragraphs(result)[0].replace("**", ""))
    click.echo(f"\nReport: {report}")


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--model", "model_names", multiple=True, default=DEFAULT_MODELS, show_default=True,
              help=", ".join(spelling for spelling, _ in model_kinds()) + "; repeat for several. "
                   "The hand-crafted baseline is always included.")
@_compare_options
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Report folder.")
@friendly_errors
def compare(data, model_names, out, group_column, **options):
    """Which representation works for DATA? Cross-validates a random forest, an MLP and a
    linear probe on every representation over the same folds, tests each against the
    hand-crafted baseline (McNemar) and writes a report: index.html, report.md, metrics.json,
    predictions.csv."""
    check_writable(out)  # before any clip is embedded or classifier fitted
    check_store(options["store"])
    config = _compare_config(model_names, group_column=group_column, **options)
    import_tensorflow_quietly()
    from tfaudio.comparison.report import write_report
    from tfaudio.comparison.run import compare as run_compare

    try:
        result = run_compare(data, config, log=lambda m: click.echo(m, err=True), command=" ".join(["tfaudio", *sys.argv[1:]]))
    except ValueError as err:  # e.g. a hyperparameter scikit-learn refuses
        raise click.ClickException(str(err)) from None
    _print_ranking(result, write_report(result, out))


@click.command()
@click.option("--out", default=Path("reports/demo"), show_default=True, type=click.Path(file_okay=False, path_type=Path))
@_compare_options
@friendly_errors
def demo(out, **options):
    """The comparison on ESC-10 (TFAUDIO_DATA when set, else fetched into the cache, else a
    synthetic dataset when offline) with the baseline, YAMNet, VGGish, Wav2Vec2 and a per-split
    autoencoder; models whose weights are unavailable are listed, not fatal."""
    check_writable(out)
    check_store(options["store"])
    import_tensorflow_quietly()
    from tfaudio.comparison.demo import DEMO_MODELS, run_demo

    config = _compare_config(DEMO_MODELS, **options)
    try:
        result = run_demo(out, config, lambda m: click.echo(m, err=True), " ".join(["tfaudio", *sys.argv[1:]]))
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    _print_ranking(result, out / "index.html")
