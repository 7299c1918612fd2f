"""Importing TensorFlow without its start-up chatter on the terminal.

Every tfaudio module that needs TensorFlow gets it from `import_tensorflow_quietly`, never from a
bare `import tensorflow`: whichever module a user (or a notebook) imports first, TensorFlow
loads once, quietly, and a CLI command and the Python API print the same (nothing).
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly():
    """The `tensorflow` module, imported and its devices initialised with C-level stderr silenced.

    TF 2.21 prints oneDNN, CUDA-stub and cuInit notices (through absl, before its logging is set
    up) during the import and the first device query, so TF_CPP_MIN_LOG_LEVEL alone cannot hide
    them. Python exceptions still surface (stderr is restored first). TFAUDIO_VERBOSE=1 shows
    everything; a TF_CPP_MIN_LOG_LEVEL the user set is kept (we only set a default). Once
    TensorFlow is imported this only returns it.
    """
    if os.environ.get("TFAUDIO_VERBOSE") or "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf


def __getattr__(name: str):
    """`from tfaudio.quiet import tf` / `keras`: the modules, imported quietly on first use
    (Keras 3 loads TensorFlow as its backend, so it too must come after the quiet import)."""
    if name == "tf":
        return import_tensorflow_quietly()
    if name == "keras":
        import_tensorflow_quietly()
        import keras

        return keras
    raise AttributeError(f"module 'tfaudio.quiet' has no attribute {name!r}")
