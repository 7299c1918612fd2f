"""tfaudio: learned audio representations with TensorFlow and Keras 3."""

__version__ = "0.1.0"

# Public functions imported on first use, so `import tfaudio` stays light (no TensorFlow,
# scikit-learn or plotting until one is called).
_LAZY = {
    "compare": ("tfaudio.comparison.run", "compare"),
    "CompareConfig": ("tfaudio.comparison.config", "CompareConfig"),
    "write_report": ("tfaudio.comparison.report", "write_report"),
    "visualize": ("tfaudio.viz", "visualize"),
    "export_projector": ("tfaudio.viz", "export_projector"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'tfaudio' has no attribute {name!r}")
