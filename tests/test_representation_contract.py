"""The Representation contract, checked on every registry entry the same way.

Each entry is built through `registry.get` from weights the tests make (random or trained here
in a few seconds), never downloaded: a YAMNet h5 in Google's layout, a VGGish TF1 checkpoint
with the official variable names, tiny Wav2Vec2 models saved with save_pretrained (group norm
for `wav2vec2`, layer norm with attention masks for `hf:`), a tiny TF-Hub SavedModel and a tiny
autoencoder trained on the synthetic clips; and `ripple`, a model that exists only in this file
and registers itself in one line, which shows that a new model needs no change anywhere else.
The contract:

* batch invariance: a clip's frames are the same alone and padded in a batch beside a longer
  clip, whatever the padding holds (zeros where a backend documents zero-padded input only),
  to 1e-4 (relative to the values' scale above 10);
* masks: valid frames first, padding frames False, at least one frame for a clip of 3 ms;
* pooling: `embed` gives `pooled_dim(p)` columns for every pooling in POOLING, and is the
  pooling of `frames`;
* identity: equal for the same weights and settings, JSON-ready, the same before and after a
  lazy representation loads its network, and different once the weights change in place;
* bad input: wrong rank, lengths of the wrong size or out of range -> ValueError naming it;
* windows: a long clip embedded by the pipeline in the windows of the declared
  `window_geometry` (with the clip state where it declares one) gives the whole clip's frames,
  and the geometry is known before a lazy representation builds its network; a representation
  without one is never cut.

Backend-specific behaviour (parity with reference implementations, windows, weight loading)
stays in the per-backend test files.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_WAV2VEC2, random_checkpoint, randomize, write_legacy_h5, write_v1_checkpoint

from tfaudio.data.windows import WindowGeometry, iter_clip_windows
from tfaudio.models import registry
from tfaudio.models.base import POOLING, FrameEmbeddings, LazyRepresentation, Representation, check_batch, pool
from tfaudio.models.card import ModelCard, ModelEntry, no_weights
from tfaudio.models.vggish.model import CHECKPOINT_VARIABLES

SR = 16000
#: Registry names that take a location after the prefix rather than naming one model.
PREFIXES = ("hub:", "hf:", "autoencoder:")
#: Clip lengths in samples: a long sweep, a short one, and 3 ms (less than any model's window).
LENGTHS = (35_200, 4_800, 48)


def sweep(samples: int, seed: int) -> np.ndarray:
    """A chirp with a rising envelope and a DC offset: every frame of it differs, so frames
    mixed up or shifted would show."""
    t = np.arange(samples) / SR
    seconds = max(samples / SR, 1e-3)
    low, high = 200.0 + 150.0 * seed, 6000.0 - 300.0 * seed
    phase = 2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds))
    noise = np.random.default_rng(seed).normal(0.0, 0.01, samples)
    return (0.05 + np.linspace(0.1, 0.6, samples) * np.sin(phase) + noise).astype(np.float32)


def padded_batch(junk: bool) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(float32 [3, 35200], int32 [3], the clips): past each length, loud noise that `lengths`
    must make irrelevant (junk=True), or zeros."""
    clips = [sweep(n, seed) for seed, n in enumerate(LENGTHS)]
    lengths = np.array(LENGTHS, np.int32)
    batch = np.random.default_rng(7).normal(0.0, 0.5, (len(clips), max(LENGTHS))).astype(np.float32)
    if not junk:
        batch[:] = 0.0
    for row, clip in zip(batch, clips):
        row[: len(clip)] = clip
    return batch, lengths, clips


# ------------------------------------------------------------------ a model defined only here


