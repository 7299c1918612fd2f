"""A Beam run killed (SIGKILL to the launcher's process group) early, in the middle and late,
each time resumed, ends with exactly the rows and dead letters of an uninterrupted run; what a
killed run had written is kept and read back, and the last run computes only what is missing.

Kill moments follow the run's progress rather than the clock (which a loaded CI machine
stretches unevenly): early is one second after the launcher has listed the clips (workers
starting, nothing embedded), middle is once the resumed run has written rows of its own, late
is once 70 % of the clips are in shards. Tiny clips, the hand-crafted baseline and one worker
process (two double a run's start-up on a 2-core machine; tests/test_beam.py runs two) keep a
run short; shards are flushed every 0.3 s (`flush_seconds`) so that a kill finds work to keep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("apache_beam", reason="Apache Beam is the optional extra tfaudio[beam]: "
                    "pip install -e '.[dev,beam]'")

# Tiny ones, plus 8 clips of 3 windows, a copy and three files that are dead letters. 1500, not
# 500: on a fast CPU 500 took two shard flushes, and the run could finish between two looks for
# the late moment; 1500 take four or five.
CLIPS = 1500
MODEL = "handcrafted"
SETTINGS = dict(window_seconds=1.0, batch_size=8, flush_seconds=0.3)
LAUNCHER = (
    "import json, sys\n"
    "from tfaudio.pipeline.beam import run_beam\n"
    "from tfaudio.pipeline.local import EmbedConfig\n"
    "summary = run_beam(sys.argv[1], sys.argv[2], sys.argv[3], runner='direct', num_workers=1,\n"
    "                   config=EmbedConfig(**json.loads(sys.argv[4])))\n"
    "print(json.dumps(summary.to_dict()))\n"
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Class folders of CLIPS clips of 0.3-0.5 s and 8 clips of 2.5 s (3 windows each at 1 s
    windows: they are pooled after the join), a copy of a clip, and three files that cannot be
    embedded: a corrupt one, one of samples near 1e30 (which `info` calls unusable) and one whose
    name is not UTF-8."""
    root = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(5)
    for i in range(CLIPS + 8):
        seconds = 2.5 if i >= CLIPS else 0.3 + 0.1 * (i % 3)
        t = np.arange(int(seconds * 16000)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (120 + 9 * i) * t) + 0.01 * rng.standard_normal(len(t))
        (root / f"k{i % 4}").mkdir(exist_ok=True)
        sf.write(root / f"k{i % 4}" / f"c{i:04d}.wav", wave.astype(np.float32), 16000)
    (root / "k1" / "copy.wav").write_bytes((root / "k0" / "c0000.wav").read_bytes())
    (root / "k2" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)))
    sf.write(root / "k3" / "absurd.wav", np.full(8000, 1e30, np.float32), 16000, subtype="FLOAT")
    sf.write(root / "k3" / "tmp.wav", np.zeros(8000, np.float32) + 0.1, 16000)
    os.rename(os.fsencode(root / "k3" / "tmp.wav"), os.fsencode(root / "k3") + b"/bad\xffname.wav")
    return root


def read_rows(folder: Path) -> dict[str, np.ndarray]:
    """file -> vector of a published output."""
    from tfaudio.store import read_embeddings

    frame = read_embeddings(folder)
    columns = [c for c in frame.columns if c[:1] == "e" and c[1:].isdigit()]
    return dict(zip(frame["file"], frame[columns].to_numpy(np.float32)))


class Kept:
    """The shards killed runs left in their work folders (read once each: a shard is renamed
    into place whole and never changes)."""

    def __init__(self, out: Path):
        self.out = out
        self.read: dict[Path, dict[str, np.ndarray]] = {}

    def rows(self) -> dict[str, np.ndarray]:
        """file -> vector over the kept shards."""
        import pyarrow.parquet as pq

        for shard in sorted(self.out.glob(f".{MODEL}.work-*/part-*.parquet")):
            if shard not in self.read:
                try:
                    table = pq.read_table(shard).to_pandas()
                except (OSError, ValueError):  # its folder was published or removed meanwhile
                    continue
                columns = [c for c in table.columns if c[:1] == "e" and c[1:].isdigit()]
                self.read[shard] = dict(zip(table["file"], table[columns].to_numpy(np.float32)))
        return {file: vector for rows in self.read.values() for file, vector in rows.items()}


