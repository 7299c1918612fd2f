"""The three model families: waveform -> front end -> backbone -> head.

Every model comes in two parts joined into one classifier:

* `frozen`: waveform float32 [batch, samples] -> features, everything the frozen phase does not
  train (front end and pretrained backbone). Its outputs are computed once and cached.
* `head`: features -> probabilities float32 [batch, classes], what the frozen phase trains.

For `small_cnn`, trained from scratch, the frozen part is the front end alone (the cached
features are spectrograms) and the CNN belongs to the head.

At `config.precision` "bfloat16" only the backbone (small_cnn: the conv blocks) is built under
Keras mixed precision (`tfaudio.runtime.keras_policy`): it computes in bfloat16 and keeps
float32 variables. The front end (tf.signal has no bfloat16 kernels), the dropout and
classification layer, and so the loss, stay float32, and the backbone's output is cast back to
float32, so the frozen phase caches float32 features.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from tfaudio import assets as weights_module
from tfaudio.runtime import keras_policy
from tfaudio.training.config import BACKBONE_TABLE, TrainConfig, TrainingError

MOBILENET_SIZE = (224, 224)
#: MobileNetV2's stages as keras.applications names them: 0 = stem (Conv1, expanded_conv),
#: 1..16 = block_1..block_16, 17 = the final 1x1 convolution (Conv_1, out_relu).
MOBILENET_STAGES = 18
_MOBILENET_STAGE = re.compile(r"^block_(\d+)_")


def resolve_weights(config: TrainConfig) -> str | None:
    """The backbone's weights file (`BACKBONE_TABLE`), or None for one that trains from scratch.
    Nothing is built or decoded.

    Raises TrainingError, one line: why the file is unavailable, where to put it, and that
    --backbone small_cnn needs none (e.g. offline with nothing in TFAUDIO_MODELS), so a run
    fails before any audio is read.
    """
    spec = BACKBONE_TABLE[config.backbone].weights
    if spec is None:
        return None
    try:
        return str(weights_module.resolve(spec, config.weights, offline=config.offline))
    except weights_module.WeightsUnavailable as err:
        raise TrainingError(_unavailable(config.backbone, spec, err)) from None


def _unavailable(backbone: str, spec, err) -> str:
    """One line from the weights error: its reason and its fix (the first and last of its
    lines; the places looked in between are left out: the fix names where the file goes)."""
    lines = str(err).splitlines()
    reason = lines[0].removeprefix(f"{spec.filename} ({spec.model}) is unavailable: ").rstrip(".")
    fix = lines[-1].removeprefix("To fix: ").rstrip(".")
    fix = fix.replace("pass its path explicitly", "pass its path with --weights")
    scratch = next(name for name, b in BACKBONE_TABLE.items() if b.weights is None)
    return (f"{backbone} weights are unavailable, so training cannot start: {spec.filename}: {reason}. To fix: {fix}; "
            f"or pick --backbone {scratch}, which trains from scratch and needs no weights")


#: keras.applications.MobileNetV2 refuses inputs smaller than this in either dimension.
MOBILENET_MIN_SIZE = 32


def check_input_size(config: TrainConfig, num_samples: int) -> None:
    """mobilenet_v2 with --native-size: the spectrogram (frames x mel bands) must be at least
    32 x 32, else TrainingError naming --duration (checked before any audio is decoded)."""
    if config.backbone != "mobilenet_v2" or config.resize:
        return
    front = config.frontend_config
    frames = 1 + num_samples // front.hop_length
    if frames < MOBILENET_MIN_SIZE:
        need = (MOBILENET_MIN_SIZE - 1) * front.hop_length / front.sample_rate
        raise TrainingError(
            f"mobilenet_v2 with --native-size needs a spectrogram of at least {MOBILENET_MIN_SIZE} frames, but "
            f"--duration {num_samples / front.sample_rate:g} s gives {frames} (hop {front.hop_length} samples); "
            f"use --duration {need:g} or more, or drop --native-size (the spectrogram is then resized to 224 x 224)"
        )
    if front.num_mel_bins < MOBILENET_MIN_SIZE:
        raise TrainingError(
            f"mobilenet_v2 with --native-size needs at least {MOBILENET_MIN_SIZE} mel bands, the front end has "
            f"{front.num_mel_bins}; use more bands or drop --native-size"
        )


def mobilenet_stage(layer_name: str) -> int | None:
    """0..17 for a MobileNetV2 layer (see MOBILENET_STAGES), None for the input and pooling."""
    match = _MOBILENET_STAGE.match(layer_name)
    if match:
        return int(match.group(1))
    if layer_name.startswith(("Conv1", "bn_Conv1", "expanded_conv")):
        return 0
    if layer_name.startswith(("Conv_1", "out_relu")):
        return MOBILENET_STAGES - 1
    return None


@dataclass
class ModelParts:
    """frozen: waveform -> features; head: features -> probabilities; classifier: both.

    unfreeze(k) makes the last k blocks of the pretrained backbone trainable (batch norm
    excluded) and returns the names of the layers it unfroze; max_unfreeze is its limit.
    """

    frozen: object
    head: object
    classifier: object
    unfreeze: Callable[[int], list[str]]
    max_unfreeze: int


def _float32(x):
    """A KerasTensor as float32: itself when it is, else through a float32 identity layer."""
    from tfaudio.quiet import keras

    return x if x.dtype == "float32" else keras.layers.Activation("linear", dtype="float32", name="to_float32")(x)


def _head(feature_shape, num_classes: int, dropout: float, conv: bool, precision: str = "float32", name: str = "head"):
    from tfaudio.quiet import keras

    from tfaudio.training.layers import SigmoidPair

    inputs = keras.Input(feature_shape, name="features")
    x = inputs
    if conv:  # the small CNN: four conv blocks on the native spectrogram
        with keras_policy(precision):
            for filters in (16, 32, 64, 128):
                x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
                # momentum 0.9: small datasets give few steps, and 0.99 leaves the moving
                # statistics far from the data for the first epochs (validation then lags far behind).
                x = keras.layers.BatchNormalization(momentum=0.9)(x)
                x = keras.layers.ReLU()(x)
                x = keras.layers.MaxPooling2D(2, padding="same")(x)
            x = keras.layers.GlobalAveragePooling2D()(x)
        x = _float32(x)
    x = keras.layers.Dropout(dropout)(x)
    if num_classes == 2:
        x = SigmoidPair(name="probabilities")(keras.layers.Dense(1, activation="sigmoid", name="logit")(x))
    else:
        x = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, x, name=name)


def _spec_augment(config: TrainConfig):
    if "specaugment" not in config.augment.kinds:
        return None
    from tfaudio.training.layers import SpecAugment

    a = config.augment
    return SpecAugment(a.freq_masks, a.freq_mask_bins, a.time_masks, a.time_mask_fraction, seed=config.seed, name="spec_augment")


def _log_mel_front(config: TrainConfig, waveform):
    """waveform KerasTensor -> standardized (and in training, masked) log-mel [batch, frames, bins]."""
    from tfaudio.frontend.layers import LogMel
    from tfaudio.training.layers import PerExampleStandardize

    x = LogMel(config.frontend_config.mel_params(), name="log_mel")(waveform)
    x = PerExampleStandardize(name="standardize")(x)
    augment = _spec_augment(config)
    return augment(x) if augment is not None else x


def build(config: TrainConfig, num_classes: int, num_samples: int, weights_path: str | None) -> ModelParts:
    """The classifier for `config.backbone`, pretrained weights loaded from `weights_path`
    (None: random weights, for tests and timing).

    Input: waveform float32 [batch, num_samples] at 16 kHz; output float32 [batch, num_classes].
    """
    from tfaudio.quiet import keras

    waveform = keras.Input((num_samples,), name="waveform")
    if config.backbone == "mobilenet_v2":
        from tfaudio.training.layers import SpectrogramImage

        check_input_size(config, num_samples)
        spectrogram = _log_mel_front(config, waveform)
        image = SpectrogramImage(MOBILENET_SIZE if config.resize else None, name="spectrogram_image")(spectrogram)
        try:
            with keras_policy(config.precision):
                base = keras.applications.MobileNetV2(
                    input_shape=tuple(image.shape[1:]), include_top=False, weights=weights_path, pooling="avg"
                )
        except (ValueError, OSError) as err:
            raise TrainingError(f"{weights_path}: cannot load MobileNetV2 ImageNet weights from it ({err})") from None
        base.trainable = False
        # training=False for good: batch norm keeps ImageNet's statistics in both phases.
        features = _float32(base(image, training=False))
        frozen = keras.Model(waveform, features, name="frozen")

        def unfreeze(k: int) -> list[str]:
            if not 0 <= k <= MOBILENET_STAGES:
                raise TrainingError(f"mobilenet_v2 has {MOBILENET_STAGES} blocks; unfreeze_last must be 0..{MOBILENET_STAGES}")
            base.trainable = True  # so the per-layer flags below decide
            unfrozen = []
            for layer in base.layers:
                stage = mobilenet_stage(layer.name)
                wanted = stage is not None and stage >= MOBILENET_STAGES - k
                layer.trainable = wanted and not isinstance(layer, keras.layers.BatchNormalization)
                if layer.trainable and layer.weights:
                    unfrozen.append(layer.name)
            return unfrozen

        head = _head((features.shape[-1],), num_classes, config.dropout, conv=False)
        max_unfreeze = MOBILENET_STAGES
    elif config.backbone == "yamnet":
        from tfaudio.assets import WeightsError
        from tfaudio.models.yamnet import model as yamnet
        from tfaudio.training.layers import YamnetPooled

        with keras_policy(config.precision):  # the patch network only: YamnetPooled (front end) stays float32
            network = yamnet.build_network()
        if weights_path is not None:  # None: random weights (tests, timing)
            try:
                yamnet.load_weights(network, weights_path)
            except WeightsError as err:
                raise TrainingError(str(err)) from None
        network.trainable = False
        features = YamnetPooled(network, spec_augment=_spec_augment(config), name="yamnet")(waveform)
        frozen = keras.Model(waveform, features, name="frozen")

        def unfreeze(k: int) -> list[str]:
            if not 0 <= k <= yamnet.NUM_BLOCKS:
                raise TrainingError(f"yamnet has {yamnet.NUM_BLOCKS} blocks; unfreeze_last must be 0..{yamnet.NUM_BLOCKS}")
            yamnet.set_trainable(network, k, classifier=False, batchnorm=False)
            return [layer.name for layer in network.layers if layer.trainable and layer.weights]

        head = _head((features.shape[-1],), num_classes, config.dropout, conv=False)
        max_unfreeze = yamnet.NUM_BLOCKS
    else:  # small_cnn
        spectrogram = _log_mel_front(config, waveform)
        image = keras.layers.Reshape((*spectrogram.shape[1:], 1), name="channel")(spectrogram)
        frozen = keras.Model(waveform, image, name="frozen")
        head = _head(tuple(image.shape[1:]), num_classes, config.dropout, conv=True, precision=config.precision)

        def unfreeze(k: int) -> list[str]:
            return []  # nothing pretrained: the whole CNN is in the head and always trains

        max_unfreeze = 0
    classifier = keras.Model(waveform, head(frozen(waveform)), name=f"{config.backbone}_classifier")
    return ModelParts(frozen, head, classifier, unfreeze, max_unfreeze)


def at_precision(classifier, config: TrainConfig, num_classes: int, num_samples: int, precision: str):
    """`classifier` (from build(config, ...)) computing at `precision`: itself when it does,
    else the same network built at `precision` with `classifier`'s weights copied in. Variables
    are float32 at either precision, so the copy is exact; only the computation changes."""
    if precision == config.precision:
        return classifier
    twin = build(dataclasses.replace(config, precision=precision), num_classes, num_samples, None).classifier
    twin.set_weights(classifier.get_weights())
    return twin
