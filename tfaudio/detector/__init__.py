"""Detectors: from labelled windows of a search index to calibrated scores over an archive.

    import tfaudio
    detector = tfaudio.detector.train_detector("recordings.index", "labels.db")   # cross-validated
    detector.save("owl.detector")                                                 # + report.html
    tfaudio.detector.export_detector(detector)                    # waveform-in SavedModel
    tfaudio.detector.detect(detector, "recordings.index", "detections/")
    tfaudio.detector.next_windows("recordings.index", "labels.db", "owl", strategy="margin")

Names are imported on first use, so `import tfaudio.detector` loads neither TensorFlow nor
scikit-learn. See docs/detector.md.
"""

from __future__ import annotations

import importlib

# Imported now, not on first use: the module `detect` and its function share the name, and
# importing the module later would rebind `tfaudio.detector.detect` to the module. Light (no
# TensorFlow, scikit-learn or pandas).
from tfaudio.detector.detect import DetectResult as DetectResult, detect as detect  # re-exported

_LAZY = {
    "DetectorConfig": "tfaudio.detector.config",
    "Detector": "tfaudio.detector.model",
    "DetectorError": "tfaudio.detector.model",
    "LabelReport": "tfaudio.detector.model",
    "train_detector": "tfaudio.detector.train",
    "export_detector": "tfaudio.detector.export",
    "load_detector_export": "tfaudio.detector.export",
    "next_windows": "tfaudio.detector.rounds",
    "STRATEGIES": "tfaudio.detector.rounds",
    "write_report": "tfaudio.detector.report",
}

__all__ = sorted([*_LAZY, "DetectResult", "detect"])


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfaudio.detector' has no attribute {name!r}")