def killed_run(archive: Path, out: Path, when) -> float:
    """Launch a Beam run as a user would (its own process group) and SIGKILL the whole group once
    `when(seconds since launch)` says so; the seconds at which it was killed."""
    config = json.dumps(SETTINGS)
    process = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(archive), MODEL, str(out), config],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    start = time.monotonic()
    try:
        while process.poll() is None:
            if when(time.monotonic() - start):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return time.monotonic() - start
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    raise AssertionError(f"the run ended (exit {process.returncode}) before the moment it was to be killed")


def test_runs_killed_early_midway_and_late_resume_to_the_uninterrupted_rows(archive, tmp_path):
    from tfaudio.data.audio import printable_path
    from tfaudio.pipeline.beam import run_beam
    from tfaudio.pipeline.local import EmbedConfig

    config = EmbedConfig(**SETTINGS)
    started = time.monotonic()
    whole = run_beam(archive, MODEL, tmp_path / "whole", runner="direct", num_workers=1, config=config)
    uninterrupted = time.monotonic() - started
    expected = read_rows(Path(whole.output))
    assert len(expected) == CLIPS + 9 and whole.computed == CLIPS + 9
    # What cannot be embedded is listed, each with why, under a name that can be printed: the
    # name that is not UTF-8 a dead letter (or, if the listing refuses it first, a line of its own).
    letters = [json.loads(line) for line in (Path(whole.output) / "_dead_letter.jsonl").read_text().splitlines()]
    reasons = {Path(letter["path"]).name: letter["reason"] for letter in letters}
    reasons.update({Path(printable_path(path)).name: reason for path, reason in whole.ignored})
    assert {"absurd.wav", "bad\\xffname.wav", "corrupt.wav"} <= set(reasons), reasons
    assert "magnitude 1e+30" in reasons["absurd.wav"] and "UTF-8" in reasons["bad\\xffname.wav"]
    assert whole.failed == len(letters) == 3 - sum("bad" in printable_path(path) for path, _ in whole.ignored)

    out = tmp_path / "resumed"
    final = out / MODEL
    moments = {}

    def early(seconds):
        return any(out.glob(f".{MODEL}.work-*")) and seconds > 1.0 + moments.setdefault("listed", seconds)

    shards = Kept(out)
    moments["early"] = killed_run(archive, out, early)
    kept = shards.rows()
    moments["middle"] = killed_run(archive, out, lambda _: len(shards.rows()) > len(kept))
    middle = shards.rows()
    late_enough = max(0.7 * len(expected), len(middle) + 1)  # and rows of its own
    moments["late"] = killed_run(archive, out, lambda _: len(shards.rows()) >= late_enough)
    late = shards.rows()
    assert not final.exists(), "no killed run published an output"
    # What each killed run kept is exactly what the uninterrupted run computed, and nothing was lost.
    assert set(middle) > set(kept) and set(late) >= set(middle) and len(late) >= 0.7 * len(expected)
    for file, vector in late.items():
        np.testing.assert_array_equal(vector, expected[file], err_msg=file)

    started = time.monotonic()
    resumed = run_beam(archive, MODEL, out, runner="direct", num_workers=1, config=config)
    last = time.monotonic() - started
    # Only the clips missing from the kept shards were computed; the rest were read back.
    assert (resumed.cached, resumed.computed) == (len(late), len(expected) - len(late)), resumed
    rows = read_rows(final)
    assert set(rows) == set(expected)
    for file, vector in expected.items():
        np.testing.assert_array_equal(rows[file], vector, err_msg=file)
    manifest = json.loads((final / "_manifest.json").read_text())
    reference = json.loads((Path(whole.output) / "_manifest.json").read_text())
    assert (manifest["stamp"], manifest["skipped"]) == (reference["stamp"], reference["skipped"])
    assert not list(out.glob(f".{MODEL}.work-*")), "the killed runs' work folders are removed once published"
    print(f"uninterrupted {uninterrupted:.1f} s; killed at {moments}; kept {len(kept)}, {len(middle)}, "
          f"{len(late)} of {len(expected)} rows; the last run {last:.1f} s, {resumed.windows} windows embedded")
