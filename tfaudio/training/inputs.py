"""What a run trains on: checks that fail before training, the validation split, decoded
clips, and waveform augmentation (numpy, seeded).

Nothing here imports TensorFlow: a run with bad input fails in the time it takes to read
the manifest, not after a TensorFlow import and a model build.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio.data.audio import AUDIO_EXTENSIONS, AudioError, info, load
from tfaudio.data.dataset import Dataset, Problem
from tfaudio.data.splits import SplitError, resolve_strategy, validation_holdout
from tfaudio.training.config import AugmentConfig, TrainConfig, TrainingError


@dataclass(frozen=True)
class ValidationSplit:
    """train, val: int64 indices into the dataset's clips; how: one line saying how it was made."""

    train: np.ndarray
    val: np.ndarray
    how: str


def check_classes(dataset: Dataset) -> None:
    """At least two classes, and at least two clips in every class (one to train on, one to
    validate with); otherwise TrainingError naming the class and its clip."""
    if len(dataset.classes) < 2:
        only = dataset.classes[0] if dataset.classes else "(none)"
        raise TrainingError(
            f"{dataset.source}: only one class ('{only}', {len(dataset)} clips); a classifier needs at least two. "
            "Add a folder (or manifest label) for each other class"
        )
    counts = np.bincount(dataset.labels, minlength=len(dataset.classes))
    single = [name for name, n in zip(dataset.classes, counts) if n < 2]
    if single:
        files = [dataset.relative(c) for c in dataset.clips if c.label in single]
        raise TrainingError(
            f"{dataset.source}: class(es) {', '.join(repr(s) for s in single)} have a single clip ({', '.join(files)}); "
            "each class needs at least two, one for training and one for validation. Add clips or drop the class"
        )


def validation_split(dataset: Dataset, config: TrainConfig) -> ValidationSplit:
    """Train / validation indices as `config.split` says (`tfaudio.data.splits.validation_holdout`).

    "auto": the manifest's fold when it has folds, else group-aware 80/20 when clips have groups
    (no group on both sides), else stratified 80/20. Raises TrainingError when the split cannot
    be made, the validation side is empty or a class has no training clip.
    """
    strategy = resolve_strategy(dataset, config.split)
    if config.val_fold is not None and strategy != "predefined":
        raise TrainingError(f"--val-fold applies to the 'predefined' split, not {strategy!r}")
    try:
        split = validation_holdout(dataset, strategy, fold=config.val_fold, fraction=config.val_fraction, seed=config.seed)
    except (SplitError, ValueError) as err:
        if strategy == "predefined" and dataset.folds is not None:  # a fold the manifest does not have
            raise TrainingError(f"{dataset.source}: no validation clips: {err}. Pick another --val-fold") from None
        hint = " (--group-column names it, e.g. --group-column speaker)" if strategy == "group" else ""
        raise TrainingError(f"{dataset.source}: cannot hold out a validation set ({strategy!r} split): {err}{hint}") from None
    train, val = split.train, split.test
    how = _describe(strategy, split, len(val) / len(dataset))
    labels = dataset.labels
    missing = [dataset.classes[c] for c in range(len(dataset.classes)) if not np.any(labels[train] == c)]
    if missing:
        raise TrainingError(f"{dataset.source}: class(es) {missing} have no training clip once the validation clips are held out ({how})")
    if len(train) == 0:
        raise TrainingError(f"{dataset.source}: no training clips left after holding out validation ({how})")
    return ValidationSplit(np.asarray(train, np.int64), np.asarray(val, np.int64), how)


def _describe(strategy: str, split, share: float) -> str:
    """One line saying how the validation clips were chosen (printed, and kept with the export)."""
    if strategy == "predefined":
        return f"fold {split.name.removeprefix('fold')} of the manifest held out"
    if strategy == "group":
        return f"group-aware holdout ({share:.0%} of clips, no group on both sides)"
    return f"stratified holdout ({share:.0%} of clips)"


def median_duration(dataset: Dataset, indices: np.ndarray) -> float:
    """Median clip length in seconds over `indices`, from file headers (rounded to 10 ms)."""
    seconds = []
    for i in indices:
        try:
            seconds.append(info(dataset.clips[i].path).duration)
        except AudioError:
            continue  # reported when the clips are decoded
    if not seconds:
        raise TrainingError(f"{dataset.source}: none of the training clips can be read")
    return max(0.1, round(float(np.median(seconds)), 2))


def load_clips(
    dataset: Dataset,
    indices: np.ndarray,
    sample_rate: int = 16000,
    progress: Callable[[int], None] | None = None,
    workers: int = 4,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, list[Problem]]:
    """Decode clips whole (no trimming), one at a time in a few threads (no padded batches, so
    one long file costs its own length only).

    Returns (waves: list of float32 [samples], labels int64 [n], indices int64 [n] kept,
    problems): clips that fail to decode are left out and listed.
    """
    from concurrent.futures import ThreadPoolExecutor

    def decode(i):
        try:
            return load(dataset.clips[i].path, sample_rate), None
        except AudioError as err:
            return None, err

    problems: list[Problem] = []
    waves, kept = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, (wave, err) in zip(indices, pool.map(decode, indices)):
            if err is not None:
                problems.append(Problem(err.path, err.problem))
            else:
                waves.append(wave)
                kept.append(i)
            if progress:
                progress(1)
    kept = np.asarray(kept, np.int64)
    return waves, dataset.labels[kept] if len(kept) else np.zeros(0, np.int64), kept, problems


