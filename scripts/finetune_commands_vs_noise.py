"""Demo 2: voice commands vs background noise with a frozen ImageNet MobileNetV2 on log-mel
spectrograms, then fine-tuning its last blocks; ends with the training curves.

Run from the repository root (the defaults point at ../shared; MobileNetV2's weights come from
KERAS_HOME, e.g. KERAS_HOME=../shared/models/keras):

    KERAS_HOME=../shared/models/keras .venv/bin/python scripts/finetune_commands_vs_noise.py

Speech clips are named like Speech Commands' (`<word>_<speaker>_nohash_<n>.wav`), so the
validation speakers are never heard in training; noise cuts are grouped in blocks of
consecutive cuts, so validation noise is not the continuation of a training cut.
"""

# ---------------------------------------------------------------------------- settings
COMMANDS_DIR = "../shared/datasets/speech_commands/audio/commands"  # spoken words, any layout
NOISE_DIR = "../shared/datasets/speech_commands/audio/noise"  # background-noise clips
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

import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from tfaudio.data.audio import AUDIO_EXTENSIONS
from tfaudio.data.dataset import Clip, Dataset
from tfaudio.train import FrontendConfig, TrainConfig, TrainingError, train  # noqa: E402

_SPEAKER = re.compile(r"^[^_]+_([0-9a-f]+)_nohash_\d+$")
_CUT = re.compile(r"^(.*)_(\d+)$")


def audio_files(folder: str) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        sys.exit(f"{root}: folder not found; set COMMANDS_DIR / NOISE_DIR at the top of {__file__}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def group_of(path: Path, label: str) -> str:
    """The speaker of a Speech Commands file; for noise, its recording and block of cuts."""
    if label == "speech":
        match = _SPEAKER.match(path.stem)
        return f"speaker {match.group(1)}" if match else f"file {path.stem}"
    match = _CUT.match(path.stem)
    return f"noise {match.group(1)} block {int(match.group(2)) // NOISE_BLOCK}" if match else f"file {path.stem}"


def commands_vs_noise() -> Dataset:
    clips = [
        Clip(path=path, label=label, group=group_of(path, label))
        for label, folder in (("speech", COMMANDS_DIR), ("noise", NOISE_DIR))
        for path in audio_files(folder)
    ]
    return Dataset(root=Path("."), clips=tuple(clips), classes=("noise", "speech"), source=f"{COMMANDS_DIR} + {NOISE_DIR}")


def main() -> None:
    frontend = FrontendConfig(sample_rate=SAMPLE_RATE, num_mel_bins=N_MELS, window_length=FFT_WINDOW, hop_length=HOP_LENGTH)
    config = TrainConfig(
        backbone="mobilenet_v2", epochs=EPOCHS, lr=LEARNING_RATE, fine_tune_epochs=FINE_TUNE_EPOCHS,
        fine_tune_lr=FINE_TUNE_LEARNING_RATE, unfreeze_last=UNFREEZE_LAST, batch_size=BATCH_SIZE, duration=DURATION,
        split="group", frontend=frontend, seed=SEED,
    )
    try:
        result = train(commands_vs_noise(), config, out=OUT, logdir=LOGDIR)
    except TrainingError as err:
        sys.exit(str(err))
    m = result.metrics
    print(f"validation ({result.split.how}): frozen MobileNetV2 {m['phase1_val_accuracy']:.2%}, "
          f"after fine-tuning {m['accuracy']:.2%} ({'kept' if m['fine_tuning_kept'] else 'not kept'})")
    print(f"exported to {result.export_dir}; try: tfaudio predict {OUT} some_clip.wav")
    # The curves: loss and accuracy per epoch, the fine-tuning boundary dashed, and the confusion matrix.
    print(f"curves: {Path(LOGDIR) / 'curves.png'} and {Path(LOGDIR) / 'curves.html'}")


if __name__ == "__main__":
    main()
