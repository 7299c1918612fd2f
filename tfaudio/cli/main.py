"""The `tfaudio` command line: the command group; each group of commands lives in its own module."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading

import click

from tfaudio import __version__
from tfaudio.cli.autoencoder import autoencoder
from tfaudio.cli.compare import compare, demo
from tfaudio.cli.data import datasets, features, info
from tfaudio.cli.detector import detect, detector
from tfaudio.cli.embed import embed, models, tag
from tfaudio.cli.index import index
from tfaudio.cli.labels import labels
from tfaudio.cli.search import search
from tfaudio.cli.serve import serve
from tfaudio.cli.store import store
from tfaudio.cli.train import predict, train
from tfaudio.cli.viz import projector, visualize


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tfaudio")
def main():
    """Which audio representation works for your labeled sounds? tfaudio loads a folder of
    audio (one sub-folder per class, or a CSV manifest filename,label[,fold][,group]) and
    computes hand-crafted features and pretrained embeddings (YAMNet, VGGish, Wav2Vec2, TF-Hub
    and Hugging Face models) in TensorFlow, cached so nothing is computed twice.

    DATA is a class-folder tree, a CSV manifest, or a folder holding meta.csv / manifest.csv.
    """


for _command in (info, features, datasets, models, embed, tag, store, index, search, labels, compare, demo, train,
                 predict, autoencoder, visualize, projector):
    main.add_command(_command)
for _command in (detector, detect):
    main.add_command(_command)
main.add_command(serve)


#: Exit status after Ctrl-C: 128 + SIGINT, what a shell reports for a process the signal ended.
INTERRUPTED = 128 + signal.SIGINT


class Interrupted(BaseException):
    """Ctrl-C in the console entry. Not a KeyboardInterrupt, which click would turn into
    "Aborted!" (and a blank line) with exit status 1; and not an Exception, so that no
    per-file `except Exception` takes it for a bad file: it unwinds every `finally` (temporary
    files removed, writers closed) up to `run`."""


def _interrupt(signum, frame):
    """The first Ctrl-C: say so, then unwind the command with Interrupted. What libraries print
    while they stop (Beam logs its workers' broken connections with tracebacks) is not news to
    someone who pressed Ctrl-C, so stderr goes quiet from here; a second Ctrl-C leaves at once."""
    signal.signal(signal.SIGINT, _leave_now)
    _say_interrupted()
    _silence_stderr()
    raise Interrupted


def _leave_now(signum, frame):
    """A second Ctrl-C while the first unwinds the command: leave at once (already said)."""
    os._exit(INTERRUPTED)


def _interrupted_at_exit(signum, frame):
    """Ctrl-C once the command has ended, while pools stop: say so and leave at once, without
    waiting for them (their workers got the same SIGINT from the terminal)."""
    _say_interrupted()
    os._exit(INTERRUPTED)


def _say_interrupted() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed pipe: nothing more to say there
        pass
    # On a line of its own: the terminal has echoed ^C, maybe after a half-drawn progress bar.
    print("\nInterrupted.", file=sys.stderr, flush=True)


def _silence_stderr() -> None:
    """Point file descriptor 2 (and so Python's, TensorFlow's and every thread's stderr) at
    /dev/null."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def run() -> None:
    """The `tfaudio` console script and `python -m tfaudio.cli`: `main`, then a quick exit.

    Once TensorFlow is loaded, Python's own teardown (module clean-up, TensorFlow's destructors)
    takes about 1 s after the last output is written (measured on the 2-core machines: 8 % of a
    whole `tfaudio embed` of ESC-10). So after the command has finished, and every output has
    been renamed into place, Python's exit runs in its own order up to that teardown: first
    `threading._shutdown()` (the hooks by which pools stop their workers: joblib's loky
    processes, concurrent.futures; then the join of the threads that are left), then the exit
    handlers (temporary folders, logging, multiprocessing's join of its children), then the
    streams are flushed; then the process leaves without the teardown. Skipping the first step
    cost 300 s: multiprocessing's handler joined loky workers nobody had told to stop, which
    wait for their idle timeout. In-process callers (tests, notebooks) call `main` and keep
    the ordinary exit and the ordinary KeyboardInterrupt.

    Ctrl-C at any moment prints `Interrupted.` and exits with status 130, without a traceback;
    a second one while the pools stop leaves at once.
    """
    # Only where Ctrl-C would raise KeyboardInterrupt: a SIGINT ignored by the parent (`nohup`,
    # a shell's background job) stays ignored.
    handles_interrupt = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if handles_interrupt:
        signal.signal(signal.SIGINT, _interrupt)
    try:
        try:
            main()  # standalone mode: always ends in SystemExit
        except SystemExit as done:
            code = done.code
            if handles_interrupt:  # from here on, Ctrl-C only cuts the exit short
                signal.signal(signal.SIGINT, _interrupted_at_exit)
    except Interrupted:  # already said by _interrupt, which left _leave_now in place
        code = INTERRUPTED
    if code is None:
        code = 0
    elif not isinstance(code, int):  # SystemExit("message"): Python prints it and exits 1
        print(code, file=sys.stderr)
        code = 1
    if "tensorflow" not in sys.modules:
        sys.exit(code)  # the ordinary exit, which costs little without TensorFlow
    threading._shutdown()  # what the normal exit runs first (private, but there since 3.0)
    atexit._run_exitfuncs()  # then this (private, but stable since 3.0)
    os._exit(_flushed(code))


def _flushed(code: int) -> int:
    """Flush stdout and stderr; `code`, or 120 as Python's own exit gives when stdout cannot
    be written to the end (a full disk; a closed pipe after `| head` is not an error)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            pass
        except (OSError, ValueError):
            code = code or 120
    return code


if __name__ == "__main__":
    run()
