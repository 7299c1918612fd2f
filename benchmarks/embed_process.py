"""A whole `tfaudio embed` process with an empty embedding store: this checkout against an
earlier revision, as whole processes side by side (start-up, tracing, decoding, the model and
the exit all count, as they do for a user).

    python benchmarks/embed_process.py                      # ESC-10, yamnet, against 5a13e64
    python benchmarks/embed_process.py --baseline REV --repeats 7 --model handcrafted

The baseline is the revision before the speed work of issue 13 (5a13e64), extracted with
`git archive` into a temporary folder (the repository is only read) and run with the same
virtual environment, through its own console entry point. Every run gets a new, empty store.
Before any ratio is printed the two sides' vectors are compared: the same clips in the same
order, and the largest absolute difference is printed (0.0 expected: the speed work changes
no arithmetic). Sides alternate, one untimed run of each first (page cache, .pyc files), and
the medians are reported.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# How each side is started, as its console script would be: the baseline's `main()` ended in a
# normal interpreter exit; this checkout's entry point is `run()`.
ENTRY = {
    "baseline": "import sys; from tfaudio.cli import main; sys.exit(main())",
    "current": "from tfaudio.cli.main import run; run()",
}


def extract(revision: str, into: Path) -> Path:
    """The tfaudio package at `revision`, written under `into` (git archive; the repo is only read)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", revision, "tfaudio"],
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def embed(side: str, root: Path, data: Path, model: str, work: Path, env: dict[str, str]) -> tuple[float, float, Path]:
    """(wall seconds, CPU seconds, output parquet) of one whole `tfaudio embed` process with an
    empty store. CPU seconds are the cross-check on a shared machine, where other processes'
    load stretches the wall time."""
    shutil.rmtree(work, ignore_errors=True)
    out = work / "out"
    command = [sys.executable, "-c", ENTRY[side], "embed", str(data), "--model", model, "--out", str(out),
               "--store", str(work / "store")]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, check=False, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True, cwd=work.parent)
    seconds = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{side} embed failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return seconds, cpu, out / f"{model}.parquet"


def vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """(files, float32 [clips, dim]) of a pooled `embed` output."""
    table = pq.read_table(path)
    columns = [name for name in table.column_names if name.startswith("e") and name[1:].isdigit()]
    return table.column("file").to_pylist(), np.stack([table.column(c).to_numpy() for c in columns], axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "esc10")
    parser.add_argument("--models", default=str(SHARED / "models"), help="TFAUDIO_MODELS (yamnet.h5)")
    parser.add_argument("--model", default="yamnet")
    parser.add_argument("--baseline", default="5a13e64", help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side, alternating (median shown)")
    args = parser.parse_args(argv)
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found; this benchmark needs ESC-10 (../shared/datasets/esc10)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        roots = {"baseline": extract(args.baseline, tmp / "baseline"), "current": REPO}
        env = {**os.environ, "TFAUDIO_HOME": str(tmp / "home"), "TFAUDIO_MODELS": args.models, "TFAUDIO_OFFLINE": "1",
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("PYTHONPATH", None)

        # Untimed runs of each side first; their outputs are the correctness check.
        outputs = {side: embed(side, root, args.data, args.model, tmp / f"warm-{side}", env)[2]
                   for side, root in roots.items()}
        (files_a, a), (files_b, b) = vectors(outputs["baseline"]), vectors(outputs["current"])
        if files_a != files_b or a.shape != b.shape:
            raise SystemExit(f"the sides embed different clips ({len(files_a)} against {len(files_b)}): no timing printed")
        difference = float(np.max(np.abs(a - b))) if a.size else 0.0
        print(f"{args.model}: {a.shape[0]} clips x {a.shape[1]}, largest difference between the sides {difference:.3g}")
        if difference > 1e-4:
            raise SystemExit("the sides' vectors differ: no timing printed")

        wall, cpu = {side: [] for side in roots}, {side: [] for side in roots}
        for repeat in range(args.repeats):
            for side, root in roots.items():
                seconds, cpu_seconds, _ = embed(side, root, args.data, args.model, tmp / f"run-{side}", env)
                wall[side].append(seconds)
                cpu[side].append(cpu_seconds)
                print(f"  {side:8s} run {repeat + 1}: {seconds:5.2f} s wall, {cpu_seconds:5.2f} s CPU", flush=True)
        print(f"cores: {len(os.sched_getaffinity(0))}, load average at the end: {os.getloadavg()[0]:.1f} "
              "(other processes share these cores; the sides alternate so they share the load)")
        for side in roots:
            label = args.baseline if side == "baseline" else "this checkout"
            print(f"{side:8s} ({label}): median {statistics.median(wall[side]):5.2f} s wall (min "
                  f"{min(wall[side]):.2f}, max {max(wall[side]):.2f}), {statistics.median(cpu[side]):5.2f} s CPU, "
                  f"of {args.repeats}")
        ratio = statistics.median(wall["baseline"]) / statistics.median(wall["current"])
        cpu_ratio = statistics.median(cpu["baseline"]) / statistics.median(cpu["current"])
        print(f"speed-up of a whole embed process: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU")


if __name__ == "__main__":
    main()