def windows_of(wave: np.ndarray, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a clip as the exported model does: consecutive windows of num_samples, the last one
    zero-padded (a clip up to num_samples is one padded window).

    Returns (windows float32 [k, num_samples], audio int64 [k]: samples of audio in each
    window, at least 1). The export averages the windows' probabilities weighted by `audio`.
    """
    count = max(1, -(-len(wave) // num_samples))
    padded = np.zeros(count * num_samples, np.float32)
    padded[: len(wave)] = wave
    audio = np.clip(len(wave) - np.arange(count) * num_samples, 1, num_samples).astype(np.int64)
    return padded.reshape(count, num_samples), audio


def window_clips(waves: list[np.ndarray], labels: np.ndarray, num_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window of every clip (see windows_of), as training examples.

    Returns (windows float32 [m, num_samples], labels int64 [m], weights float32 [m]): a
    clip's first window weighs 1 (a short clip counts fully), each later window the share of
    audio it holds (a last window of a few samples counts for little, as in the export).
    """
    parts, out_labels, weights = [], [], []
    for wave, label in zip(waves, labels):
        windows, audio = windows_of(wave, num_samples)
        parts.append(windows)
        out_labels.append(np.full(len(windows), label, np.int64))
        weight = audio / num_samples
        weight[0] = 1.0
        weights.append(weight.astype(np.float32))
    if not parts:
        return np.zeros((0, num_samples), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(parts), np.concatenate(out_labels), np.concatenate(weights)


def check_decoded(dataset: Dataset, train_labels: np.ndarray, val_labels: np.ndarray, problems: list[Problem], how: str) -> None:
    """The class checks again, on the clips that did decode: at least one training clip of every
    class and at least one validation clip; otherwise TrainingError naming the files that failed."""

    def failed(limit: int = 5) -> str:
        shown = "; ".join(f"{p.path}: {p.reason}" for p in problems[:limit])
        more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
        return f"{shown}{more}" if problems else "none"

    if len(train_labels) == 0:
        raise TrainingError(f"{dataset.source}: none of the training clips could be decoded ({how}). Failed: {failed()}")
    missing = [name for c, name in enumerate(dataset.classes) if not np.any(train_labels == c)]
    if missing:
        raise TrainingError(
            f"{dataset.source}: class(es) {', '.join(repr(m) for m in missing)} have no training clip that could be "
            f"decoded ({how}). Failed: {failed()}. Fix or replace those files, or drop the class"
        )
    if len(val_labels) == 0:
        raise TrainingError(f"{dataset.source}: no validation clip could be decoded ({how}). Failed: {failed()}")


def class_weights(labels: np.ndarray, num_classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """float32 [classes]: n / (classes * count), so every class weighs the same in the loss.
    weights: per-example weights (e.g. windows' audio shares) counted instead of 1 each."""
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
    counts = np.bincount(labels, weights=weights, minlength=num_classes).astype(np.float64)
    return (weights.sum() / (num_classes * np.maximum(counts, 1e-12))).astype(np.float32)


class WaveAugmenter:
    """Random gain, time shift and background-noise mixing of waveform batches (numpy).

    Every call draws from the generator it is given, so a seeded run repeats its augmentation.
    """

    def __init__(self, config: AugmentConfig, sample_rate: int = 16000, exclude: frozenset[Path] = frozenset()):
        self.config = config
        self.noise: list[np.ndarray] = []
        self.excluded = 0
        if "noise" in config.kinds:
            self.noise, self.excluded = load_noise_bank(Path(config.noise_dir), sample_rate, exclude)

    @property
    def active(self) -> bool:
        return bool(self.config.waveform_kinds)

    def __call__(self, waves: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 [batch, samples] -> augmented copy of the same shape."""
        out = np.array(waves, dtype=np.float32, copy=True)
        n, length = out.shape
        kinds = self.config.kinds
        if "noise" in kinds:
            for row in range(n):
                noise = self.noise[rng.integers(len(self.noise))]
                start = rng.integers(max(len(noise) - length, 0) + 1)
                segment = np.resize(noise[start:], length)  # repeats a clip shorter than the example
                signal_power = float(np.mean(out[row] ** 2))
                noise_power = float(np.mean(segment**2))
                if signal_power > 0 and noise_power > 0:
                    snr = rng.uniform(*self.config.snr_db)
                    out[row] += segment * math.sqrt(signal_power / (noise_power * 10 ** (snr / 10)))
        if "shift" in kinds:
            limit = int(self.config.max_shift * length)
            for row in range(n):
                shift = int(rng.integers(-limit, limit + 1)) if limit else 0
                if shift > 0:
                    out[row] = np.concatenate([np.zeros(shift, np.float32), out[row, :-shift]])
                elif shift < 0:
                    out[row] = np.concatenate([out[row, -shift:], np.zeros(-shift, np.float32)])
        if "gain" in kinds:
            gains = 10 ** (rng.uniform(-self.config.gain_db, self.config.gain_db, size=(n, 1)) / 20)
            out *= gains.astype(np.float32)
        return out


def load_noise_bank(folder: Path, sample_rate: int, exclude: frozenset[Path] = frozenset()) -> tuple[list[np.ndarray], int]:
    """Every audio file under `folder` except those in `exclude` (resolved paths), decoded:
    (float32 [samples] each, how many were excluded).

    The noise folder may be a class folder of the dataset itself (e.g. Speech Commands' noise
    clips); its validation clips are excluded so they never leak into training examples."""
    if not folder.is_dir():
        raise TrainingError(f"{folder}: noise folder not found (--noise-dir)")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    files = [p for p in found if p.resolve() not in exclude]
    clips = []
    for path in files:
        try:
            clips.append(load(path, sample_rate))
        except AudioError:
            continue
    if not clips:
        raise TrainingError(f"{folder}: no readable audio files to mix in as background noise"
                            + (f" ({len(found) - len(files)} are validation clips, left out)" if exclude else ""))
    return clips, len(found) - len(files)
