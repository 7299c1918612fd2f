"""The hand-crafted baseline over whole datasets: extraction, skipping, and ESC-10 accuracy."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from tfaudio.data.audio import AudioError
from tfaudio.data.dataset import load_dataset
from tfaudio.data.splits import predefined_folds
from tfaudio.models.handcrafted.extract import ExtractConfig, extract
from tfaudio.models.handcrafted.model import HandcraftedParams, compute, feature_names


def test_extract_matches_per_clip_computation_and_keeps_order(synth_data):
    ds = load_dataset(synth_data)
    table = extract(ds, config=ExtractConfig(batch_size=7))
    assert list(table.feature_columns) == feature_names(HandcraftedParams())
    assert table.matrix.shape == (80, len(table.feature_columns))
    assert list(table.frame["file"]) == [ds.relative(c) for c in ds.clips]
    one = sf.read(ds.clips[11].path, dtype="float32")[0]
    np.testing.assert_allclose(table.matrix[11], compute(one[None, :])[0], rtol=1e-4, atol=1e-5)


def test_variable_length_clips_are_pooled_over_their_own_frames(tmp_path):
    rng = np.random.default_rng(0)
    for name, seconds in (("a", 0.3), ("b", 2.0), ("c", 0.01)):
        (tmp_path / "k").mkdir(exist_ok=True)
        sf.write(tmp_path / "k" / f"{name}.wav", rng.uniform(-0.5, 0.5, int(seconds * 16000)).astype(np.float32), 16000)
    ds = load_dataset(tmp_path)
    batched = extract(ds, config=ExtractConfig(batch_size=3)).matrix
    alone = extract(ds, config=ExtractConfig(batch_size=1)).matrix
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-4)
    assert np.isfinite(batched).all()


def test_a_corrupt_file_is_skipped_and_reported_or_fails_fast(synth_data, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(synth_data, data)
    bad = data / "clicks" / "clicks_004.wav"
    bad.write_bytes(bad.read_bytes()[:30])
    ds = load_dataset(data)
    seen = []
    table = extract(ds, progress=seen.append)
    assert [p.path for p in table.skipped] == [str(bad)]
    assert len(table.frame) == 79 and sum(seen) == 80
    with pytest.raises(AudioError, match="clicks_004.wav"):
        extract(ds, config=ExtractConfig(strict=True))


@pytest.mark.slow
def test_esc10_random_forest_on_the_baseline_reaches_65_percent(esc10):
    """Published random-forest baselines on ESC-10 are near 73 % (Piczak 2015)."""
    from sklearn.ensemble import RandomForestClassifier

    ds = load_dataset(esc10)
    table = extract(ds)
    x, y = table.matrix, ds.labels
    scores = []
    for split in predefined_folds(ds):
        forest = RandomForestClassifier(n_estimators=500, random_state=0, n_jobs=-1)
        forest.fit(x[split.train], y[split.train])
        scores.append(float(np.mean(forest.predict(x[split.test]) == y[split.test])))
    print(f"ESC-10 hand-crafted + random forest, per fold: {np.round(scores, 3)}, mean {np.mean(scores):.3f}")
    assert np.mean(scores) >= 0.65
