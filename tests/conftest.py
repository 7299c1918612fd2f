"""Shared fixtures: the real recordings in ../shared (skipped when absent) and generated data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TFAUDIO_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path inside ../shared, or a skip saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the real recordings and weights beside the checkout); absent here")
    return path


@pytest.fixture(scope="session")
def esc10() -> Path:
    return shared_path("datasets", "esc10")


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """80 one-second clips in 4 classes with a 5-fold manifest (written once per session)."""
    from tfaudio.data.synth import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synth"))
