"""What more than one test module uses and is not a fixture: running a command the way a user
does (in its own process, timed to its last output), test-built weights in the layouts of the
real files, tiny model configurations and signals. Fixtures live in conftest.py.

Heavy modules (TensorFlow, h5py, tfaudio's networks) are imported inside the functions that
need them, so a test module that only runs commands does not load TensorFlow.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio.models.autoencoder.config import AutoencoderConfig

SR = 16000

# ------------------------------------------------------------------------ a command in a process

#: How long a command may take to leave after its last output line.
EXIT_SECONDS = 10.0


@dataclass(frozen=True)
class Finished:
    """A command run to its end in its own process.

    code: exit status. stdout / stderr: everything it wrote, decoded with backslash escapes.
    seconds: start to exit. idle: its last output byte to its exit (the whole run when it wrote
    nothing). after_interrupt: SIGINT to exit, when one was sent. strays: processes of its group
    (workers it started) still running a few seconds after it exited, as "pid command".
    """

    command: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float
    idle: float
    after_interrupt: float | None = None
    strays: tuple[str, ...] = ()

    def describe(self) -> str:
        return (f"$ {' '.join(self.command)}\nexit {self.code} after {self.seconds:.1f} s, {self.idle:.1f} s after "
                f"its last output\n--- stdout (end)\n{self.stdout[-3000:]}\n--- stderr (end)\n{self.stderr[-3000:]}")

    def check(self, code: int = 0) -> Finished:
        """Assert what every run of a command should show: exit status `code`, no Python
        traceback, an exit within EXIT_SECONDS of its last output, no worker left behind."""
        assert self.code == code, self.describe()
        assert "Traceback" not in self.stderr, self.describe()
        assert self.idle < EXIT_SECONDS, f"exited {self.idle:.1f} s after its last output\n{self.describe()}"
        assert not self.strays, f"left running: {self.strays}\n{self.describe()}"
        return self

    def last_line(self, stream: str = "stderr") -> str:
        """The last non-empty line of a stream, as a terminal shows it: progress bars redraw a
        line with carriage returns, so only the text after the last one counts."""
        lines = [line.rsplit("\r", 1)[-1].strip() for line in getattr(self, stream).splitlines()]
        return next((line for line in reversed(lines) if line), "")


class _Pipe(threading.Thread):
    """Reads one of the process's pipes to its end, noting when the last bytes came."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.chunks, self.last = stream, [], None

    def run(self) -> None:
        while chunk := os.read(self.stream.fileno(), 1 << 16):
            self.last = time.monotonic()
            self.chunks.append(chunk)

    def text(self) -> str:
        return b"".join(list(self.chunks)).decode("utf-8", "backslashreplace")


def _group_members(group: int) -> list[str]:
    """Live (not zombie) processes of process group `group`, as "pid command"; Linux's /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended while we looked
            continue
        name_end = text.rindex(")")
        state, _, pgrp = text[name_end + 2:].split()[:3]
        if int(pgrp) == group and state != "Z":
            members.append(f"{stat.parent.name} {text[text.index('(') + 1:name_end]}")
    return members


def run_process(
    command: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str | os.PathLike,
    timeout: float = 300,
    interrupt_when: Callable[[str], bool] | None = None,
) -> Finished:
    """Run `command` as a user's shell would, in a process group of its own, and time its exit.

    interrupt_when: called with the output so far (stdout + stderr) every 50 ms; once it says
    True, SIGINT goes to the whole group, as Ctrl-C in a terminal sends it. A command still
    running after `timeout` seconds is killed with its group and the test fails, saying how
    long it had been silent.
    """
    command = tuple(os.fsdecode(part) for part in command)
    start = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, cwd=cwd, start_new_session=True)
    pipes = (_Pipe(process.stdout), _Pipe(process.stderr))
    for pipe in pipes:
        pipe.start()
    interrupted = None
    while process.poll() is None:
        now = time.monotonic()
        if now - start > timeout:
            _kill_group(process)
            last = max((p.last for p in pipes if p.last), default=start)
            raise AssertionError(f"$ {' '.join(command)}\nstill running after {timeout:.0f} s, {now - last:.0f} s "
                                 f"after its last output; killed.\n--- stderr (end)\n{pipes[1].text()[-3000:]}")
        if interrupt_when is not None and interrupted is None and interrupt_when(pipes[0].text() + pipes[1].text()):
            os.killpg(process.pid, signal.SIGINT)
            interrupted = time.monotonic()
        time.sleep(0.05)
    exited = time.monotonic()
    # Workers that outlive the command keep its pipes open: give them a moment to go, then
    # name them and end them, so the readers finish.
    deadline = exited + 3
    while (strays := _group_members(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if strays:
        _kill_group(process)
    for pipe in pipes:
        pipe.join(10)
    last = max((p.last for p in pipes if p.last is not None), default=start)
    return Finished(command=command, code=process.returncode, stdout=pipes[0].text(), stderr=pipes[1].text(),
                    seconds=exited - start, idle=max(0.0, exited - last),
                    after_interrupt=None if interrupted is None else exited - interrupted, strays=tuple(strays))


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


# ------------------------------------------------------------------------------------- signals


def chirp(seconds: float, low: float = 200.0, high: float = 6000.0) -> np.ndarray:
    """float32 [seconds * 16000]: a linear sweep from `low` to `high` Hz, amplitude 0.3. Every
    patch or example of it looks different, so a model that mixed them up would show."""
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.3 * np.sin(2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds)))).astype(np.float32)


def noisy_tone(seconds: float, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """float32 [seconds * 16000]: a 0.4 sine of `freq` Hz plus a little seeded white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


