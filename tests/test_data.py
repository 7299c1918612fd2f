"""tfaudio.data: discovery, summaries, splits and decoded batches."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from tfaudio.data.batches import iter_batches
from tfaudio.data.dataset import DatasetError, load_dataset, summarize
from tfaudio.data.splits import (
    SplitError,
    balanced_holdout,
    drop_small_classes,
    holdout,
    make_splits,
    minimum_per_class,
    predefined_folds,
    resolve_strategy,
    stratified_kfold,
)


def write_clip(path, seconds=0.5, rate=16000, freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


@pytest.fixture
def folder_tree(tmp_path):
    """Two classes in folders, plus the clutter a real folder has."""
    for i in range(6):
        write_clip(tmp_path / "dog" / f"d{i}.wav", freq=300 + i)
        write_clip(tmp_path / "cat" / "sub" / f"c{i}.flac", freq=900 + i)
    (tmp_path / "dog" / ".hidden.wav").write_bytes(b"junk")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.wav").write_bytes(b"junk")
    (tmp_path / "cat" / "notes.md").write_text("about cats")
    (tmp_path / "dog" / "broken.wav").write_bytes(b"RIFF" + bytes(100))
    return tmp_path


def test_folder_discovery_ignores_hidden_files_and_lists_unknown_extensions(folder_tree):
    ds = load_dataset(folder_tree)
    assert ds.classes == ("cat", "dog")
    assert len(ds) == 13  # 6 + 6 + the broken .wav, found but not yet read
    assert not any(".hidden" in str(c.path) or ".git" in str(c.path) for c in ds.clips)
    assert [p.reason for p in ds.ignored] == ["unknown audio extension '.md'"]
    assert ds.folds is None and ds.groups is None
    assert sorted(np.bincount(ds.labels)) == [6, 7]


def test_summary_lists_the_corrupt_file_and_counts_the_rest(folder_tree):
    summary = summarize(load_dataset(folder_tree))
    assert len(summary.clips) == 12
    assert [p.path for p in summary.unreadable] == [str(folder_tree / "dog" / "broken.wav")]
    facts = summary.to_dict()
    assert facts["clips_per_class"] == {"cat": 6, "dog": 6}
    assert facts["sample_rates"] == {16000: 12}
    assert facts["duration_seconds"]["total"] == pytest.approx(6.0)


def test_manifest_paths_are_relative_to_the_csv(tmp_path):
    for i in range(4):
        write_clip(tmp_path / "audio" / f"a{i}.wav")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "m.csv").write_text(
        "filename,label,fold,speaker\n"
        "../audio/a0.wav,yes,1,s1\n../audio/a1.wav,no,1,s2\n"
        "../audio/a2.wav,yes,2,s3\n../audio/a3.wav,no,2,s1\n"
        "../audio/gone.wav,no,2,s4\n../audio/readme.txt,no,1,s1\n"
    )
    ds = load_dataset(tmp_path / "lists" / "m.csv", group_column="speaker")
    assert [c.path.name for c in ds.clips] == ["a0.wav", "a1.wav", "a2.wav", "a3.wav"]
    assert list(ds.folds) == [1, 1, 2, 2]
    assert list(ds.groups) == ["s1", "s2", "s3", "s1"]
    reasons = sorted(p.reason for p in ds.ignored)
    assert reasons[0].startswith("listed in m.csv (line 6) but not found")
    assert reasons[1] == "unknown audio extension '.txt'"


def test_manifest_errors_are_specific(tmp_path):
    (tmp_path / "bad.csv").write_text("file,class\na.wav,x\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['filename', 'label'\]"):
        load_dataset(tmp_path / "bad.csv")
    write_clip(tmp_path / "a.wav")
    (tmp_path / "fold.csv").write_text("filename,label,fold\na.wav,x,one\n")
    with pytest.raises(DatasetError, match="line 2: fold must be an integer"):
        load_dataset(tmp_path / "fold.csv")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio files found"):
        load_dataset(tmp_path / "empty")


def test_folder_with_meta_csv_uses_its_folds(synth_data):
    ds = load_dataset(synth_data)
    assert ds.source.endswith("meta.csv")
    assert set(ds.folds) == {1, 2, 3, 4, 5}
    splits = make_splits(ds)  # auto -> predefined
    assert [s.name for s in splits] == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    for split in splits:
        assert set(ds.folds[split.test]) == {int(split.name[-1])}
        assert not set(split.train) & set(split.test)


def test_stratified_kfold_is_seeded_stratified_and_covers_every_clip(synth_data):
    ds = load_dataset(synth_data)
    first, again, other = stratified_kfold(ds, 4, seed=1), stratified_kfold(ds, 4, seed=1), stratified_kfold(ds, 4, 2)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(first, again))
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(first, other))
    assert sorted(np.concatenate([s.test for s in first])) == list(range(len(ds)))
    for split in first:
        assert list(np.bincount(ds.labels[split.test])) == [5, 5, 5, 5]


def test_holdout_is_stratified(synth_data):
    ds = load_dataset(synth_data)
    (split,) = holdout(ds, test_size=0.25, seed=0)
    assert list(np.bincount(ds.labels[split.test])) == [5, 5, 5, 5]


def test_group_folds_never_share_a_group(tmp_path):
    rows = ["filename,label,group"]
    for i in range(24):
        label = "a" if i % 2 else "b"
        write_clip(tmp_path / f"c{i}.wav")
        rows.append(f"c{i}.wav,{label},spk{i % 6}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path)
    splits = make_splits(ds, "auto", k=3, seed=0)
    assert len(splits) == 3
    for split in splits:
        assert not set(ds.groups[split.train]) & set(ds.groups[split.test])
    with pytest.raises(SplitError, match="needs at least 7 groups; found 6"):
        make_splits(ds, "group", k=7)


def test_one_split_vocabulary_resolves_auto_and_aliases(synth_data, folder_tree):
    ds = load_dataset(synth_data)  # has manifest folds
    assert resolve_strategy(ds) == resolve_strategy(ds, "fold") == "predefined"  # `tfaudio train --split fold`
    assert [s.name for s in make_splits(ds, "fold")] == [s.name for s in make_splits(ds)]
    unfolded = load_dataset(folder_tree)  # class folders: no folds, no groups
    assert resolve_strategy(unfolded) == "stratified" and resolve_strategy(unfolded, "group") == "group"
    with pytest.raises(ValueError, match="unknown split strategy 'kfold'"):
        resolve_strategy(ds, "kfold")
    assert minimum_per_class("stratified", 7) == 7
    assert minimum_per_class("predefined", 7) == minimum_per_class("group", 7) == minimum_per_class("holdout") == 2


def test_small_classes_are_dropped_with_a_reason(synth_data):
    ds = load_dataset(synth_data)  # 20 clips in each of 4 classes
    kept, problems = drop_small_classes(ds, 21, "stratified cross-validation")
    assert len(kept.classes) == 0 and len(problems) == 4
    assert problems[0].reason == ("only 20 readable clip(s); stratified cross-validation needs at least 21, "
                                  "so the class is left out")
    same, none = drop_small_classes(ds, 20, "x")
    assert same is ds and none == []


def test_balanced_holdout_holds_out_every_class_seeded(synth_data):
    ds = load_dataset(synth_data)
    indices = np.arange(0, 80, 2)
    kept, held = balanced_holdout(ds, indices, 0.1, seed=3)
    assert len(held) == 4 and sorted(ds.labels[held].tolist()) == [0, 1, 2, 3]  # one per class
    assert sorted([*kept, *held]) == indices.tolist()
    again, other = balanced_holdout(ds, indices, 0.1, seed=3), balanced_holdout(ds, indices, 0.1, seed=4)
    assert np.array_equal(again[1], held) and not np.array_equal(other[1], held)
    _, held = balanced_holdout(ds, np.array([0, 1, 2, 3, 20]), 0.4, seed=0)  # 4 tones and 1 chirp
    assert 20 in held and ds.labels[held].tolist().count(3) == 1  # a class of one clip is held out too


def test_too_few_clips_for_the_split_is_refused_by_name(folder_tree):
    shutil.rmtree(folder_tree / "cat")
    write_clip(folder_tree / "cat" / "only.wav")
    ds = load_dataset(folder_tree)
    with pytest.raises(SplitError, match=r"too few in: 'cat' \(1\)"):
        stratified_kfold(ds, 5)
    with pytest.raises(SplitError, match="'cat'"):
        holdout(ds)
    with pytest.raises(SplitError, match="no predefined folds"):
        predefined_folds(ds)


def test_iter_batches_skips_bad_files_or_fails_fast(folder_tree):
    ds = load_dataset(folder_tree)
    errors = []
    batches = list(iter_batches(ds.clips, batch_size=5, on_error=errors.append))
    assert [e.path for e in errors] == [str(folder_tree / "dog" / "broken.wav")]
    assert sum(len(b.indices) for b in batches) == 12
    assert all(b.waveforms.shape == (len(b.indices), 8000) for b in batches)
    assert all((b.lengths == 8000).all() for b in batches)
    with pytest.raises(Exception, match="broken.wav"):
        list(iter_batches(ds.clips, batch_size=5))


def test_esc10_has_400_clips_in_10_classes_and_5_folds(esc10):
    ds = load_dataset(esc10)
    summary = summarize(ds).to_dict()
    assert summary["clips"] == 400 and len(summary["classes"]) == 10
    assert summary["folds"] == [1, 2, 3, 4, 5]
    assert summary["unreadable"] == []
