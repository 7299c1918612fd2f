"""Pretrained and trainable audio backbones, one module per model (e.g. ``tfaudio.models.yamnet``)."""
