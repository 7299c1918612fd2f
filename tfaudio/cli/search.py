"""`tfaudio search`: find sounds like an example in a search index."""

from __future__ import annotations

from pathlib import Path

import click

from tfaudio.cli.common import friendly_errors


@click.command()
@click.argument("index_path", metavar="INDEX")
@click.argument("queries", metavar="QUERY...", nargs=-1, required=True)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Hits to list.")
@click.option("--exact", is_flag=True,
              help="Score every indexed window (else the ANN graph proposes candidates, re-ranked exactly; small "
                   "indexes are always searched exactly).")
@click.option("--negative", "negatives", multiple=True, metavar="FILE",
              help="An example of what is not wanted (FILE or FILE@START-END; repeat for several): windows nearer "
                   "it than the queries are pushed down.")
@click.option("--negative-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="How far --negative pushes: score = query similarity - weight x how much nearer a negative.")
@click.option("--other-files/--all", "other_files", default=False, show_default=True,
              help="--other-files: only hits from files other than the queries; --all: any file, leaving out only "
                   "the query regions themselves.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder for results.csv and index.html (hits you can listen to); created, files replaced.")
@friendly_errors
def search(index_path, queries, top, exact, negatives, negative_weight, other_files, out):
    """Find windows of the index at INDEX that sound like the QUERY examples. A QUERY is an audio
    file or FILE@START-END (seconds; FILE@START- to the end). Several queries are combined (the
    mean of each one's best match). Prints the hits, best first: score (cosine), start and end
    (seconds), file."""
    from tfaudio.outputs import check_writable
    from tfaudio.search.query import parse_queries

    parsed, unwanted = parse_queries(queries), parse_queries(negatives)  # syntax errors before any work
    if out is not None:
        check_writable(out)
    from tfaudio.search.query import search as run_search

    results = run_search(index_path, parsed, top=top, exact=exact, negatives=unwanted,
                         negative_weight=negative_weight, other_files=other_files)
    click.echo(results.table())
    if not len(results):
        click.echo("no hits", err=True)
    if out is not None:
        written = results.write(out)
        click.echo(f"wrote {written / 'results.csv'} and {written / 'index.html'}")
