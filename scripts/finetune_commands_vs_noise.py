"""Demo 2: voice commands vs background noise with a frozen ImageNet MobileNetV2 on log-mel
spectrograms, then fine-tuning its last blocks; ends with the training curves.

Run from the repository root (the defaults point at ../shared; MobileNetV2's weights come from
KERAS_HOME, e.g. KERAS_HOME=../shared/models/keras):

    KERAS_HOME=../shared/models/keras .venv/bin/python scripts/finetune_commands_vs_noise.py
    .venv/bin/python scripts/finetune_commands_vs_noise.py --epochs 2 --fine-tune-epochs 1   # a quick look

Speech clips are named like Speech Commands' (`<word>_<speaker>_nohash_<n>.wav`), so the
validation speakers are never heard in training; noise cuts are grouped in blocks of
consecutive cuts, so validation noise is not the continuation of a training cut.
"""

# ---------------------------------------------------------------------------- settings
COMMANDS_DIR = "../shared/datasets/speech_commands/audio/commands"  # spoken words, any layout
NOISE_DIR = "../shared/datasets/speech_commands/audio/noise"  # background-noise clips
BACKBONE = "mobilenet_v2"  # ImageNet weights; "small_cnn" trains from scratch and needs none
SAMPLE_RATE = 16000  # Hz the models run at (clips are resampled); fixed: the front end accepts only 16000
DURATION = 1.0  # seconds per example (padded / trimmed)
N_MELS = 128  # mel bands
FFT_WINDOW = 1024  # STFT window = FFT size, samples
HOP_LENGTH = 160  # samples between frames (10 ms)
BATCH_SIZE = 32
EPOCHS = 20  # frozen phase: head on cached MobileNetV2 outputs
LEARNING_RATE = 1e-3
FINE_TUNE_EPOCHS = 5  # then the last blocks train too
FINE_TUNE_LEARNING_RATE = 1e-5
UNFREEZE_LAST = 2  # MobileNetV2 blocks unfrozen (block_16 and the final 1x1 convolution)
NOISE_BLOCK = 20  # consecutive noise cuts kept on the same side of the split
OUT = "saved_models/commands_vs_noise"  # SavedModel export (version folder inside)
LOGDIR = "runs/commands_vs_noise"  # TensorBoard, curves, metrics
SEED = 0
# ----------------------------------------------------------------------------

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from tfaudio.data.audio import AUDIO_EXTENSIONS  # noqa: E402
from tfaudio.data.dataset import Clip, Dataset  # noqa: E402
from tfaudio.errors import TfaudioError  # noqa: E402
from tfaudio.training import BACKBONES, FrontendConfig, TrainConfig, train  # noqa: E402

_SPEAKER = re.compile(r"^[^_]+_([0-9a-f]+)_nohash_\d+$")
_CUT = re.compile(r"^(.*)_(\d+)$")


def audio_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        sys.exit(f"{folder}: folder not found; set COMMANDS_DIR / NOISE_DIR at the top of {__file__} "
                 "or pass --commands / --noise")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def group_of(path: Path, label: str) -> str:
    """The speaker of a Speech Commands file; for noise, its recording and block of cuts."""
    if label == "speech":
        match = _SPEAKER.match(path.stem)
        return f"speaker {match.group(1)}" if match else f"file {path.stem}"
    match = _CUT.match(path.stem)
    return f"noise {match.group(1)} block {int(match.group(2)) // NOISE_BLOCK}" if match else f"file {path.stem}"


def commands_vs_noise(commands: Path, noise: Path) -> Dataset:
    clips = [
        Clip(path=path, label=label, group=group_of(path, label))
        for label, folder in (("speech", commands), ("noise", noise))
        for path in audio_files(folder)
    ]
    return Dataset(root=Path("."), clips=tuple(clips), classes=("noise", "speech"), source=f"{commands} + {noise}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The settings above, each of which an option can override for one run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=Path, default=Path(COMMANDS_DIR),
                        help=f"spoken words (default: {COMMANDS_DIR})")
    parser.add_argument("--noise", type=Path, default=Path(NOISE_DIR), help=f"background noise (default: {NOISE_DIR})")
    parser.add_argument("--backbone", choices=BACKBONES, default=BACKBONE, help=f"(default: {BACKBONE})")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"frozen-phase epochs (default: {EPOCHS})")
    parser.add_argument("--fine-tune-epochs", type=int, default=FINE_TUNE_EPOCHS,
                        help=f"fine-tuning epochs, 0 to skip (default: {FINE_TUNE_EPOCHS})")
    parser.add_argument("--out", type=Path, default=Path(OUT), help=f"SavedModel export (default: {OUT})")
    parser.add_argument("--logdir", type=Path, default=Path(LOGDIR), help=f"logs and curves (default: {LOGDIR})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    frontend = FrontendConfig(sample_rate=SAMPLE_RATE, num_mel_bins=N_MELS, window_length=FFT_WINDOW,
                              hop_length=HOP_LENGTH)
    config = TrainConfig(
        backbone=args.backbone, epochs=args.epochs, learning_rate=LEARNING_RATE, fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_learning_rate=FINE_TUNE_LEARNING_RATE, unfreeze_last=UNFREEZE_LAST, batch_size=BATCH_SIZE,
        duration=DURATION, split="group", frontend=frontend, seed=SEED,
    )
    try:
        result = train(commands_vs_noise(args.commands, args.noise), config, out=args.out, logdir=args.logdir)
    except TfaudioError as err:  # bad data, weights unavailable: one message, not a traceback
        sys.exit(f"error: {err}")
    m = result.metrics
    fine_tuning = "skipped" if args.fine_tune_epochs == 0 else "kept" if m["fine_tuning_kept"] else "not kept"
    print(f"validation ({result.split.how}): frozen {args.backbone} {m['phase1_val_accuracy']:.2%}, "
          f"after fine-tuning {m['accuracy']:.2%} (fine-tuning {fine_tuning})")
    print(f"exported to {result.export_dir}; try: tfaudio predict {args.out} some_clip.wav")
    # The curves: loss and accuracy per epoch, the fine-tuning boundary dashed, and the confusion matrix.
    print(f"curves: {result.logdir / 'curves.png'} and {result.logdir / 'curves.html'}")


if __name__ == "__main__":
    main()
