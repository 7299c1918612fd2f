"""`tfaudio store info | compact | gc`: see and tidy the embedding store."""

from __future__ import annotations

import time
from pathlib import Path

import click

from tfaudio.cli.common import DAYS, friendly_errors
from tfaudio.outputs import size_text

_STORE_OPTION = click.option(
    "--store", "root", type=click.Path(file_okay=False, path_type=Path),
    help="Embedding store (default: $TFAUDIO_HOME/embeddings).",
)


@click.group()
def store():
    """See and tidy the embedding store (cached vectors, one folder per representation key)."""


@store.command("info")
@_STORE_OPTION
@friendly_errors
def store_info(root):
    """One line per representation key: model, pooling, vectors, shards, size, last use."""
    from tfaudio.store import EmbeddingStore
    from tfaudio.store.maintenance import info

    cache = EmbeddingStore(root, on_problem=lambda message: click.echo(f"warning: {message}", err=True))
    rows = info(cache)
    click.echo(f"store: {cache.root}")
    if not rows:
        click.echo("  (empty)")
        return
    click.echo(f"  {'key':<16}  {'model':<20}  {'pooling':<9}  {'vectors':>8}  {'shards':>6}  {'size':>9}  last used")
    for row in rows:
        used = time.strftime("%Y-%m-%d", time.localtime(row.last_used))
        note = f"  ({row.quarantined} quarantined)" if row.quarantined else ""
        click.echo(f"  {row.key:<16}  {row.model[:20]:<20}  {row.pooling:<9}  {row.vectors:>8}  {row.shards:>6}  "
                   f"{size_text(row.bytes):>9}  {used}{note}")
    hint = [r.key for r in rows if r.shards > 16]
    if hint:
        click.echo(f"{len(hint)} key(s) have many small shards: `tfaudio store compact` merges them.")


@store.command("compact")
@_STORE_OPTION
@click.option("--key", "keys", multiple=True, help="Only this representation key (repeat for several).")
@friendly_errors
def store_compact(root, keys):
    """Merge each key's shards into a few large indexed ones (duplicates dropped). Safe while
    another tfaudio run writes to the store."""
    from tfaudio.store import EmbeddingStore
    from tfaudio.store.maintenance import compact

    cache = EmbeddingStore(root, on_problem=lambda message: click.echo(f"warning: {message}", err=True))
    for key, (before, after) in compact(cache, keys).items():
        click.echo(f"{key}: {before} shard(s) -> {after}")


@store.command("gc")
@_STORE_OPTION
@click.option("--key", "keys", multiple=True, help="Delete this representation key entirely (repeat for several).")
@click.option("--unused-days", type=DAYS, help="Delete keys no run has read for this many days.")
@click.option("--quarantined", is_flag=True, help="Delete the damaged shards that were moved aside.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@friendly_errors
def store_gc(root, keys, unused_days, quarantined, dry_run):
    """Delete what the store no longer needs: temporary files of interrupted writes (always), and
    on request whole keys, unused keys or quarantined shards."""
    from tfaudio.store import EmbeddingStore
    from tfaudio.store.maintenance import gc

    cache = EmbeddingStore(root)
    removed = gc(cache, keys=keys, unused_days=unused_days, quarantined=quarantined, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for path, size in removed:
        click.echo(f"{verb} {path} ({size_text(size)})")
    click.echo(f"{verb} {len(removed)} file(s), {size_text(sum(size for _, size in removed))}")
