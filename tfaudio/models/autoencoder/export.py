"""The encoder as a SavedModel that takes raw waveforms."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tfaudio.quiet import tf  # TensorFlow imported without its start-up noise
from tfaudio.frontend.pooling import pool_tensor
from tfaudio.models.autoencoder.config import DEFAULT_POOLING, AutoencoderError
from tfaudio.models.autoencoder.model import Autoencoder, AutoencoderRepresentation


class _EncoderModule(tf.Module):
    """waveform float32 [batch, samples] at config.sample_rate -> embedding pooled as
    DEFAULT_POOLING ([batch, 2 * latent] for mean+std), as `autoencoder:PATH` embeds."""

    def __init__(self, model: Autoencoder):
        super().__init__()
        self.model = model
        self.standardize = model.standardize
        self.encoder = model.encoder

    # autograph=False: no Python control flow on tensors, and AutoGraph costs about 1 s a trace.
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")], autograph=False)
    def serve(self, waveform):
        lengths = tf.fill(tf.shape(waveform)[:1], tf.shape(waveform)[1])
        return self.with_lengths(waveform, lengths)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32, name="waveform"),
            tf.TensorSpec([None], tf.int32, name="lengths"),
        ],
        autograph=False,
    )
    def with_lengths(self, waveform, lengths):
        frames, mask = self.model._encode(waveform, lengths)
        return {
            "embedding": pool_tensor(frames, mask, DEFAULT_POOLING),
            "embedding_mean": pool_tensor(frames, mask, "mean"),
            "frames": frames,
            "patch_mask": mask,
        }


def export_encoder(model: Autoencoder, out: str | os.PathLike) -> Path:
    """Save the encoder with its front end as a SavedModel.

    Signatures: `serving_default(waveform float32 [batch, samples])` and
    `with_lengths(waveform, lengths int32 [batch])` for zero-padded batches, each returning
    embedding float32 pooled over valid patches as `autoencoder:PATH` embeds by default
    (DEFAULT_POOLING: mean then standard deviation, [batch, 2 * latent]), embedding_mean
    [batch, latent] (the mean alone), frames [batch, n, latent] and patch_mask bool [batch, n].
    Waveforms: mono at config.sample_rate. The export computes in float32, also for a model
    just trained in bfloat16 (its float32 weights in a float32 network).
    """
    module = _EncoderModule(model.float32_copy())
    out = Path(out)
    tf.saved_model.save(
        module, str(out), signatures={"serving_default": module.serve, "with_lengths": module.with_lengths}
    )
    return out


def check_export(representation: AutoencoderRepresentation, path: str | os.PathLike, tolerance: float = 1e-3) -> float:
    """Reload an exported encoder and compare it with `representation` on two test clips (a
    tone in noise, 1.3 s, and its first 0.4 s zero-padded). Returns the largest absolute
    difference; raises AutoencoderError above `tolerance`."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.3 * representation.sample_rate)) / representation.sample_rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)
    waveforms = np.stack([tone, np.where(np.arange(tone.size) < 0.4 * representation.sample_rate, tone, 0.0)])
    lengths = np.array([tone.size, int(0.4 * representation.sample_rate)], np.int32)
    loaded = tf.saved_model.load(str(path))
    served = loaded.signatures["with_lengths"](waveform=tf.constant(waveforms, tf.float32), lengths=tf.constant(lengths))
    whole = loaded.signatures["serving_default"](waveform=tf.constant(tone[np.newaxis]))
    expected = representation.embed(waveforms, lengths, DEFAULT_POOLING)  # what autoencoder:PATH gives
    expected_mean = representation.embed(waveforms, lengths, "mean")
    if served["embedding"].shape != expected.shape:
        raise AutoencoderError(
            f"{path}: the exported embedding has shape {served['embedding'].shape}, the model's {DEFAULT_POOLING} "
            f"pooling {expected.shape}"
        )
    difference = max(
        float(np.abs(served["embedding"].numpy() - expected).max()),
        float(np.abs(whole["embedding"].numpy()[0] - expected[0]).max()),
        float(np.abs(served["embedding_mean"].numpy() - expected_mean).max()),
    )
    if difference > tolerance:
        raise AutoencoderError(f"{path}: the exported encoder differs from the model by {difference:.2e}")
    return difference
