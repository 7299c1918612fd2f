"""`tfaudio serve` driven in headless Chromium as a person works through one round (issue 20):
sign in with the URL's token, choose a query region by dragging across its spectrogram, search,
label 10 hits with the keyboard (one undone and given again), train the label's detector, try a
threshold and commit it, ask for the next round and judge it, export the SavedModel and detect.
At each step the test checks what the page shows and what the label store and the detector's
folder hold. Screenshots of each page go to $TFAUDIO_SCREENSHOTS when set (the README's comes
from such a run). A real uvicorn server on loopback, in a thread, over a small hand-crafted index:
the tones of test_search_query, the file named ODD, and four more so a search finds 12 hits."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import sine
from test_app_security import ODD
from test_search_query import HOP, write_sounds

#: The label the round is about, and the annotator typed into the page.
LABEL, ANNOTATOR = "tone", "bea"


def expected_kind(name: str) -> str:
    """How the person judges a hit for LABEL: the low tones (and ODD, a 305 Hz tone) are
    positive, the chord of a low and a high tone unsure, the rest (noise, high tones) negative."""
    if name in ("tone290.wav", "tone300.wav", "tone310.wav", "tone320.wav", ODD):
        return "positive"
    return "unsure" if name == "chord.wav" else "negative"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search import IndexConfig, build_index

    root = tmp_path_factory.mktemp("browser")
    data = write_sounds(root / "data")
    rng = np.random.default_rng(1)
    more = {f"odd/{ODD}": sine(305), "low/tone290.wav": sine(290), "low/tone320.wav": sine(320),
            "high/tone1900.wav": sine(1900), "noise/rumble.wav": np.cumsum(rng.standard_normal(16000)) * 0.002}
    for name, samples in more.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(data / name, samples.astype(np.float32), 16000)
    build_index(data, root / "index", IndexConfig(model="handcrafted", hop=HOP), RunSettings(store=str(root / "store")))
    return root / "index"


@pytest.fixture
def running(indexed, tmp_path):
    """(App, base URL) of a real uvicorn server on loopback, in a thread; labels in tmp_path."""
    import uvicorn

    from tfaudio.app.server import bind, build_app

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    live = build_app(indexed, tmp_path / "labels.db", port=port, annotator="ana")
    server = uvicorn.Server(uvicorn.Config(live.asgi, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield live, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()
    live.state.close()


def wait_for(driver, script: str, timeout: float = 30.0):
    """The value of `script` once it is truthy (polled every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for: {script}")


def texts(driver, selector: str) -> list[str]:
    return driver.execute_script(f"return [...document.querySelectorAll({selector!r})].map(e => e.textContent)")


# Long on purpose: one person's round, page by page, with what each page shows and what the store
# holds checked after each step; split up, each part would redo the ones before it.
def test_a_whole_round_in_the_browser(running, tmp_path):
    from browser import chromium, console_errors
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    from tfaudio.detector.model import Detector

    live, base = running
    store = live.state.store
    shots = Path(os.environ.get("TFAUDIO_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with chromium(1400, 1000) as driver:
        def press(key):  # to whatever has the focus, as a person typing
            ActionChains(driver).send_keys(key).perform()

        def shot(name):
            driver.save_screenshot(str(shots / f"app-{name}.png"))
            assert console_errors(driver) == []  # no CSP violation, no failed load, no script error

        # -- sign in: the token is traded for a cookie and leaves the address bar
        driver.get(f"{base}/?token={live.token}")
        assert driver.current_url == f"{base}/"
        driver.find_element("id", "label-name").send_keys(LABEL)
        annotator = driver.find_element("id", "annotator")
        assert annotator.get_attribute("value") == "ana"  # the server's default
        annotator.clear()
        annotator.send_keys(ANNOTATOR)

        # -- the query: long.wav, its tone (1 s to 2 s) chosen by dragging across the spectrogram
        Select(driver.find_element("id", "query-file")).select_by_visible_text("long.wav")
        wait_for(driver, "return document.getElementById('query-image').naturalWidth")
        image = driver.find_element("id", "query-image")
        width = image.size["width"]  # 3 s drawn: drag from 1/3 to 2/3
        ActionChains(driver).move_to_element_with_offset(image, -width // 6, 0).click_and_hold() \
            .move_by_offset(width // 3, 0).release().perform()
        region = driver.execute_script("return [document.getElementById('region-start').value, "
                                       "document.getElementById('region-end').value]")
        assert abs(float(region[0]) - 1.0) < 0.05 and abs(float(region[1]) - 2.0) < 0.05
        assert driver.find_element("id", "query-region").is_displayed()
        driver.find_element("id", "run-search").click()  # 12 hits, the page's default
        wait_for(driver, "return document.querySelectorAll('#grid .card').length === 12")
        wait_for(driver, "return [...document.querySelectorAll('#grid img')].every(i => i.naturalWidth > 0)")
        names = texts(driver, "#grid .card .file")
        assert ODD in names and names[0] in ("tone300.wav", "tone310.wav")  # the markup name, as text
        assert "12 hits" in driver.find_element("id", "search-status").text
        scores = [float(s) for s in texts(driver, "#grid .card .score")]
        assert scores == sorted(scores, reverse=True) and all(0 < s <= 1.0001 for s in scores)
        shot("search")

        # -- label the first 10 hits with the keyboard; the first one undone (z) and given again
        kinds = [expected_kind(name) for name in names[:10]]
        press(kinds[0][0])
        wait_for(driver, "return document.querySelectorAll('#grid .card[data-saved]').length === 1")
        press("z")  # takes it back and puts the focus on that card again
        wait_for(driver, "return document.querySelector('#grid .card .state').textContent === 'undone'")
        assert len(store) == 0
        for kind in kinds:
            press(kind[0])  # p, n or u; the focus moves on to the next card
        wait_for(driver, "return document.querySelectorAll('#grid .card[data-saved]').length === 10")
        states = texts(driver, "#grid .card .state")
        assert states[:10] == [f"saved: {kind} ({LABEL})" for kind in kinds] and states[10:] == ["", ""]
        press(" ")  # the current card (the 11th) plays its hit
        wait_for(driver, "const a = document.querySelector('#grid .card.current audio'); "
                         "return a.currentTime > 0 && a.error === null", 10)
        assert driver.execute_script("return [...document.querySelectorAll('#grid .card')]"
                                     ".indexOf(document.querySelector('#grid .card.current'))") == 10
        press("k")
        shot("labelling")
        stored = store.query()
        assert len(stored) == 10
        hits = driver.execute_script("return [...document.querySelectorAll('#grid .card')].slice(0, 10)"
                                     ".map(c => [c.item.path, c.item.start, c.item.end])")
        assert sorted((a.file, a.start, a.end, a.kind) for a in stored) == sorted(  # the store keeps ms
            (path, round(start, 3), round(end, 3), kind) for (path, start, end), kind in zip(hits, kinds))
        assert {(a.label, a.source, a.annotator, a.round) for a in stored} == {(LABEL, "search", ANNOTATOR, None)}

        # -- train the label's detector; try a threshold, then commit it
        driver.get(f"{base}/train")
        assert driver.find_element("id", "label-name").get_attribute("value") == LABEL  # kept across pages
        wait_for(driver, "return document.getElementById('train-status').textContent.startsWith('no detector')")
        driver.find_element("id", "train").click()
        wait_for(driver, "return !document.getElementById('trained').hidden && "
                         "document.getElementById('point').textContent.startsWith('precision')", 90)
        assert driver.find_element("id", "train-status").text.startswith("trained in")
        folder = live.state.detector_folder(LABEL)
        assert (folder / "detector.json").is_file() and driver.find_element("id", "trained-path").text == str(folder)
        report = Detector.load(folder).report(LABEL)
        metrics = driver.find_element("id", "metrics").text
        assert f"{report.positives} positive, {report.negatives} negative" in metrics
        assert f"average precision {report.average_precision:.3f}" in metrics or report.note
        assert report.positives > 0 and report.negatives > 0
        assert driver.execute_script("return document.querySelectorAll('#pr-curve polyline').length") == 1
        assert driver.execute_script("return document.querySelectorAll('#reliability circle').length") >= 1
        driver.execute_script("const s = document.getElementById('threshold'); s.value = 0.6; "
                              "s.dispatchEvent(new Event('input'))")
        wait_for(driver, "return document.getElementById('threshold-value').value === '0.600'")
        tried = live.state.detector(LABEL).operating_point(LABEL, 0.6)  # what the page should say
        wait_for(driver, "return document.getElementById('point').textContent.includes("
                         f"'{tried.predicted} held-out windows at or above it')")
        assert Detector.load(folder).thresholds[0] != 0.6  # trying commits nothing
        driver.find_element("id", "commit").click()
        wait_for(driver, "return document.getElementById('commit-status').textContent === 'saved: threshold 0.600'")
        assert Detector.load(folder).thresholds[0] == pytest.approx(0.6)
        shot("train")

        # -- the next round, scored by the trained detector: judge two of its windows
        driver.get(f"{base}/rounds")
        Select(driver.find_element("id", "round-strategy")).select_by_visible_text("margin")
        driver.find_element("id", "run-round").click()
        wait_for(driver, "return document.querySelectorAll('#grid .card').length === 10")
        assert driver.find_element("id", "round-status").text == f"10 windows for {LABEL} (round 1)"
        judged = {(a.file, a.start, a.end) for a in stored}
        offered = driver.execute_script("return [...document.querySelectorAll('#grid .card')]"
                                        ".map(c => [c.item.path, c.item.start, c.item.end, c.item.score])")
        assert not {(path, round(start, 3), round(end, 3)) for path, start, end, _ in offered} & judged
        assert all(0 <= score <= 1 for *_, score in offered)  # calibrated probabilities
        press("p")
        press("n")
        wait_for(driver, "return document.querySelectorAll('#grid .card[data-saved]').length === 2")
        newest = store.query()[-2:]
        assert [(a.kind, a.source, a.round, a.strategy, a.annotator) for a in newest] == [
            ("positive", "round", 1, "margin", ANNOTATOR), ("negative", "round", 1, "margin", ANNOTATOR)]
        assert [(a.file, a.start, a.end) for a in newest] == [(path, round(start, 3), round(end, 3))
                                                              for path, start, end, _ in offered[:2]]
        shot("rounds")

        # -- export the SavedModel, then detect over the index and fetch the table
        driver.get(f"{base}/train")
        wait_for(driver, "return !document.getElementById('trained').hidden")
        assert driver.find_element("id", "threshold-value").get_attribute("value") == "0.600"  # committed
        driver.find_element("id", "export").click()
        wait_for(driver, "return document.getElementById('export-status').textContent.startsWith('exported: ')", 120)
        exported = folder / "saved_model" / "1"
        assert driver.find_element("id", "export-status").text == f"exported: {exported}"
        assert (exported / "saved_model.pb").is_file()
        driver.find_element("id", "detect").click()
        wait_for(driver, "return document.querySelectorAll('#downloads a').length === 2", 60)
        assert driver.find_element("id", "detect-status").text.endswith(f"in {len(live.state.index)} windows of "
                                                                        f"{len(live.state.recordings)} files")
        table = driver.execute_async_script("const done = arguments[0]; "
                                            "fetch(document.querySelector('#downloads a').href)"
                                            ".then(r => r.text()).then(done)")
        assert table.startswith("file,label,start,end,probability")
        shot("export")

        # -- the labels page: the round's counts and newest annotations
        driver.get(f"{base}/labels")
        counts = driver.find_element("css selector", "table.counts").text
        assert LABEL in counts and "12 annotations" in driver.find_element("tag name", "main").text
        assert texts(driver, "table.recent td.label")[:2] == [LABEL, LABEL]
        shot("labels")
    assert (shots / "app-labelling.png").stat().st_size > 20_000
