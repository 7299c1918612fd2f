"""Queries by example (issue 18): FILE@START-END, scoring with several queries and negatives,
merging windows into hits, exact against approximate search, on real indexes that `build_index`
makes of generated tones with the hand-crafted model (fast, and its windows are known)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import sine

from tfaudio.errors import TfaudioError
from tfaudio.search.exact import exact_top_k, recall_at_k
from tfaudio.search.query import Query, QueryError, check_query, merge_windows, parse_query
from tfaudio.search.scoring import Scorer

SR = 16000
#: Index windows of 0.1 s (10 hand-crafted frames), so neighbouring windows overlap.
HOP = 0.1


def write_sounds(root: Path) -> Path:
    """root/<class>/*.wav: steady tones (300, 310, 2000, 2100 Hz), a noise, a chord of 300 and 2000
    Hz, and long.wav: noise,
    then 1 s of 300 Hz from 1.0 to 2.0 s, then noise. Returns root."""
    rng = np.random.default_rng(0)

    def noise(seconds):
        return (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)

    clips = {"low/tone300.wav": sine(300), "low/tone310.wav": sine(310), "high/tone2000.wav": sine(2000),
             "high/tone2100.wav": sine(2100), "noise/hiss.wav": noise(1.0), "mix/chord.wav": sine(300) + sine(2000),
             "long/long.wav": np.concatenate([noise(1.0), sine(300), noise(1.0)])}
    for name, samples in clips.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, samples + 0.005 * rng.standard_normal(len(samples)).astype(np.float32), SR)
    return root


def build(root: Path, **config):
    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search.build import IndexConfig, build_index
    from tfaudio.search.index import SearchIndex

    data = write_sounds(root / "data")
    build_index(data, root / "index", IndexConfig(model="handcrafted", hop=HOP, **config),
                RunSettings(store=str(root / "store")))
    return data, SearchIndex.open(root / "index")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """(data folder, SearchIndex) of write_sounds, with ANN graphs although it is small."""
    return build(tmp_path_factory.mktemp("search"), exact_below=0)


# ---------------------------------------------------------------------------------- the syntax


def test_a_query_is_a_file_or_a_region_of_it(tmp_path):
    assert parse_query("dog.wav") == Query(Path("dog.wav"), None, None, "dog.wav")
    assert parse_query("a/dog.wav@1.5-3") == Query(Path("a/dog.wav"), 1.5, 3.0, "a/dog.wav@1.5-3")
    assert (parse_query("dog.wav@2-").start, parse_query("dog.wav@2-").end) == (2.0, None)
    assert (parse_query("dog.wav@-.5").start, parse_query("dog.wav@-.5").end) == (None, 0.5)
    assert parse_query("me@home.wav@ 1 - 2 ").path == Path("me@home.wav")
    named = tmp_path / "take@2.wav"  # an existing file whose name holds @
    named.write_bytes(b"")
    assert parse_query(str(named)).path == named
    for bad, says in (("dog.wav@3-1", "ends (1 s) before it starts (3 s)"), ("dog.wav@x", "FILE@START-END"),
                      ("dog.wav@-", "FILE@START-END"), ("@1-2", "FILE@START-END"), ("dog.wav@1-1", "before")):
        with pytest.raises(QueryError) as caught:
            parse_query(bad)
        assert str(caught.value).startswith(f"{bad}: ") and says in str(caught.value)


def test_a_range_past_the_end_or_an_unreadable_file_is_one_line(tmp_path):
    sf.write(tmp_path / "one.wav", sine(440), SR)
    assert check_query(parse_query(f"{tmp_path}/one.wav@0.2-1")) == pytest.approx(1.0)
    for text, says in ((f"{tmp_path}/one.wav@1.5-", "starts at 1.5 s, past the end of the file (1.00 s)"),
                       (f"{tmp_path}/one.wav@0-4", "ends at 4 s, past the end of the file (1.00 s)")):
        with pytest.raises(QueryError, match=re.escape(says)):
            check_query(parse_query(text))
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(TfaudioError) as caught:
        check_query(parse_query(str(tmp_path / "junk.wav")))
    assert "junk.wav" in str(caught.value) and "\n" not in str(caught.value)


# ------------------------------------------------------------------------------ scoring, merging


def test_scores_combine_queries_by_the_mean_of_their_best_windows_and_negatives_by_a_margin():
    # columns: query 0 (2 windows), query 1 (1 window), one negative window
    cosines = np.array([[0.9, 0.1, 0.5, 0.2],    # near query 0, not the negative
                        [0.2, 0.3, 0.4, 0.9]],   # nearer the negative than the queries
                       np.float32)
    assert Scorer((2, 1))(cosines[:, :3]) == pytest.approx([0.7, 0.35])
    weighted = Scorer((2, 1), negatives=1, weight=2.0)
    assert weighted(cosines) == pytest.approx([0.7, 0.35 - 2.0 * (0.9 - 0.35)])
    assert weighted.sensitivity == 5.0


def windows_table(rows):
    return pd.DataFrame(rows, columns=["file", "start", "end"])


def test_overlapping_windows_of_a_file_merge_into_one_hit_scored_by_its_best():
    table = windows_table([("a", 0.0, 1.0), ("a", 0.5, 1.5), ("a", 3.0, 4.0), ("b", 0.0, 1.0), ("a", 1.5, 3.0),
                           ("c", 0.0, 1.0), ("c", 5.0, 6.0)])
    ranked = np.array([0, 3, 1, 2, 4, 5, 6])  # best first
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], np.float32)
    hits, settled = merge_windows(ranked[:4], scores[:4], table, top=5)
    assert [(h.file, h.start, h.end, h.score) for h in hits] == [
        ("a", 0.0, 1.5, pytest.approx(0.9)), ("b", 0.0, 1.0, pytest.approx(0.8)), ("a", 3.0, 4.0, pytest.approx(0.6))]
    assert not settled  # ran out of windows with fewer than 5 hits
    # a window touching both hits of `a` bridges them into one; then `c` 0-1 is the third hit and
    # `c` 5-6 would be a fourth: the ranking is settled there
    hits, settled = merge_windows(ranked, scores, table, top=3)
    assert [(h.file, h.start, h.end) for h in hits] == [("a", 0.0, 4.0), ("b", 0.0, 1.0), ("c", 0.0, 1.0)]
    assert settled and hits[0].window == 0


# ------------------------------------------------------------------------------------ exact search


def test_exact_top_k_in_bfloat16_gives_the_float32_ranking():
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((5000, 64)).astype(np.float32)
    vectors[100] = vectors[7]  # an exact tie: the lower id first
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[[7, 42, 4999]] + 0.3 * rng.standard_normal((3, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.argsort(-(vectors @ queries.T), axis=0, kind="stable")[:10].T
    ids, sims = exact_top_k(vectors, queries, 10, precision="float32", rows=777)
    assert (ids == truth).all() and list(ids[0][:2]) == [7, 100]
    fast, fast_sims = exact_top_k(vectors, queries, 10, precision="bfloat16", rows=777)
    assert (fast == ids).all() and np.allclose(fast_sims, sims, rtol=0, atol=1e-6)
    scorer = Scorer((1, 2))
    combined = scorer(vectors @ queries.T)
    best, best_scores = exact_top_k(vectors, queries, 5, score=scorer, precision="bfloat16", rows=1000)
    assert list(best) == list(np.lexsort((np.arange(5000), -combined))[:5])
    assert best_scores == pytest.approx(combined[best])
    excluded = np.zeros(5000, bool)
    excluded[ids[0][:3]] = True
    assert list(exact_top_k(vectors, queries[:1], 7, exclude=excluded)[0][0]) == list(ids[0][3:10])
    padded, padded_sims = exact_top_k(vectors[:4], queries, 6)
    assert (padded[:, 4:] == -1).all() and np.isneginf(padded_sims[:, 4:]).all()
    assert recall_at_k(ids, ids) == 1.0 and recall_at_k(np.full_like(ids, -1), ids) == 0.0


# ----------------------------------------------------------------------------- searching an index


def files(results) -> list[str]:
    return [Path(file).name for file in results.hits["file"]]


def test_exact_search_equals_approximate_candidates_reranked(indexed):
    from tfaudio.search.query import search

    data, index = indexed
    assert index.has_approximate
    for queries in ([data / "low/tone300.wav"], [f"{data}/long/long.wav@1-2", data / "high/tone2000.wav"]):
        exact = search(index, queries, top=5, exact=True)
        approximate = search(index, queries, top=5)
        assert exact.exact and not approximate.exact
        pd.testing.assert_frame_equal(exact.hits, approximate.hits)
    found, _ = index.approximate(index.vectors([3, 50]), 10)
    truth, _ = exact_top_k(index, index.vectors([3, 50]), 10)
    assert recall_at_k(found, truth) == 1.0  # a small graph finds everything


def test_a_region_finds_the_same_sound_elsewhere_and_its_own_region_is_left_out(indexed):
    from tfaudio.search.query import search

    data, index = indexed
    results = search(index, f"{data}/long/long.wav@1-2", top=3)
    assert files(results)[0] == "tone300.wav"
    own = results.hits[results.hits["file"].str.endswith("long.wav")]
    assert ((own["end"] <= 1.0 + 1e-6) | (own["start"] >= 2.0 - 1e-6)).all()  # never inside the query region
    # merged: a hit spans more than one 0.12-s window, and hits never overlap within a file
    assert (results.hits["end"] - results.hits["start"]).max() > 0.2
    other = search(index, f"{data}/low/tone300.wav", top=4, other_files=True)
    assert "tone300.wav" not in files(other) and files(other)[0] in ("tone310.wav", "long.wav")


def test_negative_examples_push_a_known_item_down(indexed):
    from tfaudio.search.query import search

    data, index = indexed
    plain = search(index, data / "low/tone300.wav", top=8, other_files=True)
    assert files(plain)[:4] == ["long.wav", "tone310.wav", "chord.wav", "hiss.wav"]
    assert (plain.hits["start"][0], plain.hits["end"][0]) == (0.0, 3.0)  # long.wav's noise scores as hiss does
    # Few enough hits that the candidates do not reach every window (where adjacent windows of
    # long.wav would join into one hit again).
    pushed = search(index, data / "low/tone300.wav", top=6, other_files=True, negatives=[data / "noise/hiss.wav"])
    assert files(pushed)[:3] == ["long.wav", "tone310.wav", "chord.wav"]  # nearer the query: unchanged
    assert pushed.hits["score"][:3].tolist() == pytest.approx(plain.hits["score"][:3].tolist())
    assert files(pushed).index("hiss.wav") > 3  # nearer the negative: pushed below long.wav's noise
    hiss = pushed.hits[pushed.hits["file"].str.endswith("hiss.wav")]
    assert hiss["score"].max() < plain.hits["score"][3] - 0.03
    assert pushed.hits["start"][0] >= 0.9 and pushed.hits["end"][0] <= 2.3  # long.wav's hit is its tone now


def test_several_queries_score_by_the_mean_of_each_ones_best_match(indexed):
    from tfaudio.search.query import search

    data, index = indexed
    results = search(index, [data / "low/tone300.wav", data / "high/tone2000.wav"], top=20, other_files=True)
    low, _, _ = index.embed(data / "low/tone300.wav")
    high, _, _ = index.embed(data / "high/tone2000.wav")
    for hit in results.hits.head(5).itertuples():
        rows = index.windows.index[(index.windows["file"] == hit.file) & (index.windows["start"] >= hit.start - 1e-9)
                                   & (index.windows["end"] <= hit.end + 1e-9)]
        vectors = index.vectors(rows)
        expected = ((vectors @ low.T).max(axis=1) + (vectors @ high.T).max(axis=1)).max() / 2
        assert hit.score == pytest.approx(expected, abs=1e-5)


def test_quiet_windows_are_left_out_of_a_query(tmp_path):
    from tfaudio.search.query import audible

    samples = np.concatenate([np.zeros(SR, np.float32), sine(440), 0.001 * sine(440)])  # silence, tone, -54 dB
    sf.write(tmp_path / "padded.wav", samples, SR)
    starts = np.array([0.0, 0.8, 1.2, 2.1])
    assert audible(tmp_path / "padded.wav", starts, starts + 0.5).tolist() == [False, True, True, False]
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    assert audible(tmp_path / "silent.wav", starts[:2], starts[:2] + 0.5).all()  # nothing louder: all kept
