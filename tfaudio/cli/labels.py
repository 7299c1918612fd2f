"""`tfaudio labels import|export|info|next`: the label store (an SQLite file), label tables, and
the windows of a search index worth labelling next."""

from __future__ import annotations

from pathlib import Path

import click

from tfaudio.cli.common import COUNT, SEED, friendly_errors

#: The table formats (tfaudio.labels.formats.FORMATS, restated so --help costs no import).
_FORMATS = ("csv", "raven", "manifest")
_DATABASE_HELP = "The label store, an SQLite file (tfaudio labels import creates it)."
#: The strategies of `labels next` (tfaudio.detector.rounds.STRATEGIES, restated so --help costs no import).
_STRATEGIES = ("top", "margin", "stratified", "random")


def _database_option(help_text: str = _DATABASE_HELP):
    return click.option("--labels", "database", required=True, metavar="DB", help=help_text)


@click.group()
def labels():
    """Labels of recordings' spans (positive, negative, unsure) in one SQLite file: import, export, count."""


@labels.command("import")
@click.argument("files", nargs=-1, required=True)
@_database_option("The label store to add to (an SQLite file, created when absent).")
@click.option("--format", "table_format", type=click.Choice(("auto", *_FORMATS)), default="auto", show_default=True,
              help="The tables' format; auto: a Raven selection table (tab-separated, Begin Time (s)), a label CSV "
                   "(file,start,end,label,...) or a manifest (filename,label), from the first line.")
@click.option("--audio", metavar="PATH",
              help="The folder the tables' file names are relative to (default: each table's folder), or the one "
                   "recording a table without file names describes.")
@click.option("--annotator", default="", help="Who made the labels, for rows that do not say.")
@click.option("--annotation-column", metavar="NAME",
              help="The Raven column holding the label (default: Annotation, Label, Species, Class, ...).")
@click.option("--strict", is_flag=True,
              help="Import nothing when a row is bad or a recording is not there (default: skip such rows, keep "
                   "labels of missing recordings without a content hash, and report both).")
@friendly_errors
def import_(files, database, table_format, audio, annotator, annotation_column, strict):
    """Add the annotations of label tables FILE... to the store; importing a table again adds nothing twice."""
    from tfaudio.labels.formats import SHOWN_PROBLEMS, import_tables
    from tfaudio.labels.store import BATCH, LabelStore, shown

    def committed(counts, total):
        # Said once each batch is on disk: what this line counts survives a kill from here on.
        if total > BATCH:
            click.echo(f"{shown(database)}: {counts.added + counts.present} of {total} annotations committed",
                       err=True)

    with LabelStore(database) as store:
        tables, counts = import_tables(store, files, format=table_format, audio=audio, annotator=annotator,
                                       annotation_column=annotation_column, strict=strict, committed=committed)
        stored = len(store)
    problems = [problem for table in tables for problem in table.problems]
    for problem in problems[:SHOWN_PROBLEMS]:
        click.echo(f"warning: {problem} (row skipped)", err=True)
    if len(problems) > SHOWN_PROBLEMS:
        click.echo(f"warning: {len(problems) - SHOWN_PROBLEMS} more rows skipped", err=True)
    for table in tables:
        if table.missing:
            names = sorted(table.missing)
            listed = ", ".join(shown(name) for name in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5
                                                                     else "")
            click.echo(f"warning: {table.path}: {len(names)} recording(s) not found, their "
                       f"{sum(table.missing.values())} labels kept without a content hash: {listed}", err=True)
        if table.unjudged:
            click.echo(f"{table.path}: {table.unjudged} rows without a kind skipped (not judged yet: fill in "
                       "positive, negative or unsure and import the table again)", err=True)
        if table.changed:
            click.echo(f"warning: {table.path}: {len(table.changed)} recording(s) changed since they were labelled "
                       f"(the table's sha256 is kept), e.g. {shown(table.changed[0])}", err=True)
        click.echo(f"{table.path}: {table.rows} rows ({table.format}), {len(table.annotations)} annotations")
    click.echo(f"{shown(database)}: {counts.added} added, {counts.present} already there; {stored} annotations in all")


