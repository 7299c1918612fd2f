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
    # The subpackage itself, which is callable (see tfaudio/search/__init__.py).
    "search": ("tfaudio.search", None),
    "labels": ("tfaudio.labels", None),
    "detector": ("tfaudio.detector", None),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        module = importlib.import_module(module)
        return module if attribute is None else getattr(module, attribute)
    raise AttributeError(f"module 'tfaudio' has no attribute {name!r}")
