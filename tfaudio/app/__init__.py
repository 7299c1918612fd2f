"""`tfaudio serve`: the local web app for searching, listening, labelling and training (docs/app.md).

    from tfaudio.app import serve
    serve("recordings.index", "labels.db")        # prints http://127.0.0.1:PORT/?token=..., runs until Ctrl-C

Names are imported on first use, so `import tfaudio.app` loads neither Starlette nor TensorFlow.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "App": "tfaudio.app.server",
    "build_app": "tfaudio.app.server",
    "serve": "tfaudio.app.server",
    "AppError": "tfaudio.app.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfaudio.app' has no attribute {name!r}")
