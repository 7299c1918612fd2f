"""The output formats of `tfaudio embed`: one table of how vectors are written and read back.

| name (`--format`) | files           | one file for a small pooled output | written / read by          |
|-------------------|-----------------|------------------------------------|----------------------------|
| parquet           | .parquet        | yes: `<model>.parquet`             | pyarrow.parquet            |
| shards            | .parquet        | no: always `<model>/part-NNNNN`    | pyarrow.parquet            |
| tfrecord          | .tfrecord       | no                                 | tf.train.Example records   |

Every writer and reader of outputs goes through `FORMATS`: the local runner's and the Beam
runner's shards, the single file of a small run, resuming from an earlier output, and
`tfaudio.store.read_embeddings`; the CLI's `--format` choices are its names. A file's format is
known from its suffix (`format_of`).

A format writes and reads a pyarrow table of output rows: `file, label, fold, group,
audio_sha256`, for frame rows `frame` (index in the clip) and `start` (seconds), then the vector
as float32 columns `e0000, e0001, ...`; schema metadata (a single file's stamp) is kept by
formats that write one file. A TFRecord holds one `tf.train.Example` per row with those fields,
the vector as one float list `embedding` (a missing fold is -1, a missing group ""). pyarrow and
TensorFlow are imported only when a file is written or read.

What is read is checked (`check_rows`): a file whose vectors have the wrong length or values
that are not finite is damaged (`DamagedOutput`, naming it), never passed on as vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.errors import TfaudioError

if TYPE_CHECKING:
    import pyarrow as pa

#: Pooled vectors of up to this many clips go to one file (80 MB for 1024-d vectors) in a format
#: that writes one; more, or frame rows, stream into shards so memory never holds the whole output.
SINGLE_FILE_CLIPS = 20_000
#: The columns before the vector (frame rows add "frame" and "start").
ROW_COLUMNS = ("file", "label", "fold", "group", "audio_sha256")
_FRAME_COLUMNS = ("frame", "start")


@dataclass(frozen=True)
class OutputFormat:
    """One way to write embedding outputs (`tfaudio embed --format <name>`).

    suffix: of every file it writes. write(path, table): one file of output rows (a pyarrow
    Table) at `path`, which the caller renames into place. read(path, columns): one file back
    as its table (columns None: all). batches(path): its rows as pyarrow RecordBatches, in the
    memory of one batch where the format allows. single_file: a pooled output of up to
    SINGLE_FILE_CLIPS clips goes to one file `<model><suffix>` rather than a folder of shards.
    """

    name: str
    suffix: str
    write: Callable[[Path, pa.Table], None]
    read: Callable[[Path, Sequence[str] | None], pa.Table]
    batches: Callable[[Path], Iterator[pa.RecordBatch]]
    single_file: bool
    help: str


def is_vector_column(name: str) -> bool:
    """Whether an output column holds one value of the vector (`e0000`, `e0001`, ...)."""
    return name[:1] == "e" and name[1:].isdigit()


class DamagedOutput(TfaudioError, ValueError):
    """An output file that cannot be read as vectors, or holds wrong ones; the message names
    it and how to get a good one (run `tfaudio embed` again: it rewrites a damaged output)."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: damaged embedding output ({problem}); run `tfaudio embed` again to rewrite it")


def check_rows(rows: pa.Table | pa.RecordBatch, path: Path, dim: int | None = None,
               count: int | None = None) -> None:
    """Raise DamagedOutput unless the output rows read from `path` hold `dim` vector columns
    (None: any number, at least one), `count` rows (None: any) and only finite values. A single
    file of frame rows (`EmbeddingTable.write`) holds its vectors as one list column `vector`."""
    import pyarrow.compute as pc

    names = [name for name in rows.schema.names if is_vector_column(name)]
    if not names and "vector" in rows.schema.names and dim is None:
        columns = [("vector", pc.list_flatten(rows.column("vector")))]
    else:
        if not names or (dim is not None and len(names) != dim):
            raise DamagedOutput(path, f"{len(names)} vector values per row where {dim or 'some'} are expected")
        columns = [(name, rows.column(name)) for name in names]
    if count is not None and rows.num_rows != count:
        raise DamagedOutput(path, f"{rows.num_rows} rows where the manifest lists {count}")
    for name, values in columns:
        # Nulls read as NaN: a missing value is as wrong as a NaN one.
        if not np.isfinite(values.to_numpy(zero_copy_only=False)).all():
            raise DamagedOutput(path, f"values that are not finite (NaN or inf) or missing in column {name}")


# -- Parquet ----------------------------------------------------------------------------------------


def _write_parquet(path: Path, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def _read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=None if columns is None else list(columns))


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).iter_batches()


