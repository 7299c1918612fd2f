"""Interactive embedding pages: projections, separability figures, media, the page in Chromium,
the `tfaudio visualize` command and its errors, the Demo 1 script."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from browser import chromium, console_errors, open_page
from click.testing import CliRunner
from conftest import REPO, BandEnergies, shared_path

from tfaudio.data.dataset import Clip, Dataset, load_dataset
from tfaudio.pipeline.local import EmbeddingTable, EmbedStats
from tfaudio.viz import (
    MediaConfig,
    ProjectionConfig,
    SeparabilityConfig,
    VizError,
    VizWarning,
    visualize_tables,
)
from tfaudio.viz.media import shrink
from tfaudio.viz.projection import max_perplexity, project
from tfaudio.viz.separability import measure


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def viz_store(tmp_path_factory) -> Path:
    """One embedding cache for the visualization and projector tests (same path in both
    files), so a dataset is embedded once per session."""
    return tmp_path_factory.getbasetemp() / "tfaudio-viz-store"


def clustered(dataset: Dataset, dim: int = 16, spread: float = 0.3, seed: int = 0) -> np.ndarray:
    """float32 [clips, dim]: one random centre per class plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    centres = {label: rng.normal(size=dim) * 3 for label in dataset.classes}
    return np.stack([centres[c.label] + rng.normal(size=dim) * spread for c in dataset.clips]).astype(np.float32)


def table(dataset: Dataset, vectors, name: str = "fake") -> EmbeddingTable:
    return EmbeddingTable(name, "mean", dataset, dataset.clips, np.asarray(vectors, np.float32), EmbedStats(len(dataset)))


def page_data(path: Path) -> dict:
    text = path.read_text()
    return json.loads(re.search(r'<script type="application/json" id="page-data">(.*?)</script>', text, re.S).group(1))


# ----------------------------------------------------------------------------------- pieces


def test_shrink_averages_blocks_and_repeats_cells():
    values = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    np.testing.assert_allclose(shrink(values, 1, 2), [[3.5, 5.5]])  # means of 2 x 2 blocks
    np.testing.assert_allclose(shrink(values[:1, :2], 1, 4), [[1.0, 1.0, 2.0, 2.0]])  # each cell repeated


def test_log_mel_image_of_a_tone_peaks_in_its_band():
    from tfaudio.frontend.ops import mel_filterbank, num_frames
    from tfaudio.frontend.params import MelParams
    from tfaudio.viz.media import log_mel_images

    t = np.arange(16000) / 16000
    wave = np.where(t < 0.5, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)  # tone, then silence
    (image,) = log_mel_images(wave[None], np.array([16000]))
    assert image.shape == (64, num_frames(16000, MelParams().stft)) and image.min() >= 0 and image.max() == pytest.approx(1.0)
    band = 63 - int(np.argmax(image[:, 10]))  # rows run from high to low frequency
    bin_1k = int(round(1000 / 16000 * 512))
    assert band == int(np.argmax(mel_filterbank(MelParams())[bin_1k]))
    assert image[:, 80].max() == pytest.approx(0.0)  # silence sits 80 dB or more below the peak


def test_pca_axes_report_explained_variance():
    rng = np.random.default_rng(0)
    line = rng.normal(size=(40, 1)) * np.ones((1, 8))  # every dimension moves together
    vectors = line + 0.01 * rng.normal(size=(40, 8))
    result = project(vectors, ProjectionConfig(method="pca", scaling="none"))
    assert result.coords.shape == (40, 2)
    share = float(re.match(r"PC1 \(([\d.]+) % of variance\)", result.x_title).group(1))
    assert share > 99.0 and result.y_title.startswith("PC2 (")
    np.testing.assert_allclose(result.settings["explained_variance"][0] * 100, share, atol=0.05)


def test_tsne_clamps_perplexity_with_a_note_and_is_seeded():
    vectors = np.random.default_rng(1).normal(size=(10, 5))
    config = ProjectionConfig(method="tsne", perplexity=30, iterations=250, seed=3)
    first, again = project(vectors, config), project(vectors, config)
    assert max_perplexity(10) == 3.0 and first.settings["perplexity"] == 3.0
    assert "perplexity 30 is too large for 10 clips" in first.notes[0] and "using 3" in first.notes[0]
    np.testing.assert_array_equal(first.coords, again.coords)
    other = project(vectors, ProjectionConfig(method="tsne", perplexity=2, iterations=250, seed=4))
    assert not other.notes and not np.allclose(other.coords, first.coords)


