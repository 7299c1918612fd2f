"""Detector training (issue 19): training sets from labels, heads, cross-validation by recording,
calibration, thresholds, save / load. On a real index that `build_index` makes of generated
recordings with the hand-crafted model (fast, no weights): 2 s of noise, some with a 0.5 s tone
burst at 0.5-1.0 s (audible, so the label is learnable), some pure noise labelled at random
(nothing to learn)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tfaudio.detector.config import DetectorConfig
from tfaudio.detector.model import Detector, DetectorError
from tfaudio.detector.train import fit_heads_now, train_detector
from tfaudio.detector.trainingset import training_set
from tfaudio.labels import LabelStore

SR = 16000
#: Few resamples: the intervals' code is tested in test_detector_stats; here they only must exist.
FAST = DetectorConfig(resamples=100)


def write_recordings(root: Path) -> Path:
    """root/tone{0..4}.wav: noise with a tone burst (1000-1080 Hz) at 0.5-1.0 s; chirp{0..2}.wav:
    noise with a 3 kHz burst there; noise{0..5}.wav: noise only. 2 s each, 16 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    root.mkdir(parents=True)
    for name, freq in [*((f"tone{i}", 1000 + 20 * i) for i in range(5)), *((f"chirp{i}", 3000) for i in range(3)),
                       *((f"noise{i}", None) for i in range(6))]:
        x = 0.05 * rng.standard_normal(2 * SR)
        if freq:
            x[SR // 2:SR] += 0.3 * np.sin(2 * np.pi * freq * t)
        sf.write(root / f"{name}.wav", x.astype(np.float32), SR)
    return root


def indexed_recordings(root: Path):
    """(data folder, SearchIndex) of write_recordings under root: windows of 0.1 s hop (10
    hand-crafted frames), 20 per 2-s file."""
    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search.build import IndexConfig, build_index
    from tfaudio.search.index import SearchIndex

    data = write_recordings(root / "data")
    build_index(data, root / "index", IndexConfig(model="handcrafted", hop=0.1), RunSettings(store=str(root / "store")))
    return data, SearchIndex.open(root / "index")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    return indexed_recordings(tmp_path_factory.mktemp("detector"))


def labels(tmp_path, data, *, tone=range(5), random_noise=False, chirp=True) -> LabelStore:
    """A store: "tone" positives at its bursts and negatives at 1.4-2.0 s of the `tone`
    recordings; "chirp" positives at its bursts (no negatives); optionally "random": each
    0.1 s step of the noise recordings positive or negative at random."""
    store = LabelStore(tmp_path / "labels.db")
    for i in tone:
        store.add(data / f"tone{i}.wav", 0.5, 1.0, "tone", "positive")
        store.add(data / f"tone{i}.wav", 1.4, 2.0, "tone", "negative")
    if chirp:
        for i in range(3):
            store.add(data / f"chirp{i}.wav", 0.5, 1.0, "chirp", "positive")
    if random_noise:
        rng = np.random.default_rng(1)
        for i in range(6):
            for step in range(20):
                kind = "positive" if rng.random() < 0.5 else "negative"
                store.add(data / f"noise{i}.wav", step / 10, step / 10 + 0.1, "random", kind)
    return store


def rows_of(index, data, name, start=0.0, end=99.0) -> np.ndarray:
    w = index.windows
    return np.flatnonzero((w["file"] == str(data / name)).to_numpy() & (w["start"] >= start - 1e-9).to_numpy()
                          & (w["start"] < end - 1e-9).to_numpy())


# ------------------------------------------------------------------------------- settings


def test_config_refuses_values_naming_the_field():
    for field, value in [("classifier", "svm"), ("folds", 1), ("target_precision", 0), ("target_precision", 1.5),
                         ("weak_negative_weight", -0.1), ("regularization", 0.0), ("min_overlap", 0.0),
                         ("resamples", -1), ("hidden", 0), ("weak_negatives", 2.5), ("standardize", 1)]:
        with pytest.raises(ValueError, match=field):
            DetectorConfig(**{field: value})
    assert DetectorConfig(weak_negative_weight=0, resamples=0).folds == 5


# ---------------------------------------------------------------------------- training sets


def test_training_set_positives_negatives_weak_ones_and_what_is_left_out(tmp_path, indexed):
    data, index = indexed
    store = labels(tmp_path, data)
    unsure = rows_of(index, data, "tone0.wav", 1.2, 1.3)
    store.add(data / "tone0.wav", 1.2, 1.3, "tone", "unsure")
    s = training_set(index, store, "tone", FAST)
    # 5 burst windows (0.5-0.9 s starts) and 6 after 1.4 s in each tone recording.
    assert (s.positives, s.negatives, s.unsure) == (25, 30, 1)
    assert not np.isin(unsure, s.ids).any()
    assert set(s.ids[s.y == 1]) == {r for i in range(5) for r in rows_of(index, data, f"tone{i}.wav", 0.5, 1.0)}
    # Weak negatives: every window of recordings without a tone positive (noise: 6 x 20), but not
    # the chirp recordings' positives (another label's, so not judged for this one).
    weak = s.ids[~s.labelled]
    chirp_positive = np.concatenate([rows_of(index, data, f"chirp{i}.wav", 0.5, 1.0) for i in range(3)])
    assert not np.isin(chirp_positive, weak).any()
    assert len(weak) == 6 * 20 + 3 * (20 - 5)
    files = set(index.windows.loc[weak, "file"])
    assert not any("tone" in f for f in files)
    assert np.all(s.weights[~s.labelled] == np.float32(FAST.weak_negative_weight))
    assert np.all(s.weights[s.labelled] == 1)
    assert set(s.groups) == set(index.windows.loc[s.ids, "sha256"])
    # Chirp's set: no tone window is a negative of it, labelled or weak, just for being a tone.
    chirp = training_set(index, store, "chirp", FAST)
    assert chirp.negatives == 0 and chirp.positives == 15
    tone_positive = np.concatenate([rows_of(index, data, f"tone{i}.wav", 0.5, 1.0) for i in range(5)])
    assert not np.isin(tone_positive, chirp.ids).any()
    # A cap on weak negatives samples them, seeded.
    few = training_set(index, store, "tone", replace(FAST, weak_negatives=20))
    assert few.weak_negatives == 20
    assert np.array_equal(few.ids, training_set(index, store, "tone", replace(FAST, weak_negatives=20)).ids)
    assert training_set(index, store, "tone", replace(FAST, weak_negative_weight=0)).weak_negatives == 0
    # The latest judgement counts: a chirp positive judged negative since is a weak tone negative again.
    store.add(data / "chirp0.wav", 0.5, 1.0, "chirp", "negative")
    assert np.isin(rows_of(index, data, "chirp0.wav", 0.5, 1.0), training_set(index, store, "tone", FAST).ids).all()
    assert training_set(index, store, "chirp", FAST).positives == 10


def test_fit_heads_takes_vectors_by_id_or_as_arrays(tmp_path, indexed):
    from tfaudio.detector.heads import fit_heads

    data, index = indexed
    store = labels(tmp_path, data, random_noise=True)
    sets = [training_set(index, store, label, FAST) for label in ("tone", "random")]
    by_id = fit_heads("linear", ["tone", "random"], sets, FAST, index.vectors)
    given = fit_heads("linear", ["tone", "random"], sets, FAST, [index.vectors(s.ids) for s in sets])
    for name, value in by_id.arrays.items():
        np.testing.assert_allclose(value, given.arrays[name], rtol=1e-6, atol=1e-6)
    vectors = index.vectors(np.arange(len(index)))
    np.testing.assert_allclose(by_id.select(["random"]).scores(vectors), by_id.scores(vectors)[:, 1:], atol=1e-5)
    with pytest.raises(ValueError, match="one training set per label"):
        fit_heads("linear", ["tone"], sets, FAST, index.vectors)


# ------------------------------------------------------------------------- training, metrics


@pytest.fixture(scope="module")
def trained(indexed, tmp_path_factory):
    """(store folder, detector) of "tone", "chirp" and "random", linear heads."""
    data, index = indexed
    root = tmp_path_factory.mktemp("trained")
    store = labels(root, data, random_noise=True)
    steps = []
    detector = train_detector(index, store, config=FAST, progress=lambda *step: steps.append(step))
    store.close()
    return root, detector, steps


def test_a_separable_label_is_detected_and_a_random_one_is_not(trained, indexed):
    _, index = indexed
    _, detector, steps = trained
    assert detector.labels == ("chirp", "random", "tone")
    tone, random, chirp = detector.report("tone"), detector.report("random"), detector.report("chirp")
    assert tone.average_precision > 0.95 and tone.roc_auc > 0.95
    assert tone.point.reached and tone.point.precision >= 0.9
    low, high = tone.average_precision_ci
    assert low <= tone.average_precision <= high
    assert tone.calibration is not None and 0 <= tone.calibration.ece <= 1
    assert (tone.positives, tone.negatives, tone.recordings) == (25, 30, 5)
    # Pure noise labelled at random: the held-out ranking is near chance (prevalence ~0.5).
    prevalence = random.positives / (random.positives + random.negatives)
    assert abs(random.average_precision - prevalence) < 0.2 and abs(random.roc_auc - 0.5) < 0.2
    # Chirp has no labelled negatives: heads, but no held-out metrics.
    assert chirp.point is None and "no labelled negatives" in chirp.note and np.isnan(chirp.average_precision)
    # Held-out: every labelled window once, with its recording.
    held = detector.held_out["tone"]
    assert len(held["y"]) == 55 and held["y"].sum() == 25 and len(set(held["groups"])) == 5
    assert detector.thresholds[2] == pytest.approx(tone.point.threshold)
    probabilities = detector.probabilities(index.vectors(np.arange(len(index))))
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(index), 3)
    decisions = detector.decisions(probabilities)
    assert decisions.dtype == bool and decisions[:, 2].sum() > 0
    # Progress: one step per fold and one final fit per label, counting to the total.
    assert [s[1] for s in steps] == list(range(1, len(steps) + 1)) and steps[-1][2] == len(steps)
    assert steps[-1][0] == "tone: final fit"
    assert detector.source["model"] == "handcrafted" and detector.source["sample_rate"] == SR
    assert detector.window_spec().hop == pytest.approx(0.1)


