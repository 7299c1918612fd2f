"""The Python API is as quiet as the CLI: importing tfaudio and embedding print nothing to stderr.

TensorFlow 2.21 prints absl INFO lines (oneDNN, CUDA stubs) and a cuInit error line on a
machine without a GPU; in a notebook they look like a failure. Each test runs a fresh
interpreter, since the noise appears only when TensorFlow is first loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import SHARED

EMBED = """
import numpy as np
import tfaudio
from tfaudio.models import registry
wave = np.sin(np.arange(16000) / 10).astype(np.float32)[np.newaxis]
print(registry.get({name!r}).embed(wave, np.array([16000])).shape)
"""

FEATURES = """
import numpy as np, soundfile as sf, pathlib, sys
root = pathlib.Path(sys.argv[1])
for label in ("a", "b"):
    (root / label).mkdir(parents=True)
    for i in range(2):
        sf.write(root / label / f"{i}.wav", np.sin(np.arange(8000) * (0.1 + i + 2 * (label == "b"))) * 0.3, 16000)
from tfaudio.data.dataset import load_dataset
from tfaudio.models.handcrafted.extract import extract
print(extract(load_dataset(root)).frame.shape)
"""


def _run(code: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "TFAUDIO_VERBOSE"))}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)


def test_embedding_through_the_api_prints_nothing_to_stderr():
    done = _run(EMBED.format(name="handcrafted"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 104)"
    assert done.stderr == ""


def test_extracting_features_from_a_folder_prints_nothing_to_stderr(tmp_path):
    done = _run(FEATURES, str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("(4, ")
    assert done.stderr == ""


def test_yamnet_through_the_api_prints_nothing_to_stderr():
    models = SHARED / "models"
    if not (models / "yamnet" / "yamnet.h5").exists():
        pytest.skip(f"needs {models}/yamnet/yamnet.h5 (the real weights beside the checkout); absent here")
    done = _run(EMBED.format(name="yamnet"), TFAUDIO_MODELS=str(models), TFAUDIO_OFFLINE="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 1024)"
    assert done.stderr == ""


def test_verbose_shows_tensorflow_again():
    """TFAUDIO_VERBOSE=1 is the way back to TensorFlow's own messages (what the quiet path hides)."""
    done = _run("from tfaudio.quiet import tf; tf.constant(1.0) + 1", TFAUDIO_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="0")
    assert done.returncode == 0, done.stderr
    assert done.stderr != ""