# --------------------------------------------------------------------- YAMNet: test-built weights


def yamnet_file_name(keras_name: str) -> str:
    """Keras 3 layer name -> the name Google's yamnet.h5 gives it."""
    match = re.fullmatch(r"(layer\d+)_(conv|depthwise_conv|pointwise_conv)(_bn)?", keras_name)
    if match is None:
        return keras_name
    return f"{match[1]}/{match[2]}" + ("/bn" if match[3] else "")


def write_legacy_h5(network, path, drop: str | None = None) -> None:
    """Save `network` in the layout of Google's yamnet.h5 (Keras 2 save_weights), as the tests'
    stand-in for the real file; `drop` leaves out one variable ("layer/variable")."""
    import h5py

    with h5py.File(path, "w") as handle:
        names = []
        for layer in network.layers:
            name = yamnet_file_name(layer.name)
            names.append(name)
            group = handle.create_group(name) if name not in handle else handle[name]
            weight_names = []
            for variable in layer.weights:
                short = "depthwise_kernel" if "depthwise" in name and variable.name == "kernel" else variable.name
                if f"{name}/{short}" == drop:
                    continue
                weight_names.append(f"{name}/{short}:0")
                group.create_dataset(weight_names[-1], data=variable.numpy())
            group.attrs["weight_names"] = np.array(weight_names, dtype="S")
        handle.attrs["layer_names"] = np.array(names, dtype="S")


def randomize(network, seed: int = 0) -> None:
    """He-initialise YAMNet's kernels and give batch norm non-trivial statistics.

    Keras' default initialisers let the signal vanish through 27 conv layers (the embedding of
    any input is then the same); with He scaling every layer keeps unit-order activations, so
    tests can tell inputs and patches apart. Fresh batch norm has mean 0, variance 1, which
    would leave the batch-norm folding untested.
    """
    rng = np.random.default_rng(seed)
    for layer in network.layers:
        if layer.name.endswith("conv"):
            shape = tuple(layer.kernel.shape)
            fan_in = shape[0] * shape[1] * (1 if "depthwise" in layer.name else shape[2])
            layer.kernel.assign(rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
        elif layer.name.endswith("_bn"):
            n = layer.beta.shape[0]
            layer.beta.assign(rng.normal(0, 0.1, n).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype(np.float32))


# --------------------------------------------------------------------- VGGish: test-built weights


def random_vggish_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """He-scaled values for every official VGGish variable, so activations keep unit order
    through the eight ReLU layers (Keras' defaults differ, so loading is visible in the output)."""
    from tfaudio.models.vggish import model as V

    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in V.CHECKPOINT_VARIABLES.items():
        if name.endswith("weights"):
            fan_in = int(np.prod(shape[:-1]))
            weights[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        else:
            weights[name] = rng.normal(0, 0.1, shape).astype(np.float32)
    return weights


def write_v1_checkpoint(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A V1 checkpoint (one file, as the official vggish_model.ckpt, which slim's Saver wrote
    with write_version=1) whose keys are exactly the given names: the op a TF1 Saver runs."""
    import tensorflow as tf

    names = list(arrays)
    tf.raw_ops.Save(filename=str(path), tensor_names=names, data=[tf.constant(arrays[n]) for n in names])


def random_checkpoint(directory: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The random-valued official VGGish checkpoint (290 MB), written once per directory; pass
    a folder under the session's base temporary directory to share it between modules."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "vggish_model.ckpt"
    weights = random_vggish_weights()
    if not path.exists():
        write_v1_checkpoint(path, weights)
    return path, weights


# ----------------------------------------------------------------------- tiny model configurations

#: A tiny Wav2Vec2 (transformers config keywords): 80 samples per frame, 85-sample receptive
#: field, 2 layers of width 32.
TINY_WAV2VEC2 = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(16, 16, 16),
    conv_stride=(5, 4, 4),
    conv_kernel=(10, 4, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    vocab_size=32,
)

#: An autoencoder small enough to train in a couple of seconds on 80 one-second clips.
TINY_AUTOENCODER = AutoencoderConfig(patch_frames=32, num_mel_bins=32, filters=(8, 16), latent=16, epochs=3,
                                     batch_size=16)
#: `autoencoder train` options giving TINY_AUTOENCODER.
TINY_AUTOENCODER_ARGS = ("--patch-frames", "32", "--latent", "16", "--epochs", "3", "--batch-size", "16")


def cli(*args):
    """`tfaudio ARGS` in this process (click's runner): the result, its output and exit code."""
    from click.testing import CliRunner

    from tfaudio.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args])
