"""The `tfaudio` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tfaudio import __version__
from tfaudio.cli.autoencoder import autoencoder as _autoencoder_group
from tfaudio.cli.common import friendly_errors as _friendly_errors
from tfaudio.cli.common import progress as _progress
from tfaudio.cli.train import predict as _predict_command
from tfaudio.cli.train import train as _train_command
from tfaudio.cli.viz import projector as _projector_command
from tfaudio.cli.viz import visualize as _visualize_command
from tfaudio.quiet import import_tensorflow_quietly


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tfaudio")
def main():
    """Which audio representation works for your labeled sounds? tfaudio loads a folder of
    audio (one sub-folder per class, or a CSV manifest filename,label[,fold][,group]) and
    computes hand-crafted features and pretrained embeddings (YAMNet, VGGish, Wav2Vec2, TF-Hub
    and Hugging Face models) in TensorFlow, cached so nothing is computed twice.

    DATA is a class-folder tree, a CSV manifest, or a folder holding meta.csv / manifest.csv.
    """


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_friendly_errors
def info(data: Path, group_column: str | None, as_json: bool):
    """Summarize a dataset: clips per class, durations, sample rates, channels, folds and
    the files that cannot be read."""
    from tfaudio.data.dataset import load_dataset, summarize

    dataset = load_dataset(data, group_column=group_column)
    with _progress(len(dataset), "reading headers") as bar:
        summary = summarize(dataset, progress=bar.update)
    facts = summary.to_dict()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    d = facts["duration_seconds"]
    click.echo(f"dataset    {dataset.root}  ({'class folders' if dataset.source == 'folders' else dataset.source})")
    click.echo(f"clips      {facts['clips']} readable in {len(facts['classes'])} classes")
    click.echo(
        f"duration   total {d['total'] / 60:.1f} min; per clip min {d['min']:.2f} s, "
        f"median {d['median']:.2f} s, max {d['max']:.2f} s"
    )
    rates = ", ".join(f"{rate} Hz ({n})" for rate, n in sorted(facts["sample_rates"].items()))
    channels = ", ".join(f"{ch} ({n})" for ch, n in sorted(facts["channels"].items()))
    click.echo(f"rates      {rates}")
    click.echo(f"channels   {channels}")
    folds = facts["folds"]
    click.echo(f"folds      {', '.join(map(str, folds)) if folds else 'none (stratified k-fold will be used)'}")
    if facts["groups"] is not None:
        click.echo(f"groups     {facts['groups']}")
    click.echo("")
    table = summary.per_class()
    width = max(len(name) for name in table.index)
    click.echo(f"{'class':<{width}}  clips  seconds")
    for name, row in table.iterrows():
        click.echo(f"{name:<{width}}  {int(row['clips']):>5}  {row['seconds']:>7.1f}")
    for title, problems in (("unreadable", summary.unreadable), ("ignored", dataset.ignored)):
        if problems:
            click.echo(f"\n{len(problems)} {title} file(s):")
            for problem in problems:
                click.echo(f"  {problem.path}: {problem.reason}")


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Output table: .parquet or .csv (one row per clip).",
)
@click.option("--batch-size", default=32, show_default=True, help="Clips per TensorFlow batch.")
@click.option("--max-duration", type=float, help="Use at most this many seconds of each clip.")
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable file instead of skipping it.")
@_friendly_errors
def features(data: Path, out: Path, batch_size: int, max_duration: float | None, group_column: str | None, strict: bool):
    """Compute the hand-crafted baseline (MFCC + deltas and spectral descriptors, mean and
    standard deviation over time) for every clip, in batches through tf.signal."""
    import_tensorflow_quietly()
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.handcrafted.extract import ExtractConfig, extract
    from tfaudio.models.handcrafted.model import HandcraftedParams

    if out.suffix.lower() not in (".parquet", ".csv"):
        raise click.BadParameter(f"'{out}' must end in .parquet or .csv", param_hint="--out")
    dataset = load_dataset(data, group_column=group_column)
    config = ExtractConfig(batch_size=batch_size, max_duration=max_duration, strict=strict)
    with _progress(len(dataset), "features") as bar:
        table = extract(dataset, HandcraftedParams(), config, progress=bar.update)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        table.frame.to_parquet(out, index=False)
    else:
        table.frame.to_csv(out, index=False)
    for problem in table.skipped:
        click.echo(f"skipped {problem.path}: {problem.reason}", err=True)
    click.echo(
        f"wrote {len(table.frame)} clips x {len(table.feature_columns)} features to {out}"
        + (f" ({len(table.skipped)} skipped)" if table.skipped else "")
    )


def _safe_name(model: str) -> str:
    """A file name for a model name such as hf:facebook/wav2vec2-base."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)


