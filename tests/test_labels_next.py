"""`tfaudio labels next` (issue 19): the windows worth labelling next for a label, by strategy
(top, margin, stratified, random), never a labelled window, never two overlapping in one file,
the same for a seed; stratified strata weighted towards the top, each sample pick with its
inclusion weight; next.csv filled in and imported back (blank kinds skipped, weights kept); the
command as a user runs it. On a small hand-crafted index of generated recordings (a tone in noise)."""

from __future__ import annotations

import csv
import os
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import cli, run_process

from tfaudio.detector.rounds import COLUMNS, STRATEGIES, TOP_EDGES, choose, strata

SR = 16000
#: Index windows every 0.25 s, 0.272 s long: neighbours overlap (by 0.022 s), so picks must skip them.
HOP = 0.25
TFAUDIO = Path(sys.executable).parent / "tfaudio"


def overlapping(picks) -> bool:
    """Whether two rows of `picks` (file, start, end) overlap in one file."""
    for _, rows in picks.groupby("file"):
        spans = sorted(zip(rows["start"], rows["end"]))
        if any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])):
            return True
    return False


# ------------------------------------------------------------------------ the strategies, on numbers


def layout(count: int = 40, files: int = 4):
    """Windows of `files` files, every 0.5 s, 1 s long (each overlaps its neighbours)."""
    per = count // files
    names = np.repeat([f"f{i}.wav" for i in range(files)], per).astype(object)
    starts = np.tile(np.arange(per) * 0.5, files)
    return names, starts, starts + 1.0


def test_top_and_margin_take_the_best_windows_that_do_not_overlap():
    files, starts, ends = layout()
    scores = np.linspace(1.0, 0.0, 40)  # window 0 best; neighbours in one file overlap
    candidates = np.ones(40, bool)
    candidates[[0, 20]] = False  # labelled already
    top, top_weights = choose(scores, candidates, files, starts, ends, strategy="top", n=4)
    assert top.tolist() == [1, 3, 5, 7]  # 0 labelled; 2, 4, 6 overlap a pick
    margin, margin_weights = choose(scores, candidates, files, starts, ends, strategy="margin", n=3, centre=0.5)
    assert top.dtype == np.int64 and top_weights.dtype == np.float64
    assert np.isnan(top_weights).all() and np.isnan(margin_weights).all() and len(margin_weights) == 3  # no sample
    closest = np.argsort(np.abs(scores - 0.5))
    assert margin[0] == [i for i in closest if candidates[i]][0]
    assert np.all(np.abs(scores[margin] - 0.5) <= 0.1)
    assert 20 not in margin  # 20 is the closest of all, but labelled


def stratum_of(picks, scores, candidates, n):
    """The stratum (0: top) of each pick, from the candidates ranked highest first (ties: lower id)."""
    ranked = np.flatnonzero(candidates)[np.argsort(-scores[candidates], kind="stable")]
    rank = {int(i): r for r, i in enumerate(ranked)}
    bounds, _ = strata(len(ranked), n)
    return [int(np.searchsorted(bounds, rank[int(i)], side="right")) - 1 for i in picks]


def test_stratified_strata_lean_to_the_top_and_weights_are_stratum_over_picks():
    files, starts, ends = layout(4000, 400)  # 10 windows a file; overlaps barely block among thousands
    rng = np.random.default_rng(1)
    scores = rng.random(4000)
    candidates = rng.random(4000) > 0.2
    size = int(candidates.sum())
    expected = {1: [0], 3: [0, 1, 2], 10: [0, 0, 1, 1, 2, 2, 3, 3, 4, 4],
                21: [0] * 5 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4}
    edges = {1: (0, 1), 3: (0, 1 / 8, 1 / 4, 1), 10: (0,) + TOP_EDGES, 21: (0,) + TOP_EDGES}
    for n, want in expected.items():
        bounds, quotas = strata(size, n)
        assert bounds.tolist() == np.ceil(np.array(edges[n]) * size).astype(int).tolist(), n
        assert quotas.sum() == n and quotas[0] >= n // min(5, n) and quotas[0] == quotas.max(), n
        picks, weights = choose(scores, candidates, files, starts, ends, strategy="stratified", n=n, seed=3)
        assert len(picks) == n and candidates[picks].all() and len(set(picks.tolist())) == n
        assert sorted(stratum_of(picks, scores, candidates, n)) == want, n
        assert (np.diff(scores[picks]) < 0).all()  # shown highest first
        sizes = np.diff(bounds)
        got = stratum_of(picks, scores, candidates, n)
        assert np.allclose(weights, [sizes[h] / quotas[h] for h in got]), n  # N_h / n_h
        assert weights.sum() == pytest.approx(size), n  # every candidate stood for once
        again = choose(scores, candidates, files, starts, ends, strategy="stratified", n=n, seed=3)
        assert again[0].tolist() == picks.tolist() and again[1].tolist() == weights.tolist()
    seeded = [choose(scores, candidates, files, starts, ends, strategy="stratified", n=10, seed=s)[0] for s in (3, 4)]
    assert seeded[0].tolist() != seeded[1].tolist()
    # few candidates: a quota larger than its stratum goes to strata with room (before drawing)
    bounds, quotas = strata(10, 8)
    assert bounds.tolist() == [0, 1, 1, 2, 3, 10] and quotas.tolist() == [1, 0, 1, 1, 5]
    assert strata(0, 5)[1].sum() == 0 and strata(3, 10)[1].sum() == 3