@labels.command("export")
@_database_option()
@click.option("--out", required=True, metavar="FILE", help="The table to write (replaced whole, never half-written).")
@click.option("--format", "table_format", type=click.Choice(_FORMATS), default="csv", show_default=True,
              help="csv: every field of every annotation; raven: a Raven selection table (tab-separated, with "
                   "tfaudio's fields as extra columns); manifest: filename,label for whole-file positives.")
@click.option("--label", "only", multiple=True, metavar="LABEL", help="Only this label (repeat for several).")
@friendly_errors
def export(database, out, table_format, only):
    """Write the store's annotations to a table that tfaudio labels import reads back as they were."""
    from tfaudio.labels.formats import export_labels
    from tfaudio.labels.store import LabelStore, shown

    with LabelStore(database, create=False) as store:
        written, left_out = export_labels(store, out, table_format, labels=list(only))
    if left_out:
        click.echo(f"warning: {left_out} annotations are not about whole files (or are unsure) and a manifest "
                   "cannot hold them; export as csv or raven to keep them", err=True)
    click.echo(f"{shown(out)}: {written} annotations ({table_format})")


@labels.command("info")
@_database_option()
@friendly_errors
def info(database):
    """Counts per label and kind, annotators and sources of the store's annotations."""
    from tfaudio.labels.store import LabelStore

    with LabelStore(database, create=False) as store:
        click.echo(store.summary().text())


@labels.command("next")
@click.argument("index_path", metavar="INDEX")
@_database_option()
@click.option("--label", required=True, metavar="LABEL", help="The label to find windows for.")
@click.option("--strategy", type=click.Choice(_STRATEGIES), default="top", show_default=True,
              help="top: the highest scores; margin: closest to the detector's threshold (probability 0.5 without "
                   "one); stratified: seeded picks from score strata weighted towards the top, each with its "
                   "inclusion weight (for precision on the whole archive); random: seeded, uniform.")
@click.option("--n", "count", type=COUNT, default=10, show_default=True, metavar="N", help="Windows to propose.")
@click.option("--detector", metavar="DET",
              help="A detector (tfaudio detector train) with a head for LABEL trained on INDEX's embeddings: scores "
                   "are its calibrated probabilities. Default: a head fitted now on the store's labels (raw scores).")
@click.option("--seed", type=SEED, default=0, show_default=True, metavar="S",
              help="Seed of the stratified and random picks.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder for next.csv (kind left empty, to fill in and import) and index.html (the windows to "
                   "listen to); created, files replaced. Without it only the table is printed.")
@friendly_errors
def next_(index_path, database, label, strategy, count, detector, seed, out):
    """The windows of the search index at INDEX worth labelling next as LABEL: unlabelled (for LABEL), no two
    overlapping in one file, ranked. Prints rank, score, start-end and file; with --out writes next.csv and a
    page to listen to. Fill in next.csv's kind column and add it with tfaudio labels import."""
    from tfaudio.outputs import check_writable

    if out is not None:
        check_writable(out)  # before any work
    from tfaudio.detector.rounds import next_windows, table_text, write_round
    from tfaudio.labels.store import LabelStore
    from tfaudio.search.index import SearchIndex

    index = SearchIndex.open(index_path)
    with LabelStore(database, create=False) as store:
        picks = next_windows(index, store, label, strategy=strategy, n=count, detector=detector, seed=seed)
    if not len(picks):
        click.echo(f"{label}: every window of {index_path} is labelled for it already; nothing to propose", err=True)
        return
    click.echo(f"{label}: round {picks['round'].iloc[0]}, strategy {strategy}, {len(picks)} windows "
               f"({'calibrated probability' if detector else 'raw score of a head fitted now'})")
    click.echo(table_text(picks))
    if len(picks) < count:
        click.echo(f"warning: only {len(picks)} unlabelled windows that do not overlap are left for {label}", err=True)
    if out is not None:
        missing = set(index.missing_files()) & set(picks["file"])
        written = write_round(picks, label, out, missing=sorted(missing), index_path=str(index_path),
                              probability=detector is not None)
        click.echo(f"wrote {written / 'next.csv'} and {written / 'index.html'}; fill in the kind column, then: "
                   f"tfaudio labels import --labels {database} {written / 'next.csv'}")
