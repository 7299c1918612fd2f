"""Keras layers between the front end and a backbone: standardization, SpecAugment, the
spectrogram-as-image adapter for ImageNet networks, YAMNet pooled over its patches, and the
two-class sigmoid head output."""

from __future__ import annotations


from tfaudio.quiet import keras, tf  # TensorFlow imported without its start-up noise
from tfaudio.models.yamnet import model as yamnet_module
from tfaudio.models.yamnet.config import YamnetParams


@keras.saving.register_keras_serializable(package="tfaudio")
class PerExampleStandardize(keras.layers.Layer):
    """float32 [batch, frames, bins] -> same, each example scaled to zero mean, unit variance.

    Per example rather than with dataset statistics, so a quiet recording and a loud one of the
    same sound look alike and the exported model needs no stored statistics.
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="tfaudio")
class SpecAugment(keras.layers.Layer):
    """float32 [batch, frames, bins] -> same; in training, random frequency bands and time
    spans of each example are set to that example's mean (Park et al. 2019, without warping).
    Identity at inference.

    freq_masks masks of 0..freq_mask_bins bins; time_masks masks of 0..time_mask_fraction of
    the frames. Seeded through a Keras SeedGenerator, so a seeded run repeats its masks.
    """

    def __init__(self, freq_masks=2, freq_mask_bins=8, time_masks=2, time_mask_fraction=0.1, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.freq_masks, self.freq_mask_bins = freq_masks, freq_mask_bins
        self.time_masks, self.time_mask_fraction = time_masks, time_mask_fraction
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _masks(self, batch, size, count, max_width):
        """bool [batch, size]: union of `count` random spans of 0..max_width positions."""
        positions = tf.range(size)[tf.newaxis, :]
        masked = tf.zeros([batch, size], tf.bool)
        for _ in range(count):
            width = tf.cast(keras.random.uniform([batch, 1], 0, 1, seed=self.seed_generator) * tf.cast(max_width + 1, tf.float32), tf.int32)
            start = tf.cast(
                keras.random.uniform([batch, 1], 0, 1, seed=self.seed_generator) * tf.cast(tf.maximum(size - width, 1), tf.float32),
                tf.int32,
            )
            masked = masked | ((positions >= start) & (positions < start + width))
        return masked

    def call(self, x, training=None):
        if not training:
            return x
        shape = tf.shape(x)
        batch, frames, bins = shape[0], shape[1], shape[2]
        max_time = tf.cast(tf.cast(frames, tf.float32) * self.time_mask_fraction, tf.int32)
        freq = self._masks(batch, bins, self.freq_masks, self.freq_mask_bins)[:, tf.newaxis, :]
        time = self._masks(batch, frames, self.time_masks, max_time)[:, :, tf.newaxis]
        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        return tf.where(freq | time, mean, x)

    def get_config(self):
        return {
            **super().get_config(),
            "freq_masks": self.freq_masks,
            "freq_mask_bins": self.freq_mask_bins,
            "time_masks": self.time_masks,
            "time_mask_fraction": self.time_mask_fraction,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="tfaudio")
class SpectrogramImage(keras.layers.Layer):
    """float32 [batch, frames, bins] -> float32 [batch, height, width, 3]: frequency upwards
    as rows, time as columns, the one channel repeated three times for an RGB network.

    size: (height, width) to resize to bilinearly, or None for the native (bins, frames).
    """

    def __init__(self, size=None, **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size) if size is not None else None

    def call(self, x):
        image = tf.reverse(tf.transpose(x, [0, 2, 1]), axis=[1])[..., tf.newaxis]  # high frequencies on top
        if self.size is not None:
            image = tf.image.resize(image, self.size, method="bilinear")
        return tf.tile(image, [1, 1, 1, 3])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class YamnetPooled(keras.layers.Layer):
    """float32 [batch, samples] at 16 kHz -> float32 [batch, 1024]: YAMNet's patch embeddings
    averaged over the clip's patches.

    The front end and padding are YAMNet's own (tfaudio.models.yamnet), so the released weights
    see what they were trained on; `network` is the Keras patch network, whose blocks
    fine-tuning unfreezes. It always runs in inference mode: its batch norm keeps the
    pretrained statistics. spec_augment, when given, masks the log-mel before patching. The
    layer itself is float32 (the log-mel, and the mean over patches); `network` may compute in
    bfloat16 (built under `tfaudio.runtime.keras_policy`).
    """

    def __init__(self, network: keras.Model, params: YamnetParams = YamnetParams(), spec_augment=None, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.params = params
        self.spec_augment = spec_augment

    def call(self, waveform, training=None):
        params = self.params
        batch, samples = tf.shape(waveform)[0], tf.shape(waveform)[1]
        lengths = tf.fill([batch], samples)
        log_mel = yamnet_module.log_mel_spectrogram(yamnet_module.pad_waveforms(waveform, lengths, params), params)
        if self.spec_augment is not None:
            log_mel = self.spec_augment(log_mel, training=training)
        patches = yamnet_module.log_mel_patches(log_mel, params)  # [batch, patches, 96, 64]
        flat = tf.reshape(patches, [-1, params.patch_frames, params.patch_bands])
        _, embeddings = self.network(flat, training=False)  # bfloat16 when the network was built under mixed precision
        embeddings = tf.reshape(tf.cast(embeddings, tf.float32), [batch, -1, yamnet_module.EMBEDDING_SIZE])
        return tf.reduce_mean(embeddings, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], yamnet_module.EMBEDDING_SIZE)


@keras.saving.register_keras_serializable(package="tfaudio")
class SigmoidPair(keras.layers.Layer):
    """float32 [batch, 1] sigmoid output p -> float32 [batch, 2] = [1 - p, p], so a two-class
    sigmoid head gives the same [batch, classes] probabilities as a softmax head (and its
    categorical cross-entropy is the binary cross-entropy of p)."""

    def call(self, p):
        return tf.concat([1.0 - p, p], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2)