def test_random_is_seeded_and_weighs_candidates_over_picks():
    files, starts, ends = layout(400, 40)
    rng = np.random.default_rng(1)
    scores = rng.random(400)
    candidates = rng.random(400) > 0.2
    drawn = [choose(scores, candidates, files, starts, ends, strategy="random", n=8, seed=s) for s in (7, 7, 8)]
    assert drawn[0][0].tolist() == drawn[1][0].tolist() != drawn[2][0].tolist()
    assert all(candidates[d].all() and len(set(d.tolist())) == 8 for d, _ in drawn)
    assert all(np.allclose(w, candidates.sum() / 8) for _, w in drawn)  # N / n
    # every strategy, few windows left: none overlapping; top, margin and random fit as many as fit
    few = np.zeros(400, bool)
    few[:10] = True  # one file, 10 windows 0.5 s apart, 1 s long: 5 fit at most; a pick blocks 3 at most
    for strategy in STRATEGIES:
        got, weights = choose(scores, few, files, starts, ends, strategy=strategy, n=8, seed=0)
        spans = sorted(zip(starts[got], ends[got]))
        assert all(b[0] >= a[1] for a, b in pairwise(spans)) and len(weights) == len(got), strategy
        # stratified takes no window from another stratum when overlaps leave one short
        assert (1 <= len(got) <= 5) if strategy == "stratified" else (4 <= len(got) <= 5), strategy


