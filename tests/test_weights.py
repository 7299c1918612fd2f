"""Weight resolution: local copies before caches before downloads, downloads from a real HTTP
server on 127.0.0.1 (good, wrong digest, dropped connection, 404), offline failures."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import shared_path

from tfaudio import assets as W

PAYLOAD = os.urandom(300_000)  # random bytes; they arrive over several socket reads
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``routes`` and counting every request.

    routes: path -> bytes (served whole) or ("drop", bytes) (Content-Length of all of it,
    half of it sent, then the connection closed). Any other path is a 404.
    """

    def __init__(self):
        self.routes: dict[str, object] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                dropped = isinstance(route, tuple)
                body = route[1] if dropped else route
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if dropped else body)
                self.close_connection = True

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval so that shutdown() returns at once rather than after 0.5 s.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"


@pytest.fixture
def server():
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Every cache in tmp_path and every offline switch off, whatever the caller's environment."""
    for name in ("TFAUDIO_MODELS", "TFAUDIO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub"))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (the test server keeps serving)."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def spec_for(server: Server, path: str = "/w.bin", sha256: str | None = DIGEST, **kwargs) -> W.WeightsFile:
    return W.WeightsFile("toy", "w.bin", server.url(path), sha256, **kwargs)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.part-*")) if folder.exists() else []


def test_download_verifies_writes_sidecar_then_serves_from_cache(server, tmp_path):
    server.routes["/w.bin"] = PAYLOAD
    spec = spec_for(server)
    path = W.resolve(spec, progress=False)
    assert path == tmp_path / "home" / "toy" / "w.bin"
    assert path.read_bytes() == PAYLOAD
    assert (path.parent / "w.bin.sha256").read_text() == f"{DIGEST}  w.bin\n"
    assert leftovers(path.parent) == []
    assert W.resolve(spec, progress=False) == path
    assert server.requests == ["/w.bin"]  # the second call used the cache


def test_wrong_digest_leaves_nothing(server, tmp_path):
    server.routes["/w.bin"] = PAYLOAD
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve(spec_for(server, sha256="0" * 64), progress=False)
    assert f"sha256 {DIGEST}, expected {'0' * 64}" in str(err.value)
    folder = tmp_path / "home" / "toy"
    assert sorted(p.name for p in folder.iterdir()) == []  # no file, no sidecar, no part


def test_dropped_connection_leaves_nothing(server, tmp_path):
    server.routes["/w.bin"] = ("drop", PAYLOAD)
    with pytest.raises(W.WeightsUnavailable, match=f"dropped after {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes"):
        W.resolve(spec_for(server, sha256=None), progress=False)  # no digest: only the length can tell
    assert sorted(p.name for p in (tmp_path / "home" / "toy").iterdir()) == []


def test_http_error_names_url_and_status(server):
    spec = spec_for(server, "/missing.bin")
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve(spec, progress=False)
    assert spec.url in str(err.value) and "404" in str(err.value)
    assert "w.bin" in str(err.value)


