"""Shared fixtures: the real recordings in ../shared (skipped when absent) and generated data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tfaudio.models.base import FrameEmbeddings, Representation

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TFAUDIO_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path inside ../shared, or a skip saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the real recordings and weights beside the checkout); absent here")
    return path


def sine(freq: float, seconds: float = 1.0, amplitude: float = 0.5, rate: int = 16000) -> np.ndarray:
    """float32 [int(seconds * rate)]: a sine of `freq` Hz starting at phase 0."""
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_tree(root: Path, classes=("dog", "rain"), per_class: int = 3, spacing: int = 400) -> Path:
    """root/<label>/<label>_<i>.wav: 0.5 s tones (amplitude 0.3, 16 kHz) at 300 + spacing * c + 10 * i
    Hz for the c-th label, so no two clips are alike. Returns root."""
    for c, label in enumerate(classes):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            sf.write(root / label / f"{label}_{i}.wav", sine(300 + spacing * c + 10 * i, 0.5, 0.3), 16000)
    return root


def padded_batch(*clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clips -> zero-padded float32 [batch, longest], int32 [batch] lengths."""
    lengths = np.array([len(clip) for clip in clips], np.int32)
    out = np.zeros((len(clips), lengths.max()), np.float32)
    for row, clip in enumerate(clips):
        out[row, : len(clip)] = clip
    return out, lengths


def traces_while(graph, call, *argument_tuples) -> int:
    """How many times the tf.function `graph` traced while `call(*arguments)` ran for each tuple."""
    before = graph.experimental_get_tracing_count()
    for arguments in argument_tuples:
        call(*arguments)
    return graph.experimental_get_tracing_count() - before


def run_cli(args, environment: dict, *, cwd: Path | None = None, timeout: int = 600) -> tuple[int, str, str]:
    """`python -m tfaudio.cli ARGS` in a subprocess with `environment`: (exit code, stdout, stderr).

    Output is decoded with backslash escapes, so a file name holding a byte that is not UTF-8
    shows as `\\xff` (printed raw) or `\\udcff` (Python's stderr escape) in the text. Asserts
    no Python traceback reached stderr.
    """
    result = subprocess.run(
        [sys.executable, "-m", "tfaudio.cli", *(os.fsdecode(a) for a in args)],
        capture_output=True, env=environment, cwd=cwd, timeout=timeout,
    )
    out = result.stdout.decode("utf-8", "backslashreplace")
    err = result.stderr.decode("utf-8", "backslashreplace")
    assert "Traceback" not in err, err
    return result.returncode, out, err


@pytest.fixture
def offline_with_bands(tmp_path, monkeypatch):
    """A comparison's test setting: its own TFAUDIO_HOME, no network, no shared weights or data,
    and the test representation `BandEnergies` known to the registry as 'bands'."""
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    monkeypatch.delenv("TFAUDIO_MODELS", raising=False)
    monkeypatch.delenv("TFAUDIO_DATA", raising=False)
    from tfaudio.models import registry

    real_get = registry.get
    monkeypatch.setattr(registry, "get", lambda name, **kw: BandEnergies() if name == "bands" else real_get(name, **kw))


class BandEnergies(Representation):
    """A representation without TensorFlow, for tests: log energy in `dim` equal FFT bands of
    consecutive `frame`-sample frames, float32 [batch, frames, dim] (the top bins left over
    are dropped). `model` names it in its identity."""

    sample_rate = 16000

    def __init__(self, name: str = "bands", dim: int = 16, frame: int = 1600, model: str = "bands"):
        self.name, self.dim, self.frame, self.model = name, dim, frame, model
        self.frame_hop_seconds = frame / self.sample_rate

    def frames(self, waveforms, lengths):
        count = max(1, waveforms.shape[1] // self.frame)
        frames = waveforms[:, : count * self.frame].reshape(len(waveforms), count, self.frame)
        width = self.frame // 2 // self.dim  # FFT bins per band
        power = np.abs(np.fft.rfft(frames, axis=-1))[..., : self.dim * width] ** 2
        energies = np.log(power.reshape(len(waveforms), count, self.dim, width).sum(-1) + 1e-6)
        mask = np.arange(count)[np.newaxis] < np.maximum(lengths // self.frame, 1)[:, np.newaxis]
        return FrameEmbeddings(energies.astype(np.float32), mask)

    def identity(self):
        return {"model": self.model, "version": 1}


@pytest.fixture(scope="session")
def esc10() -> Path:
    return shared_path("datasets", "esc10")


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """80 one-second clips in 4 classes with a 5-fold manifest (written once per session)."""
    from tfaudio.data.synth import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synth"))
