"""Archive-scale extraction, measured side by side in one run:

1. throughput (audio seconds per wall second) of the local path (`embed_to_folder`) and of the
   Beam path on FnApiRunner with 1 and 2 worker processes, on the same generated archive (short
   clips of many lengths and one long file), after checking that Beam's vectors equal local's;
2. how a cached re-run's time grows with the store: N clips re-run from a store holding only
   them, then from one that also holds M other 1024-d vectors (as written, and compacted);
3. peak RSS of `tfaudio embed`, `tfaudio features` and tagging on a dataset holding a 1-hour and
   a 2-hour file (whole processes), and RSS growth between a 15-minute and a 60-minute file.

    python benchmarks/archive_scale.py                  # YAMNet from ../shared, the full sizes
    python benchmarks/archive_scale.py --quick          # smaller sizes, a few minutes
    python benchmarks/archive_scale.py --model handcrafted --skip beam,memory
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SR = 16000


def write_long(path: Path, minutes: float, seed: int = 0) -> Path:
    """A mono 16 kHz PCM file of tones in noise, written 10 s at a time (flat memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(10 * SR) / SR
    with sf.SoundFile(path, "w", SR, 1, "PCM_16") as out:
        for block in range(int(round(minutes * 6))):
            wave = 0.2 * np.sin(2 * np.pi * (200 + 40 * (block % 9)) * t) + 0.05 * rng.standard_normal(len(t))
            out.write(wave.astype(np.float32))
    return path


def make_archive(folder: Path, clips: int, long_minutes: float) -> float:
    """Clips of 1-30 s in 4 classes plus one long file; returns the audio seconds."""
    rng = np.random.default_rng(0)
    total = 0.0
    for i in range(clips):
        seconds = float(rng.uniform(1, 30))
        t = np.arange(int(seconds * SR)) / SR
        wave = 0.3 * np.sin(2 * np.pi * (150 + 100 * (i % 4)) * t) + 0.02 * rng.standard_normal(len(t))
        path = folder / f"class{i % 4}" / f"clip{i:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave.astype(np.float32), SR, subtype="PCM_16")
        total += seconds
    write_long(folder / "class0" / "long.wav", long_minutes)
    return total + long_minutes * 60


def resolve_model(name: str):
    from tfaudio.models import registry

    return registry.get(name)


def throughput(args, tmp: Path) -> None:
    from tfaudio.data.dataset import load_dataset
    from tfaudio.pipeline.local import embed_to_folder
    from tfaudio.store import EmbeddingStore, read_embeddings

    archive = tmp / "archive"
    seconds = make_archive(archive, args.clips, args.long_minutes)
    data = load_dataset(archive)
    print(f"\n== throughput: {len(data)} clips, {seconds / 60:.1f} min of audio, model {args.model}")
    model = resolve_model(args.model)
    begin, cpu = time.perf_counter(), time.process_time()
    folder, stats = embed_to_folder(data, model, tmp / "local", EmbeddingStore(tmp / "store-local"))
    local_wall, cpu = time.perf_counter() - begin, time.process_time() - cpu
    local = read_embeddings(folder).sort_values("file").reset_index(drop=True)
    print(f"local          {seconds / local_wall:8.0f} x real time  ({local_wall:.1f} s wall, model load included; "
          f"{seconds / cpu:.0f} audio seconds per CPU second, all threads)")
    if "beam" in args.skip:
        return
    try:
        from tfaudio.pipeline.beam import run_beam
    except ImportError as err:
        print(f"beam: skipped ({err})")
        return
    weights = getattr(model, "source", None)
    for workers in (1, 2):
        out = tmp / f"beam{workers}"
        begin = time.perf_counter()
        run_beam(archive, args.model, out, runner="direct", num_workers=workers,
                 weights_path=weights if weights not in (None, "computed") else None)
        wall = time.perf_counter() - begin
        beam = read_embeddings(out, args.model).sort_values("file").reset_index(drop=True)
        columns = [c for c in local.columns if c.startswith("e")]
        assert list(beam["file"]) == list(local["file"]), "Beam and local embedded different clips"
        gap = float(np.abs(beam[columns].to_numpy() - local[columns].to_numpy()).max())
        print(f"beam {workers} worker{'s' if workers > 1 else ' '} {seconds / wall:8.0f} x real time  "
              f"({wall:.1f} s wall, start-up included; largest difference to local {gap:.1e})")


def store_scaling(args, tmp: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from test_store_index import Mean, _cached_rerun_seconds, _clips, fill

    from tfaudio.data.dataset import load_dataset
    from tfaudio.pipeline.local import embed_dataset, plan_embedding
    from tfaudio.store import EmbeddingStore
    from tfaudio.store.maintenance import compact

    n, others = args.store_clips, args.store_others
    print(f"\n== cached re-run of {n} clips (1024-d vectors) as the store grows")
    _clips(tmp / "clips", n)
    data = load_dataset(tmp / "clips")
    key = plan_embedding(data, Mean()).key
    for root in ("alone", "crowded"):
        embed_dataset(data, Mean(), EmbeddingStore(tmp / root))
    alone = _cached_rerun_seconds(data, tmp / "alone")
    print(f"store of {n:>7} vectors: {alone * 1000:7.0f} ms")
    filled = 0
    for target in (others // 10, others):
        fill(EmbeddingStore(tmp / "crowded"), target - filled, 256, dim=1024, salt=f"other{target}", key=key)
        filled = target
        busy = _cached_rerun_seconds(data, tmp / "crowded")
        print(f"store of {n + filled:>7} vectors: {busy * 1000:7.0f} ms  ({busy / alone:.2f}x)")
    compact(EmbeddingStore(tmp / "crowded"))
    busy = _cached_rerun_seconds(data, tmp / "crowded")
    print(f"... after compaction:      {busy * 1000:7.0f} ms  ({busy / alone:.2f}x)")


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of a whole child process."""
    begin = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise RuntimeError(f"{' '.join(command)} failed: {child.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - begin


_TAG = """
import sys
from tfaudio.models import registry
from tfaudio.models.yamnet.tagging import score_file
model = registry.get("yamnet").loaded()
for path in sys.argv[1:]:
    patches = sum(len(block) for block in score_file(path, model).blocks)
"""


def memory(args, tmp: Path) -> None:
    print("\n== peak RSS of whole processes (MB)")
    cli = [sys.executable, "-m", "tfaudio.cli"]
    hours = tmp / "hours"
    for minutes in args.hours:
        write_long(hours / "a" / f"long{minutes:g}.wav", minutes, seed=int(minutes))
    runs = {
        f"embed --model {args.model}": cli + ["embed", str(hours), "--model", args.model, "--out", str(tmp / "o"),
                                              "--store", str(tmp / "s")],
        "features": cli + ["features", str(hours), "--out", str(tmp / "f.parquet")],
    }
    if (SHARED / "models" / "yamnet").exists() or "TFAUDIO_MODELS" in os.environ:
        runs["tag (score_file)"] = [sys.executable, "-c", _TAG, *map(str, sorted(hours.rglob("*.wav")))]
    label = " + ".join(f"{m / 60:g} h" for m in args.hours)
    for name, command in runs.items():
        peak, wall = peak_rss_mb(command)
        print(f"{name:<24} {label}: {peak:7.0f} MB  ({wall:.0f} s)")
    peaks = {}
    for minutes in (15, 60):
        folder = tmp / f"only{minutes}"
        write_long(folder / "a" / "long.wav", minutes)
        peaks[minutes], _ = peak_rss_mb(cli + ["embed", str(folder), "--model", args.model, "--out",
                                               str(tmp / f"o{minutes}"), "--store", str(tmp / f"s{minutes}")])
    print(f"embed, 15-min vs 60-min file: {peaks[15]:.0f} vs {peaks[60]:.0f} MB (growth {peaks[60] - peaks[15]:+.0f} MB)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yamnet")
    parser.add_argument("--quick", action="store_true", help="smaller archive, store and files")
    parser.add_argument("--skip", default="", help="comma-separated: throughput, beam, store, memory")
    args = parser.parse_args(argv)
    args.skip = set(filter(None, args.skip.split(",")))
    args.clips, args.long_minutes = (40, 3.0) if args.quick else (120, 20.0)
    args.store_clips, args.store_others = (320, 10_000) if args.quick else (3_200, 100_000)
    args.hours = (15.0, 30.0) if args.quick else (60.0, 120.0)
    if "TFAUDIO_MODELS" not in os.environ and (SHARED / "models").exists():
        os.environ["TFAUDIO_MODELS"] = str(SHARED / "models")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="tfaudio-archive-") as tmp:
        tmp = Path(tmp)
        if "throughput" not in args.skip:
            throughput(args, tmp)
        if "store" not in args.skip:
            store_scaling(args, tmp)
        if "memory" not in args.skip:
            memory(args, tmp)


if __name__ == "__main__":
    main()