def test_two_million_windows_pick_in_well_under_a_second():
    count = 2_000_000
    files = np.repeat(np.arange(count // 1000).astype(str).astype(object), 1000)
    starts = np.tile(np.arange(1000) * 0.48, count // 1000)
    scores = np.random.default_rng(0).random(count).astype(np.float32)
    candidates = np.ones(count, bool)
    candidates[::7] = False
    for strategy in ("stratified", "random", "top"):
        began = time.perf_counter()
        picks, _ = choose(scores, candidates, files, starts, starts + 0.96, strategy=strategy, n=21, seed=1)
        took = time.perf_counter() - began
        assert len(picks) == 21 and took < 2.0, (strategy, took)  # about 0.3 s alone; 2 s: a loaded machine


# --------------------------------------------------------------------------- on a real index


def write_recordings(root: Path, count: int = 6) -> Path:
    """root/rec<i>.wav: 3 s of noise, a tone (1000 + 40 i Hz) from 1.0 to 2.0 s."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    root.mkdir(parents=True)
    for i in range(count):
        samples = 0.05 * rng.standard_normal(3 * SR)
        samples[SR : 2 * SR] += 0.5 * np.sin(2 * np.pi * (1000 + 40 * i) * t)
        sf.write(root / f"rec{i}.wav", samples.astype(np.float32), SR)
    return root


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """(root, index folder) of write_recordings, hand-crafted features."""
    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search.build import IndexConfig, build_index

    root = tmp_path_factory.mktemp("next")
    data = write_recordings(root / "data")
    build_index(data, root / "index", IndexConfig(model="handcrafted", hop=HOP), RunSettings(store=str(root / "store")))
    return root, root / "index"


@pytest.fixture
def labelled(indexed, tmp_path):
    """(index folder, label store file): rec0's tone a positive of "tone", its first second a negative."""
    from tfaudio.labels.store import LabelStore

    root, index = indexed
    database = tmp_path / "labels.db"
    with LabelStore(database) as store:
        store.add(root / "data" / "rec0.wav", 1.0, 2.0, "tone", "positive", annotator="t")
        store.add(root / "data" / "rec0.wav", 0.0, 1.0, "tone", "negative", annotator="t")
    return index, database


def test_each_strategy_proposes_n_unlabelled_windows_apart(labelled):
    from tfaudio.detector.rounds import next_windows, window_scores
    from tfaudio.labels.store import LabelStore
    from tfaudio.labels.windows import window_kinds
    from tfaudio.search.index import SearchIndex

    index_path, database = labelled
    index = SearchIndex.open(index_path)
    with LabelStore(database, create=False) as store:
        kinds = window_kinds(index.windows, store.query(label="tone", latest=True))
        scores, centre = window_scores(index, store, "tone", kinds)
        picks = {s: next_windows(index, store, "tone", strategy=s, n=5, seed=1) for s in STRATEGIES}
    assert centre == 0.0 and scores.shape == (len(index),)
    free = np.flatnonzero(kinds == None)  # noqa: E711 (object array)
    assert len(free) < len(index) and (kinds == "positive").sum() >= 3
    for strategy, table in picks.items():
        assert list(table.columns) == list(COLUMNS) == ["id", "file", "start", "end", "score", "strategy", "round",
                                                        "weight"]
        assert table["weight"].dtype == np.float64
        assert len(table) == 5 and set(table["id"]) <= set(free.tolist()), strategy
        assert not overlapping(table), strategy
        assert (table["strategy"] == strategy).all() and (table["round"] == 1).all()
        assert np.allclose(table["score"], scores[table["id"]])
    top = picks["top"]
    assert top["score"].iloc[0] == pytest.approx(scores[free].max())
    assert (np.diff(top["score"]) <= 0).all()
    # the tone of the other recordings is what a head fitted on rec0's tone ranks first
    assert ((top["start"] >= 0.9) & (top["end"] <= 2.1)).all() and "rec0.wav" not in " ".join(top["file"])
    margin = picks["margin"]
    assert np.abs(margin["score"]).max() <= np.sort(np.abs(scores[free]))[len(free) // 2]
    stratified = picks["stratified"]["score"]
    assert stratified.max() >= np.quantile(scores[free], 0.75) and stratified.min() <= np.quantile(scores[free], 0.25)
    assert np.isnan(top["weight"]).all() and np.isnan(margin["weight"]).all()
    assert np.allclose(picks["random"]["weight"], len(free) / 5)
    assert picks["stratified"]["weight"].sum() == pytest.approx(len(free))  # 5 strata, one pick each
    assert (np.diff(stratified) <= 0).all()
    with LabelStore(database, create=False) as store:
        again = next_windows(index, store, "tone", strategy="random", n=5, seed=1)
    assert again["id"].tolist() == picks["random"]["id"].tolist()


def test_next_csv_comes_back_through_import_without_the_blank_rows(labelled, tmp_path):
    from tfaudio.detector.rounds import next_windows, write_round
    from tfaudio.labels.formats import NEXT_COLUMNS, import_tables
    from tfaudio.labels.store import LabelStore

    index, database = labelled
    with LabelStore(database, create=False) as store:
        picks = next_windows(index, store, "tone", strategy="margin", n=4)
    out = write_round(picks, "tone", tmp_path / "round1", index_path=str(index))
    page = (out / "index.html").read_text()
    assert page.count("<audio") == 4 and "Next for tone" in page and "<script" not in page
    with open(out / "next.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == NEXT_COLUMNS and len(rows) == 4
    assert all(row["kind"] == "" and row["label"] == "tone" and row["round"] == "1" for row in rows)
    assert all(row["weight"] == "" for row in rows)  # margin picks are no sample
    rows[0]["kind"], rows[1]["kind"] = "positive", "negative"  # a person judged two of four
    with open(out / "next.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, NEXT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    with LabelStore(database, create=False) as store:
        tables, counts = import_tables(store, [out / "next.csv"], annotator="ana")
        added = store.query(source="next")
        later = next_windows(index, store, "tone", strategy="margin", n=4)
    assert tables[0].unjudged == 2 and counts.added == 2 and not tables[0].problems
    assert [(a.kind, a.round, a.strategy, a.annotator) for a in added] == [
        ("positive", 1, "margin", "ana"), ("negative", 1, "margin", "ana")]
    assert [(a.start, a.end) for a in added] == [(float(r["start"]), float(r["end"])) for r in rows[:2]]
    assert added[0].sha256  # the recording was there: its content hash was taken
    assert not set(later["id"]) & set(picks["id"][:2]) and (later["round"] == 2).all()
    assert all(a.weight is None for a in added)


@pytest.mark.parametrize("strategy", ["stratified", "random"])
def test_a_sample_rounds_weights_go_through_next_csv_into_the_store(labelled, tmp_path, strategy):
    from tfaudio.detector.rounds import next_windows, write_round
    from tfaudio.labels.formats import import_tables
    from tfaudio.labels.store import LabelStore

    index, database = labelled
    with LabelStore(database, create=False) as store:
        picks = next_windows(index, store, "tone", strategy=strategy, n=4, seed=2)
    out = write_round(picks, "tone", tmp_path / strategy, index_path=str(index))
    with open(out / "next.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["weight"]) for row in rows] == pytest.approx(picks["weight"].tolist(), rel=1e-5)
    assert all(float(row["weight"]) >= 1 for row in rows) and "weight column" in (out / "index.html").read_text()
    for row in rows:
        row["kind"] = "negative"
    with open(out / "next.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with LabelStore(database, create=False) as store:
        tables, counts = import_tables(store, [out / "next.csv"], annotator="ana")
        added = store.query(source="next")
    assert counts.added == 4 and not tables[0].problems
    assert sorted(a.weight for a in added) == pytest.approx(sorted(float(row["weight"]) for row in rows))


def test_no_positive_yet_is_one_line_but_a_random_sample_needs_none(labelled):
    from tfaudio.detector.rounds import next_windows

    index, database = labelled
    result = cli("labels", "next", index, "--labels", database, "--label", "owl")
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: label owl has no positive yet: search for an example and label it "
                                     "first")
    sample = next_windows(index, database, "owl", strategy="random", n=6, seed=4)
    assert len(sample) == 6 and sample["score"].isna().all() and not overlapping(sample)


def test_the_command_prints_the_table_and_writes_the_sheet_and_page(labelled, tmp_path):
    index, database = labelled
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = tmp_path / "round"
    ran = run_process([TFAUDIO, "labels", "next", index, "--labels", database, "--label", "tone", "--strategy",
                       "stratified", "--n", "3", "--seed", "2", "--out", out], env=environment, cwd=tmp_path)
    ran.check(0)
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("tone: round 1, strategy stratified, 3 windows") and len(lines) == 6
    assert [line.split()[0] for line in lines[2:5]] == ["1", "2", "3"] and "rec" in lines[2]
    assert (out / "index.html").read_text().count("<audio") == 3
    assert "weight" in lines[1] and float(lines[2].split()[3]) >= 1  # a sample: the windows each pick stands for
    assert len((out / "next.csv").read_text().splitlines()) == 4
    imported = run_process([TFAUDIO, "labels", "import", "--labels", database, out / "next.csv"],
                           env=environment, cwd=tmp_path)
    imported.check(0)
    assert "3 rows without a kind skipped" in imported.stderr and "0 added" in imported.stdout


def test_with_a_detector_scores_are_probabilities_and_margin_centres_on_its_threshold(labelled):
    from tfaudio.detector.config import DetectorConfig
    from tfaudio.detector.model import Detector, DetectorError
    from tfaudio.detector.rounds import next_windows, window_scores
    from tfaudio.detector.train import fit_heads_now
    from tfaudio.labels.store import LabelStore
    from tfaudio.labels.windows import window_kinds
    from tfaudio.search.index import SearchIndex

    index_path, database = labelled
    index = SearchIndex.open(index_path)
    with LabelStore(database, create=False) as store:
        heads = fit_heads_now(index, store, "tone")
        detector = Detector(labels=("tone",), heads=heads, platt_a=np.array([0.5]), platt_b=np.array([0.0]),
                            thresholds=np.array([0.7]), config=DetectorConfig(), reports=(), held_out={},
                            source={"key": index.header["key"], "dim": index.dim, "model": index.model})
        kinds = window_kinds(index.windows, store.query(label="tone", latest=True))
        probabilities, centre = window_scores(index, store, "tone", kinds, detector=detector)
        margin = next_windows(index, store, "tone", strategy="margin", n=3, detector=detector)
        for bad, says in ((Detector(**{**vars(detector), "labels": ("owl",)}), "no head for label tone"),
                          (Detector(**{**vars(detector), "source": {"key": "other", "dim": index.dim}}),
                           "embeddings other than those of")):
            with pytest.raises(DetectorError, match=says):
                next_windows(index, store, "tone", detector=bad)
    assert centre == 0.7 and 0 <= probabilities.min() and probabilities.max() <= 1
    free = probabilities[kinds == None]  # noqa: E711 (object array)
    distance = np.abs(margin["score"].to_numpy() - 0.7)
    assert distance.max() <= np.sort(np.abs(free - 0.7))[6] + 1e-6  # among the closest (picks skip overlaps)
