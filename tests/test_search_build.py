"""`tfaudio index build`: vectors and window times, incremental updates, resuming, kill -9, a full disk, the lock."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
from conftest import sine, write_tree

from tfaudio.pipeline.run import RunSettings
from tfaudio.search.build import IndexConfig, build_index
from tfaudio.search.index import SearchIndex, SearchIndexError, build_lock
from tfaudio.search.windows import HopError

CONFIG = IndexConfig(model="handcrafted")


def settings(tmp_path) -> RunSettings:
    return RunSettings(store=str(tmp_path / "store"))


def frames_of(path, store):
    """The frame embeddings `tfaudio embed --frames` gives one file (float32 [n, dim])."""
    from tfaudio.data.dataset import Clip, Dataset
    from tfaudio.models.registry import get
    from tfaudio.pipeline.local import EmbedConfig, embed_dataset
    from tfaudio.store import EmbeddingStore

    dataset = Dataset(root=path.parent, clips=(Clip(path, None),), classes=(), source="test")
    return embed_dataset(dataset, get("handcrafted"), EmbeddingStore(store), EmbedConfig(pooling="frames")).vectors[0]


def test_vectors_are_the_frames_and_window_times_follow_the_hop(tmp_path):
    tree = write_tree(tmp_path / "data", per_class=2)
    summary = build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path))
    assert (summary.added, summary.files, summary.ann) == (4, 4, False)
    index = SearchIndex.open(tmp_path / "index")
    file = tree / "dog" / "dog_1.wav"
    rows = index.windows.index[index.windows["file"] == str(file)]
    frames = frames_of(file, tmp_path / "other-store")  # computed again, not read from the index's store
    # 0.5 s at a 10 ms hop: 51 frames (the front end pads), the last starting at the end of the
    # file, where a window would hold no audio.
    assert len(frames) == 51 and len(rows) == 50
    frames = frames[:50]
    expected = frames / np.linalg.norm(frames, axis=1, keepdims=True)
    np.testing.assert_allclose(index.vectors(rows), expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(index.vectors(np.arange(len(index))), axis=1), 1.0, atol=1e-5)
    windows = index.windows.loc[rows]
    np.testing.assert_allclose(windows["start"], np.arange(50) * 0.01, atol=1e-9)
    assert windows["end"].iloc[0] == pytest.approx(0.032)  # one hand-crafted frame sees 512 samples
    assert windows["end"].iloc[-1] == pytest.approx(0.5)  # cut at the end of the file
    assert index.windows["sha256"].str.len().eq(64).all()

    hop = build_index(tree, tmp_path / "hop", IndexConfig(model="handcrafted", hop=0.04), settings(tmp_path))
    assert hop.embedding.computed == 0  # the same frames, from the store
    coarse = SearchIndex.open(tmp_path / "hop")
    rows = coarse.windows.index[coarse.windows["file"] == str(file)]
    assert len(rows) == 13 and coarse.hop == pytest.approx(0.04)
    mean = frames[4:8].mean(axis=0)
    np.testing.assert_allclose(coarse.vectors(rows[1:2])[0], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(coarse.windows.loc[rows, "start"], np.arange(13) * 0.04, atol=1e-9)
    assert coarse.windows.loc[rows[1], "end"] == pytest.approx(0.04 + 0.03 + 0.032)

    with pytest.raises(HopError, match="hop 0.015.*multiple"):
        build_index(tree, tmp_path / "bad", IndexConfig(model="handcrafted", hop=0.015), settings(tmp_path))


def test_a_grown_and_changed_archive_adds_and_drops_files(tmp_path):
    tree = write_tree(tmp_path / "data", per_class=2)
    build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path))
    before = SearchIndex.open(tmp_path / "index")
    kept = str(tree / "rain" / "rain_0.wav")
    kept_vectors = before.vectors(before.windows.index[before.windows["file"] == kept])
    (tree / "dog" / "dog_0.wav").unlink()
    sf.write(tree / "dog" / "dog_1.wav", sine(900, 0.3), 16000)  # changed content
    sf.write(tree / "rain" / "new.wav", sine(1500, 0.7), 16000)
    summary = build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path))
    assert (summary.added, summary.changed, summary.removed, summary.unchanged) == (1, 1, 1, 2)
    assert summary.embedding.computed == 2  # only the new and the changed file
    index = SearchIndex.open(tmp_path / "index")
    counts = index.windows.groupby("file").size().to_dict()
    assert counts == {str(tree / "dog" / "dog_1.wav"): 30, kept: 50, str(tree / "rain" / "rain_1.wav"): 50,
                      str(tree / "rain" / "new.wav"): 70}
    np.testing.assert_array_equal(index.vectors(index.windows.index[index.windows["file"] == kept]), kept_vectors)
    assert index.header["generation"] == 2
    again = build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path))
    assert again.up_to_date and again.unchanged == 4


def test_an_interrupted_build_resumes_from_the_store(tmp_path):
    tree = write_tree(tmp_path / "data", per_class=3)

    class Stop:
        def __init__(self, total, label):
            self.done = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, count):
            self.done += count
            if self.done >= 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path), progress=Stop)
    assert not (tmp_path / "index" / "index.json").exists()
    summary = build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path))
    assert summary.embedding.cached >= 1 and summary.embedding.computed < 6  # what was done before Ctrl-C is kept
    assert summary.embedding.cached + summary.embedding.computed == 6 and summary.files == 6


def test_kill_9_during_a_build_leaves_the_previous_index(tmp_path):
    tree = write_tree(tmp_path / "data", per_class=2)
    config = IndexConfig(model="handcrafted", exact_below=0)
    build_index(tree, tmp_path / "index", config, settings(tmp_path))
    first = SearchIndex.open(tmp_path / "index")
    extra = tmp_path / "extra"
    extra.mkdir()
    sf.write(extra / "late.wav", sine(700, 0.5), 16000)
    build_index(extra, tmp_path / "scratch", CONFIG, settings(tmp_path))  # its frames in the store: the process
    (tree / "dog" / "late.wav").write_bytes((extra / "late.wav").read_bytes())  # below needs no TensorFlow
    script = textwrap.dedent(f"""
        import os, signal
        from tfaudio.pipeline.run import RunSettings
        from tfaudio.search.build import IndexConfig, build_index

        def progress(total, label):
            if label == "index":  # the new shard is written, its graph not yet, the header not swapped
                os.kill(os.getpid(), signal.SIGKILL)
            import contextlib
            return contextlib.nullcontext()

        build_index({str(tree)!r}, {str(tmp_path / "index")!r}, IndexConfig(model="handcrafted", exact_below=0),
                    RunSettings(store={str(tmp_path / "store")!r}), progress=progress)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    index = SearchIndex.open(tmp_path / "index")
    assert not index.building  # the kernel let go of the lock
    assert index.header["generation"] == 1 and len(index) == len(first) == 200
    probe = first.vectors([5, 100])
    ids, scores = index.approximate(probe, 1)
    np.testing.assert_allclose(index.vectors(ids[:, 0]), probe, atol=1e-3)
    summary = build_index(tree, tmp_path / "index", config, settings(tmp_path))
    assert summary.added == 1 and len(SearchIndex.open(tmp_path / "index")) == 250
    names = {path.name.split(".")[0] for path in (tmp_path / "index" / "shards").iterdir()}
    assert len(names) == 2  # the killed build's files are gone; the previous generation's are kept for its readers


