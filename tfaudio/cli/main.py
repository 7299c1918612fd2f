"""The `tfaudio` command line: the command group; each group of commands lives in its own module."""

from __future__ import annotations

import atexit
import os
import sys

import click

from tfaudio import __version__
from tfaudio.cli.autoencoder import autoencoder
from tfaudio.cli.compare import compare, demo
from tfaudio.cli.data import datasets, features, info
from tfaudio.cli.embed import embed, models, tag
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


for _command in (info, features, datasets, models, embed, tag, store, compare, demo, train, predict, autoencoder,
                 visualize, projector):
    main.add_command(_command)


def run() -> None:
    """The `tfaudio` console script and `python -m tfaudio.cli`: `main`, then a quick exit.

    Once TensorFlow is loaded, Python's own teardown (module clean-up, TensorFlow's destructors)
    takes about 1 s after the last output is written (measured on the 2-core machines: 8 % of a
    whole `tfaudio embed` of ESC-10). So after the command has finished, and every output has
    been renamed into place, the exit handlers run (temporary folders, thread pools, logging)
    and the streams are flushed; then the process leaves without the teardown. In-process
    callers (tests, notebooks) call `main` and keep the ordinary exit.
    """
    try:
        main()  # standalone mode: always ends in SystemExit
    except SystemExit as done:
        if "tensorflow" not in sys.modules:
            raise
        code = done.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # SystemExit("message"): Python prints it and exits 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # what the normal exit would run first (private, but stable since 3.0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
