"""Settings of the process that change speed, not meaning: the numeric precision networks run
at, and what this machine offers for it.

Precision is "float32" (the default, what every number in tfaudio was validated with) or
"bfloat16". bfloat16 keeps float32's exponent range with an 8-bit mantissa, so a network's
matrix work can run on the CPU's bfloat16 units (AMX tiles on recent Xeons, AVX512-BF16 dot
products on Zen 4 and Cooper Lake) while clip embeddings stay within cosine 0.999 of float32.

How bfloat16 runs, and why this way (measured on the 2-core AVX512-BF16 machines, Nov 2026):

* Inference uses TensorFlow's oneDNN auto mixed precision, a Grappler pass that rewrites a
  ``tf.function`` graph when it is instantiated: matmuls, convolutions and the element-wise ops
  between them in bfloat16, casts at the edges, variables and outputs in float32. It works on
  any representation (the YAMNet graph of plain ``tf.nn`` ops, Hugging Face tf_keras models,
  TF-Hub SavedModels) without touching its code. Keras' ``mixed_bfloat16`` policy does not:
  it acts only on Keras layers built under it, and YAMNet's inference graph runs ``tf.nn`` ops
  on the folded weights. Casting weights and inputs by hand would need code in every backend.
* The public switch (``tf.config.optimizer.set_experimental_options``) is global to the
  process: a float32 model called while it is on would silently run in bfloat16. Grappler's
  settings reach a function through the call's options, which TensorFlow keeps per thread, so
  :func:`precision_scope` sets them for the calling thread only, and only inside the block.
  TensorFlow instantiates a function once per distinct setting, so the same model called
  outside the block still gives its float32 numbers (tests/test_precision.py checks both).
* Training uses Keras mixed precision (:func:`keras_policy`): layers built under the
  ``mixed_bfloat16`` policy compute in bfloat16 and keep float32 variables; the head and the
  loss stay float32.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tfaudio.errors import TfaudioError, TfaudioWarning

#: The precisions a network can run at; float32 is the default everywhere.
PRECISIONS = ("float32", "bfloat16")

# bfloat16 against float32 in benchmarks/embed_throughput.py (medians of 5, same run), quoted by
# the advice so that it never promises more than was measured. AVX512-BF16 without AMX (AMD
# EPYC, 2 shared cores, Nov 2026): YAMNet embed_dataset 1.67-1.71x, Wav2Vec2-base 1.58-1.64x.
# AMX (Xeon, issue 13): YAMNet 2.1x.
_MEASURED_AVX512_BF16 = "YAMNet about 1.7x, Wav2Vec2 about 1.6x"


class PrecisionWarning(TfaudioWarning):
    """bfloat16 was asked for where it will not be faster (no bfloat16 instructions)."""


class PrecisionError(TfaudioError, ValueError):
    """bfloat16 inference was asked for where the rewrite that provides it is switched off."""


def check_precision(precision: str) -> str:
    """`precision` itself, or ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


@dataclass(frozen=True)
class Hardware:
    """What this machine offers for bfloat16.

    cpu: the CPU's model name ("" when unknown); amx: AMX bfloat16 tiles (``amx_bf16``);
    avx512_bf16: AVX512 bfloat16 dot products; gpus: names of the GPUs TensorFlow sees.
    """

    cpu: str
    amx: bool
    avx512_bf16: bool
    gpus: tuple[str, ...] = ()

    @property
    def bfloat16_native(self) -> bool:
        """Whether the CPU computes in bfloat16 itself (else oneDNN emulates it, slower)."""
        return self.amx or self.avx512_bf16