@main.command()
def models():
    """List the representations: dimension, sample rate, weights, and whether each can run
    on this machine right now without network access."""
    from tfaudio.models.registry import describe

    rows = describe()
    width = max(len(r.info.name) for r in rows)
    click.echo(f"{'name':<{width}}  {'dim':>5}  {'rate':>6}  offline  weights")
    for row in rows:
        state = "yes" if row.available else "no"
        detail = row.detail if row.available else row.detail.splitlines()[0]
        click.echo(f"{row.info.name:<{width}}  {row.info.dim:>5}  {row.info.sample_rate:>6}  {state:<7}  {detail}")
        click.echo(f"{'':<{width}}  {row.info.description}")
    click.echo("\nWeights are looked for in TFAUDIO_MODELS/<model>/<file>, then TFAUDIO_HOME (~/.cache/tfaudio), "
               "then downloaded unless TFAUDIO_OFFLINE=1.")


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--model", "model_names", multiple=True, required=True,
    help="handcrafted, yamnet, vggish, wav2vec2, hub:<handle or folder>, hf:<id or folder>; repeat for several.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for <model>.parquet.")
@click.option("--pooling", type=click.Choice(["mean", "max", "mean+std"]), help="Clip pooling (default: per model).")
@click.option("--frames", is_flag=True, help="Write frame-level embeddings instead of pooled clip vectors.")
@click.option("--batch-size", default=32, show_default=True, help="Clips per batch.")
@click.option("--max-duration", type=float, help="Use at most this many seconds of each clip.")
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), help="Embedding cache (default: $TFAUDIO_HOME/embeddings).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable file instead of skipping it.")
@_friendly_errors
def embed(data, model_names, out, pooling, frames, batch_size, max_duration, group_column, store, strict):
    """Embed every clip with each model, through the embedding cache: clips already embedded
    with the same model, weights and settings are read back instead of recomputed."""
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.registry import ModelUnavailable, get
    from tfaudio.pipeline.local import EmbedConfig, current_output, embed_dataset, plan_embedding
    from tfaudio.store import FRAMES, EmbeddingStore

    dataset = load_dataset(data, group_column=group_column)
    cache = EmbeddingStore(store)
    out.mkdir(parents=True, exist_ok=True)
    for name in model_names:
        try:
            model = get(name)
        except ModelUnavailable as err:
            raise click.ClickException(f"{name} is unavailable: {err}") from None
        config = EmbedConfig(
            pooling=FRAMES if frames else pooling, batch_size=batch_size, max_duration=max_duration, strict=strict
        )
        target = out / f"{_safe_name(name)}{'_frames' if frames else ''}.parquet"
        plan = plan_embedding(dataset, model, config)
        skipped = current_output(target, plan)
        if skipped is not None:  # like make: the file already holds exactly this result
            click.echo(f"{name}: {target} is up to date ({len(dataset) - len(skipped)} clips, {len(skipped)} skipped)")
        else:
            with _progress(len(dataset), name) as bar:
                table = embed_dataset(dataset, model, cache, config, progress=bar.update, plan=plan)
            table.write_parquet(target)
            stats, skipped = table.stats, table.stats.skipped
            speed = f", {stats.audio_seconds / stats.seconds:.0f}x real time" if stats.computed else ""
            click.echo(
                f"{name}: {len(table.clips)} clips -> {target} ({stats.cached} cached, {stats.computed} computed, "
                f"{len(skipped)} skipped; {stats.seconds:.1f} s{speed})"
            )
        for problem in skipped:
            click.echo(f"  skipped {problem.path}: {problem.reason}", err=True)


