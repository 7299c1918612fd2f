"""The `tfaudio` command line: the command group; each group of commands lives in its own module."""

from __future__ import annotations

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


if __name__ == "__main__":
    main()