# -- TFRecord ---------------------------------------------------------------------------------------


def _write_tfrecord(path: Path, table: pa.Table) -> None:
    """One tf.train.Example per row: strings as bytes, fold / frame as int64 (a missing fold
    -1), start as a float, the vector columns as one float list `embedding`."""
    from tfaudio.quiet import import_tensorflow_quietly

    tf = import_tensorflow_quietly()
    columns = table.to_pydict()
    names = [c for c in table.column_names if is_vector_column(c)]
    vectors = np.stack([np.asarray(columns[c], np.float32) for c in names], axis=1) if names else None
    feature = tf.train.Feature
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in range(table.num_rows):
            fields = {
                name: feature(bytes_list=tf.train.BytesList(value=[(columns[name][row] or "").encode()]))
                for name in ("file", "label", "group", "audio_sha256") if name in columns
            }
            fold = columns["fold"][row]
            fields["fold"] = feature(int64_list=tf.train.Int64List(value=[-1 if fold is None else fold]))
            if "frame" in columns:
                fields["frame"] = feature(int64_list=tf.train.Int64List(value=[columns["frame"][row]]))
                fields["start"] = feature(float_list=tf.train.FloatList(value=[columns["start"][row]]))
            if vectors is not None:
                fields["embedding"] = feature(float_list=tf.train.FloatList(value=vectors[row]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=fields)).SerializeToString())


def _read_tfrecord(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The rows `_write_tfrecord` wrote, as the Parquet shards hold them (the same columns and
    types; the vector back in `e0000, ...` columns, float32 as written)."""
    import pyarrow as pa

    from tfaudio.quiet import import_tensorflow_quietly

    tf = import_tensorflow_quietly()
    values: dict[str, list] = {}
    vectors = []
    for record in tf.data.TFRecordDataset([str(path)]):
        fields = tf.train.Example.FromString(record.numpy()).features.feature
        for name in (*ROW_COLUMNS, *_FRAME_COLUMNS):
            if name in fields:
                values.setdefault(name, []).append(_field_value(name, fields[name]))
        vectors.append(np.asarray(fields["embedding"].float_list.value, np.float32))
    types = {"fold": pa.int64(), "frame": pa.int64(), "start": pa.float64()}
    arrays = {name: pa.array(column, types.get(name, pa.string())) for name, column in values.items()}
    matrix = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
    for i in range(matrix.shape[1]):
        arrays[f"e{i:04d}"] = pa.array(matrix[:, i])
    table = pa.table(arrays)
    return table if columns is None else table.select(list(columns))


def _field_value(name: str, field):
    """One written field back as the Parquet shards hold it (fold -1 and group "" as missing)."""
    if name in ("fold", "frame"):
        value = int(field.int64_list.value[0])
        return None if name == "fold" and value == -1 else value
    if name == "start":
        return float(field.float_list.value[0])
    text = field.bytes_list.value[0].decode()
    return None if name == "group" and not text else text


def _tfrecord_batches(path: Path) -> Iterator[pa.RecordBatch]:
    # A TFRecord file has no row groups: one shard's rows (what a shard was written from) at a time.
    return iter(_read_tfrecord(path).to_batches())


# -- the table --------------------------------------------------------------------------------------

FORMATS: dict[str, OutputFormat] = {
    fmt.name: fmt
    for fmt in (
        OutputFormat("parquet", ".parquet", _write_parquet, _read_parquet, _parquet_batches, single_file=True,
                     help=f"one <model>.parquet of pooled vectors (up to {SINGLE_FILE_CLIPS:,} clips), else shards "
                          "of Parquet"),
        OutputFormat("shards", ".parquet", _write_parquet, _read_parquet, _parquet_batches, single_file=False,
                     help="<model>/part-NNNNN.parquet written as the run goes"),
        OutputFormat("tfrecord", ".tfrecord", _write_tfrecord, _read_tfrecord, _tfrecord_batches, single_file=False,
                     help="<model>/part-NNNNN.tfrecord of tf.train.Examples"),
    )
}


def output_format(name: str) -> OutputFormat:
    """The format called `name`; ValueError naming the choices for another name."""
    if name not in FORMATS:
        raise ValueError(f"unknown output format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def format_of(path: str | Path) -> OutputFormat:
    """The format that reads the file at `path`, by its suffix (the first of the table's with
    it); ValueError for a file no format writes."""
    suffix = Path(str(path)).suffix.lower()
    for fmt in FORMATS.values():
        if fmt.suffix == suffix:
            return fmt
    raise ValueError(f"{path}: not an embedding output file (known suffixes: "
                     f"{', '.join(sorted({f.suffix for f in FORMATS.values()}))})")
