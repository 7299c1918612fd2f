"""`tfaudio compare`: shared folds, report files, reproducibility, bad data, the page itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import chromium, console_errors, open_page
from click.testing import CliRunner
from conftest import shared_path

from tfaudio.cli.main import main
from tfaudio.comparison.report import write_report
from tfaudio.comparison.run import CompareConfig, CompareError, compare

FAST = ("logreg", "rf")
FAST_PARAMS = (("rf", (("n_estimators", 50),)),)


@pytest.fixture(autouse=True)
def isolated(offline_with_bands):
    """Own cache, no network, no shared weights unless a test asks; 'bands' resolvable by name."""


def _config(**overrides):
    base = dict(models=("handcrafted", "bands"), classifiers=FAST, params=FAST_PARAMS)
    return CompareConfig(**{**base, **overrides})


def test_compare_on_generated_data_writes_a_consistent_report(synth_data, tmp_path):
    result = compare(synth_data, _config(models=("handcrafted", "bands", "vggish")), log=lambda m: None)
    # Every run is scored on the same clips and the same splits.
    assert len(result.splits) == 5 and sorted(np.concatenate([s.test for s in result.splits]).tolist()) == list(range(80))
    assert {(r.representation, r.classifier) for r in result.runs} == {
        (m, c) for m in ("handcrafted", "bands") for c in FAST}
    assert [u.name for u in result.unavailable] == ["vggish"]
    assert "vggish_model.ckpt" in result.unavailable[0].reason
    ranking = result.ranking
    assert list(ranking["rank"]) == [1, 2, 3, 4]
    assert ranking["accuracy"].is_monotonic_decreasing
    assert ((ranking["ci_low"] <= ranking["accuracy"]) & (ranking["accuracy"] <= ranking["ci_high"])).all()
    assert (ranking["ci_high"] - ranking["ci_low"] < 0.3).all()
    learned = ranking[ranking.representation == "bands"]
    assert learned["mcnemar_p"].between(0, 1).all()
    assert ranking[ranking.representation == "handcrafted"]["mcnemar_p"].isna().all()

    index = write_report(result, tmp_path / "report")
    out = index.parent
    assert {p.name for p in out.iterdir()} >= {"index.html", "report.md", "metrics.json", "predictions.csv", "timings.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["splits"]["strategy"] == "predefined"
    assert metrics["winner"]["representation"] == result.winner.representation
    assert metrics["unavailable"][0]["name"] == "vggish"
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 80
    run = result.run("bands", "logreg")
    pooled = np.mean(predictions["bands/logreg"] == predictions["label"])
    assert pooled == pytest.approx(run.metrics.accuracy)
    for scored in metrics["runs"]:  # top-label calibration of the out-of-fold probabilities, every clip binned
        calibration = scored["calibration"]
        assert calibration["kind"] == "top-label" and calibration["binning"] == "10 equal-width bins"
        assert calibration["ece_ci95"][0] <= calibration["ece_ci95"][1] and 0 <= calibration["ece"] <= 1
        assert sum(b["clips"] for b in calibration["reliability"]) == 80
        assert calibration["accuracy"] == pytest.approx(scored["accuracy"])
    assert any(p.startswith("Calibration (top-label expected calibration error") for p in metrics["discussion"])
    markdown = (out / "report.md").read_text()
    assert "## Ranking" in markdown and "vggish" in markdown
    assert "## Calibration (top-label, equal-width bins, out-of-fold)" in markdown and "| ECE (95 % CI) |" in markdown
    assert "| McNemar p vs handcrafted with the same classifier |" in markdown  # which baseline, said


def test_same_command_gives_identical_metrics(synth_data, tmp_path):
    runner = CliRunner()
    for name in ("a", "b"):
        outcome = runner.invoke(main, ["compare", str(synth_data), "--model", "bands", "--classifier", "logreg",
                                       "--classifier", "mlp", "--param", "mlp.max_iter=200",
                                       "--out", str(tmp_path / name)])
        assert outcome.exit_code == 0, outcome.output
        assert "Report:" in outcome.output
        assert "McNemar p: each run against handcrafted with the same classifier" in outcome.output
    first, second = ((tmp_path / n / "metrics.json").read_bytes() for n in "ab")
    assert first == second
    # The second run was served by the embedding cache.
    assert json.loads((tmp_path / "b" / "timings.json").read_text())["embedding"]["bands"]["cached"] == 80


def test_bad_data_is_reported_and_the_run_completes(synth_data, tmp_path):
    data = tmp_path / "messy"
    shutil.copytree(synth_data, data)
    meta = pd.read_csv(data / "meta.csv")
    (data / "lonely").mkdir()
    shutil.copy(data / meta.filename[0], data / "lonely" / "only.wav")
    (data / "tone" / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    (data / "tone" / "notes.txt").write_text("not audio")
    (data / "meta.csv").unlink()  # read as class folders: the new files are picked up
    outcome = CliRunner().invoke(main, ["compare", str(data), "--model", "bands", "--classifier", "logreg",
                                        "--out", str(tmp_path / "out")])
    assert outcome.exit_code == 0, outcome.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    skipped = {Path(s["path"]).name if "/" in s["path"] else s["path"]: s["reason"] for s in metrics["skipped"]}
    assert "broken.wav" in skipped
    assert "class 'lonely'" in skipped and "only 1 readable clip" in skipped["class 'lonely'"]
    assert any(i["path"].endswith("notes.txt") for i in metrics["dataset"]["ignored"])
    assert "lonely" not in metrics["dataset"]["classes_compared"]
    assert metrics["dataset"]["clips_compared"] == 80
    page = (tmp_path / "out" / "index.html").read_text()
    assert "broken.wav" in page and "lonely" in page and "notes.txt" in page


def test_strict_and_impossible_comparisons_fail_with_a_message(synth_data, tmp_path):
    runner = CliRunner()
    outcome = runner.invoke(main, ["compare", str(synth_data), "--model", "vggish", "--strict", "--out", str(tmp_path / "x")])
    assert outcome.exit_code != 0 and "vggish is unavailable" in outcome.output and "Traceback" not in outcome.output
    outcome = runner.invoke(main, ["compare", str(synth_data), "--param", "rf.n_trees", "--out", str(tmp_path / "x")])
    assert outcome.exit_code != 0 and "CLASSIFIER.PARAM=VALUE" in outcome.output
    two = tmp_path / "two"
    for label in ("a", "b"):
        (two / label).mkdir(parents=True)
        shutil.copy(next(synth_data.glob("tone/*.wav")), two / label / "x.wav")
    with pytest.raises(CompareError, match="fewer than 2 classes"):
        compare(two, _config(), log=lambda m: None)


def test_baseline_alone_and_a_failing_autoencoder_are_reported_not_fatal(synth_data, monkeypatch):
    from tfaudio.models.autoencoder import train as autoencoder
    from tfaudio.models.autoencoder.config import AutoencoderError

    alone = compare(synth_data, _config(models=("handcrafted",)), log=lambda m: None)
    from tfaudio.comparison.discussion import paragraphs

    assert paragraphs(alone)[0].startswith("**Only the hand-crafted baseline was evaluated**")

    def refuse(*args, **kwargs):
        raise AutoencoderError("too few patches for one batch of 64")

    monkeypatch.setattr(autoencoder, "train", refuse)
    result = compare(synth_data, _config(models=("bands", "autoencoder")), log=lambda m: None)
    assert [(u.name, u.reason) for u in result.unavailable] == [("autoencoder", "too few patches for one batch of 64")]
    assert {r.representation for r in result.runs} == {"handcrafted", "bands"}
    with pytest.raises(CompareError, match="autoencoder is unavailable"):
        compare(synth_data, _config(models=("autoencoder",), strict=True), log=lambda m: None)


def test_autoencoder_is_trained_per_split_once_and_reused(synth_data, tmp_path):
    config = _config(models=("autoencoder",), split="stratified", folds=2, classifiers=("logreg",),
                     fit=(("autoencoder", (("epochs", 2),)),))
    first_log, second_log = [], []
    first = compare(synth_data, config, log=first_log.append)
    second = compare(synth_data, config, log=second_log.append)
    assert sum("training on the 40 training clips" in m for m in first_log) == 2
    assert sum("model is cached" in m for m in second_log) == 2 and not any("training on" in m for m in second_log)
    a, b = (write_report(r, tmp_path / n).parent / "metrics.json" for r, n in ((first, "a"), (second, "b")))
    assert a.read_bytes() == b.read_bytes()
    info = next(i for i in first.representations if i.name == "autoencoder")
    assert info.per_split and info.dim == 2 * 64  # mean+std of the 64-d bottleneck
    assert "once per split on that split's training clips" in " ".join(first.notes)


def test_report_page_loads_offline_with_its_figures(synth_data, tmp_path):
    result = compare(synth_data, _config(), log=lambda m: None)
    index = write_report(result, tmp_path / "report")
    assert "cdn.plot.ly" not in index.read_text().split("<script", 2)[1][:200]  # plotly.js inlined, not fetched
    with chromium() as driver:
        open_page(driver, index)
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert driver.title == f"tfaudio comparison: {synth_data.name}"
        figures = driver.execute_script("return document.querySelectorAll('.plotly-graph-div .main-svg').length > 0 "
                                        "? document.querySelectorAll('div.plotly-graph-div').length : -1")
        assert figures == 5  # ranking, confusion matrices, per-class F1, reliability diagrams, PCA thumbnails
        assert console_errors(driver) == []
    assert (tmp_path / "report.png").stat().st_size > 20_000


def test_fetch_from_a_local_server_writes_the_official_folds(tmp_path):
    import hashlib
    import http.server
    import threading
    import zipfile

    import soundfile as sf

    from tfaudio.data.fetch import SOURCES, FetchError, fetch, with_url

    archive = tmp_path / "ESC-50-master.zip"
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    with zipfile.ZipFile(archive, "w") as bundle:
        for i, (category, esc10) in enumerate([("dog", "True"), ("rain", "True"), ("cat", "False")] * 2):
            name = f"{i % 5 + 1}-{100 + i}-A-0.wav"
            wav = tmp_path / name
            sf.write(wav, np.zeros(800, np.float32), 16000)
            bundle.write(wav, f"ESC-50-master/audio/{name}")
            rows.append(f"{name},{i % 5 + 1},{i},{category},{esc10},{100 + i},A")
        bundle.writestr("ESC-50-master/meta/esc50.csv", "\n".join(rows) + "\n")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()

    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ESC-50-master.zip"
    try:
        with pytest.raises(FetchError, match="sha256"):
            fetch("esc10", out=tmp_path / "bad", source=with_url(SOURCES["esc10"], url, "0" * 64), offline=False,
                  progress=False)
        assert not (tmp_path / "bad" / "meta.csv").exists()
        folder = fetch("esc10", out=tmp_path / "esc10", source=with_url(SOURCES["esc10"], url, digest), offline=False,
                       progress=False)
    finally:
        server.shutdown()
    manifest = pd.read_csv(folder / "meta.csv")
    assert list(manifest.columns) == ["filename", "label", "fold", "group"]
    assert sorted(manifest.label.unique()) == ["dog", "rain"]  # the ESC-10 rows only
    assert all((folder / f).is_file() for f in manifest.filename)
    from tfaudio.data.dataset import load_dataset

    assert load_dataset(folder).folds is not None
    with pytest.raises(FetchError, match="unknown dataset"):
        fetch("esc-11")


def test_speech_commands_layout_gets_speaker_folds_and_the_official_lists(tmp_path):
    import tarfile

    import soundfile as sf

    from tfaudio.data.fetch import SOURCES, speaker_fold

    source = tmp_path / "src"
    speakers = [f"{i:08x}" for i in range(12)]
    for word in ("yes", "no", "_background_noise_"):
        (source / word).mkdir(parents=True)
        for speaker in speakers[:6] if word == "_background_noise_" else speakers:
            sf.write(source / word / f"{speaker}_nohash_0.wav", np.zeros(160, np.float32), 16000)
    (source / "validation_list.txt").write_text(f"yes/{speakers[0]}_nohash_0.wav\n")
    (source / "testing_list.txt").write_text(f"no/{speakers[1]}_nohash_0.wav\n")
    archive = tmp_path / "speech_commands_v0.01.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        for path in sorted(source.rglob("*")):
            bundle.add(path, arcname=str(path.relative_to(source)))
    out = tmp_path / "sc"
    out.mkdir()
    assert SOURCES["speech-commands"].prepare(archive, out) == 24  # background noise not listed
    manifest = pd.read_csv(out / "meta.csv", dtype={"group": str})
    assert list(manifest.columns) == ["filename", "label", "fold", "group", "official_split"]
    assert set(manifest.label) == {"yes", "no"}
    assert manifest.groupby("group")["fold"].nunique().max() == 1  # a speaker never spans two folds
    assert (manifest.fold == manifest.group.map(speaker_fold)).all()
    assert manifest.set_index("filename").official_split.to_dict()[f"audio/yes/{speakers[0]}_nohash_0.wav"] == "validation"
    assert sorted(manifest.official_split.value_counts().to_dict().items()) == [("test", 1), ("train", 22), ("validation", 1)]


def test_demo_falls_back_to_generated_data_offline(tmp_path):
    outcome = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--classifier", "logreg"])
    assert outcome.exit_code == 0, outcome.output
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert "ESC-10 could not be fetched" in metrics["fallback"]
    assert {u["name"] for u in metrics["unavailable"]} == {"yamnet", "vggish", "wav2vec2"}
    assert {r["representation"] for r in metrics["runs"]} == {"handcrafted", "autoencoder"}
    page = (tmp_path / "demo" / "index.html").read_text()
    assert page.index("ESC-10 could not be fetched") < page.index("Verdict")  # said at the top


@pytest.mark.shared
@pytest.mark.slow
def test_esc10_yamnet_beats_the_baseline_significantly(tmp_path, monkeypatch):
    esc10 = shared_path("datasets", "esc10")
    monkeypatch.setenv("TFAUDIO_MODELS", str(shared_path("models")))
    result = compare(esc10, CompareConfig(models=("handcrafted", "yamnet"), classifiers=("rf", "logreg")),
                     log=lambda m: None)
    assert result.split_strategy == "predefined" and len(result.splits) == 5
    assert result.run("handcrafted", "rf").metrics.accuracy >= 0.65
    assert result.run("yamnet", "logreg").metrics.accuracy >= 0.95
    assert result.winner.representation == "yamnet"
    assert result.winner_versus_baseline().p_value < 0.01
    metrics = json.loads((write_report(result, tmp_path / "r").parent / "metrics.json").read_text())
    assert "yamnet wins" in metrics["discussion"][0] and "significantly better" in metrics["discussion"][0]


@pytest.mark.shared
@pytest.mark.slow
def test_speech_commands_every_representation_separates_speech_from_noise(monkeypatch):
    data = shared_path("datasets", "speech_commands")
    monkeypatch.setenv("TFAUDIO_MODELS", str(shared_path("models")))
    result = compare(data, CompareConfig(models=("handcrafted", "yamnet"), classifiers=("rf", "logreg")),
                     log=lambda m: None)
    assert {r.representation for r in result.runs} == {"handcrafted", "yamnet"}
    for name in ("handcrafted", "yamnet"):
        assert result.best_of(name).metrics.accuracy >= 0.95, name


def test_report_lists_clips_worth_a_look(synth_data, tmp_path):
    """A file listed twice in the manifest is kept, and the report says so under "Worth a look"."""
    import csv

    rows = list(csv.reader((synth_data / "meta.csv").open()))
    manifest = tmp_path / "meta.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows(rows + [rows[1]])  # the first clip's row again
    for row in rows[1:]:
        target = tmp_path / row[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy(synth_data / row[0], target)
    result = compare(manifest, _config(models=("handcrafted",)), log=lambda m: None)
    index = write_report(result, tmp_path / "report")
    markdown = (index.parent / "report.md").read_text()
    assert "## Worth a look" in markdown and rows[1][0] in markdown.split("## Worth a look")[1]
    assert "Worth a look" in index.read_text()
