"""A small labeled dataset synthesized from a seed: the offline demo and test fixture.

Four classes whose acoustics differ the way real sound classes do (pitch, spectral shape,
temporal structure), written as 16 kHz mono WAV in class folders with a `meta.csv` carrying
folds, so every dataset layout and split strategy can be exercised without downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tfaudio.data.dataset import DatasetError

CLASSES = ("tone", "chirp", "noise", "clicks")
#: The shortest clip: a chirp sweeps and clicks repeat over at least a few samples.
MIN_SECONDS = 0.01


@dataclass(frozen=True)
class SynthConfig:
    """clips_per_class clips of `duration` seconds each; folds assigned round-robin."""

    clips_per_class: int = 20
    duration: float = 1.0
    sample_rate: int = 16000
    folds: int = 5
    seed: int = 0

    def __post_init__(self):
        # Checked here, not where numpy would fail on an empty clip with a message about arrays.
        if self.duration < MIN_SECONDS:
            raise DatasetError(f"a synthetic clip must last at least {MIN_SECONDS} s, got {self.duration:g} s")
        if self.clips_per_class < 1 or self.folds < 1 or self.sample_rate < 1:
            raise DatasetError("clips_per_class, folds and sample_rate must be at least 1, got "
                               f"{self.clips_per_class}, {self.folds}, {self.sample_rate}")


def _tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    f0 = rng.uniform(150, 600)
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    return harmonics * np.exp(-t * rng.uniform(0.5, 3))


def _chirp(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    f_start, f_end = rng.uniform(300, 1500), rng.uniform(2500, 6000)
    if rng.random() < 0.5:
        f_start, f_end = f_end, f_start
    phase = 2 * np.pi * (f_start * t + (f_end - f_start) * t**2 / (2 * t[-1]))
    return np.sin(phase)


def _noise(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    from scipy.signal import lfilter

    # A one-pole low-pass with a random corner makes each clip's noise a different colour.
    alpha = rng.uniform(0.05, 0.6)
    return lfilter([alpha], [1, alpha - 1], rng.standard_normal(t.shape[0]))


def _clicks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    out = np.zeros(t.shape[0])
    rate = rng.uniform(4, 15)
    sr = t.shape[0] / (t[-1] + t[1])
    for onset in np.arange(rng.uniform(0, 0.05), t[-1], 1 / rate):
        i = int(onset * sr)
        burst = rng.standard_normal(min(160, t.shape[0] - i)) * np.exp(-np.arange(min(160, t.shape[0] - i)) / 20)
        out[i : i + burst.shape[0]] += burst
    return out


_GENERATORS = {"tone": _tone, "chirp": _chirp, "noise": _noise, "clicks": _clicks}


def make_dataset(out_dir: str | Path, config: SynthConfig = SynthConfig()) -> Path:
    """Write the dataset to out_dir (class folders + meta.csv); returns out_dir.

    The same config always writes the same samples.
    """
    out = Path(out_dir)
    rng = np.random.default_rng(config.seed)
    t = np.arange(int(config.duration * config.sample_rate)) / config.sample_rate
    rows = ["filename,label,fold"]
    for label in CLASSES:
        (out / label).mkdir(parents=True, exist_ok=True)
        for i in range(config.clips_per_class):
            wave = _GENERATORS[label](rng, t)
            wave = wave / (np.abs(wave).max() + 1e-9) * rng.uniform(0.2, 0.9)
            wave = wave + 0.003 * rng.standard_normal(t.shape[0])  # a little background hiss
            name = f"{label}/{label}_{i:03d}.wav"
            sf.write(out / name, wave.astype(np.float32), config.sample_rate, subtype="PCM_16")
            rows.append(f"{name},{label},{i % config.folds + 1}")
    (out / "meta.csv").write_text("\n".join(rows) + "\n")
    return out