def test_training_is_deterministic(trained, indexed):
    root, detector, _ = trained
    _, index = indexed
    again = train_detector(index, root / "labels.db", config=FAST)
    for name, value in detector.heads.arrays.items():
        np.testing.assert_array_equal(value, again.heads.arrays[name])
    np.testing.assert_array_equal(detector.thresholds, again.thresholds)
    np.testing.assert_array_equal(detector.platt_a, again.platt_a)
    assert [r.to_dict() for r in detector.reports] == [r.to_dict() for r in again.reports]


def test_one_positive_recording_gives_heads_without_cross_validation(tmp_path, indexed):
    data, index = indexed
    store = labels(tmp_path, data, tone=[0], chirp=False)
    detector = train_detector(index, store, ["tone"], config=FAST)
    report = detector.report("tone")
    assert report.point is None and report.calibration is None and "only 1 recording" in report.note
    assert report.platt == (1.0, 0.0) and detector.thresholds[0] == 0.5
    assert len(detector.held_out["tone"]["y"]) == 0
    burst = rows_of(index, data, "tone3.wav", 0.5, 1.0)  # never labelled: the head generalises
    quiet = rows_of(index, data, "noise0.wav")
    assert detector.scores(index.vectors(burst)).min() > detector.scores(index.vectors(quiet)).max()
    with pytest.raises(DetectorError, match="no held-out labels of 'tone'.*only 1 recording"):
        detector.operating_point("tone", 0.5)