class Ripple(Representation):
    """A new model, as a user would add one: frame t is the mean, RMS and largest magnitude of
    samples [160 t, 160 t + 480), each divided by the largest magnitude in the whole clip. That
    divisor is a clip state: a window of a long clip must be given it (`clip_state`) to give
    the whole clip's frames, as the hand-crafted baseline needs its loudest frame."""

    name = "ripple"
    sample_rate = SR
    frame_hop_seconds = 160 / SR
    dim = 3
    window_geometry = dataclasses.replace(WindowGeometry.patches(160, 480), clip_state=True)

    def frames(self, waveforms, lengths) -> FrameEmbeddings:
        return self.window_frames(waveforms, lengths, [None] * len(np.asarray(waveforms)))

    def window_frames(self, waveforms, lengths, states) -> FrameEmbeddings:
        waveforms, lengths = check_batch(waveforms, lengths)
        waveforms = np.where(np.arange(waveforms.shape[1]) < lengths[:, None], waveforms, 0.0)  # padding is not audio
        own = np.abs(waveforms).max(axis=1, initial=0.0)
        divisor = np.array([o if s is None else s for o, s in zip(own, states)], np.float64)
        count = max(1, 1 + (waveforms.shape[1] - 480) // 160)
        index = np.arange(count)[:, None] * 160 + np.arange(480)[None, :]
        blocks = np.pad(waveforms, [(0, 0), (0, max(0, index.max() + 1 - waveforms.shape[1]))])[:, index]
        values = np.stack([blocks.mean(-1), np.sqrt((blocks**2).mean(-1)), np.abs(blocks).max(-1)], axis=-1)
        values = values / np.maximum(divisor, 1e-9)[:, None, None]
        valid = np.where(lengths > 0, np.maximum(1, 1 + (lengths - 480) // 160), 0)
        return FrameEmbeddings(values.astype(np.float32), np.arange(count)[None, :] < valid[:, None])

    def clip_state(self, windows) -> float:
        return max(float(np.abs(samples).max(initial=0.0)) for _, samples in iter_clip_windows(windows))

    def identity(self) -> dict:
        return {"model": self.name, "version": 1}


RIPPLE = ModelEntry(
    ModelCard("ripple", 3, SR, "none (computed)", "test-only: block statistics over the clip's peak", "nothing",
              0.03, 0.01, "hand-crafted"),
    no_weights("ripple"),
    lambda source: Ripple(),
)


@pytest.fixture(scope="module", autouse=True)
def ripple_registered():
    registry.register(RIPPLE)  # all a new model needs besides its own code
    yield
    registry.unregister(RIPPLE.name)


# ---------------------------------------------------------------------------- test-built weights


class FrameStats(tf.Module):
    """A tiny hub model, one waveform [samples] -> [frames, 8]: per 20 ms frame (the last one
    zero-padded, so a clip of a few samples has a frame), mean and RMS through a seeded matrix."""

    def __init__(self, seed: int):
        super().__init__()
        self.projection = tf.Variable(np.random.default_rng(seed).normal(0, 1, (2, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, waveform):
        frames = tf.signal.frame(waveform, 320, 320, pad_end=True)
        stats = tf.stack([tf.reduce_mean(frames, -1), tf.sqrt(tf.reduce_mean(frames**2, -1))], -1)
        return tf.tanh(stats @ self.projection)


def save_tiny_wav2vec2(folder: Path, seed: int, norm: str) -> None:
    """A 2-layer, 32-wide Wav2Vec2 with random weights, as save_pretrained writes it; "layer"
    norm models take attention masks (batched across lengths), "group" ones run unpadded."""
    from tfaudio.models.wav2vec2.model import keep_keras_3

    with keep_keras_3():
        import transformers
    tf.random.set_seed(seed)
    layer_norm = norm == "layer"
    config = transformers.Wav2Vec2Config(**TINY_WAV2VEC2, feat_extract_norm=norm, do_stable_layer_norm=layer_norm)
    model = transformers.TFWav2Vec2Model(config)
    model.build_in_name_scope()
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=layer_norm).save_pretrained(folder)


@dataclass(frozen=True)
class Entry:
    """How to make one registry entry's weights: write(folder, seed) puts test-built weights for
    `seed` in `folder` (the same files for the same seed) and returns the `registry.get`
    arguments (name, weights_path) that load them."""

    write: Callable[[Path, int], tuple[str, str | None]]
    #: The backend documents zero-padded batches only (hand-crafted frames near a clip's end
    #: read the samples past it, which `iter_batches` always zeroes).
    zero_padded_only: bool = False


def made_once(write, origins: Callable[[int], Path]):
    """`write`, run once per seed into its own folder (`origins(seed)`) and copied from there
    after: weights are slow to make, files quick to copy."""
    written: dict[int, tuple[Path, tuple[str, str | None]]] = {}

    def write_or_copy(folder: Path, seed: int) -> tuple[str, str | None]:
        if seed not in written:
            origin = origins(seed)
            written[seed] = origin, write(origin, seed)
        origin, arguments = written[seed]
        if origin == folder:
            return arguments
        shutil.copytree(origin, folder, dirs_exist_ok=True)
        return tuple(None if value is None else value.replace(str(origin), str(folder)) for value in arguments)

    return write_or_copy


@pytest.fixture(scope="module")
def entries(tmp_path_factory, synth_data) -> dict[str, Entry]:
    # test_vggish.py and test_hub.py use the same random checkpoint (290 MB), written once.
    shared_vggish = tmp_path_factory.getbasetemp() / "vggish-random"

    def yamnet(folder, seed):
        from tfaudio.models.yamnet.model import build_network

        keras.utils.set_random_seed(seed)
        network = build_network()
        randomize(network, seed)
        write_legacy_h5(network, folder / "yamnet.h5")
        return "yamnet", str(folder / "yamnet.h5")

    def vggish(folder, seed):
        if seed == 0:
            random_checkpoint(folder)
        else:  # other values, made fast: 72 M random numbers take seconds
            other = {name: np.full(shape, 0.01 * seed, np.float32) for name, shape in CHECKPOINT_VARIABLES.items()}
            write_v1_checkpoint(folder / "vggish_model.ckpt", other)
        return "vggish", str(folder / "vggish_model.ckpt")

    def wav2vec2(folder, seed):
        save_tiny_wav2vec2(folder, seed, "group")
        return "wav2vec2", str(folder)

    def hugging_face(folder, seed):
        save_tiny_wav2vec2(folder, seed, "layer")
        return f"hf:{folder}", None

    def hub(folder, seed):
        tf.saved_model.save(FrameStats(seed), str(folder))
        return f"hub:{folder}", None

    def autoencoder(folder, seed):
        from tfaudio.data.dataset import load_dataset
        from tfaudio.models.autoencoder.config import AutoencoderConfig
        from tfaudio.models.autoencoder.train import save, train

        config = AutoencoderConfig(
            patch_frames=32, num_mel_bins=32, filters=(8, 16), latent=16, epochs=1, batch_size=16, seed=seed
        )
        save(train(load_dataset(synth_data), np.arange(16), config), folder)
        return f"autoencoder:{folder}", None

    def origins(name):
        def origin(seed):
            if name == "vggish" and seed == 0:
                shared_vggish.mkdir(exist_ok=True)
                return shared_vggish
            return tmp_path_factory.mktemp(f"{name.rstrip(':')}-seed{seed}")

        return origin

    writers = {
        "handcrafted": lambda folder, seed: ("handcrafted", None),
        "ripple": lambda folder, seed: ("ripple", None),
        "yamnet": yamnet,
        "vggish": vggish,
        "wav2vec2": wav2vec2,
        "hf:": hugging_face,
        "hub:": hub,
        "autoencoder:": autoencoder,
    }
    return {
        name: Entry(made_once(write, origins(name)), zero_padded_only=name == "handcrafted")
        for name, write in writers.items()
    }


NAMES = ("handcrafted", "yamnet", "vggish", "wav2vec2", "hf:", "hub:", "autoencoder:", "ripple")
#: Entries computed from formulas: no weights to change.
WITHOUT_WEIGHTS = ("handcrafted", "ripple")


@dataclass(frozen=True)
class Built:
    entry: Entry
    name: str
    weights_path: str | None
    representation: Representation

    def again(self) -> Representation:
        return registry.get(self.name, weights_path=self.weights_path)


@pytest.fixture(scope="module", params=NAMES, ids=lambda name: name.rstrip(":"))
def built(request, entries, tmp_path_factory) -> Built:
    entry = entries[request.param]
    name, weights_path = entry.write(tmp_path_factory.mktemp(request.param.rstrip(":")), 0)
    return Built(entry, name, weights_path, registry.get(name, weights_path=weights_path))


@pytest.fixture(scope="module")
def batch(built):
    return padded_batch(junk=not built.entry.zero_padded_only)


@pytest.fixture(scope="module")
def together(built, batch) -> FrameEmbeddings:
    """The entry's frames of the padded batch (computed once per entry)."""
    waveforms, lengths, _ = batch
    return built.representation.frames(waveforms, lengths)


# ---------------------------------------------------------------------------------------- tests


def test_every_registry_entry_is_covered():
    missing = sorted(set(registry.names()) - set(NAMES))
    assert not missing, f"registry entries {missing} have no test-built weights here: add them to `entries`"
    assert set(NAMES) - set(registry.names()) == set(PREFIXES)


def test_describes_itself(built):
    rep = built.representation
    assert isinstance(rep, Representation)
    assert isinstance(rep.name, str) and rep.name
    assert rep.sample_rate == SR
    assert isinstance(rep.dim, int) and rep.dim > 0
    assert rep.frame_hop_seconds > 0
    assert rep.default_pooling in POOLING


def test_a_clip_is_the_same_alone_and_padded_in_a_batch(built, batch, together):
    rep = built.representation
    _, _, clips = batch
    assert together.embeddings.dtype == np.float32 and together.mask.dtype == bool
    assert together.embeddings.ndim == 3 and together.embeddings.shape[0] == len(clips)
    assert together.embeddings.shape[2] == rep.dim
    assert together.mask.shape == together.embeddings.shape[:2]
    for row, clip in enumerate(clips):
        alone = rep.frames(clip[np.newaxis], np.array([len(clip)], np.int32))
        count = int(alone.mask[0].sum())
        assert count >= 1, f"a clip of {len(clip)} samples has no frame"
        assert alone.mask.all(), "a batch of one clip has padding frames"
        expected = np.zeros(together.mask.shape[1], bool)
        expected[:count] = True
        assert together.mask[row].tolist() == expected.tolist(), (
            f"clip {row} ({len(clip)} samples): mask {together.mask[row].astype(int).tolist()}, "
            f"but alone it has {count} frames (valid frames first, padding frames False)"
        )
        scale = float(np.abs(alone.embeddings).max())
        np.testing.assert_allclose(
            together.embeddings[row, :count], alone.embeddings[0, :count], rtol=0, atol=max(1e-4, 1e-5 * scale),
            err_msg=f"clip {row} ({len(clip)} samples) alone vs. in the batch",
        )
    # Guards the comparison: the long sweep's first and last frames differ, so a shift shows.
    first, last = together.embeddings[0, 0], together.embeddings[0, together.mask[0].sum() - 1]
    assert np.abs(first - last).max() > 1e-4 * max(1.0, float(np.abs(first).max()))


@pytest.mark.parametrize("pooling", POOLING)
def test_pooling_gives_pooled_dim_columns(built, batch, together, pooling):
    rep = built.representation
    waveforms, lengths, _ = batch
    vectors = rep.embed(waveforms, lengths, pooling)
    assert vectors.shape == (len(lengths), rep.pooled_dim(pooling)) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert rep.pooled_dim(pooling) == (2 if pooling == "mean+std" else 1) * rep.dim
    # `embed` is the pooling of `frames` over the valid frames.
    np.testing.assert_allclose(vectors, pool(together.embeddings, together.mask, pooling), rtol=1e-5, atol=1e-6)


def test_default_pooling(built, batch):
    rep = built.representation
    waveforms, lengths, _ = batch
    assert rep.embed(waveforms, lengths).shape == (len(lengths), rep.pooled_dim(rep.default_pooling))


def test_identity_is_stable_and_json_ready(built):
    rep = built.representation
    identity = rep.identity()
    assert isinstance(identity, dict) and identity
    assert json.loads(json.dumps(identity)) == identity, "identity() must survive a JSON round trip unchanged"
    assert built.again().identity() == identity, "the same weights and settings gave another identity"
    if isinstance(rep, LazyRepresentation):
        # The store keys on the identity before any network is built: it must be the network's.
        assert rep.loaded().identity() == identity


@pytest.mark.parametrize("name", [name for name in NAMES if name not in WITHOUT_WEIGHTS],
                         ids=lambda name: name.rstrip(":"))
def test_changed_weights_change_the_identity(entries, name, tmp_path):
    """Weights rewritten in the same place (a refilled cache, a retrained model folder) must
    never be taken for the old ones: the identity follows the content, not the path."""
    write = entries[name].write
    registry_name, weights_path = write(tmp_path, 0)
    first = registry.get(registry_name, weights_path=weights_path).identity()
    assert write(tmp_path, 1) == (registry_name, weights_path)  # the same files, other contents
    assert registry.get(registry_name, weights_path=weights_path).identity() != first


def test_handcrafted_identity_follows_its_parameters():
    """The entry without weights: its parameters are what determine its vectors."""
    from tfaudio.models.handcrafted.config import HandcraftedParams
    from tfaudio.models.handcrafted.model import HandcraftedRepresentation

    default = registry.get("handcrafted").identity()
    assert HandcraftedRepresentation(HandcraftedParams()).identity() == default
    assert HandcraftedRepresentation(HandcraftedParams(num_mfcc=20)).identity() != default


def test_bad_input_is_a_value_error_naming_the_problem(built):
    rep = built.representation
    with pytest.raises(ValueError, match=r"batch, samples"):
        rep.frames(np.zeros(1600, np.float32), np.array([1600], np.int32))
    with pytest.raises(ValueError, match=r"lengths must be int \[batch=2\]"):
        rep.frames(np.zeros((2, 1600), np.float32), np.array([1600], np.int32))
    with pytest.raises(ValueError, match=r"lengths must be in 0\.\.1600"):
        rep.frames(np.zeros((1, 1600), np.float32), np.array([1601], np.int32))
    with pytest.raises(ValueError, match=r"lengths must be in 0\.\.1600"):
        rep.frames(np.zeros((1, 1600), np.float32), np.array([-1], np.int32))
    with pytest.raises(ValueError, match=r"batch, samples"):
        rep.embed(np.zeros((1, 2, 1600), np.float32), np.array([1600], np.int32))


# ------------------------------------------------------------------------------------- windows


def long_clip(path: Path) -> Path:
    """25 s at 16 kHz: a quiet sweep, a loud burst in its second second and one second of digital
    silence at 13 s, so a window's own loudness is not the clip's (a clip state must matter)."""
    import soundfile as sf

    wave = 0.1 * sweep(25 * SR, 3)
    wave[SR : 2 * SR] *= 8.0
    wave[13 * SR : 14 * SR] = 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, SR, subtype="FLOAT")
    return path


def test_window_geometry_is_known_before_the_network_is_built(built):
    fresh = built.again()
    geometry = fresh.window_geometry
    assert geometry is None or isinstance(geometry, WindowGeometry)
    if isinstance(fresh, LazyRepresentation):
        assert fresh._model is None, "reading the window geometry built the network"
        assert fresh.loaded().window_geometry == geometry


def test_a_long_clip_in_windows_gives_the_whole_clips_frames(built, tmp_path):
    """What a representation declares is what the pipeline does with it: no model is named there."""
    from tfaudio.data.dataset import load_dataset
    from tfaudio.data.windows import read_window
    from tfaudio.pipeline.local import EmbedConfig, embed_dataset
    from tfaudio.pipeline.units import plan_clip, prepare_windows
    from tfaudio.store import FRAMES, EmbeddingStore

    rep = built.representation
    path = long_clip(tmp_path / "data" / "a" / "long.wav")
    windows = prepare_windows(rep, plan_clip(str(path), rep, window_seconds=4.0))
    if rep.window_geometry is None:  # it cannot be cut exactly: never cut
        assert len(windows) == 1 and windows[0].whole and windows[0].clip_state is None
        return
    assert len(windows) >= 3 and all(w.start % rep.window_geometry.step == 0 for w in windows)
    if rep.window_geometry.clip_state:
        assert len({w.clip_state for w in windows}) == 1 and windows[0].clip_state is not None
        quiet = next(w for w in windows if w.start <= 13.5 * SR < w.start + w.length)  # no burst, some silence
        samples = read_window(quiet)[np.newaxis]
        length = np.array([samples.shape[1]], np.int32)
        own, given = (rep.window_frames(samples, length, [state]) for state in (None, quiet.clip_state))
        assert not np.allclose(own.embeddings, given.embeddings), "the clip state changes nothing: a vacuous test"
    data = load_dataset(tmp_path / "data")
    frames = {
        seconds: embed_dataset(data, rep, EmbeddingStore(tmp_path / f"store-{seconds}"),
                               EmbedConfig(pooling=FRAMES, window_seconds=seconds)).vectors[0]
        for seconds in (4.0, 1000.0)
    }
    windowed, whole = frames[4.0], frames[1000.0]
    assert windowed.shape == whole.shape
    scale = np.maximum(np.abs(whole).max(axis=0, keepdims=True), 1e-30)  # each column's own magnitude
    np.testing.assert_array_less(np.abs(windowed - whole) / scale, 1e-5)
