"""`detect`: a detector over an index's stored vectors or over audio gives the detector's own
scores, merged detections that import back as labels, and refuses what it cannot score well."""

from __future__ import annotations

import errno
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet
import pytest
from conftest import write_tree

from tfaudio.detector.config import DetectorConfig
from tfaudio.detector.detect import detect
from tfaudio.detector.detections import merge_windows
from tfaudio.detector.model import DetectorError
from tfaudio.labels import LabelStore, import_tables
from tfaudio.outputs import OutputError
from tfaudio.pipeline.run import RunSettings
from tfaudio.search.build import IndexConfig, build_index
from tfaudio.search.index import SearchIndex

LABELS = ("dog", "rain")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An archive of four 0.5 s tones (two a folder) and an unreadable file, its hand-crafted
    index (frames as windows), whole-file labels and a detector trained on them."""
    from tfaudio.detector.train import train_detector

    root = tmp_path_factory.mktemp("detect")
    data = write_tree(root / "data", classes=LABELS, per_class=2)
    (data / "dog" / "broken.wav").write_bytes(b"RIFF not really a wave file" * 8)
    settings = RunSettings(store=str(root / "store"))
    build_index(data, root / "index", IndexConfig(model="handcrafted"), settings)
    store = LabelStore(root / "labels.db")
    for label in LABELS:
        for folder in LABELS:
            for number in range(2):
                store.add(data / folder / f"{folder}_{number}.wav", 0.0, 0.5, label,
                          "positive" if folder == label else "negative", annotator="test")
    detector = train_detector(root / "index", store, config=DetectorConfig(folds=2, resamples=50))
    return {"root": root, "data": data, "settings": settings, "index": root / "index", "detector": detector}


def scores_of(out) -> pd.DataFrame:
    """Every part of OUT/scores in order, one frame."""
    parts = sorted((out / "scores").glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)


def test_from_an_index_the_scores_are_the_detectors_on_its_stored_vectors(trained, tmp_path):
    detector, index = trained["detector"], SearchIndex.open(trained["index"])
    result = detect(detector, trained["index"], tmp_path / "out", shard_rows=64)
    assert result.from_index and result.windows == len(index) == 200 and result.files == 4 and not result.skipped
    assert len(list((tmp_path / "out" / "scores").glob("part-*.parquet"))) == 4  # 200 rows, 64 a part
    table = scores_of(tmp_path / "out")
    assert list(table.columns) == ["file", "sha256", "start", "end", "score/dog", "score/rain", "probability/dog",
                                   "probability/rain"]
    pd.testing.assert_frame_equal(table[["file", "sha256", "start", "end"]], index.windows, check_dtype=False)
    vectors = index.vectors(np.arange(len(index)))
    np.testing.assert_array_equal(table[["probability/dog", "probability/rain"]].to_numpy(),
                                  detector.probabilities(vectors))
    np.testing.assert_array_equal(table[["score/dog", "score/rain"]].to_numpy(), detector.scores(vectors))
    assert table["probability/dog"].dtype == np.float32

    summary = json.loads((tmp_path / "out" / "detect.json").read_text())
    assert summary["from_index"] and summary["windows"] == 200 and summary["files"] == 4
    assert summary["thresholds"] == pytest.approx(dict(zip(LABELS, detector.thresholds.tolist())))
    assert summary["detections"] == result.detections["label"].value_counts().reindex(LABELS, fill_value=0).to_dict()
    csv = pd.read_csv(tmp_path / "out" / "detections.csv")
    assert list(csv.columns) == ["file", "label", "start", "end", "probability", "windows"]
    above = pd.concat([table.loc[table[f"probability/{label}"] >= limit, ["file", "start", "end"]].assign(
        label=label, probability=table.loc[table[f"probability/{label}"] >= limit, f"probability/{label}"])
        for label, limit in zip(LABELS, detector.thresholds)])
    pd.testing.assert_frame_equal(csv, merge_windows(above), check_dtype=False, atol=1e-6)
    assert "windows of 4 files" in result._repr_html_()

    again = detect(detector, trained["index"], tmp_path / "out")  # a re-run replaces the outputs whole
    assert again.windows == 200
    assert [p.name for p in (tmp_path / "out" / "scores").iterdir()] == ["part-00000.parquet"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_from_audio_the_same_windows_get_the_same_scores_and_a_broken_file_is_skipped(trained, tmp_path):
    detector = trained["detector"]
    from_index = detect(detector, trained["index"], tmp_path / "index-run")
    result = detect(detector, trained["data"], tmp_path / "audio-run", settings=trained["settings"])
    assert not result.from_index and (result.windows, result.files) == (200, 4)
    assert [problem.path for problem in result.skipped] == [str(trained["data"] / "dog" / "broken.wav")]
    assert "broken.wav" in (tmp_path / "audio-run" / "detect.json").read_text()
    assert (tmp_path / "audio-run" / "embeddings").is_dir()
    ordered = ["file", "start"]
    audio = scores_of(tmp_path / "audio-run").sort_values(ordered, kind="stable").reset_index(drop=True)
    stored = scores_of(tmp_path / "index-run").sort_values(ordered, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(audio[["file", "sha256", "start", "end"]], stored[["file", "sha256", "start", "end"]])
    np.testing.assert_allclose(audio.iloc[:, 4:].to_numpy(), stored.iloc[:, 4:].to_numpy(), atol=1e-5)
    pd.testing.assert_frame_equal(result.detections, from_index.detections, atol=1e-5)


def test_windows_above_threshold_merge_where_they_overlap_or_touch():
    hop, span = 0.48, 0.96
    above = [0, 1, 2, 6, 10, 12, 20]  # 0-2 overlap; 10 and 12 touch (12 starts where 10 ends); 6 and 20 alone
    windows = pd.DataFrame({"file": "a.wav", "label": "owl", "start": np.array(above) * hop,
                            "end": np.array(above) * hop + span, "probability": np.linspace(0.5, 0.9, len(above))})
    other = pd.DataFrame({"file": ["b.wav", "a.wav"], "label": ["owl", "frog"], "start": [0.0, 0.48],
                          "end": [0.96, 1.44], "probability": [0.7, 0.8]})
    merged = merge_windows(pd.concat([windows.iloc[::-1], other], ignore_index=True))  # any order
    assert list(merged.columns) == ["file", "label", "start", "end", "probability", "windows"]
    expected = [("a.wav", "frog", 0.48, 1.44, 0.8, 1), ("a.wav", "owl", 0.0, 1.92, windows.probability[2], 3),
                ("a.wav", "owl", 2.88, 3.84, windows.probability[3], 1),
                ("a.wav", "owl", 4.8, 6.72, windows.probability[5], 2),
                ("a.wav", "owl", 9.6, 10.56, windows.probability[6], 1), ("b.wav", "owl", 0.0, 0.96, 0.7, 1)]
    assert len(merged) == len(expected)
    for row, want in zip(merged.itertuples(index=False), expected):
        assert (row.file, row.label, row.windows) == (want[0], want[1], want[5])
        assert (row.start, row.end, row.probability) == pytest.approx(want[2:5], abs=1e-6)
    assert merge_windows(windows.iloc[:0]).empty


def test_detections_import_back_as_positives_from_the_raven_table(trained, tmp_path):
    detector = trained["detector"]
    with pytest.raises(DetectorError, match="'owl'.*no such label"):
        detect(detector, trained["index"], tmp_path / "out", thresholds={"owl": 0.5})
    with pytest.raises(DetectorError, match="not a probability"):
        detect(detector, trained["index"], tmp_path / "out", thresholds={"dog": 1.5})
    # Threshold 0 for dog: every window is above it, so each file is one detection, end to end.
    saved = detector.save(tmp_path / "det")  # a saved detector is named by its folder
    result = detect(saved, trained["index"], tmp_path / "out", thresholds={"dog": 0.0})
    dogs = result.detections[result.detections["label"] == "dog"]
    assert len(dogs) == 4 and (dogs["start"] == 0).all() and np.allclose(dogs["end"], 0.5)
    assert (dogs["windows"] == 50).all()
    summary = json.loads((tmp_path / "out" / "detect.json").read_text())
    assert summary["thresholds"]["dog"] == 0.0 and summary["detector"] == str(saved)

    store = LabelStore(tmp_path / "imported.db")
    tables, counts = import_tables(store, [tmp_path / "out" / "detections.selections.txt"])
    assert tables[0].format == "raven" and not tables[0].problems and not tables[0].missing
    assert counts.added == len(result.detections)
    back = sorted((a.file, a.label, a.start, a.end, a.kind) for a in store.query())
    want = sorted((r.file, r.label, round(r.start, 6), round(r.end, 6), "positive")
                  for r in result.detections.itertuples())
    assert back == want
    index = SearchIndex.open(trained["index"])
    assert {a.sha256 for a in store.query()} <= set(index.windows["sha256"])


def test_an_unwritable_out_is_refused_before_any_work(trained, tmp_path, monkeypatch):
    import tfaudio.pipeline.run

    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(tfaudio.pipeline.run, "run_embedding", no_work)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputError, match="a-file"):
        detect(trained["detector"], trained["data"], tmp_path / "a-file" / "out")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pyarrow.parquet, "write_table", full)  # a full disk while the scores are written
    with pytest.raises(OutputError, match="out: the outputs could not be written \\(No space left"):
        detect(trained["detector"], trained["index"], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # created by this run, left empty: removed


def test_an_index_of_other_windows_or_another_model_is_refused_naming_what_differs(trained, tmp_path):
    build_index(trained["data"], tmp_path / "coarse", IndexConfig(model="handcrafted", hop=0.02), trained["settings"])
    with pytest.raises(DetectorError, match=r"coarse: not the detector's embeddings: windows every 0.02 s.*audio"):
        detect(trained["detector"], tmp_path / "coarse", tmp_path / "out")
    foreign = tmp_path / "foreign"
    shutil.copytree(trained["index"], foreign, ignore=shutil.ignore_patterns("embeddings"))
    header = json.loads((foreign / "index.json").read_text())
    (foreign / "index.json").write_text(json.dumps({**header, "model": "yamnet", "key": "other"}))
    with pytest.raises(DetectorError, match="model yamnet \\(the detector's: handcrafted\\)"):
        detect(trained["detector"], foreign, tmp_path / "out")
    assert not (tmp_path / "out" / "scores").exists()
