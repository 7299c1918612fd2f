"""The log-mel autoencoder, a representation learned from the user's own clips (no labels).

config.py (no TensorFlow): its settings, identity and saved-model record; patches.py, model.py:
log-mel patches and the network; train.py: training and saving; saved.py: `autoencoder:PATH`,
a saved model for any command; learned.py: `autoencoder`, trained by `compare` on each split's
training clips; export.py: the encoder as a waveform-in SavedModel; plots.py: its figures.
"""
