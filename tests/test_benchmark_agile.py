"""benchmarks/agile.py, the oracle simulation of agile modelling, run small: synthetic clips (tones,
noise, chirps, clicks: tfaudio.data.synth) indexed with the hand-crafted features (no weights),
one round after the query, few labels. Checks the shape of what it writes, that an easy class
is found (high average precision), that a rerun reuses finished cells, and, where perch-hoplite
is installed (the `bench` extra), that its classifier runs on the same vectors and labels.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from conftest import REPO

from tfaudio.data.synth import SynthConfig, make_dataset

CLASSES = ("tone", "noise")
STRATEGIES = ("top", "passive")
#: Hand-crafted features in windows of 0.3 s (30 frames), one round of 4 labels after the query.
ARGUMENTS = ["--model", "handcrafted", "--hop", "0.3", "--classes", ",".join(CLASSES), "--rounds", "1",
             "--per-round", "4", "--strategies", ",".join(STRATEGIES), "--resamples", "50", "--no-hoplite"]


def _benchmark():
    spec = importlib.util.spec_from_file_location("agile_benchmark", REPO / "benchmarks" / "agile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(the benchmark module, its results, the output folder) of one small run."""
    agile = _benchmark()
    root = tmp_path_factory.mktemp("agile")
    data = make_dataset(root / "synth", SynthConfig(clips_per_class=10, duration=1.0, folds=5, seed=3))
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFAUDIO_MODELS", str(root / "no-models"))
        results = agile.main(["--data", str(data), *ARGUMENTS, "--out", str(out)])
    return agile, results, out


def test_results_have_every_class_strategy_and_round(run):
    _, results, out = run
    dataset = results["datasets"]["synth"]
    assert dataset["classes"] == sorted(CLASSES)
    assert set(dataset["queries"]) == set(CLASSES) and dataset["test_windows"] > 0
    for strategy in STRATEGIES:
        rounds = dataset["mean"][strategy]
        assert [r["labels"] for r in rounds] == [1 + 4, 1 + 4 + 4]  # the query clip, then 4 a round
        assert all(r["classes"] == len(CLASSES) for r in rounds)
        for label in CLASSES:
            cell = dataset["cells"][label][strategy]
            assert len(cell["rounds"]) == 2 and "threshold" in cell["operating_point"]
            assert (out / "cells" / "synth" / strategy / f"{label}.json").exists()
            # The last stratified round (20 labels, fewer where overlaps empty a small stratum):
            # threshold and interval come from the archive estimate, checked on the pool's truth.
            point = cell["operating_point"]
            assert 1 + 4 + 4 + 5 <= point["labels"] <= 1 + 4 + 4 + 20 and point["archive"]["picks"] >= 5, point
            assert point["threshold"] == pytest.approx(point["archive"]["threshold"])
            assert "archive_covered" in point and 0 <= point["archive_true_precision"] <= 1
    assert json.loads((out / "results.json").read_text())["datasets"]["synth"]["mean"] == dataset["mean"]
    table = (out / "results.md").read_text()
    assert "| top |" in table and "| passive |" in table and "round 1 (9 labels)" in table
    assert "pool's true precision in the interval" in table


def test_an_easy_class_is_found(run):
    """Noise against tones, chirps and clicks: found by every strategy (2 held-out clips of 8,
    so one miss-ranked clip would drop the AP to 0.83 or less); tones, whose pitch and decay vary
    from clip to clip, at least better than chance (0.25)."""
    _, results, _ = run
    cells = results["datasets"]["synth"]["cells"]
    for strategy in STRATEGIES:
        assert cells["noise"][strategy]["rounds"][-1]["ap"] >= 0.9, cells["noise"][strategy]
        assert cells["tone"][strategy]["rounds"][-1]["ap"] > 0.4, cells["tone"][strategy]


def test_a_rerun_reuses_the_finished_cells(run, monkeypatch):
    agile, results, out = run

    def refuse(*args, **kwargs):
        raise AssertionError("a finished cell was simulated again")

    monkeypatch.setattr(agile, "simulate", refuse)
    again = agile.main(["--data", str(out.parent / "synth"), *ARGUMENTS, "--out", str(out)])
    assert again["datasets"]["synth"]["mean"] == results["datasets"]["synth"]["mean"]


def test_hoplite_classifier_on_the_same_vectors(run):
    pytest.importorskip("perch_hoplite", reason="perch-hoplite (the `bench` extra) is not installed")
    from tfaudio.search.index import SearchIndex

    agile, _, out = run
    pool = SearchIndex.open(out / "work" / "synth" / "pool.index")
    tone = np.array(["/tone/" in file for file in pool.windows["file"]])
    labelled = np.concatenate([np.flatnonzero(tone)[:6], np.flatnonzero(~tone)[:6]])
    scores = agile.hoplite_scores(pool, labelled, tone[labelled], pool.vectors(np.arange(len(pool))), seed=0)
    assert scores.shape == (len(pool),) and np.isfinite(scores).all()
    assert scores[tone].mean() > scores[~tone].mean()
