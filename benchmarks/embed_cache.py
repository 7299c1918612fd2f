"""`tfaudio embed` three times over the same clips with a fresh store: the first computes, the
second writes a new output from the embedding cache, the third finds its output up to date. Prints both wall-clock times (whole processes, imports included), the
time each run reports for its embedding work, and the ratios, measured side by side in one run.

    python benchmarks/embed_cache.py                       # ESC-10 + YAMNet from ../shared
    python benchmarks/embed_cache.py --model handcrafted   # no weights needed
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def timed_embed(data: Path, model: str, out: Path, store: Path) -> tuple[float, str]:
    command = [sys.executable, "-m", "tfaudio.cli", "embed", str(data), "--model", model, "--out", str(out), "--store", str(store)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout.strip().splitlines()[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "esc10")
    parser.add_argument("--model", default="yamnet")
    args = parser.parse_args(argv)
    env_models = SHARED / "models"
    if "TFAUDIO_MODELS" not in os.environ and env_models.exists():
        os.environ["TFAUDIO_MODELS"] = str(env_models)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if not data.exists():
            from tfaudio.data.synth import SynthConfig, make_dataset

            data = make_dataset(Path(tmp) / "data", SynthConfig(clips_per_class=100, duration=5.0))
        store, out = Path(tmp) / "store", Path(tmp) / "out"
        first, first_line = timed_embed(data, args.model, out, store)
        second, second_line = timed_embed(data, args.model, Path(tmp) / "out2", store)  # new output: store reads
        third, third_line = timed_embed(data, args.model, out, store)  # same output again: up to date
    print(f"first run  {first:6.2f} s   {first_line}")
    print(f"second run {second:6.2f} s   {second_line}")
    print(f"third run  {third:6.2f} s   {third_line}")
    print(f"as whole processes (Python start-up and imports included): the cached run is {first / second:.1f}x "
          f"faster, the up-to-date run {first / third:.1f}x")
    inside = [float(re.search(r"; ([0-9.]+) s", line).group(1)) for line in (first_line, second_line)]
    print(f"and {inside[0] / max(inside[1], 0.05):.1f}x faster inside `embed` (model loading, decoding, embedding vs cache reads)")


if __name__ == "__main__":
    main()
