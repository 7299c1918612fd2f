"""Training's validation split is `tfaudio.data.splits.validation_holdout`: one split vocabulary,
the same folds, groups and seeds as compare's."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import sine

from tfaudio.data.dataset import load_dataset
from tfaudio.data.splits import (
    VALIDATION_SPLITS,
    SplitError,
    fold_split,
    holdout,
    predefined_folds,
    resolve_strategy,
    validation_holdout,
)
from tfaudio.training.config import TrainConfig, TrainingError
from tfaudio.training.inputs import validation_split


@pytest.fixture(scope="module")
def speakers(tmp_path_factory):
    """40 clips, 2 labels, 10 speakers, no folds (a group column named speaker)."""
    root = tmp_path_factory.mktemp("speakers")
    rows = ["filename,label,speaker"]
    for speaker in range(10):
        for label in ("yes", "no"):
            for take in range(2):
                name = f"{label}/{speaker}_{take}.wav"
                (root / label).mkdir(exist_ok=True)
                sf.write(root / name, sine(300 + 100 * speaker, 0.2, 0.3), 16000)
                rows.append(f"{name},{label},s{speaker}")
    (root / "meta.csv").write_text("\n".join(rows) + "\n")
    return load_dataset(root, group_column="speaker")


def test_vocabulary_is_splits_own():
    from tfaudio.training.config import SPLITS

    assert SPLITS == VALIDATION_SPLITS == ("auto", "predefined", "group", "stratified")


def test_fold_split_is_one_of_the_predefined_folds(synth_data):
    dataset = load_dataset(synth_data)
    folds = {s.name: s for s in predefined_folds(dataset)}
    for fold in (None, 3):
        split = fold_split(dataset, fold)
        same = folds[split.name]
        assert np.array_equal(split.train, same.train) and np.array_equal(split.test, same.test)
    assert fold_split(dataset).name == "fold1"  # default: the lowest fold
    with pytest.raises(SplitError, match=r"no clip is in fold 9 \(folds present: \[1, 2, 3, 4, 5\]\)"):
        fold_split(dataset, 9)


def test_training_takes_its_split_from_validation_holdout(synth_data, speakers):
    synth = load_dataset(synth_data)
    cases = [
        (synth, {}, "predefined", {}),
        (synth, {"split": "predefined", "val_fold": 4}, "predefined", {"fold": 4}),
        (synth, {"split": "stratified", "seed": 3}, "stratified", {"seed": 3}),
        (speakers, {}, "group", {}),
        (speakers, {"split": "group", "seed": 2, "val_fraction": 0.3}, "group", {"seed": 2, "fraction": 0.3}),
        (speakers, {"split": "stratified"}, "stratified", {}),
    ]
    for dataset, settings, strategy, arguments in cases:
        config = TrainConfig(backbone="small_cnn", **settings)
        assert resolve_strategy(dataset, config.split) == strategy
        expected = validation_holdout(dataset, config.split, **arguments)
        split = validation_split(dataset, config)
        assert np.array_equal(split.train, expected.train) and np.array_equal(split.val, expected.test), settings


def test_group_and_stratified_holdouts_are_the_holdout_split(speakers):
    grouped = validation_holdout(speakers, "group", seed=5)
    (same,) = holdout(speakers, 0.2, 5, grouped=True)
    assert np.array_equal(grouped.test, same.test)
    groups = speakers.groups
    assert not set(groups[grouped.train]) & set(groups[grouped.test])  # no speaker on both sides
    stratified = validation_holdout(speakers, "stratified", seed=5)
    (plain,) = holdout(speakers, 0.2, 5, grouped=False)  # groups ignored
    assert np.array_equal(stratified.test, plain.test) and len(stratified.test) == 8
    assert np.bincount(speakers.labels[stratified.test]).tolist() == [4, 4]


def test_impossible_validation_splits_say_why(synth_data, speakers):
    synth = load_dataset(synth_data)
    with pytest.raises(SplitError, match="applies to the 'predefined' split, not 'stratified'"):
        validation_holdout(synth, "stratified", fold=2)
    with pytest.raises(SplitError, match="needs a group for every clip"):
        validation_holdout(synth, "group")
    with pytest.raises(SplitError, match="no predefined folds"):
        validation_holdout(speakers, "predefined")
    with pytest.raises(ValueError, match="holds out no validation set"):
        validation_holdout(synth, "holdout")
    # through training: the same reasons, naming the dataset and the option to change
    with pytest.raises(TrainingError, match="cannot hold out a validation set \\('group' split\\): .*--group-column"):
        validation_split(synth, TrainConfig(split="group"))
    with pytest.raises(TrainingError, match="--val-fold applies to the 'predefined' split, not 'group'"):
        validation_split(speakers, TrainConfig(val_fold=1))
    with pytest.raises(TrainingError, match="no validation clips: no clip is in fold 7 .*Pick another --val-fold"):
        validation_split(synth, TrainConfig(val_fold=7))
