"""Pretrained and trainable audio backbones, one module per model (e.g. ``tfaudio.models.yamnet``).

``tfaudio.models.get(name)`` returns any representation by name (see ``registry.get``).
"""

_REGISTRY_NAMES = ("get", "names", "describe", "ModelUnavailable")


def __getattr__(name):
    # Lazy, so importing one backend module does not pull in the registry (and vice versa).
    if name in _REGISTRY_NAMES:
        from tfaudio.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'tfaudio.models' has no attribute {name!r}")
