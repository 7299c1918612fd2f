"""One tfaudio home: weights, datasets and embeddings all land under `assets.tfaudio_home()`."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile

import numpy as np
import pytest
import soundfile as sf

from tfaudio import assets
from tfaudio.data.dataset import load_dataset
from tfaudio.data.fetch import SOURCES, fetch, with_url
from tfaudio.models.base import FrameEmbeddings, Representation
from tfaudio.pipeline.local import embed_dataset


class Means(Representation):
    """One frame per clip: the mean of its samples."""

    name = "means"
    sample_rate = 16000
    frame_hop_seconds = 1.0
    dim = 1

    def frames(self, waveforms, lengths):
        means = waveforms.sum(axis=1) / np.maximum(lengths, 1)
        return FrameEmbeddings(means[:, np.newaxis, np.newaxis].astype(np.float32), np.ones((len(waveforms), 1), bool))

    def identity(self):
        return {"model": self.name}


@pytest.fixture
def served(tmp_path):
    """(folder, url of a file in it): a plain HTTP server on 127.0.0.1 over `folder`."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield folder, lambda name: f"http://127.0.0.1:{server.server_address[1]}/{name}"
    server.shutdown()
    server.server_close()


def _esc50_zip(path, scratch):
    """A two-clip archive laid out as ESC-50's (both clips in ESC-10)."""
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    with zipfile.ZipFile(path, "w") as bundle:
        for i, category in enumerate(("dog", "rain")):
            name = f"{i + 1}-{100 + i}-A-0.wav"
            sf.write(scratch / name, np.zeros(800, np.float32), 16000)
            bundle.write(scratch / name, f"ESC-50-master/audio/{name}")
            rows.append(f"{name},{i + 1},{i},{category},True,{100 + i},A")
        bundle.writestr("ESC-50-master/meta/esc50.csv", "\n".join(rows) + "\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_with_only_xdg_cache_home_every_cache_lands_under_it(tmp_path, monkeypatch, served, synth_data):
    for name in ("TFAUDIO_HOME", "TFAUDIO_MODELS", "TFAUDIO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    xdg, user = tmp_path / "xdg", tmp_path / "user"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv("HOME", str(user))  # where a rule that ignored XDG_CACHE_HOME would write
    home = xdg / "tfaudio"
    assert assets.tfaudio_home() == home

    folder, url = served
    payload = b"weights" * 1000
    (folder / "demo.bin").write_bytes(payload)
    spec = assets.WeightsFile("demo", "demo.bin", url("demo.bin"), hashlib.sha256(payload).hexdigest())
    weights = assets.resolve(spec, offline=False, progress=False)
    assert weights == home / "demo" / "demo.bin" and weights.read_bytes() == payload

    digest = _esc50_zip(folder / "ESC-50-master.zip", tmp_path)
    dataset = fetch("esc10", source=with_url(SOURCES["esc10"], url("ESC-50-master.zip"), digest), offline=False,
                    progress=False)
    assert dataset == home / "datasets" / "esc10" and (dataset / "meta.csv").is_file()
    assert (home / "datasets" / "ESC-50-master.zip").is_file()

    table = embed_dataset(load_dataset(synth_data), Means())
    assert len(table.clips) == 80
    assert list((home / "embeddings").glob("*/part-*.parquet"))

    assert not user.exists()