def test_umap_without_umap_learn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` raise ImportError
    with pytest.raises(VizError, match=r"pip install 'tfaudio\[umap\]'"):
        project(np.random.default_rng(0).normal(size=(10, 4)), ProjectionConfig(method="umap"))


def test_umap_projects_when_installed():
    pytest.importorskip("umap", reason="umap-learn is an optional extra (pip install 'tfaudio[umap]')")
    vectors = np.random.default_rng(0).normal(size=(30, 6))
    result = project(vectors, ProjectionConfig(method="umap", neighbors=50))
    assert result.coords.shape == (30, 2) and result.settings["neighbors"] == 29 and "too large" in result.notes[0]


def test_separability_of_clusters_and_of_random_labels(synth_data):
    dataset = load_dataset(synth_data)
    vectors = clustered(dataset, spread=0.2)
    good = measure(vectors, vectors[:, :2], dataset, SeparabilityConfig())
    assert good.splits == "5 manifest folds" and good.neighbors == 5
    assert good.original.knn_accuracy == 1.0 and good.original.silhouette > 0.8
    noise = np.random.default_rng(5).normal(size=vectors.shape)
    bad = measure(noise, noise[:, :2], dataset, SeparabilityConfig())
    assert bad.original.knn_accuracy < 0.5 and abs(bad.original.silhouette) < 0.1  # 4 classes: chance is 25 %


# ------------------------------------------------------------------------------ bad input


def _tiny_dataset(labels: list[str]) -> Dataset:
    clips = tuple(Clip(Path(f"/data/{label}_{i}.wav"), label) for i, label in enumerate(labels))
    return Dataset(Path("/data"), clips, tuple(sorted(set(labels))), "list")


@pytest.mark.parametrize(
    "labels, vectors, message",
    [
        (["a", "b"], np.eye(2, 4), r"only 2 clip\(s\) to show \(a_0.wav, b_1.wav\).*at least 3 clips"),
        (["a", "a", "a", "a"], np.eye(4), r"all 4 clips have the label 'a'.*at least two classes"),
        (["a", "b", "a", "b"], [[1, 2], [np.nan, 1], [0, 1], [1, 1]],
         r"fake: 1 of 4 clips have NaN or infinite embedding values \(b_1.wav\)"),
        (["a", "b", "a", "b"], np.ones((4, 3)), r"fake: every clip has the same vector"),
    ],
    ids=["two clips", "one class", "NaN", "constant"],
)
def test_bad_input_gets_a_clear_message(tmp_path, labels, vectors, message):
    with pytest.raises(VizError, match=message):
        visualize_tables([table(_tiny_dataset(labels), vectors)], tmp_path / "page.html")
    assert not (tmp_path / "page.html").exists()


# ----------------------------------------------------------------------------- the page


@pytest.fixture(scope="module")
def cli_page(synth_data, viz_store, tmp_path_factory):
    """`tfaudio visualize` over the generated clips: t-SNE of the hand-crafted features with a
    perplexity too large for 80 clips."""
    from tfaudio.cli.main import main

    out = tmp_path_factory.mktemp("page") / "synth.html"
    args = ["visualize", str(synth_data), "--model", "handcrafted", "--method", "tsne", "--perplexity", "500",
            "--iterations", "300", "--out", str(out), "--store", str(viz_store)]
    result = CliRunner().invoke(main, args)
    return out, result


def test_cli_page_reports_figures_and_adjustments(cli_page):
    out, result = cli_page
    assert result.exit_code == 0, result.output
    assert re.search(r"handcrafted\s+\d+\.\d % ±\s+[\d.]+\s+\d+\.\d % ±", result.stdout)
    assert "warning: handcrafted: t-SNE perplexity 500 is too large for 80 clips" in result.stderr
    assert "using 26.3" in result.stderr
    data = page_data(out)
    assert len(data["clips"]) == 80 and {c["label"] for c in data["clips"]} == {"tone", "chirp", "noise", "clicks"}
    assert all(c["audio"].startswith("data:audio/ogg;base64,") for c in data["clips"])
    ogg = base64.b64decode(data["clips"][0]["audio"].split(",", 1)[1])
    wave, rate = sf.read(io.BytesIO(ogg))
    assert rate == 16000 and abs(len(wave) - 16000) < 800  # the whole one-second clip
    from PIL import Image

    thumb = Image.open(io.BytesIO(base64.b64decode(data["thumbs"][0].split(",", 1)[1])))
    assert thumb.size == (128, 64)
    (panel,) = data["panels"]
    layout, traces = panel["figure"]["layout"], panel["figure"]["data"]
    assert layout["xaxis"]["title"]["text"] == "t-SNE 1"
    assert [t["name"] for t in traces] == ["chirp", "clicks", "noise", "tone", "selected"]
    assert len({(t["marker"]["color"], t["marker"]["symbol"]) for t in traces[:4]}) == 4  # colour and shape per label
    assert "%{customdata[1]}" in traces[0]["hovertemplate"] and "fold" in traces[0]["hovertemplate"]
    html = out.read_text()
    assert "perplexity 26.3" in html and "is too large for 80 clips" in html


def _click_isolated_point(driver, plot: str = "plot-0", trace: int | None = None) -> int:
    """Click, with the mouse, the point farthest from its nearest neighbour (of trace `trace`
    only, when given); returns its clip index."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    spot = driver.execute_script(
        """
        const gd = document.getElementById(arguments[0]);
        gd.scrollIntoView({block: 'center'});
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const pts = [];
        gd.data.forEach((t, n) => (t.customdata || []).forEach((c, i) =>
          pts.push({index: c[0], trace: n, px: xa._offset + xa.l2p(t.x[i]), py: ya._offset + ya.l2p(t.y[i])})));
        let best = null, bestGap = -1;
        pts.forEach(p => {
          if (arguments[1] !== null && p.trace !== arguments[1]) return;
          let gap = Infinity;
          pts.forEach(q => { if (q !== p) gap = Math.min(gap, Math.hypot(p.px - q.px, p.py - q.py)); });
          if (gap > bestGap) { bestGap = gap; best = p; }
        });
        const box = gd.getBoundingClientRect();  // viewport coordinates, after the scroll
        best.x = Math.round(box.left + best.px); best.y = Math.round(box.top + best.py);
        return best;
        """,
        plot,
        trace,
    )
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(spot["x"], spot["y"])
    actions.pointer_action.click()
    actions.perform()
    return spot["index"]


def _wait_for(driver, script: str, timeout: float = 10.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def test_page_in_chromium_plays_the_clicked_clip(cli_page):
    out, result = cli_page
    assert result.exit_code == 0, result.output
    data = page_data(out)
    with chromium() as driver:
        open_page(driver, out)
        _wait_for(driver, "return document.querySelectorAll('#plot-0 .point').length >= 80")
        assert console_errors(driver) == []
        assert driver.execute_script("return document.getElementById('player-audio').src") == ""
        index = _click_isolated_point(driver)
        _wait_for(driver, "return document.getElementById('player-audio').src.length > 0")
        source = driver.execute_script("return document.getElementById('player-audio').src")
        assert source == data["clips"][index]["audio"]
        assert data["clips"][index]["file"] in driver.find_element("id", "clip-info").text
        assert driver.execute_script("return document.getElementById('player-thumb').src") == data["thumbs"][index]
        ring = driver.execute_script("const d = document.getElementById('plot-0').data; return [d[d.length - 1].x, d[d.length - 1].y]")
        np.testing.assert_allclose(np.ravel(ring), data["panels"][0]["coords"][index])
        assert console_errors(driver) == []


def test_linked_audio_and_side_by_side_panels_in_chromium(synth_data, tmp_path):
    from dataclasses import replace
    from urllib.parse import unquote

    dataset = load_dataset(synth_data)
    # One clip relabelled into a class of its own: the manifest folds cannot hold it on both
    # sides, so the page is drawn without k-NN figures and says why.
    clips = (replace(dataset.clips[0], label="zz_single"), *dataset.clips[1:])
    dataset = replace(dataset, clips=clips, classes=tuple(sorted({c.label for c in clips})))
    out = tmp_path / "pages" / "linked.html"
    tables = [table(dataset, clustered(dataset), "first"), table(dataset, clustered(dataset, seed=1), "second")]
    with pytest.warns(VizWarning) as caught:
        result = visualize_tables(tables, out, media=MediaConfig(link_audio=True, max_seconds=0.5), progress=False)
    messages = [str(w.message) for w in caught]
    assert [m.split(":")[0] for m in messages] == ["first", "second"]
    assert "no k-NN accuracy: Cross-validation over predefined folds needs at least 2 clips per class" in messages[0]
    assert [p.name for p in result.panels] == ["first", "second"]
    assert result.panels[0].separability.original.knn_accuracy is None
    data = page_data(out)
    for clip in data["clips"][:3]:  # relative to the page, so page and data can move together
        assert not clip["audio"].startswith(("/", "data:"))
        assert (out.parent / unquote(clip["audio"])).resolve() == (synth_data / clip["file"]).resolve()
    assert "data:audio" not in out.read_text()
    with chromium() as driver:
        open_page(driver, out)
        _wait_for(driver, "return document.querySelectorAll('#plot-1 .point').length > 0")
        index = _click_isolated_point(driver, "plot-1")
        _wait_for(driver, "return document.getElementById('player-audio').src.length > 0")
        source = driver.execute_script("return document.getElementById('player-audio').src")
        assert Path(unquote(source.removeprefix("file://"))).resolve() == (synth_data / data["clips"][index]["file"]).resolve()
        rings = driver.execute_script(
            "return [0, 1].map(n => { const d = document.getElementById('plot-' + n).data; return d[d.length - 1].x.length; })"
        )
        assert rings == [1, 1]  # the clicked clip is ringed in both panels
        assert console_errors(driver) == []


AWKWARD_CLASSES = ["rock & roll", "dog's bark", 'a <b> "c"', "<!--<script>"]


def test_class_names_with_html_characters_keep_their_points_and_show_as_text(tmp_path):
    """Class folders whose names hold '&', quotes, '<', '>' and '<!--<script>': every class trace
    has its clips, the JSON keeps the raw names, the legend shows them as text, and clicking a
    'rock & roll' point shows that label and file in the player."""
    import tfaudio

    folder = tmp_path / "awkward"
    t = np.arange(8000) / 16000
    rng = np.random.default_rng(0)
    for k, name in enumerate(AWKWARD_CLASSES):
        (folder / name).mkdir(parents=True)
        for i in range(6):  # one tone per class, well apart in frequency, plus a little noise
            wave = 0.3 * np.sin(2 * np.pi * (400 + 1500 * k + 20 * i) * t) + 0.01 * rng.normal(size=t.size)
            sf.write(folder / name / f"{name} {i}.wav", wave.astype(np.float32), 16000)
    out = tmp_path / "awkward.html"
    result = tfaudio.visualize(folder, [BandEnergies(frame=1024, model="test-bands")], out, method="pca",
                               media=MediaConfig(audio_rate=8000, max_seconds=0.25), progress=False)
    assert result.clips == 24 and result.classes == 4
    text = out.read_text()
    script = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', text, re.S).group(1)
    assert not set("<>&") & set(script)  # written as \u003c, \u003e, \u0026
    assert "<!--<script>" not in text and 'a <b> "c"' not in text
    data = page_data(out)
    classes = sorted(AWKWARD_CLASSES)
    assert sorted({c["label"] for c in data["clips"]}) == classes  # raw strings, not entities
    assert all(c["file"].startswith(c["label"] + "/") for c in data["clips"])
    traces = data["panels"][0]["figure"]["data"]
    assert len(traces) == 5
    for name, trace in zip(classes, traces):
        members = [data["clips"][c[0]] for c in trace["customdata"]]
        assert len(trace["x"]) == len(members) == 6 and {c["label"] for c in members} == {name}, name

    rock = classes.index("rock & roll")
    with chromium() as driver:
        open_page(driver, out)
        _wait_for(driver, "return document.querySelectorAll('#plot-0 .point').length >= 24")
        assert console_errors(driver) == []
        legend = driver.execute_script(
            "return Array.from(document.querySelectorAll('#plot-0 .legendtext')).map(e => e.textContent)")
        assert legend == classes  # Plotly shows the names literally, no markup or entities
        index = _click_isolated_point(driver, trace=rock)
        assert data["clips"][index]["label"] == "rock & roll"
        _wait_for(driver, "return document.getElementById('clip-info').dataset.index !== undefined")
        info = driver.find_element("id", "clip-info")
        assert info.find_element("css selector", ".label").text == "rock & roll"
        assert info.find_element("css selector", ".file").text == data["clips"][index]["file"]
        alt = driver.execute_script("return document.getElementById('player-thumb').alt")
        assert alt == "log-mel spectrogram of " + data["clips"][index]["file"]
        assert console_errors(driver) == []


# ------------------------------------------------------------------------------ CLI and API


def _write_clips(folder: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(8000) / 16000
        sf.write(path, (0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t)).astype(np.float32), 16000)
    return folder


@pytest.mark.parametrize(
    "names, extra, message",
    [
        (["a/one.wav", "b/two.wav"], [], "only 2 clip(s) to show"),
        (["a/one.wav", "a/two.wav", "a/three.wav"], [], "all 3 clips have the label 'a'"),
        (["a/one.wav", "b/two.wav", "a/three.wav"], ["--method", "umap"], "pip install 'tfaudio[umap]'"),
    ],
    ids=["two clips", "one class", "umap missing"],
)
def test_cli_bad_input_is_one_line(tmp_path, viz_store, monkeypatch, names, extra, message):
    from tfaudio.cli.main import main

    monkeypatch.setitem(sys.modules, "umap", None)
    data = _write_clips(tmp_path / "data", names)
    args = ["visualize", str(data), "--model", "handcrafted", "--out", str(tmp_path / "p.html"), "--store", str(viz_store)]
    result = CliRunner().invoke(main, args + extra)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("Error:") == 1


def test_cli_refuses_a_non_html_out_and_unknown_models(tmp_path, synth_data):
    from tfaudio.cli.main import main

    result = CliRunner().invoke(main, ["visualize", str(synth_data), "--model", "handcrafted", "--out", str(tmp_path / "p.png")])
    assert result.exit_code == 2 and "must end in .html" in result.output
    result = CliRunner().invoke(main, ["visualize", str(synth_data), "--model", "nope", "--out", str(tmp_path / "p.html")])
    assert result.exit_code == 1 and "unknown representation 'nope'" in result.output and "Traceback" not in result.output


def test_python_api_takes_label_file_pairs(synth_data, tmp_path):
    import tfaudio

    pairs = [(c.label, c.path) for c in load_dataset(synth_data).clips if c.label in ("tone", "noise")][::2]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    result = tfaudio.visualize([*pairs, ("tone", broken)], [BandEnergies(frame=1024, model="test-bands")], tmp_path / "pairs.html", method="pca",
                               media=MediaConfig(audio_rate=8000, max_seconds=0.25), progress=False)
    assert result.clips == 20 and result.classes == 2
    assert [Path(p.path).name for p in result.skipped] == ["broken.wav"]
    assert "1 clip(s) left out" in (tmp_path / "pairs.html").read_text()
    panel = result.panels[0]
    assert panel.name == "bands" and panel.dim == 16 and panel.projection.x_title.startswith("PC1 (")
    assert panel.separability.splits == "stratified 5-fold"
    assert panel.separability.original.knn_accuracy >= 0.9  # a tone and noise differ in every band
    clip = page_data(tmp_path / "pairs.html")["clips"][0]
    wave, rate = sf.read(io.BytesIO(base64.b64decode(clip["audio"].split(",", 1)[1])))
    assert rate == 8000 and abs(len(wave) - 2000) < 200  # 0.25 s at 8 kHz


def test_demo_script_reports_an_unavailable_model_clearly(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TFAUDIO_OFFLINE": "1", "TFAUDIO_HOME": str(tmp_path),
           "HF_HUB_CACHE": str(tmp_path / "hf"), "TFAUDIO_SHARED": str(tmp_path / "none")}
    files = tmp_path / "files"
    _write_clips(files, ["dog/a.wav", "cat/b.wav", "dog/c.wav"])
    script = REPO / "scripts" / "wav2vec2_projection.py"
    run = subprocess.run([sys.executable, str(script), "--data", str(files), "--out", str(tmp_path / "o.html")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "wav2vec2 is unavailable" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 1 and "edit FILES or pass --data DIR" in run.stderr


# ------------------------------------------------------------------------------- real data


@pytest.mark.shared
@pytest.mark.slow
def test_esc10_yamnet_page_reports_knn_of_at_least_90_percent(viz_store, tmp_path, monkeypatch):
    """Acceptance: ESC-10 with YAMNet; the page shows the original-space k-NN accuracy (>= 90 %)
    with the 2-D figure beside it."""
    from tfaudio.viz.points import embed_tables

    esc10 = shared_path("datasets", "esc10")
    monkeypatch.setenv("TFAUDIO_MODELS", str(shared_path("models")))
    tables = embed_tables(load_dataset(esc10), ["yamnet"], store=viz_store, progress=False)
    out = tmp_path / "esc10.html"
    result = visualize_tables(tables, out, projection=ProjectionConfig(method="pca"),
                              media=MediaConfig(link_audio=True), progress=False)
    scores = result.panels[0].separability
    assert result.clips == 400 and scores.splits == "5 manifest folds"
    assert scores.original.knn_accuracy >= 0.90
    original = f"{100 * scores.original.knn_accuracy:.1f} % ± {100 * scores.original.knn_std:.1f}"
    projected = f"{100 * scores.projected.knn_accuracy:.1f} % ± {100 * scores.projected.knn_std:.1f}"
    assert re.search(rf"<td>5-NN accuracy \(5 manifest folds\)</td><td>{re.escape(original)}</td><td>{re.escape(projected)}</td>",
                     out.read_text())
