"""Log-mel patches of a dataset's clips, the autoencoder's training examples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tfaudio.quiet import tf  # TensorFlow imported without its start-up noise
from tfaudio.data.batches import iter_batches
from tfaudio.data.dataset import Dataset, Problem
from tfaudio.models.autoencoder.config import AutoencoderConfig
from tfaudio.models.autoencoder.model import log_mel, patches


@dataclass(frozen=True)
class PatchSet:
    """The valid patches of some clips.

    patches: float32 [n, patch_frames, mels] in dB; frame_mask: bool [n, patch_frames];
    clip: int64 [n] index (into the dataset) of the clip each patch comes from.
    """

    patches: np.ndarray
    frame_mask: np.ndarray
    clip: np.ndarray

    def subset(self, clips: np.ndarray) -> PatchSet:
        keep = np.isin(self.clip, clips)
        return PatchSet(self.patches[keep], self.frame_mask[keep], self.clip[keep])


def _patch_graph(config: AutoencoderConfig):
    def cut(waveforms, lengths):
        spectrogram, valid = log_mel(waveforms, lengths, config)
        return patches(spectrogram, valid, config)

    # autograph=False: no Python control flow on tensors, and AutoGraph costs about 1 s a trace.
    return tf.function(
        cut, input_signature=(tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)), autograph=False
    )


def extract_patches(
    dataset: Dataset,
    indices: Sequence[int],
    config: AutoencoderConfig,
    progress: Callable[[int], None] | None = None,
    skipped: list[Problem] | None = None,
    batch_size: int = 16,
) -> PatchSet:
    """Decode the clips at `indices` and cut them into log-mel patches (valid ones only).

    A clip that cannot be decoded is appended to `skipped` (or raises AudioError when
    `skipped` is None). progress(n) is called as clips are done.
    """
    graph = _patch_graph(config)
    clips = [dataset.clips[i] for i in indices]
    index = np.asarray(indices, dtype=np.int64)

    def on_error(err):
        skipped.append(Problem(err.path, err.problem))
        if progress:
            progress(1)

    parts, masks, owners = [], [], []
    batches = iter_batches(
        clips, config.sample_rate, batch_size, max_duration=config.max_duration,
        on_error=None if skipped is None else on_error,
    )
    for batch in batches:
        cut, frame_mask, patch_mask = (t.numpy() for t in graph(tf.constant(batch.waveforms), tf.constant(batch.lengths)))
        rows, cols = np.nonzero(patch_mask)
        parts.append(cut[rows, cols])
        masks.append(frame_mask[rows, cols])
        owners.append(index[batch.indices[rows]])
        if progress:
            progress(len(batch.indices))
    if not parts:
        shape = (0, config.patch_frames, config.num_mel_bins)
        return PatchSet(np.zeros(shape, np.float32), np.zeros(shape[:2], bool), np.zeros(0, np.int64))
    return PatchSet(np.concatenate(parts), np.concatenate(masks), np.concatenate(owners))


def band_statistics(patch_set: PatchSet) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std (float32 [mels], dB) over the valid frames of the patches.

    Overlapping patches count most frames twice; that weights frames almost alike, so the
    statistics are those of the frames themselves up to the clips' first and last half patch."""
    frames = patch_set.patches[patch_set.frame_mask]  # [valid frames, mels]
    return frames.mean(axis=0).astype(np.float32), frames.std(axis=0).astype(np.float32)
