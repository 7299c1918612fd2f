"""Building an index, and bringing it up to date when the archive grows or changes.

A build runs in four steps, under INDEX/.lock:

1. frame embeddings of every file, through `tfaudio.pipeline.run.run_embedding` (pooling
   "frames", output INDEX/embeddings/): the embedding store (or, on Beam, the earlier output)
   holds what an earlier or interrupted run computed, so nothing is computed twice;
2. the plan: the previous generation's shards whose files are all still there, unchanged, are
   kept as they are (vectors and graph); a shard that lost a file is written again without it
   (from its own vectors), and so is a small last shard that new files will fill;
3. new shards: each new file's frames become windows (`search.windows.file_windows`), written
   as float32 unit vectors, a window table and a file table, `shard_vectors` rows a shard;
4. graphs for the new shards (none when the whole index is smaller than `exact_below`
   vectors: exact search is fast there), then the header is swapped in by rename.

Nothing the previous header names is touched, so a kill -9 or a full disk at any point leaves
the previous index as it was; the files of a failed build are removed by the next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tfaudio import __version__
from tfaudio.data.dataset import Problem
from tfaudio.outputs import OutputError, check_writable
from tfaudio.pipeline.run import Progress, RunSettings, RunSummary
from tfaudio.search.ann import QUANTIZATIONS, AnnParams, build_graph
from tfaudio.search.index import (EMBEDDINGS, FORMAT, HEADER, SHARDS, SearchIndexError, build_lock, open_vectors,
                                  read_header, shard_path, shown, write_header)
from tfaudio.search.windows import WindowSpec, file_windows, window_spec


@dataclass(frozen=True)
class IndexConfig:
    """What an index holds and how it is searched.

    model: registry name; precision: "float32" or "bfloat16"; hop: seconds between windows (None:
    the model's frame hop); quantization: how graphs store vectors (f32, f16, bf16, i8);
    ann: graph parameters; shard_vectors: most vectors a shard holds (one graph each);
    exact_below: an index of fewer vectors gets no graphs (exact search only); strict: stop at
    the first unreadable file (local runner).
    """

    model: str = "yamnet"
    precision: str = "float32"
    hop: float | None = None
    quantization: str = "f16"
    ann: AnnParams = AnnParams()
    shard_vectors: int = 2_000_000
    exact_below: int = 50_000
    strict: bool = False


@dataclass
class BuildSummary:
    """What a build did. Files: added (new paths), changed (same path, other content), removed,
    unchanged; vectors: in the index now; shards kept / written; ann: the index has graphs;
    up_to_date: nothing changed, the index was left as it was; rebuilt: why nothing of the
    previous index was reused (None when it was, or there was none)."""

    index: str
    files: int = 0
    vectors: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    shards_kept: int = 0
    shards_written: int = 0
    ann: bool = False
    rebuilt: str | None = None
    up_to_date: bool = False
    embedding: RunSummary | None = None
    skipped: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    index_seconds: float = 0.0


def build_index(data, out, config: IndexConfig = IndexConfig(), settings: RunSettings = RunSettings(),
                progress: Progress | None = None) -> BuildSummary:
    """Build the index of `data` (a dataset: class folders, a flat folder, a manifest) at `out`,
    or bring the one there up to date. See the module for the steps.

    settings: where the embedding runs (runner, workers, store); its precision is config's.
    Raises SearchIndexError (another build running, an unusable --hop or quantization) and
    OutputError (out not writable, a full disk: the previous index stays usable).
    """
    from tfaudio.models.registry import get
    from tfaudio.pipeline.local import EmbedConfig
    from tfaudio.pipeline.run import run_embedding
    from tfaudio.store import FRAMES, MANIFEST

    start = time.perf_counter()
    out = check_writable(Path(out))
    if config.quantization not in QUANTIZATIONS:
        raise SearchIndexError(f"unknown quantization {config.quantization!r}; choose one of "
                               f"{', '.join(QUANTIZATIONS)}")
    spec = window_spec(get(config.model), config.hop)  # a bad --hop fails before any work
    settings = replace(settings, file_format="parquet", precision=config.precision)
    summary = BuildSummary(str(out))
    with build_lock(out):
        previous = published = _previous(out, summary)  # published: what readers use until the swap
        _remove_unnamed(out, [published])
        embed_config = EmbedConfig(pooling=FRAMES, strict=config.strict)
        run = next(iter(run_embedding(data, [config.model], out / EMBEDDINGS, embed_config, settings, progress)))
        summary.embedding, summary.skipped = run, list(run.skipped)
        folder = Path(run.output)
        manifest = json.loads((folder / MANIFEST).read_text())
        header = _new_header(config, settings, spec, manifest, data, previous)
        if previous is not None and summary.rebuilt is None:
            summary.rebuilt = _incompatible(previous, header)
        if summary.rebuilt:
            previous = None
        index_start = time.perf_counter()
        try:
            _write_generation(out, folder, manifest, header, previous, spec, config, summary, _paths(data, settings),
                              progress)
        except OSError as err:
            _remove_unnamed(out, [published])
            raise OutputError(f"{shown(out)}: the index could not be written ({err.strerror or err}); the previous "
                              "index is unchanged") from None
        _remove_unnamed(out, [header, published])
        summary.index_seconds = time.perf_counter() - index_start
    summary.seconds = time.perf_counter() - start
    return summary


def _previous(out: Path, summary: BuildSummary) -> dict | None:
    """The current header, or None (no index yet, or one that cannot be read: rebuilt whole)."""
    if not (out / HEADER).exists():
        return None
    try:
        return read_header(out)
    except SearchIndexError as err:
        summary.rebuilt = f"the previous index could not be read ({err})"
        return None


def _new_header(config: IndexConfig, settings: RunSettings, spec: WindowSpec, manifest: dict, data, previous):
    return {
        "format": FORMAT, "tfaudio": __version__, "model": config.model, "precision": config.precision,
        "identity": manifest["representation"], "key": manifest["key"], "store": settings.store,
        "data": str(data) if "://" in str(data) else str(Path(data).resolve()), "hop": spec.hop, "frame_hop": spec.frame_hop, "frame_span": spec.frame_span,
        "frames_per_window": spec.frames, "dim": manifest["dim"], "quantization": config.quantization,
        "ann": None, "ann_params": vars(config.ann).copy(), "exact_below": config.exact_below,
        "generation": (previous or {}).get("generation", 0) + 1, "files": 0, "vectors": 0, "shards": [],
        "skipped": manifest.get("skipped", []),
    }


def _incompatible(previous: dict, header: dict) -> str | None:
    """Why nothing of the previous index can be reused (None: its shards can be kept)."""
    for name, what in (("key", "the model, its weights or precision"), ("frames_per_window", "the hop"),
                       ("quantization", "the quantization"), ("ann_params", "the ANN parameters"), ("dim", "dim")):
        if previous.get(name) != header[name]:
            return f"{what} changed"
    return None


def _paths(data, settings: RunSettings) -> dict[str, str]:
    """The output's file names (relative to the dataset) -> the files' paths."""
    from tfaudio.data.dataset import load_dataset

    if "://" in str(data):
        return {}
    dataset = load_dataset(data, group_column=settings.group_column, labelled=False)
    return {dataset.relative(clip): str(clip.path) for clip in dataset.clips}


def _output_files(folder: Path, manifest: dict, paths: dict[str, str]) -> dict[str, str]:
    """path -> content sha256 of every file in the frame output."""
    import pyarrow.parquet as pq

    files = {}
    for shard in manifest["shards"]:
        table = pq.read_table(folder / shard["name"], columns=["file", "audio_sha256"]).to_pandas().drop_duplicates()
        for file, digest in table.itertuples(index=False):
            files[paths.get(file, file)] = digest
    return files


# Long on purpose: the plan (which shards stay, which files are new) and its accounting read best in one place.
def _write_generation(out, folder, manifest, header, previous, spec, config, summary, paths, progress) -> None:
    import pandas as pd

    current = _output_files(folder, manifest, paths)
    old_shards = (previous or {}).get("shards", [])
    tables = [pd.read_parquet(shard_path(out, shard["name"], "files")) for shard in old_shards]
    indexed = {f: d for files in tables for f, d in zip(files["file"], files["sha256"])}
    adding = any(indexed.get(f) != d for f, d in current.items())
    kept, pending = [], []
    for number, (shard, files) in enumerate(zip(old_shards, tables)):
        whole = all(current.get(f) == d for f, d in zip(files["file"], files["sha256"]))
        small_last = adding and number == len(old_shards) - 1 and shard["rows"] < config.shard_vectors // 4
        (kept if whole and not small_last else pending).append(shard)
    summary.removed = sum(f not in current for f in indexed)
    summary.changed = sum(f in current and current[f] != d for f, d in indexed.items())
    summary.added = sum(f not in indexed for f in current)
    summary.unchanged = sum(current.get(f) == d for f, d in indexed.items())
    wants_ann = sum(s["rows"] for s in kept) >= config.exact_below
    if previous is not None and not pending and not adding and bool(previous.get("ann")) == wants_ann:
        summary.up_to_date = True
        summary.files, summary.vectors, summary.ann = previous["files"], previous["vectors"], bool(previous["ann"])
        summary.shards_kept = len(kept)
        return
    writer = _ShardWriter(out, header, config.shard_vectors)
    carried = set()
    for shard in pending:  # what stays of a shard that lost files, or of a small last one
        windows = pd.read_parquet(shard_path(out, shard["name"], "windows"))
        files = pd.read_parquet(shard_path(out, shard["name"], "files")).set_index("file")
        vectors = open_vectors(out, shard, header["dim"])
        for file, rows in windows.groupby("file", sort=False).indices.items():
            if current.get(file) == files.at[file, "sha256"]:
                carried.add(file)
                facts = {**files.loc[file].to_dict(), "file": file}
                writer.add(facts, vectors[rows], windows["start"].to_numpy()[rows], windows["end"].to_numpy()[rows])
    todo = {f: d for f, d in current.items() if f not in carried and indexed.get(f) != d}
    for file, digest, frames in _new_frames(folder, manifest, paths, todo):
        about = _file_facts(file, digest)
        vectors, starts, ends = file_windows(frames, spec, about["duration"])
        writer.add(about, vectors, starts, ends)
    written = writer.close()
    shards = kept + written
    vectors = sum(s["rows"] for s in shards)
    header["ann"] = vars(config.ann).copy() if vectors >= config.exact_below else None
    graphs = [s for s in shards if header["ann"] and not s.get("ann")]
    with progress(sum(s["rows"] for s in graphs), "index") if progress and graphs else contextlib.nullcontext() as bar:
        for shard in graphs:
            vectors_of = open_vectors(out, shard, header["dim"])
            update = bar.update if bar is not None else None
            shard.update(build_graph(vectors_of, shard_path(out, shard["name"], "ann"), config.quantization, config.ann,
                                     update))
    if not header["ann"]:
        for shard in shards:
            for name in ("ann", "ann_bytes", "ann_digest"):
                shard.pop(name, None)
    header.update(shards=shards, vectors=vectors, files=len(current))
    write_header(out, header)
    summary.files, summary.vectors, summary.ann = header["files"], vectors, bool(header["ann"])
    summary.shards_kept, summary.shards_written = len(kept), len(written)


def _new_frames(folder: Path, manifest: dict, paths: dict[str, str], todo: dict[str, str]):
    """(path, sha256, frames float32 [n, dim]) of each file in `todo` (path -> sha256), read from
    the frame output one shard at a time (a file's frames are all in one shard)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not todo:
        return
    wanted = {name for name, path in paths.items() if path in todo} | {p for p in todo if p not in paths.values()}
    for shard in manifest["shards"]:
        path = folder / shard["name"]
        names = pq.read_table(path, columns=["file"]).column("file")
        if not pc.any(pc.is_in(names, value_set=_arrow_strings(wanted))).as_py():
            continue
        table = pq.read_table(path)
        table = table.filter(pc.is_in(table.column("file"), value_set=_arrow_strings(wanted)))
        columns = [c for c in table.column_names if c[:1] == "e" and c[1:].isdigit()]
        matrix = np.stack([table.column(c).to_numpy() for c in columns], axis=1).astype(np.float32)
        file = table.column("file").to_numpy(zero_copy_only=False)
        order = np.lexsort((table.column("frame").to_numpy(), file))
        file, matrix = file[order], matrix[order]
        bounds = np.flatnonzero(np.r_[True, file[1:] != file[:-1], True])
        for begin, end in zip(bounds[:-1], bounds[1:]):
            full = paths.get(file[begin], file[begin])
            if full in todo:
                yield full, todo.pop(full), matrix[begin:end]


def _arrow_strings(values):
    import pyarrow as pa

    return pa.array(sorted(values), pa.string())


def _file_facts(path: str, digest: str) -> dict:
    """What the file table records of a file: its sha256, size and modification time (to tell a
    changed file cheaply), and its duration (to cut the last window)."""
    from tfaudio.data.audio import AudioError, info

    stat = os.stat(path)
    try:
        duration = info(path).duration
    except AudioError:
        duration = None
    return {"file": path, "sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "duration": duration}


class _ShardWriter:
    """Windows into new shards of at most `rows` vectors each: vectors appended to `<name>.f32`,
    tables written when a shard is full."""

    def __init__(self, out: Path, header: dict, rows: int):
        self.out, self.header, self.rows = out, header, rows
        (out / SHARDS).mkdir(exist_ok=True)
        self.shards: list[dict] = []
        self._open = None

    def add(self, facts, vectors: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        """One file's windows (facts: its file-table row), split across shards where one fills (a
        file without windows is left out)."""
        done = 0
        while done < len(vectors):
            if self._open is None:
                self._start()
            state = self._open
            take = min(self.rows - state["count"], len(vectors) - done)
            state["handle"].write(np.ascontiguousarray(vectors[done : done + take], np.float32).tobytes())
            state["windows"].append(_window_rows(facts, starts[done : done + take], ends[done : done + take]))
            state["files"].append({**facts, "windows": take})
            state["count"] += take
            done += take
            if state["count"] >= self.rows:
                self._finish()

    def _start(self) -> None:
        name = f"{self.header['generation']:06d}-{uuid.uuid4().hex[:8]}"
        handle = open(shard_path(self.out, name, "vectors"), "wb")
        self._open = {"name": name, "handle": handle, "windows": [], "files": [], "count": 0}

    def _finish(self) -> None:
        import pandas as pd

        state, self._open = self._open, None
        state["handle"].flush()
        os.fsync(state["handle"].fileno())
        state["handle"].close()
        windows = pd.concat(state["windows"], ignore_index=True)
        _write_parquet(windows, shard_path(self.out, state["name"], "windows"))
        _write_parquet(pd.DataFrame(state["files"]), shard_path(self.out, state["name"], "files"))
        self.shards.append({"name": state["name"], "rows": state["count"], "files": len(state["files"]),
                            "vectors_bytes": state["count"] * self.header["dim"] * 4})

    def close(self) -> list[dict]:
        if self._open is not None:
            self._finish()
        return self.shards


def _window_rows(facts, starts: np.ndarray, ends: np.ndarray):
    import pandas as pd

    return pd.DataFrame({"file": facts["file"], "sha256": facts["sha256"], "start": np.asarray(starts, np.float64),
                         "end": np.asarray(ends, np.float64)})


def _write_parquet(frame, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(temporary, index=False)
    os.replace(temporary, path)


def _remove_unnamed(out: Path, headers: list[dict | None]) -> None:
    """Remove shard files (and temporary files) no header in `headers` names: what a failed or
    superseded build left."""
    named = {s["name"] for h in headers if h for s in h.get("shards", [])}
    folder = out / SHARDS
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name.split(".")[0] not in named:
            with contextlib.suppress(OSError):
                path.unlink()
