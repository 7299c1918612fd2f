"""`compare` / `demo` options: every choice comes from the table that defines it, settings of
representations fitted per split go through `--fit MODEL.SETTING=VALUE`, and the old spellings
(--ae-epochs, --latent) still work with a note."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from tfaudio.cli.main import main
from tfaudio.comparison.classifiers import CLASSIFIERS, ClassifierSpec, make_classifier
from tfaudio.comparison.config import CompareConfig
from tfaudio.comparison.settings import parse_overrides
from tfaudio.data.splits import CROSS_VALIDATION
from tfaudio.frontend.pooling import POOLING
from tfaudio.models.registry import model_kinds


@pytest.fixture(autouse=True)
def isolated(offline_with_bands):
    """Own cache, no network, no shared weights unless a test asks; 'bands' resolvable by name."""


def _option(command, name: str) -> click.Option:
    return next(p for p in command.params if p.name == name)


def test_the_classifier_table_holds_what_every_reader_needs():
    # The defaults metrics.json records for each classifier, as they were when they were four tables.
    assert {name: ClassifierSpec(name).resolved() for name in CLASSIFIERS} == {
        "rf": {"n_estimators": 500, "max_features": "sqrt", "n_jobs": -1, "random_state": 0},
        "mlp": {"hidden_layer_sizes": (256,), "alpha": 1e-3, "learning_rate_init": 1e-3, "max_iter": 400,
                "early_stopping": False, "random_state": 0},
        "logreg": {"C": 1.0, "max_iter": 3000, "random_state": 0},
    }
    assert [c.name for c in CLASSIFIERS.values() if c.parallel_splits] == ["mlp", "logreg"]
    assert [c.name for c in CLASSIFIERS.values() if c.linear] == ["logreg"]
    for name, classifier in CLASSIFIERS.items():
        estimator = make_classifier(ClassifierSpec(name, (("random_state", 3),)))[-1]
        assert type(estimator).__name__ in {"RandomForestClassifier", "MLPClassifier", "LogisticRegression"}
        assert estimator.get_params()["random_state"] == 0  # the seed wins over a --param
        assert classifier.label and classifier.short
    assert CompareConfig().classifiers == tuple(CLASSIFIERS)


def test_cli_choices_come_from_the_tables():
    from tfaudio.cli.compare import compare, demo

    for command in (compare, demo):
        assert list(_option(command, "classifiers").type.choices) == list(CLASSIFIERS)
        assert list(_option(command, "split").type.choices) == list(CROSS_VALIDATION)
        assert list(_option(command, "pooling").type.choices) == list(POOLING)
        assert all(c.label in _option(command, "classifiers").help for c in CLASSIFIERS.values())
    model_help = _option(compare, "model_names").help
    assert all(spelling in model_help for spelling, _ in model_kinds())
    assert "autoencoder:PATH" in model_help and "hub:HANDLE" in model_help


def test_overrides_parse_generically_and_say_what_is_wrong():
    assert parse_overrides(["autoencoder.epochs=5", "autoencoder.latent=32", "autoencoder.epochs=7"], None,
                           "fit setting", "MODEL.SETTING=VALUE", "autoencoder.epochs=5") == {
        "autoencoder": {"epochs": 7, "latent": 32}}  # the later of two wins
    for bad in ("epochs=5", "autoencoder.epochs", ".epochs=5", "autoencoder.=5"):
        with pytest.raises(ValueError, match=r"cannot read fit setting .*MODEL.SETTING=VALUE \(e.g. autoencoder"):
            parse_overrides([bad], None, "fit setting", "MODEL.SETTING=VALUE", "autoencoder.epochs=5")
    with pytest.raises(ValueError, match="with CLASSIFIER one of rf, mlp, logreg"):
        parse_overrides(["svm.C=1"], CLASSIFIERS, "hyperparameter", "CLASSIFIER.PARAM=VALUE", "rf.n_estimators=300")


def test_fit_settings_reach_only_the_model_they_name():
    config = CompareConfig(models=("handcrafted", "autoencoder"), seed=3, max_duration=2.0,
                           fit=(("autoencoder", (("epochs", 5), ("seed", 9))),))
    assert config.fit_settings("autoencoder") == {"seed": 9, "max_duration": 2.0, "epochs": 5}
    # Without --fit, the autoencoder gets only what every fit shares: its own defaults stay, so its
    # fitted models keep the keys they had when compare passed epochs=10, latent=64 explicitly.
    from tfaudio.models.autoencoder.config import AutoencoderConfig
    from tfaudio.models.autoencoder.learned import LearnableAutoencoder

    plain = CompareConfig(models=("handcrafted", "autoencoder"))
    assert LearnableAutoencoder().configure(plain.fit_settings("autoencoder")).config == \
        LearnableAutoencoder().configure({"epochs": 10, "latent": 64, "seed": 0, "max_duration": None}).config == \
        AutoencoderConfig()
    with pytest.raises(ValueError, match="fit settings for autoencoder, which is not among the models compared"):
        CompareConfig(fit=(("autoencoder", (("epochs", 5),)),))


def test_fit_and_its_old_spellings_train_the_same_autoencoders(synth_data, tmp_path):
    runner = CliRunner()
    common = ["compare", str(synth_data), "--model", "autoencoder", "--classifier", "logreg", "--split", "stratified",
              "--folds", "2"]
    first = runner.invoke(main, [*common, "--fit", "autoencoder.epochs=1", "--fit", "autoencoder.latent=8",
                                 "--out", str(tmp_path / "fit")])
    assert first.exit_code == 0, first.output
    assert first.output.count("training on the 40 training clips") == 2 and "note:" not in first.output
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    autoencoder = next(r for r in metrics["representations"] if r["name"] == "autoencoder")
    assert autoencoder["dim"] == 16 and autoencoder["identity"]["config"]["latent"] == 8  # mean+std of 8
    assert any("1 epochs max, latent 8" in note for note in metrics["notes"])

    old = runner.invoke(main, [*common, "--ae-epochs", "1", "--latent", "8", "--out", str(tmp_path / "old")])
    assert old.exit_code == 0, old.output
    assert "note: --ae-epochs is now --fit autoencoder.epochs=N (the old spelling still works)" in old.output
    assert "note: --latent is now --fit autoencoder.latent=N (the old spelling still works)" in old.output
    # The same settings, so the same fitted models: found in the cache, not trained again.
    assert old.output.count("model is cached") == 2 and "training on" not in old.output
    # An explicit --fit wins over the old spelling of the same setting.
    both = runner.invoke(main, [*common, "--ae-epochs", "3", "--fit", "autoencoder.epochs=1", "--latent", "8",
                                "--out", str(tmp_path / "both")])
    assert both.exit_code == 0 and both.output.count("model is cached") == 2, both.output


def test_fit_settings_that_cannot_apply_stop_before_any_clip_is_embedded(synth_data, tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "r")
    unknown = runner.invoke(main, ["compare", str(synth_data), "--model", "autoencoder", "--fit", "autoencoder.epoch=2",
                                   "--out", out])
    assert unknown.exit_code == 1 and "Traceback" not in unknown.output
    assert "--fit autoencoder.epoch: autoencoder has no setting 'epoch'; it takes " in unknown.output
    assert "epochs" in unknown.output and "embedding" not in unknown.output
    not_fitted = runner.invoke(main, ["compare", str(synth_data), "--model", "bands", "--fit", "bands.epochs=2",
                                      "--out", out])
    assert not_fitted.exit_code == 1 and "bands has no setting 'epochs'; it is not trained on each split" in \
        not_fitted.output
    absent = runner.invoke(main, ["compare", str(synth_data), "--model", "bands", "--fit", "autoencoder.epochs=2",
                                  "--out", out])
    assert absent.exit_code == 2 and "not among the models compared" in absent.output
    assert "--fit" in absent.output
    garbled = runner.invoke(main, ["compare", str(synth_data), "--fit", "epochs=2", "--out", out])
    assert garbled.exit_code == 2 and "MODEL.SETTING=VALUE" in garbled.output
    assert not (tmp_path / "r").exists()
