"""Opening and reading a search index: damaged parts, approximate search, the query side, the console."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tree
from helpers import run_process

from tfaudio.pipeline.run import RunSettings
from tfaudio.search.build import IndexConfig, build_index
from tfaudio.search.index import IndexWarning, SearchIndex, SearchIndexError

CLI = str(Path(sys.executable).parent / "tfaudio")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small index with ANN graphs (exact_below=0) over 4 half-second tones, in two shards."""
    root = tmp_path_factory.mktemp("index")
    tree = write_tree(root / "data", per_class=2)
    config = IndexConfig(model="handcrafted", exact_below=0, shard_vectors=120)
    build_index(tree, root / "index", config, RunSettings(store=str(root / "store")))
    return root


def test_approximate_top_1_of_a_stored_vector_is_itself(built):
    index = SearchIndex.open(built / "index")
    assert index.has_approximate and len(index.header["shards"]) == 2 and len(index) == 200
    ids = np.array([0, 60, 119, 120, 199])
    found, scores = index.approximate(index.vectors(ids), 3)
    assert found.shape == (5, 3) and scores.dtype == np.float32
    # tones are steady, so a frame's neighbours are near copies: itself or an equal vector comes first
    np.testing.assert_allclose(index.vectors(found[:, 0]), index.vectors(ids), atol=2e-3)
    assert (scores[:, 0] > 0.999).all() and (np.diff(scores, axis=1) <= 1e-6).all()
    padded, _ = index.approximate(index.vectors([0]), 300)
    assert (padded[0, 200:] == -1).all() and sorted(padded[0, :200]) == list(range(200))
    firsts = [first for first, _ in index.chunks(rows=50)]
    assert firsts == [0, 50, 100, 120, 170]


def test_embed_of_an_indexed_file_equals_its_stored_vectors(built):
    index = SearchIndex.open(built / "index")
    file = built / "data" / "rain" / "rain_1.wav"
    vectors, starts, ends = index.embed(file)
    rows = index.windows.index[index.windows["file"] == str(file)]
    np.testing.assert_allclose(vectors, index.vectors(rows), atol=1e-5)
    np.testing.assert_allclose(starts, index.windows.loc[rows, "start"])
    np.testing.assert_allclose(ends, index.windows.loc[rows, "end"])
    part, starts, ends = index.embed(file, 0.1, 0.2)
    assert len(part) == 7 and starts[0] == pytest.approx(0.1) and ends[-1] <= 0.2 + 1e-9
    (built / "broken.wav").write_bytes(b"RIFF....WAVEfmt nothing")
    with pytest.raises(Exception, match="broken.wav") as caught:
        index.embed(built / "broken.wav")
    assert "\n" not in str(caught.value)


def test_a_damaged_graph_is_quarantined_and_rebuilt(built, tmp_path):
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(built / "index", copy)
    graph = copy / "shards" / (SearchIndex.open(copy).header["shards"][1]["name"] + ".usearch")
    graph.write_bytes(b"\0" * 100 + graph.read_bytes()[100:])
    with pytest.warns(IndexWarning, match="does not match the header.*rebuilt from the stored vectors"):
        index = SearchIndex.open(copy)
    assert len(list((copy / "quarantine").iterdir())) == 1
    ids, _ = index.approximate(index.vectors([150]), 1)
    np.testing.assert_allclose(index.vectors(ids[:, 0]), index.vectors([150]), atol=2e-3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt graph is recorded: opening again is clean
        SearchIndex.open(copy)


def test_damaged_or_foreign_indexes_are_refused_in_one_line(built, tmp_path):
    import shutil

    from click.testing import CliRunner

    from tfaudio.cli.main import main

    copy = tmp_path / "index"
    shutil.copytree(built / "index", copy)
    (copy / "index.json").write_text('{"format": "tfaudio-index/1", "shards": [')
    with pytest.raises(SearchIndexError, match="damaged index header") as caught:
        SearchIndex.open(copy)
    assert "\n" not in str(caught.value)
    result = CliRunner().invoke(main, ["index", "info", str(copy)])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Error:" in result.output
    (copy / "index.json").write_text('{"format": "tfaudio-index/9"}')
    with pytest.raises(SearchIndexError, match="tfaudio-index/9"):
        SearchIndex.open(copy)
    with pytest.raises(SearchIndexError, match="not a tfaudio index"):
        SearchIndex.open(built / "data")
    shutil.copytree(built / "index", tmp_path / "cut")
    vectors = next((tmp_path / "cut" / "shards").glob("*.f32"))
    vectors.write_bytes(vectors.read_bytes()[:-4])
    with pytest.raises(SearchIndexError, match="damaged"):
        SearchIndex.open(tmp_path / "cut")


def test_index_build_and_info_on_the_console(tmp_path):
    tree = write_tree(tmp_path / "data", per_class=1)
    env = {**os.environ, "TFAUDIO_HOME": str(tmp_path / "home"), "TFAUDIO_OFFLINE": "1"}
    built = run_process([CLI, "index", "build", "data", "--model", "handcrafted", "--out", "idx", "--hop", "0.02"],
                        env=env, cwd=tmp_path)
    assert built.code == 0, built.stderr
    assert "2 added" in built.stdout and "2 files, 50 vectors" in built.stdout and "exact only" in built.stdout
    (tree / "dog" / "dog_0.wav").unlink()
    info = run_process([CLI, "index", "info", "idx"], env=env, cwd=tmp_path)
    assert info.code == 0 and "Traceback" not in info.stderr + built.stderr
    for fact in ("handcrafted (float32), dim 52", "every 0.02 s", "vectors:      50", "exact only",
                 "1 file(s) gone or changed", "dog_0.wav", "none running"):
        assert fact in info.stdout, info.stdout
