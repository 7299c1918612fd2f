"""`tfaudio compare` with cached embeddings: scikit-learn fits as before (every BLAS pool
free to take every core, splits one after the other) against now (one BLAS thread per fit,
independent splits in parallel processes), as whole processes side by side.

Before any ratio is printed the metrics are checked: the new code gives byte-identical
metrics.json under OPENBLAS_NUM_THREADS / OMP_NUM_THREADS = 1 and = 2, and the same bytes as
the old code path run with one BLAS thread (the old path with its default threads may differ:
that is the bug).

    python benchmarks/compare_threads.py                 # ESC-10, handcrafted + yamnet, rf/mlp/logreg
    python benchmarks/compare_threads.py --repeats 5

The "before" side is the current code with the limits turned into no-ops and the splits run
in this process, which is exactly the old code path (see RUNNER).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Runs `tfaudio compare` in this process; argv[1] is the side (taken out of argv, which
# metrics.json records as the command), the rest go to the CLI.
RUNNER = """
import contextlib, sys
if sys.argv.pop(1) == "before":
    import threadpoolctl
    from tfaudio.comparison import classifiers
    threadpoolctl.threadpool_limits = lambda *a, **k: contextlib.nullcontext()
    classifiers._workers = lambda *a, **k: 1
from tfaudio.cli.main import main
main(sys.argv[1:], standalone_mode=True)
"""


def run_compare(side: str, args: list[str], env: dict[str, str], out: Path) -> tuple[float, float, bytes]:
    """(wall seconds, CPU seconds, metrics.json) of one whole `tfaudio compare` process and its
    workers, writing its report to `out` (the same folder for every run: metrics.json records
    the command).

    CPU seconds are the cross-check on a shared machine: other processes' load stretches the
    wall time, while busy-waiting BLAS threads (oversubscription) show up as CPU time."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", RUNNER, side, "compare", *args], env=env, capture_output=True,
                            text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{side} compare failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return seconds, cpu, (out / "metrics.json").read_bytes()


def threads(env: dict[str, str], count: int | None) -> dict[str, str]:
    """env with the BLAS / OpenMP thread variables set to count (None: removed, the default)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    out = {k: v for k, v in env.items() if k not in names}
    if count is not None:
        out.update({name: str(count) for name in names})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "esc10")
    parser.add_argument("--models", default=str(SHARED / "models"), help="TFAUDIO_MODELS (yamnet.h5)")
    parser.add_argument("--home", type=Path, help="TFAUDIO_HOME holding the embedding cache (default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side, alternating (median shown)")
    args = parser.parse_args(argv)
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found; this benchmark needs ESC-10 (../shared/datasets/esc10)")

    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        env = {**os.environ, "TFAUDIO_HOME": str(home), "TFAUDIO_MODELS": args.models, "TFAUDIO_OFFLINE": "1",
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        models = ["--model", "handcrafted", "--model", "yamnet"]
        classifiers = ["--classifier", "rf", "--classifier", "mlp", "--classifier", "logreg"]

        out = Path(tmp) / "report"
        compare_args = [str(args.data), *models, *classifiers, "--out", str(out)]

        def metrics(side: str, count: int | None) -> bytes:
            return run_compare(side, compare_args, threads(env, count), out)[2]

        print(f"{args.data}: filling the embedding cache (not timed) ...", flush=True)
        metrics("after", None)

        # Correctness first: the new path's metrics do not depend on the thread settings, and
        # equal the old path's when that one is held to one thread.
        after_1, after_2, before_1 = metrics("after", 1), metrics("after", 2), metrics("before", 1)
        print(f"after: metrics.json identical with 1 and 2 BLAS threads: {after_1 == after_2}")
        print(f"after == before held to 1 BLAS thread (byte-identical metrics.json): {after_1 == before_1}")
        if not after_1 == after_2 == before_1:
            raise SystemExit("metrics differ: no timing printed")

        wall, cpu = {"before": [], "after": []}, {"before": [], "after": []}
        before_default = set()
        for repeat in range(args.repeats):
            for side in ("before", "after"):
                seconds, cpu_seconds, written = run_compare(side, compare_args, threads(env, None), out)
                if side == "before":
                    before_default.add(written == after_1)
                wall[side].append(seconds)
                cpu[side].append(cpu_seconds)
                print(f"  {side:6s} run {repeat + 1}: {seconds:6.1f} s wall, {cpu_seconds:6.1f} s CPU", flush=True)
        print(f"cores: {len(os.sched_getaffinity(0))}, load average at the end: {os.getloadavg()[0]:.1f} "
              f"(other processes share these cores; the sides alternate so they share the load)")
        for side, what in (("before", "default threads, splits in turn"), ("after", "1 BLAS thread, parallel splits")):
            print(f"{side:6s} ({what:31s}) median {statistics.median(wall[side]):6.1f} s wall, "
                  f"{statistics.median(cpu[side]):6.1f} s CPU, of {args.repeats}")
        ratio = statistics.median(wall["before"]) / statistics.median(wall["after"])
        cpu_ratio = statistics.median(cpu["before"]) / statistics.median(cpu["after"])
        print(f"speed-up: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU; before's metrics with default threads equal "
              f"after's: {' / '.join(map(str, sorted(before_default)))}")


if __name__ == "__main__":
    main()
