"""wav2vec2."""
