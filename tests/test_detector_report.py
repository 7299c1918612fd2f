"""The detector's report page: built from a Detector with known held-out predictions, it states
the numbers of the statistics module, escapes label names, shows a label without
cross-validation by its note, follows a changed threshold, and renders in a browser."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tfaudio.detector.config import DetectorConfig
from tfaudio.detector.heads import Heads
from tfaudio.detector.model import Detector, LabelReport
from tfaudio.detector.report import headline, page, summary_html, write_report
from tfaudio.detector.stats import average_precision, binary_calibration, threshold_at_precision
from tfaudio.outputs import OutputError

HOSTILE = "<script>alert('x')</script> & frog"


def _held(rng: np.random.Generator, positives: int, negatives: int, separation: float) -> dict[str, np.ndarray]:
    """Out-of-fold y, calibrated-looking probabilities and recordings for one label."""
    y = np.r_[np.ones(positives), np.zeros(negatives)].astype(np.int8)
    logit = separation * (y - 0.5) * 2 - 1.5 + rng.normal(size=len(y))
    return {"y": y, "probability": (1 / (1 + np.exp(-logit))).astype(np.float32),
            "groups": np.array([f"rec{i % 12}.wav" for i in range(len(y))])}


def _report(label: str, held: dict, config: DetectorConfig) -> LabelReport:
    y, p, g = held["y"], held["probability"], held["groups"]
    kw = {"resamples": config.resamples, "seed": config.seed}
    ap, ap_ci = average_precision(y, p, g, **kw)
    return LabelReport(label=label, positives=int(y.sum()), negatives=int((y == 0).sum()), unsure=3,
                       weak_negatives=200, recordings=12, average_precision=ap, average_precision_ci=ap_ci,
                       roc_auc=0.9, calibration=binary_calibration(p, y, g, **kw), platt=(1.0, 0.0),
                       point=threshold_at_precision(y, p, config.target_precision, g, **kw))


@pytest.fixture(scope="module")
def detector() -> Detector:
    """Three labels: 'owl' (well separated), a hostile name (weak: the target is out of reach)
    and 'rare' (one recording: no cross-validation)."""
    rng = np.random.default_rng(0)
    config = DetectorConfig(target_precision=0.9, resamples=300)
    held = {"owl": _held(rng, 60, 300, 2.5), HOSTILE: _held(rng, 40, 300, 0.4)}
    held[HOSTILE]["probability"][-5:] = 0.99  # five confident negatives on top: 0.9 precision is out of reach
    reports = [_report(label, held[label], config) for label in held]
    reports.append(LabelReport(label="rare", positives=2, negatives=1, unsure=0, weak_negatives=50, recordings=1,
                               note="positives in only 1 recording: no cross-validation"))
    labels = ("owl", HOSTILE, "rare")
    heads = Heads("linear", labels, {"mean": np.zeros(4, np.float32), "scale": np.ones(4, np.float32),
                                     "coef": np.zeros((3, 4), np.float32), "intercept": np.zeros(3, np.float32)})
    thresholds = np.array([r.point.threshold if r.point else 0.5 for r in reports])
    return Detector(labels=labels, heads=heads, platt_a=np.ones(3), platt_b=np.zeros(3), thresholds=thresholds,
                    config=config, source={"index": "archive.index", "model": "yamnet", "precision": "float32",
                                           "hop": 0.48, "frames_per_window": 2, "sample_rate": 16000},
                    reports=tuple(reports), held_out={**held, "rare": {}})


def test_the_page_is_self_contained_escapes_labels_and_states_the_numbers(detector, tmp_path):
    text = page(detector)
    assert len(re.findall(r"plotly\.js v\d", text)) == 1  # plotly.js inlined once for both figures
    assert "cdn.plot.ly" not in text.split("<script", 2)[1][:300]
    assert "<script>alert" not in text and "alert(&#x27;x&#x27;)" in text  # escaped in HTML and figures
    assert len(re.findall(r'class="plotly-graph-div"', text)) == 2  # none for the label without CV
    owl = detector.reports[0]
    point = owl.point
    sentence = headline(detector, 0)
    assert sentence.startswith(f"owl: at threshold {point.threshold:.2f}, on labelled windows, precision "
                               f"{point.precision:.2f} ({point.precision_ci[0]:.2f}–{point.precision_ci[1]:.2f})")
    assert "label a stratified round" in sentence  # no archive estimate without one
    assert f"ECE {owl.calibration.ece:.2f}" in sentence and f"AP {owl.average_precision:.2f}" in sentence
    assert "not reached" not in sentence and point.reached
    weak = headline(detector, 1)
    assert not detector.reports[1].point.reached and "target precision 0.90 is not reached" in weak
    assert "positives in only 1 recording: no cross-validation" in text
    assert headline(detector, 2).startswith("rare: no held-out measurement")


def test_summary_table_has_a_row_per_label_and_follows_changed_thresholds(detector, tmp_path):
    table = summary_html(detector)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>")[1])
    assert len(rows) == 3
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in rows]
    owl = detector.reports[0]
    assert cells[0][:3] == ["owl", str(owl.positives), str(owl.negatives)]
    assert cells[0][14] == "yes" and cells[1][14] == "no" and cells[2][14] == "–"
    assert cells[0][12] == cells[0][13] == "–"  # archive precision and recall: no stratified round
    marks = re.findall(r"<tr([^>]*)>", table.split("<tbody>")[1])
    assert ["missed" in m for m in marks] == [False, True, False]  # the row that misses its target
    assert cells[2][-1].startswith("positives in only 1 recording")
    lowered = detector.with_thresholds({"owl": 0.05})
    changed = re.findall(r"<tr[^>]*>(.*?)</tr>", summary_html(lowered).split("<tbody>")[1])[0]
    point = detector.operating_point("owl", 0.05)
    assert '<td class="num">0.05</td>' in changed and f"{point.recall:.2f} (" in changed
    assert headline(lowered, 0).startswith("owl: at threshold 0.05")
    assert detector._repr_html_() == summary_html(detector)


def test_write_report_goes_beside_the_saved_detector(detector, tmp_path):
    with pytest.raises(OutputError, match="save it first"):
        write_report(Detector(**{**detector.__dict__, "path": None}))
    folder = detector.with_thresholds({}).save(tmp_path / "owl.detector")
    written = write_report(Detector.load(folder))
    assert written == folder / "report.html" and "<h1>Detector: owl" in written.read_text()
    assert write_report(detector, tmp_path / "elsewhere" / "page.html").is_file()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputError):
        write_report(detector, tmp_path / "a-file" / "page.html")


def test_the_page_renders_in_a_browser(detector, tmp_path):
    from browser import chromium, console_errors, open_page

    path = write_report(detector, tmp_path / "report.html")
    with chromium(1400, 1800) as driver:
        open_page(driver, path)
        driver.save_screenshot(str(tmp_path / "report.png"))
        rendered = driver.execute_script("return document.querySelectorAll('div.plotly-graph-div .main-svg').length")
        assert rendered >= 2
        assert driver.title.startswith("tfaudio detector: owl")
        assert console_errors(driver) == []
    assert (tmp_path / "report.png").stat().st_size > 20_000
