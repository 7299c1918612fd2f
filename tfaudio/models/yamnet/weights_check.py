"""Whether a YAMNet weights file can be used, found without TensorFlow: what `tfaudio models`
reports before anything is built.

The file must be the legacy Keras HDF5 layout that `model.load_weights` reads (root attribute
`layer_names`, per layer a `weight_names` attribute), hold every variable of the network that
`config.BLOCKS` describes with its shape, and have every byte of them on disk (a truncated file
opens, but its last datasets cannot be read). Reading the 15 MB file takes a few milliseconds.
"""

from __future__ import annotations

import os

from tfaudio.models.yamnet.config import BLOCKS, EMBEDDING_SIZE, YamnetParams

# Keras 2 called the depthwise kernel `depthwise_kernel`; Keras 3 writes `kernel`.
_ALIASES = {"depthwise_kernel": "kernel"}


def expected_variables(params: YamnetParams = YamnetParams()) -> dict[str, tuple[int, ...]]:
    """`<layer as in the file>/<variable>` -> shape, for every variable of YAMNet's network."""

    def batchnorm(layer: str, channels: int) -> dict[str, tuple[int, ...]]:
        names = ["moving_mean", "moving_variance"]
        names += ["beta"] if params.batchnorm_center else []
        names += ["gamma"] if params.batchnorm_scale else []
        return {f"{layer}/{name}": (channels,) for name in names}

    shapes: dict[str, tuple[int, ...]] = {}
    channels = 1
    for index, (kind, _, filters) in enumerate(BLOCKS, start=1):
        block = f"layer{index}"
        if kind == "conv":
            shapes[f"{block}/conv/kernel"] = (3, 3, channels, filters)
            shapes.update(batchnorm(f"{block}/conv/bn", filters))
        else:
            shapes[f"{block}/depthwise_conv/kernel"] = (3, 3, channels, 1)
            shapes.update(batchnorm(f"{block}/depthwise_conv/bn", channels))
            shapes[f"{block}/pointwise_conv/kernel"] = (1, 1, channels, filters)
            shapes.update(batchnorm(f"{block}/pointwise_conv/bn", filters))
        channels = filters
    shapes["dense/kernel"] = (EMBEDDING_SIZE, params.num_classes)
    shapes["dense/bias"] = (params.num_classes,)
    return shapes


def weights_problem(path: str | os.PathLike, params: YamnetParams = YamnetParams()) -> str | None:
    """Why the file at `path` cannot be YAMNet's weights (naming what is wrong), or None."""
    import h5py  # a Keras dependency; only needed here

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        return f"damaged, truncated or not an HDF5 weights file ({err})"
    try:
        with handle:
            root = handle["model_weights"] if "model_weights" in handle else handle
            if "layer_names" not in root.attrs:
                return "not a Keras HDF5 weights file (no 'layer_names' attribute)"
            found = {}
            for layer in map(_text, root.attrs["layer_names"]):
                group = root[layer]
                for weight in map(_text, group.attrs.get("weight_names", [])):
                    short = weight.rsplit("/", 1)[-1].split(":")[0]
                    found[f"{layer}/{_ALIASES.get(short, short)}"] = group[weight]
            expected = expected_variables(params)
            for name, shape in expected.items():
                if name not in found:
                    return f"no variable {name}: the file does not hold YAMNet's network"
                if tuple(found[name].shape) != shape:
                    return (f"variable {name} has shape {tuple(found[name].shape)} where YAMNet's network needs "
                            f"{shape}: another architecture")
            extra = sorted(set(found) - set(expected))
            if extra:
                return f"variables {extra[:3]} are not in YAMNet's network: another architecture"
            for name in expected:
                found[name][()]  # reads the bytes: a truncated file fails here
    except (OSError, KeyError, ValueError, TypeError) as err:
        return f"damaged or truncated ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    return None


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)
