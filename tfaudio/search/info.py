"""What `tfaudio index info` says of an index: its header and its files on disk, in lines."""

from __future__ import annotations

import os
from pathlib import Path

from tfaudio.search.index import EMBEDDINGS, shard_path, shown


def describe(folder: Path, header: dict, missing: list[str] | None, building: bool) -> list[str]:
    """Lines of text about the index at `folder` (header: its header). missing: indexed files gone
    or changed (None: not looked for); building: a build is running now."""
    shards = header["shards"]
    vectors = sum(_size(shard_path(folder, s["name"], "vectors")) for s in shards)
    tables = sum(_size(shard_path(folder, s["name"], kind)) for s in shards for kind in ("windows", "files"))
    graphs = sum(_size(shard_path(folder, s["name"], "ann")) for s in shards)
    frames = _tree_size(folder / EMBEDDINGS)
    count = max(header["vectors"], 1)
    ann = header.get("ann")
    lines = [
        f"index:        {shown(folder)} (generation {header['generation']}, tfaudio {header['tfaudio']})",
        f"model:        {header['model']} ({header['precision']}), dim {header['dim']}",
        f"windows:      {_window_length(header):.2f} s every {header['hop']:g} s ({header['frames_per_window']} model "
        f"frame(s) each)",
        f"files:        {header['files']}, {len(header.get('skipped', []))} skipped at build",
        f"vectors:      {header['vectors']} in {len(shards)} shard(s)",
    ]
    if ann:
        lines.append(f"search:       approximate (usearch HNSW, {header['quantization']}, connectivity "
                     f"{ann['connectivity']}, expansion add {ann['expansion_add']} / search "
                     f"{ann['expansion_search']}) and exact")
    else:
        lines.append(f"search:       exact only (fewer than {header.get('exact_below', 0)} vectors: no ANN graph)")
    lines += [
        f"disk:         vectors {_bytes(vectors)} ({vectors / count:.0f} B/vector), graphs {_bytes(graphs)} "
        f"({graphs / count:.0f} B/vector), tables {_bytes(tables)}, frame embeddings {_bytes(frames)}",
    ]
    if missing is not None:
        lines.append(f"missing:      {len(missing)} file(s) gone or changed since the build"
                     + (" (run tfaudio index build again)" if missing else ""))
        lines += [f"  {shown(file)}" for file in missing[:20]]
        if len(missing) > 20:
            lines.append(f"  ... and {len(missing) - 20} more")
    running = "running now (searches use the generation above)" if building else "none running"
    lines.append(f"build:        {running}")
    return lines


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        total += sum(_size(Path(root) / name) for name in files)
    return total


def _bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"


def _window_length(header: dict) -> float:
    """Seconds of audio one indexed window covers: its frames' hops plus what the last frame sees."""
    return (header["frames_per_window"] - 1) * header["frame_hop"] + header["frame_span"]
