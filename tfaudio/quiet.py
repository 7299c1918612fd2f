"""Importing TensorFlow without its start-up chatter on the terminal."""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and initialise its devices with C-level stderr silenced.

    TF 2.21 prints oneDNN, CUDA-stub and cuInit notices from C++ before its logging is set
    up, so TF_CPP_MIN_LOG_LEVEL cannot hide them. Python exceptions still surface (stderr is
    restored first), and TFAUDIO_VERBOSE=1 shows everything. A no-op once TF is imported.
    """
    if os.environ.get("TFAUDIO_VERBOSE") or "tensorflow" in sys.modules:
        return
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