def _compare_options(command):
    """Options shared by `compare` and `demo`."""
    options = [
        click.option("--classifier", "classifiers", multiple=True, type=click.Choice(["rf", "mlp", "logreg"]),
                     help="rf, mlp, logreg; repeat for several (default: all three)."),
        click.option("--folds", default=5, show_default=True, help="k for generated folds (ignored when the manifest has folds)."),
        click.option("--split", default="auto", show_default=True,
                     type=click.Choice(["auto", "predefined", "group", "stratified"]),
                     help="auto: the manifest's folds, else group-aware folds, else stratified k-fold."),
        click.option("--param", "params", multiple=True, metavar="CLF.NAME=VALUE",
                     help="Classifier hyperparameter, e.g. rf.n_estimators=300 or mlp.hidden_layer_sizes=256,128."),
        click.option("--pooling", type=click.Choice(["mean", "max", "mean+std"]), help="Clip pooling (default: per model)."),
        click.option("--seed", default=0, show_default=True, help="Seed for folds, classifiers and bootstrap."),
        click.option("--ae-epochs", default=10, show_default=True, help="Autoencoder epochs per split (--model autoencoder)."),
        click.option("--latent", default=64, show_default=True, help="Autoencoder bottleneck size (--model autoencoder)."),
        click.option("--batch-size", default=32, show_default=True, help="Clips per embedding batch."),
        click.option("--max-duration", type=float, help="Use at most this many seconds of each clip."),
        click.option("--store", type=click.Path(file_okay=False, path_type=Path), help="Embedding cache (default: $TFAUDIO_HOME/embeddings)."),
        click.option("--strict", is_flag=True, help="Stop at an unavailable model or unreadable file instead of leaving it out."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _compare_config(models, classifiers, folds, split, params, pooling, seed, ae_epochs, latent, batch_size,
                    max_duration, store, strict, group_column=None):
    from tfaudio.comparison.classifiers import parse_params
    from tfaudio.comparison.run import CompareConfig

    try:
        overrides = parse_params(params)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--param") from None
    return CompareConfig(
        models=tuple(models), classifiers=tuple(classifiers) or ("rf", "mlp", "logreg"), split=split, folds=folds,
        seed=seed, params=tuple((k, tuple(v.items())) for k, v in overrides.items()), pooling=pooling,
        batch_size=batch_size, max_duration=max_duration, strict=strict, group_column=group_column,
        store=str(store) if store else None, ae_epochs=ae_epochs, latent=latent,
    )


def _print_ranking(result, report: Path) -> None:
    from tfaudio.comparison.classifiers import CLASSIFIERS

    click.echo("")
    click.echo(f"{'#':>2}  {'representation':<16} {'classifier':<36} {'accuracy ± split std':>20}  {'95 % CI':>11}  "
               f"{'F1':>5}  McNemar p")
    for rank, run in enumerate(result.ranked(), 1):
        m, test = run.metrics, run.versus_baseline
        p = "baseline" if test is None else f"{test.p_value:.2g}"
        click.echo(f"{rank:>2}  {run.representation:<16} {CLASSIFIERS[run.classifier]:<36} "
                   f"{'':>5}{100 * m.accuracy:6.1f} ± {100 * m.fold_std:4.1f} %  "
                   f"{100 * m.accuracy_ci[0]:4.1f}–{100 * m.accuracy_ci[1]:4.1f}  {m.macro_f1:.3f}  {p}")
    for item in result.unavailable:
        click.echo(f"    {item.name}: unavailable ({(item.reason.splitlines() or [''])[0]})")
    if result.skipped or result.dataset_ignored:
        click.echo(f"    {len(result.skipped) + len(result.dataset_ignored)} file(s) or class(es) left out; see the report")
    from tfaudio.comparison.discussion import paragraphs

    click.echo("\n" + paragraphs(result)[0].replace("**", ""))
    click.echo(f"\nReport: {report}")


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--model", "model_names", multiple=True, default=("handcrafted", "yamnet"), show_default=True,
              help="handcrafted, yamnet, vggish, wav2vec2, autoencoder, hub:<handle>, hf:<id>; repeat for several. "
                   "The hand-crafted baseline is always included.")
@_compare_options
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Report folder.")
@_friendly_errors
def compare(data, model_names, out, group_column, **options):
    """Which representation works for DATA? Cross-validates a random forest, an MLP and a
    linear probe on every representation over the same folds, tests each against the
    hand-crafted baseline (McNemar) and writes a report: index.html, report.md, metrics.json,
    predictions.csv."""
    import_tensorflow_quietly()
    from tfaudio.comparison.report import write_report
    from tfaudio.comparison.run import compare as run_compare

    config = _compare_config(model_names, group_column=group_column, **options)
    try:
        result = run_compare(data, config, log=lambda m: click.echo(m, err=True), command=" ".join(["tfaudio", *sys.argv[1:]]))
    except ValueError as err:  # e.g. a hyperparameter scikit-learn refuses
        raise click.ClickException(str(err)) from None
    _print_ranking(result, write_report(result, out))


@main.command()
@click.option("--out", default=Path("reports/demo"), show_default=True, type=click.Path(file_okay=False, path_type=Path))
@_compare_options
@_friendly_errors
def demo(out, **options):
    """The comparison on ESC-10 (TFAUDIO_DATA when set, else fetched into the cache, else a
    synthetic dataset when offline) with the baseline, YAMNet, VGGish, Wav2Vec2 and a per-split
    autoencoder; models whose weights are unavailable are listed, not fatal."""
    import_tensorflow_quietly()
    from tfaudio.comparison.demo import DEMO_MODELS, run_demo

    config = _compare_config(DEMO_MODELS, **options)
    try:
        result = run_demo(out, config, lambda m: click.echo(m, err=True), " ".join(["tfaudio", *sys.argv[1:]]))
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    _print_ranking(result, out / "index.html")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", default=3, show_default=True, help="Classes shown per time step.")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False, path_type=Path), help="yamnet.h5 to use.")
@_friendly_errors
def tag(files, top, weights_path):
    """Tag audio files with YAMNet's 521 AudioSet classes: the top classes every 0.48 s and
    over the whole file."""
    import_tensorflow_quietly()
    import numpy as np

    from tfaudio import assets as weights
    from tfaudio.data.audio import load
    from tfaudio.models.registry import ModelUnavailable, get
    from tfaudio.models.yamnet.model import load_class_map

    try:
        model = get("yamnet", weights_path=weights_path).loaded()
        classes = load_class_map(weights.resolve(weights.YAMNET_CLASS_MAP))
    except (ModelUnavailable, weights.WeightsUnavailable) as err:
        raise click.ClickException(str(err)) from None
    hop = model.frame_hop_seconds
    for path in files:
        wave = load(path, model.sample_rate)
        out = model.model.embed(wave[np.newaxis])
        scores = out.scores[0][out.patch_mask[0]]
        click.echo(f"{path}  ({len(wave) / model.sample_rate:.2f} s)")
        for step, row in enumerate(scores):
            best = np.argsort(row)[::-1][:top]
            labels = ", ".join(f"{classes[i]} {row[i]:.2f}" for i in best)
            click.echo(f"  {step * hop:7.2f} s  {labels}")
        overall = scores.mean(axis=0)
        best = np.argsort(overall)[::-1][:top]
        click.echo("  overall    " + ", ".join(f"{classes[i]} {overall[i]:.2f}" for i in best))


@main.group()
def datasets():
    """Make or fetch datasets."""


@datasets.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--clips-per-class", default=20, show_default=True)
@click.option("--duration", default=1.0, show_default=True, help="Seconds per clip.")
@click.option("--seed", default=0, show_default=True)
def synth(out: Path, clips_per_class: int, duration: float, seed: int):
    """Write a small synthetic dataset (tone, chirp, noise, clicks) with a 5-fold manifest."""
    from tfaudio.data.synth import CLASSES, SynthConfig, make_dataset

    make_dataset(out, SynthConfig(clips_per_class=clips_per_class, duration=duration, seed=seed))
    click.echo(f"wrote {clips_per_class * len(CLASSES)} clips in {len(CLASSES)} classes to {out}")


@datasets.command()
@click.argument("name", type=click.Choice(["esc10", "esc50", "speech-commands"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder (default: $TFAUDIO_HOME/datasets/NAME).")
@click.option("--url", help="Download from this mirror instead of the official URL.")
@click.option("--sha256", help="Expected digest of the mirror's archive (with --url).")
def fetch(name, out, url, sha256):
    """Download a public dataset (checksum verified) and write its manifest: ESC's official
    folds, or speaker-disjoint folds for Speech Commands; prints the folder to pass as DATA."""
    from tfaudio.data.fetch import SOURCES, FetchError, with_url
    from tfaudio.data.fetch import fetch as fetch_dataset

    if sha256 and not url:
        raise click.BadParameter("--sha256 goes with --url (the built-in sources carry their own digests)",
                                 param_hint="--sha256")
    source = with_url(SOURCES[name], url, sha256) if url else None
    try:
        path = fetch_dataset(name, out=out, source=source)
    except FetchError as err:
        raise click.ClickException(str(err)) from None
    click.echo(str(path))


main.add_command(_autoencoder_group)


main.add_command(_train_command)


main.add_command(_predict_command)


main.add_command(_visualize_command)


main.add_command(_projector_command)


if __name__ == "__main__":
    main()
