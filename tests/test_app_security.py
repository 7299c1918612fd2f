"""`tfaudio serve` on a shared machine (issue 20): the token, the cookie it buys, cross-site POSTs,
Host names other than the server's, traversal by id or path, markup in names and labels, oversized
and non-audio uploads, the headers on every answer, and the console script started and stopped
as a user does. HTTP-level, with Starlette's TestClient over a small hand-crafted index."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import sine
from test_search_query import HOP, write_sounds

#: A file name and a label that would be markup if a page pasted them in unescaped.
ODD = "<img src=x onerror=alert(1)>&.wav"
ODD_LABEL = "<script>alert(1)</script>"
PORT = 8765
TFAUDIO = Path(sys.executable).parent / "tfaudio"


def build_indexed(root: Path) -> Path:
    """root/index: the tones of test_search_query plus one file named ODD, hand-crafted model."""
    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search import IndexConfig, build_index

    data = write_sounds(root / "data")
    (data / "odd").mkdir()
    sf.write(data / "odd" / ODD, sine(305), 16000)
    build_index(data, root / "index", IndexConfig(model="handcrafted", hop=HOP), RunSettings(store=str(root / "store")))
    return root / "index"


def client_for(app, port: int = PORT):
    with warnings.catch_warnings():  # Starlette asks for httpx2; httpx is what the dev extra has
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    return TestClient(app.asgi, base_url=f"http://127.0.0.1:{port}")


def signed_in(app, port: int = PORT):
    """(TestClient holding the session cookie, headers with its CSRF token)."""
    client = client_for(app, port)
    page = client.get(f"/?token={app.token}")
    assert page.status_code == 200
    csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.text).group(1)
    return client, {"X-CSRF-Token": csrf}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    return build_indexed(tmp_path_factory.mktemp("app"))


@pytest.fixture
def app(indexed, tmp_path):
    from tfaudio.app.server import build_app

    built = build_app(indexed, tmp_path / "labels.db", port=PORT, annotator="ana", max_body=300_000)
    yield built
    built.state.close()


def assert_guarded(response) -> None:
    """Every answer carries the security headers, whatever made it."""
    headers = response.headers
    assert headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


def test_every_request_needs_the_token_which_buys_a_strict_cookie(app):
    client = client_for(app)
    for path in ("/", "/labels", "/static/app.js", "/media/file/0/audio.wav?start=0&end=1", "/nowhere"):
        refused = client.get(path)
        assert refused.status_code == 401 and "needs its token" in refused.text, path
        assert_guarded(refused)
    assert client.post("/api/label", json={}).status_code == 401
    wrong = client.get(f"/?token={app.token[:-2]}xx")
    assert wrong.status_code == 401 and "wrong token" in wrong.text

    traded = client.get(f"/labels?token={app.token}&x=1", follow_redirects=False)
    assert traded.status_code == 303 and traded.headers["location"] == "/labels?x=1"  # the token leaves the URL
    cookie = traded.headers["set-cookie"]
    assert cookie.startswith(f"tfaudio-serve-{PORT}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert app.token not in cookie
    assert_guarded(traded)
    for path in ("/", "/labels", "/rounds", "/static/app.js"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert_guarded(page)
    assert_guarded(client.get("/nowhere"))  # a 404 too

    forged = client_for(app)
    forged.cookies.set(f"tfaudio-serve-{PORT}", "abc.def")
    assert forged.get("/").status_code == 401
    scripted = client_for(app).get("/labels", headers={"Authorization": f"token {app.token}"})
    assert scripted.status_code == 200


def test_cross_site_posts_and_foreign_hosts_are_refused(app):
    client, csrf = signed_in(app)
    body = {"id": 0, "start": 0.0, "end": 0.5, "label": "tone", "kind": "positive"}
    cases = {
        "no CSRF token": ({}, 403),
        "wrong CSRF token": ({"X-CSRF-Token": "0" * 64}, 403),
        "another origin": ({**csrf, "Origin": "http://evil.example"}, 403),
        "opaque origin": ({**csrf, "Origin": "null"}, 403),
        "cross-site fetch": ({**csrf, "Sec-Fetch-Site": "cross-site"}, 403),
    }
    for case, (headers, status) in cases.items():
        refused = client.post("/api/label", json=body, headers=headers)
        assert refused.status_code == status, case
        assert_guarded(refused)
    as_form = client.post("/api/label", content=b'{"id": 0}', headers={**csrf, "Content-Type": "text/plain"})
    assert as_form.status_code == 415 and "JSON" in as_form.json()["error"]
    rebound = client.get("/", headers={"Host": f"evil.example:{PORT}"})  # DNS rebinding onto loopback
    assert rebound.status_code == 400 and "unknown Host" in rebound.text
    assert len(app.state.store) == 0

    good = client.post("/api/label", json=body, headers={**csrf, "Origin": f"http://127.0.0.1:{PORT}"})
    assert good.status_code == 200 and good.json()["saved"]
    assert len(app.state.store) == 1
    other = signed_in(app)[1]  # another session's token is not this one's
    assert other != csrf and client.post("/api/undo", json={"id": 1}, headers=other).status_code == 403
    assert len(app.state.store) == 1


def test_media_and_actions_name_recordings_by_id_only(app):
    client, csrf = signed_in(app)
    count = len(app.state.recordings)
    for path in (f"/media/file/{count}/audio.wav?start=0&end=1", "/media/file/-1/audio.wav?start=0&end=1",
                 "/media/file/..%2F..%2Fetc%2Fpasswd/audio.wav?start=0&end=1",
                 "/media/path/%2Fetc%2Fpasswd/audio.wav?start=0&end=1", "/media/upload/u1/audio.wav?start=0&end=1",
                 "/media/upload/..%2Fu1/audio.wav?start=0&end=1", "/media/file/0/passwd?start=0&end=1",
                 "/static/%2e%2e/security.py", "/static/..%2Fsecurity.py", "/static/../server.py"):
        refused = client.get(path)
        assert refused.status_code == 404, path
        assert "security" not in refused.text and "import" not in refused.text
        assert_guarded(refused)
    for query in ("start=0&end=1e9", "start=-1&end=1", "start=2&end=1", "start=nan&end=1", "start=x&end=1"):
        assert client.get(f"/media/file/0/audio.wav?{query}").status_code == 400, query
    for spec in ({"source": "file", "id": "../../etc/passwd"}, {"source": "path", "id": "/etc/passwd"},
                 {"source": "upload", "id": "../u1"}, {"source": "file", "id": 10**9}):
        refused = client.post("/api/search", json={"query": spec}, headers=csrf)
        assert refused.status_code == 404, spec
    for ident in ("0/../1", "/etc/passwd", -1, 1.5, True):
        refused = client.post("/api/label", json={"id": ident, "start": 0, "end": 0.5, "label": "x", "kind": "positive"},
                              headers=csrf)
        assert refused.status_code in (400, 404), ident
    assert len(app.state.store) == 0


def test_markup_in_file_names_and_labels_is_shown_as_text(app):
    client, csrf = signed_in(app)
    odd = app.state.file_ids[next(r.path for r in app.state.recordings if r.name == ODD)]
    saved = client.post("/api/label", json={"id": odd, "start": 0.0, "end": 0.5, "label": ODD_LABEL,
                                            "kind": "negative"}, headers=csrf)
    assert saved.status_code == 200 and saved.json()["label"] == ODD_LABEL  # stored as typed
    for path in ("/", "/labels", "/rounds"):
        page = client.get(path).text
        assert ODD not in page and ODD_LABEL not in page, path
        assert "<script>alert" not in page and "<img src=x" not in page
        for tag in re.findall(r"<script[^>]*>", page):  # scripts come from files only (the CSP allows no other)
            assert re.fullmatch(r'<script src="/static/[a-z]+\.js">', tag), tag
        assert " style=" not in page and "<style" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/labels").text
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;.wav" in client.get("/").text


def test_oversized_and_non_audio_uploads_are_refused_clearly(app, tmp_path):
    client, csrf = signed_in(app)
    big = np.zeros(16000 * 10, np.float32)  # 10 s of 16-bit mono: 320 kB, over this app's 300 kB
    sf.write(tmp_path / "big.wav", big, 16000, subtype="PCM_16")
    with open(tmp_path / "big.wav", "rb") as handle:
        refused = client.post("/api/upload", files={"file": ("big.wav", handle, "audio/wav")}, headers=csrf)
    assert refused.status_code == 413 and "too large" in refused.text
    assert_guarded(refused)
    text = client.post("/api/upload", files={"file": ("notes.wav", b"<html>not audio</html>" * 10, "audio/wav")},
                       headers=csrf)
    assert text.status_code == 415
    assert text.json()["error"] == "notes.wav: not audio tfaudio can read (WAV, FLAC, OGG or MP3); choose an audio file"
    assert client.post("/api/upload", content=b"x", headers={**csrf, "Content-Type": "application/json"}
                       ).status_code == 415
    assert not list(app.state.uploads.folder.iterdir())  # nothing refused is kept

    sf.write(tmp_path / "q.wav", sine(300, 0.8), 16000)
    with open(tmp_path / "q.wav", "rb") as handle:
        uploaded = client.post("/api/upload", files={"file": ("../../q.wav", handle, "audio/wav")}, headers=csrf)
    assert uploaded.status_code == 200, uploaded.text
    done = uploaded.json()
    assert done["name"] == "q.wav" and done["duration"] == pytest.approx(0.8)  # a path in the name is dropped
    assert [p.name for p in app.state.uploads.folder.iterdir()] == [f"{done['upload']}.wav"]
    sound = client.get(f"/media/upload/{done['upload']}/audio.wav?start=0&end=0.8")
    assert sound.status_code == 200 and sound.content[:4] == b"RIFF"


def test_loopback_is_the_default_and_anything_else_is_said_aloud():
    from tfaudio.app.security import allowed_hosts, is_loopback
    from tfaudio.app.server import warning_for

    assert all(is_loopback(host) for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"))
    assert allowed_hosts("127.0.0.1", 8888) == {"127.0.0.1:8888", "localhost:8888", "[::1]:8888"}
    assert allowed_hosts("0.0.0.0", 8888) is None  # reachable by any name: the token is the guard
    assert warning_for("127.0.0.1", 8888) is None
    assert "beyond this machine" in warning_for("0.0.0.0", 8888) and "SSH tunnel" in warning_for("0.0.0.0", 8888)


def _serve(tmp_path: Path, indexed: Path):
    env = {**os.environ, "TFAUDIO_HOME": str(tmp_path / "home"), "TFAUDIO_OFFLINE": "1"}
    return subprocess.Popen([TFAUDIO, "serve", indexed, "--labels", tmp_path / "labels.db", "--no-browser",
                             "--annotator", "ana"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True, start_new_session=True)


def _url(process, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        found = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)
        if found:
            return found.group(0)
    process.kill()
    raise AssertionError(f"no URL printed: {process.stderr.read()}")


def test_the_console_script_serves_until_sigint_or_sigterm(indexed, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    servers = {signal.SIGINT: _serve(tmp_path / "a", indexed), signal.SIGTERM: _serve(tmp_path / "b", indexed)}
    try:
        for stop, process in servers.items():
            url = _url(process)
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            with opener.open(url, timeout=30) as page:  # the token, traded for a cookie, then the page
                assert page.status == 200 and page.url == url.split("?")[0]
                assert b'<meta name="csrf-token"' in page.read()
            with pytest.raises(urllib.error.HTTPError, match="401"):
                urllib.request.urlopen(url.split("?")[0], timeout=30)
            started = time.monotonic()
            process.send_signal(stop)
            assert process.wait(timeout=15) == 0, process.stderr.read()
            assert time.monotonic() - started < 8
            assert "Traceback" not in process.stderr.read()
    finally:
        for process in servers.values():
            if process.poll() is None:
                process.kill()
                process.wait()