def _cpu_flags(cpuinfo: Path) -> tuple[str, set[str]]:
    """(model name, flags) of the first processor in a /proc/cpuinfo file; ("", {}) if unreadable."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:  # not Linux
        return "", set()
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return name, flags


def _gpus() -> tuple[str, ...]:
    """GPUs TensorFlow sees. TensorFlow is imported for this only when it is already loaded or
    an NVIDIA device node exists, so a CPU-only machine answers without the 3 s import."""
    if "tensorflow" not in sys.modules and not any(Path("/dev").glob("nvidia[0-9]*")):
        return ()
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.quiet import tf

    return tuple(device.name for device in tf.config.list_physical_devices("GPU"))


def detect_hardware(cpuinfo: str | Path = "/proc/cpuinfo", *, gpus: bool = True) -> Hardware:
    """CPU bfloat16 support from the flags in `cpuinfo`; GPUs (gpus=True) from TensorFlow."""
    name, flags = _cpu_flags(Path(cpuinfo))
    return Hardware(name, "amx_bf16" in flags, "avx512_bf16" in flags, _gpus() if gpus else ())


def precision_advice(hardware: Hardware | None = None) -> str:
    """One line for `tfaudio models` / `tfaudio info --system`: what --precision suits this machine."""
    hardware = hardware or detect_hardware()
    if hardware.amx:
        line = ("this CPU has AMX: --precision bfloat16 runs the networks about 2x faster than float32 "
                "(clip embeddings within cosine 0.999)")
    elif hardware.avx512_bf16:
        line = (f"this CPU has AVX512-BF16 (no AMX): --precision bfloat16 runs {_MEASURED_AVX512_BF16} "
                "faster than float32 (clip embeddings within cosine 0.999)")
    else:
        line = "this CPU has no bfloat16 instructions (AMX or AVX512-BF16): keep the default --precision float32"
    if hardware.gpus:
        line += (f"; GPU found ({', '.join(hardware.gpus)}): TensorFlow runs the networks there, and "
                 "--precision bfloat16 changes only the CPU's kernels")
    return line


def precision_warning(precision: str, hardware: Hardware | None = None, *, training: bool = False) -> str | None:
    """A warning when `precision` will not pay off on this machine, else None.

    training: Keras mixed precision (:func:`keras_policy`), which runs in bfloat16 on a GPU
    too, so with a GPU there is nothing to warn about; inference's oneDNN rewrite acts on the
    CPU's kernels only, so there a GPU is worth a warning.
    """
    if check_precision(precision) == "float32":
        return None
    hardware = hardware or detect_hardware()
    if hardware.gpus and training:
        return None
    if hardware.gpus:
        return ("--precision bfloat16 rewrites the CPU's (oneDNN) kernels only; the networks run on the GPU "
                f"({', '.join(hardware.gpus)}), so expect no speed-up, only vectors cached apart from float32 ones")
    if not hardware.bfloat16_native:
        return (f"this CPU ({hardware.cpu or 'unknown'}) has no bfloat16 instructions (AMX or AVX512-BF16): "
                "oneDNN emulates bfloat16, so --precision bfloat16 will run slower than float32")
    return None


def check_rewrite_available(precision: str) -> None:
    """PrecisionError when bfloat16 inference cannot happen here as asked.

    Inference in bfloat16 is oneDNN's graph rewrite, and ``TF_ENABLE_ONEDNN_OPTS=0`` switches
    oneDNN off: the networks would quietly run in float32 while their vectors were cached under
    a bfloat16 identity. (Training uses Keras mixed precision, which needs no oneDNN.)
    """
    if check_precision(precision) == "bfloat16" and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip() == "0":
        raise PrecisionError("--precision bfloat16 needs oneDNN, which TF_ENABLE_ONEDNN_OPTS=0 switches off: "
                             "unset it, or keep --precision float32")


@contextlib.contextmanager
def precision_scope(precision: str = "float32") -> Iterator[None]:
    """``tf.function`` calls made by this thread inside the block run at `precision`.

    "bfloat16" turns on oneDNN auto mixed precision for the calls of this thread only (see the
    module notes): other threads, and calls after the block, keep float32. Eager ops are not
    rewritten, only graphs (every tfaudio representation runs one). "float32" inside a
    bfloat16 block turns it off again for its own block, and elsewhere changes nothing at all.
    The previous setting comes back on exit.
    """
    check_rewrite_available(precision)
    if precision == "float32" and "tensorflow" not in sys.modules:
        yield  # no graph has run, so none runs in bfloat16
        return
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

    # Internal module: its per-thread call options are the only scope narrower than the process.
    from tensorflow.python.eager import context

    ctx = context.context()
    before = ctx.function_call_options
    config = config_pb2.ConfigProto.FromString(before.config_proto_serialized)
    rewrites = config.graph_options.rewrite_options
    on = rewriter_config_pb2.RewriterConfig.ON
    if (rewrites.auto_mixed_precision_onednn_bfloat16 == on) == (precision == "bfloat16"):
        yield  # already so: the same options, so the same instantiated graphs
        return
    rewrites.auto_mixed_precision_onednn_bfloat16 = on if precision == "bfloat16" else rewriter_config_pb2.RewriterConfig.OFF
    ctx.function_call_options = context.FunctionCallOptions(executor_type=before.executor_type, config_proto=config)
    try:
        yield
    finally:
        ctx.function_call_options = before


@contextlib.contextmanager
def keras_policy(precision: str = "float32") -> Iterator[None]:
    """Keras layers built inside the block compute at `precision`, for training.

    "bfloat16" sets Keras' ``mixed_bfloat16`` policy while the block runs: layers built in it
    compute in bfloat16 and keep float32 variables (so the optimizer updates float32 weights
    and saved weights are float32). Build inside the block only the backbone; give the
    front end (tf.signal has no bfloat16 kernels) and the classification head ``dtype="float32"``,
    so logits, softmax and the loss are float32. Keras 3 keeps the policy per thread; the previous
    one comes back on exit. "float32" changes nothing.
    """
    if check_precision(precision) == "float32":
        yield
        return
    from tfaudio.quiet import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)