def test_weak_negative_weight_changes_the_head(tmp_path, indexed):
    data, index = indexed
    store = labels(tmp_path, data, chirp=False)
    heads = [fit_heads_now(index, store, "tone", replace(FAST, weak_negative_weight=w)).arrays["coef"]
             for w in (0.0, 0.1, 1.0)]
    assert heads[0].shape == (1, index.dim)
    assert np.abs(heads[0] - heads[1]).max() > 1e-3 and np.abs(heads[1] - heads[2]).max() > 1e-3


def test_unknown_label_or_one_without_positives_or_negatives_is_one_line(tmp_path, indexed):
    data, index = indexed
    store = labels(tmp_path, data)
    with pytest.raises(DetectorError, match="no label 'owl'.*labels there: chirp, tone"):
        train_detector(index, store, ["owl"], config=FAST)
    store.add("/elsewhere/x.wav", 0, 1, "ghost", "positive", sha256="0" * 64)
    with pytest.raises(DetectorError, match="no positive window of 'ghost'"):
        train_detector(index, store, ["ghost"], config=FAST)
    with pytest.raises(DetectorError, match="no negative window of 'chirp'"):
        train_detector(index, store, ["chirp"], config=replace(FAST, weak_negative_weight=0))


def test_mlp_heads_learn_and_tf_scores_equal_numpy_scores(tmp_path, indexed, trained):
    from tfaudio.quiet import tf

    data, index = indexed
    store = labels(tmp_path, data, chirp=False)
    mlp = train_detector(index, store, config=replace(FAST, classifier="mlp", hidden=16))
    assert mlp.heads.kind == "mlp" and mlp.heads.arrays["hidden_weights"].shape == (1, index.dim, 16)
    assert mlp.report("tone").average_precision > 0.95
    vectors = index.vectors(np.arange(len(index)))
    standardised = train_detector(index, store, config=replace(FAST, standardize=True))
    assert np.abs(standardised.heads.arrays["mean"]).max() > 0 and not np.all(standardised.heads.arrays["scale"] == 1)
    assert not trained[1].heads.arrays["mean"].any() and np.all(trained[1].heads.arrays["scale"] == 1)  # the default
    for heads in (mlp.heads, trained[1].heads, standardised.heads):
        graph = heads.tf_scores(tf.constant(vectors)).numpy()
        assert graph.dtype == np.float32
        np.testing.assert_allclose(graph, heads.scores(vectors), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- on disk


def test_save_and_load_give_the_same_detector(tmp_path, trained, indexed):
    _, detector, _ = trained
    _, index = indexed
    out = detector.save(tmp_path / "det")
    assert detector.path == out and {p.name for p in out.iterdir()} == {"detector.json", "heads.npz", "held_out.npz"}
    loaded = Detector.load(out)
    vectors = index.vectors(np.arange(len(index)))
    np.testing.assert_array_equal(loaded.scores(vectors), detector.scores(vectors))
    np.testing.assert_array_equal(loaded.probabilities(vectors), detector.probabilities(vectors))
    np.testing.assert_array_equal(loaded.thresholds, detector.thresholds)
    assert loaded.labels == detector.labels and loaded.config == detector.config
    assert loaded.source == detector.source
    assert [r.to_dict() for r in loaded.reports] == [r.to_dict() for r in detector.reports]
    json.dumps([r.to_dict() for r in loaded.reports], allow_nan=False)
    np.testing.assert_array_equal(loaded.report("tone").calibration.counts, detector.report("tone").calibration.counts)
    for label in detector.labels:
        for key in ("y", "probability", "groups"):
            np.testing.assert_array_equal(loaded.held_out[label][key], detector.held_out[label][key])
    # Other thresholds: measured again on the held-out labels, saved over the same folder.
    moved = loaded.with_thresholds({"tone": 0.99})
    assert moved.path is None and moved.thresholds[2] == 0.99 and moved.report("tone").point.threshold == 0.99
    assert loaded.thresholds[2] != 0.99
    (out / "report.html").write_text("the old detector's report")
    (out / "saved_model" / "1").mkdir(parents=True)  # its export: the old thresholds are in its graph
    moved.save(out)
    assert Detector.load(out).thresholds[2] == 0.99
    assert not (out / "report.html").exists() and not (out / "saved_model").exists()  # no stale page or export
    with pytest.raises(DetectorError, match="no label 'owl'"):
        loaded.with_thresholds({"owl": 0.5})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DetectorError, match="other: exists and is not a tfaudio detector"):
        detector.save(tmp_path / "other")