def test_concurrent_downloads_end_with_one_good_file(server, tmp_path):
    server.routes["/w.bin"] = PAYLOAD
    spec, results = spec_for(server), []
    threads = [threading.Thread(target=lambda: results.append(W.resolve(spec, progress=False))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert results[0].read_bytes() == PAYLOAD
    assert leftovers(results[0].parent) == []


def test_resolution_order(server, tmp_path, monkeypatch):
    server.routes["/w.bin"] = PAYLOAD
    spec = spec_for(server, sha256=None, keras_cache=True)
    models, explicit = tmp_path / "models", tmp_path / "mine.bin"
    monkeypatch.setenv("TFAUDIO_MODELS", str(models))
    places = {
        "models": models / "toy" / "w.bin",
        "home": tmp_path / "home" / "toy" / "w.bin",
        "keras": tmp_path / "keras" / "models" / "w.bin",
    }
    assert W.locations(spec, explicit) == [explicit, *places.values()]
    for name, place in places.items():
        place.parent.mkdir(parents=True)
        place.write_bytes(name.encode())
    explicit.write_bytes(b"explicit")

    assert W.resolve(spec, explicit).read_bytes() == b"explicit"
    for name, place in places.items():  # remove the winner each time: the next one takes over
        assert W.resolve(spec).read_bytes() == name.encode()
        place.unlink()
    assert server.requests == []
    assert W.resolve(spec, progress=False).read_bytes() == PAYLOAD
    assert server.requests == ["/w.bin"]


def test_local_copies_make_no_network_call(server, tmp_path, monkeypatch, no_network):
    spec = spec_for(server, keras_cache=True)
    keras_copy = tmp_path / "keras" / "models" / "w.bin"
    keras_copy.parent.mkdir(parents=True)
    keras_copy.write_bytes(b"not even the official bytes")  # Keras' cache is trusted as is
    assert W.resolve(spec) == keras_copy
    assert server.requests == []


def test_explicit_path_never_falls_through(server, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TFAUDIO_MODELS", str(tmp_path / "models"))
    present = tmp_path / "models" / "toy" / "w.bin"
    present.parent.mkdir(parents=True)
    present.write_bytes(PAYLOAD)
    missing = tmp_path / "typo.bin"
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve(spec_for(server), missing)
    assert str(missing) in str(err.value)
    assert err.value.looked == [missing]


@pytest.mark.parametrize("switch", ["TFAUDIO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_fails_fast_naming_file_and_places(server, tmp_path, monkeypatch, no_network, switch):
    server.routes["/w.bin"] = PAYLOAD
    monkeypatch.setenv(switch, "1")
    monkeypatch.setenv("TFAUDIO_MODELS", str(tmp_path / "models"))
    spec = spec_for(server, keras_cache=True)
    start = time.perf_counter()
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve(spec)
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert "w.bin" in message and f"{switch}=1" in message
    assert f"put it at {tmp_path / 'models' / 'toy' / 'w.bin'}" in message
    assert err.value.looked == W.locations(spec)
    for place in W.locations(spec):
        assert str(place) in message
    assert server.requests == []


def test_offline_with_cache_filled_loads(server, tmp_path, monkeypatch):
    server.routes["/w.bin"] = PAYLOAD
    path = W.resolve(spec_for(server), progress=False)
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    assert W.resolve(spec_for(server)) == path
    assert W.resolve(spec_for(server), offline=False) == path  # a good cache needs no network either
    assert server.requests == ["/w.bin"]


def test_explicit_offline_argument_overrides_environment(server, monkeypatch):
    server.routes["/w.bin"] = PAYLOAD
    with pytest.raises(W.WeightsUnavailable, match="offline=True"):
        W.resolve(spec_for(server), offline=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert W.resolve(spec_for(server), offline=False, progress=False).read_bytes() == PAYLOAD


def test_corrupt_cache_detected_by_sidecar(server, monkeypatch):
    server.routes["/w.bin"] = PAYLOAD
    spec = spec_for(server, sha256=None)  # trust on first download: the sidecar is the only check
    path = W.resolve(spec, progress=False)
    assert (path.parent / "w.bin.sha256").read_text().split()[0] == DIGEST
    path.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1]))

    with pytest.raises(W.WeightsUnavailable, match="corrupt"):
        W.resolve(spec, offline=True)
    assert W.resolve(spec, progress=False).read_bytes() == PAYLOAD  # online: downloaded again
    assert server.requests == ["/w.bin", "/w.bin"]


def test_hand_placed_cache_file_without_digest_is_trusted(tmp_path, no_network):
    spec = W.WeightsFile("toy", "w.bin", "http://127.0.0.1:9/w.bin")
    path = tmp_path / "home" / "toy" / "w.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"whatever the user put there")
    assert W.resolve(spec) == path


@pytest.mark.parametrize(("value", "offline"), [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_is_offline_values(monkeypatch, value, offline):
    monkeypatch.setenv("TFAUDIO_OFFLINE", value)
    assert W.is_offline() is offline


def test_sha256_of_streams_a_file(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(PAYLOAD * 5)  # more than one 1 MiB chunk
    assert W.sha256_of(path) == hashlib.sha256(PAYLOAD * 5).hexdigest()


@pytest.mark.parametrize("handle", ["https://tfhub.dev/google/yamnet/1", "https://tfhub.dev/google/vggish/1/"])
def test_tfhub_cache_path_matches_tensorflow_hub(monkeypatch, tmp_path, handle):
    resolver = pytest.importorskip("tensorflow_hub.compressed_module_resolver")
    assert W.tfhub_cache_path(handle) == Path(resolver._module_dir(handle))
    # Without TFHUB_CACHE_DIR tensorflow_hub falls back to <temp>/tfhub_modules (and creates it).
    monkeypatch.delenv("TFHUB_CACHE_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert W.tfhub_cache_path(handle) == Path(resolver._module_dir(handle))


def test_hf_cache_path_layout(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    expected = tmp_path / "hf" / "hub" / "models--facebook--wav2vec2-base"
    assert W.hf_cache_path("facebook/wav2vec2-base") == expected
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert W.hf_cache_path("facebook/wav2vec2-base") == tmp_path / "hub" / "models--facebook--wav2vec2-base"


@pytest.mark.shared
def test_shared_models_folder_resolves(monkeypatch, no_network):
    models = shared_path("models")
    monkeypatch.setenv("TFAUDIO_MODELS", str(models))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    assert W.resolve(W.YAMNET_H5) == models / "yamnet" / "yamnet.h5"
    assert W.resolve(W.MOBILENET_V2_NO_TOP) == models / "keras" / "models" / W.MOBILENET_V2_NO_TOP.filename
    class_map = W.resolve(W.YAMNET_CLASS_MAP)
    assert class_map == models / "yamnet" / "yamnet_class_map.csv"
    # The class map is tensorflow/models' file unchanged, so the recorded digest must match it.
    assert W.sha256_of(class_map) == W.YAMNET_CLASS_MAP.sha256


def test_empty_sidecar_counts_as_corrupt(server):
    server.routes["/w.bin"] = PAYLOAD
    spec = spec_for(server, sha256=None)
    path = W.resolve(spec, progress=False)
    (path.parent / "w.bin.sha256").write_text("")
    with pytest.raises(W.WeightsUnavailable, match="corrupt"):
        W.resolve(spec, offline=True)


def test_known_digest_beats_hand_placed_cache_file(server, tmp_path):
    """A file in the tfaudio cache that is not the published one is replaced, not trusted."""
    server.routes["/w.bin"] = PAYLOAD
    path = tmp_path / "home" / "toy" / "w.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"rebuilt weights belong in TFAUDIO_MODELS")
    with pytest.raises(W.WeightsUnavailable, match="TFAUDIO_MODELS"):
        W.resolve(spec_for(server), offline=True)
    assert W.resolve(spec_for(server), progress=False).read_bytes() == PAYLOAD
