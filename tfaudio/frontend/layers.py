"""The front end as Keras 3 layers: each takes ``waveform: float32 [batch, samples]`` and is
configured by a frozen dataclass from `tfaudio.frontend.params`, passed explicitly.
"""

from __future__ import annotations


from tfaudio.quiet import keras, tf  # TensorFlow imported without its start-up noise
from tfaudio.frontend.ops import (
    frame,
    frame_mask,
    magnitude,
    mel_from_spectrogram,
    mfcc_from_log_mel,
    num_frames,
    spectral_descriptors,
    stft,
)
from tfaudio.frontend.params import (
    DescriptorParams,
    MelParams,
    MFCCParams,
    STFTParams,
    params_from_dict,
    params_to_dict,
)


class ParamsLayer(keras.layers.Layer):
    """A layer configured by one params dataclass; subclasses set ``params_class``."""

    params_class: type

    def __init__(self, params=None, **kwargs):
        super().__init__(**kwargs)
        self.params = self.params_class() if params is None else params

    def get_config(self):
        return {**super().get_config(), "params": params_to_dict(self.params)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        params = params_from_dict(cls.params_class, config.pop("params"))
        return cls(params, **config)


@keras.saving.register_keras_serializable(package="tfaudio")
class STFT(ParamsLayer):
    """``waveform: float32 [batch, samples] -> float32 [batch, frames, num_bins]``: |STFT|^power."""

    params_class = STFTParams

    def call(self, waveform):
        return stft(waveform, self.params)


@keras.saving.register_keras_serializable(package="tfaudio")
class LogMel(ParamsLayer):
    """``waveform: float32 [batch, samples] -> float32 [batch, frames, num_mel_bins]``.

    ``lengths``: optional int32 [batch] valid samples per clip; only matters for ``top_db``.
    """

    params_class = MelParams

    def call(self, waveform, lengths=None):
        spectrogram = stft(waveform, self.params.stft)
        mask = (
            None
            if lengths is None
            else frame_mask(lengths, tf.shape(spectrogram)[1], self.params.stft)
        )
        return mel_from_spectrogram(spectrogram, self.params, mask)


@keras.saving.register_keras_serializable(package="tfaudio")
class MFCC(ParamsLayer):
    """``waveform: float32 [batch, samples] -> float32 [batch, frames, num_features]``.

    Columns are the MFCCs, then deltas and second deltas if ``params.deltas`` asks.
    ``lengths``: optional int32 [batch] valid samples per clip, so ``top_db`` and the delta edges
    of a zero-padded clip match the clip alone.
    """

    params_class = MFCCParams

    def call(self, waveform, lengths=None):
        stft_params = self.params.mel.stft
        spectrogram = stft(waveform, stft_params)
        mask = valid = None
        if lengths is not None:
            mask = frame_mask(lengths, tf.shape(spectrogram)[1], stft_params)
            valid = num_frames(tf.cast(lengths, tf.int32), stft_params)
        log_mel = mel_from_spectrogram(spectrogram, self.params.mel, mask)
        return mfcc_from_log_mel(log_mel, self.params, valid)


@keras.saving.register_keras_serializable(package="tfaudio")
class SpectralDescriptors(ParamsLayer):
    """``waveform: float32 [batch, samples] -> float32 [batch, frames, len(params.names)]``.

    Columns, in order: centroid, bandwidth, rolloff, flatness, contrast_0..contrast_N, zcr, rms
    (see :func:`spectral_descriptors` for units).
    """

    params_class = DescriptorParams

    def call(self, waveform):
        frames = frame(waveform, self.params.stft)
        return spectral_descriptors(frames, magnitude(frames, self.params.stft), self.params)