def test_load_refuses_what_is_not_a_whole_detector_in_one_line(tmp_path, trained):
    _, detector, _ = trained
    out = detector.save(tmp_path / "det")

    def refused(path, pattern):
        with pytest.raises(DetectorError, match=pattern) as caught:
            Detector.load(path)
        assert "\n" not in str(caught.value)

    refused(tmp_path / "missing", "no such detector")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "not a tfaudio detector")
    header = json.loads((out / "detector.json").read_text())
    (out / "detector.json").write_text(json.dumps({**header, "format": "tfaudio-detector/9"}))
    refused(out, "detector format 'tfaudio-detector/9'")
    (out / "detector.json").write_text(json.dumps({**header, "format": "someone-else/1"}))
    refused(out, "not a tfaudio detector: format 'someone-else/1'")
    (out / "detector.json").write_text("{ half")
    refused(out, "detector.json: damaged")
    (out / "detector.json").write_text(json.dumps({**header, "thresholds": [0.5]}))
    refused(out, "detector.json: damaged")
    (out / "detector.json").write_text(json.dumps(header))
    heads = (out / "heads.npz").read_bytes()
    (out / "heads.npz").write_bytes(heads[: len(heads) // 2])
    refused(out, "heads.npz: damaged or from another training")
    (out / "heads.npz").unlink()
    refused(out, "heads.npz: cannot be read")