def test_a_full_disk_leaves_the_previous_index(tmp_path, monkeypatch):
    from tfaudio.outputs import OutputError
    from tfaudio.search import build

    tree = write_tree(tmp_path / "data", per_class=2)
    build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path))
    sf.write(tree / "dog" / "late.wav", sine(700, 0.5), 16000)

    def full(frame, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(build, "_write_parquet", full)
    with pytest.raises(OutputError, match="No space left on device.*previous index is unchanged"):
        build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path))
    index = SearchIndex.open(tmp_path / "index")
    assert len(index) == 200 and index.header["generation"] == 1
    assert len(list((tmp_path / "index" / "shards").iterdir())) == 3  # the failed build's vectors removed


def test_a_running_build_holds_the_lock(tmp_path):
    tree = write_tree(tmp_path / "data", per_class=1)
    build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path))
    with build_lock(tmp_path / "index"):
        index = SearchIndex.open(tmp_path / "index")  # the previous generation stays searchable
        assert index.building and len(index) == 100
        with pytest.raises(SearchIndexError, match="another build of this index is running"):
            build_index(tree, tmp_path / "index", CONFIG, settings(tmp_path))
    assert not index.building


def test_a_flat_folder_of_recordings(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i, freq in enumerate((400, 800, 1600)):
        sf.write(folder / f"take{i}.wav", sine(freq, 0.5), 16000)
    summary = build_index(folder, tmp_path / "index", CONFIG, settings(tmp_path))
    assert summary.files == 3
    assert sorted(SearchIndex.open(tmp_path / "index").windows["file"].unique()) == sorted(
        str(folder / f"take{i}.wav") for i in range(3))
