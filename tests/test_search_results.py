"""Search results (issue 18): the table, results.csv, the self-contained page (escaped names,
players, spectrograms, files missing since the build), the notebook view, a headless browser's
view of the page, and `tfaudio search` as a user runs it."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from conftest import sine
from helpers import run_process
from test_search_query import HOP, write_sounds

#: A file name that would be markup if a page pasted it in unescaped.
ODD = "<img src=x onerror=alert(1)>&.wav"
TFAUDIO = Path(sys.executable).parent / "tfaudio"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """(root, SearchResults of a search whose hits include a file missing since the build and one
    named ODD): query tone300.wav, hits from other files."""
    import tfaudio
    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search import IndexConfig, SearchIndex, build_index

    root = tmp_path_factory.mktemp("results")
    data = write_sounds(root / "data")
    (data / "odd").mkdir()
    sf.write(data / "odd" / ODD, sine(305), 16000)
    build_index(data, root / "index", IndexConfig(model="handcrafted", hop=HOP), RunSettings(store=str(root / "store")))
    (data / "low" / "tone310.wav").unlink()  # gone since the build
    with pytest.warns(UserWarning, match="missing or changed since the build"):
        # the package is callable: tfaudio.search(...) is tfaudio.search.query.search
        results = tfaudio.search(SearchIndex.open(root / "index"), data / "low/tone300.wav", top=4, other_files=True)
    return root, results


def test_the_results_table_csv_and_page(searched, tmp_path):
    root, results = searched
    hits = results.hits
    assert list(hits.columns) == ["rank", "file", "start", "end", "score", "missing"]
    names = [Path(file).name for file in hits["file"]]
    assert set(names[:3]) == {"long.wav", "tone310.wav", ODD} and hits["rank"].tolist() == [1, 2, 3, 4]
    assert hits["missing"].tolist() == [name == "tone310.wav" for name in names]
    assert (hits["score"].diff().dropna() <= 0).all() and results.exact  # small index: exact
    assert "(missing or changed since the build)" in results.table().splitlines()[1 + names.index("tone310.wav")]

    out = results.write(tmp_path / "hits")
    written = pd.read_csv(out / "results.csv")
    assert written["file"].tolist() == hits["file"].tolist()
    assert written["score"].tolist() == pytest.approx(hits["score"].tolist(), abs=1e-5)
    page = (out / "index.html").read_text()
    assert ODD not in page and "&lt;img src=x onerror=alert(1)&gt;&amp;.wav" in page  # inert text
    assert page.count("<audio") == 3 and page.count("data:audio/wav;base64,") == 3
    assert page.count("data:image/png;base64,") == 3 and "no playback" in page
    assert "<script" not in page
    notebook = results._repr_html_()
    assert notebook.count("<audio") == 3 and "&lt;img" in notebook


def test_the_page_plays_in_a_browser(searched, tmp_path):
    from browser import chromium, console_errors, open_page

    _, results = searched
    out = results.write(tmp_path / "page")
    with chromium(1400, 800) as driver:
        open_page(driver, out / "index.html")
        assert console_errors(driver) == []
        assert driver.execute_script("return document.querySelectorAll('img[src^=\"data:image/png\"]').length") == 3
        assert driver.find_element("tag name", "table").text.count(ODD) == 1  # shown as its name
        driver.execute_script("document.querySelector('audio').play()")
        time.sleep(0.8)
        played, error = driver.execute_script("const a = document.querySelector('audio'); "
                                              "return [a.currentTime, a.error]")
        assert played > 0 and error is None
        driver.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_tfaudio_search_as_a_user_runs_it(searched, tmp_path):
    root, _ = searched
    env = {**os.environ, "TFAUDIO_HOME": str(root / "home"), "TFAUDIO_OFFLINE": "1"}
    finished = run_process([TFAUDIO, "search", root / "index", f"{root}/data/long/long.wav@1-2", "--top", "3",
                            "--negative", root / "data/noise/hiss.wav", "--out", tmp_path / "out"],
                           env=env, cwd=tmp_path).check()
    lines = finished.stdout.splitlines()
    assert lines[0].split() == ["#", "score", "start", "end", "file"] and lines[1].endswith("tone300.wav")
    assert len(pd.read_csv(tmp_path / "out/results.csv")) == 3 and (tmp_path / "out/index.html").stat().st_size > 1000
    assert "missing or changed" in finished.stderr  # tone310.wav, a warning line, not a failure

    (tmp_path / "junk.wav").write_bytes(b"RIFF not really")
    failed = run_process([TFAUDIO, "search", root / "index", tmp_path / "junk.wav", "--out", tmp_path / "out2"],
                         env=env, cwd=tmp_path).check(1)
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {tmp_path}/junk.wav: "), failed.stderr
    assert not (tmp_path / "out2").exists()
    shutil.rmtree(tmp_path / "out")


def test_tfaudio_search_is_the_package_and_its_function():
    import subprocess

    program = ("import sys, tfaudio; assert 'tfaudio.search' not in sys.modules; search = tfaudio.search; "
               "from tfaudio.search import SearchIndex, SearchResults; import tfaudio.search.query as q; "
               "assert callable(search) and search is sys.modules['tfaudio.search'] and tfaudio.search is search; "
               "assert search.search is q.search and SearchIndex.__name__ == 'SearchIndex'; "
               "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", program], check=True, timeout=120)
