"""Archive-scale extraction: long clips in windows that give the whole clip's frames, batches
bucketed by length and bounded by audio, decoding ahead of the model, flat memory, sharded
outputs, and nothing lost to a crash (kill -9, SIGTERM) or cached when it is not finite."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tfaudio.data.audio import load
from tfaudio.data.batches import bucket_width, group_windows, iter_window_batches
from tfaudio.data.dataset import load_dataset
from tfaudio.data.windows import WindowGeometry, plan_windows
from tfaudio.frontend.pooling import pool
from tfaudio.frontend.window_pooling import FramePool
from tfaudio.models.base import FrameEmbeddings, Representation
from tfaudio.pipeline.local import EmbedConfig, NonFiniteVectors, current_output, embed_dataset, embed_to_folder
from tfaudio.store import FRAMES, EmbeddingStore, StoreWarning, read_embeddings

SR = 16000


def tone(seconds: float, rate: int = SR, seed: int = 0, silence: tuple[float, float] | None = None) -> np.ndarray:
    """A gliding, gated tone in light noise; `silence` (seconds) is digital zeros (so top_db matters)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.1 * np.sin(t))) * (np.sin(0.7 * t) > -0.3)
    wave = wave + 0.01 * rng.standard_normal(len(t))
    if silence:
        wave[int(silence[0] * rate) : int(silence[1] * rate)] = 0
    return wave.astype(np.float32)


def write(path: Path, wave: np.ndarray, rate: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype="PCM_16")
    return path


class Blocks(Representation):
    """A transparent, fast representation that knows its window geometry: frame t is (mean, max,
    energy) of samples [160 t, 160 t + 400), frames every 160 samples, so it windows like the
    hand-crafted baseline without TensorFlow. Counts the windows it embeds."""

    name = "blocks"
    sample_rate = SR
    frame_hop_seconds = 160 / SR
    dim = 3
    window_geometry = WindowGeometry.patches(160, 400)

    def __init__(self):
        self.windows = 0
        self.widths: set[int] = set()

    def frames(self, waveforms, lengths):
        self.windows += len(waveforms)
        self.widths.add(waveforms.shape[1])
        count = max(1, 1 + (waveforms.shape[1] - 400) // 160)
        index = np.arange(count)[:, None] * 160 + np.arange(400)[None, :]
        padded = np.pad(waveforms, [(0, 0), (0, max(0, index.max() + 1 - waveforms.shape[1]))])
        blocks = padded[:, index]  # [batch, frames, 400]
        values = np.stack([blocks.mean(-1), blocks.max(-1), (blocks**2).mean(-1)], axis=-1).astype(np.float32)
        valid = np.maximum(1, 1 + (lengths - 400) // 160)
        return FrameEmbeddings(values, np.arange(count)[None, :] < valid[:, None])

    def identity(self):
        return {"model": self.name}


def close(windowed, whole, tolerance=1e-5, scale=None):
    """Equal within `tolerance` of each column's scale (default: its largest magnitude). A float32
    sum's rounding is relative to the magnitudes summed, not to a mean that happens to be near 0."""
    scale = np.abs(whole).max(axis=0, keepdims=True) if scale is None else scale
    np.testing.assert_array_less(np.abs(windowed - whole) / np.maximum(scale, 1e-30), tolerance)


def close_pooled(windowed, whole, tolerance=1e-5):
    """`close` for "mean+std" vectors [clips, 2 * dim]: each statistic's scale is |mean| + std."""
    half = whole.shape[1] // 2
    spread = np.abs(whole[:, :half]) + whole[:, half:]
    close(windowed, whole, tolerance, np.concatenate([spread, spread], axis=1))


# -- windows ---------------------------------------------------------------------------------------


def test_windows_cover_the_clip_on_the_model_grid(tmp_path):
    path = write(tmp_path / "long.wav", tone(23.3))
    geometry = WindowGeometry.patches(7680, 15600)  # YAMNet's
    windows = plan_windows(path, geometry, sample_rate=SR, window_seconds=4.0)
    total = int(23.3 * SR)
    # cores of 8 patches (3.84 s); the last runs to the end, at least half a core long
    assert len(windows) == 6 and [w.index for w in windows] == list(range(6))
    assert all(w.start % 7680 == 0 for w in windows)
    assert [w.start for w in windows[1:]] == [w.stop for w in windows[:-1]]  # cores tile the clip
    assert windows[-1].stop is None and total - windows[-1].start >= geometry.after + geometry.span
    assert all(w.read_stop - w.read_start == w.length == w.stop - w.start + 7920 for w in windows[:-1])
    # the kept patches add up to the whole clip's: 1 + ceil((n - 15600) / 7680)
    kept = sum(w.keep for w in windows[:-1]) + 1 + -(-(total - windows[-1].start - 15600) // 7680)
    assert kept == 1 + -(-(total - 15600) // 7680)
    short = plan_windows(write(tmp_path / "short.wav", tone(5.0)), geometry, sample_rate=SR, window_seconds=4.0)
    assert len(short) == 1 and short[0].whole  # shorter than a window and its tail: one unit


@pytest.mark.parametrize("rate", [SR, 44100])
@pytest.mark.parametrize("model", ["handcrafted", "yamnet"])
def test_a_long_clip_in_windows_gives_the_whole_clips_frames_and_vector(tmp_path, rate, model):
    from tfaudio.models import registry
    from tfaudio.models.yamnet.model import YamnetRepresentation

    rep = registry.get("handcrafted") if model == "handcrafted" else YamnetRepresentation(None)
    write(tmp_path / "data" / "a" / "long.wav", tone(23.3, rate, silence=(3.0, 5.0)), rate)
    write(tmp_path / "data" / "a" / "short.wav", tone(2.0, rate, seed=1), rate)
    data = load_dataset(tmp_path / "data")
    results = {}
    for name, seconds in (("windowed", 4.0), ("whole", 1000.0)):
        for pooling in (FRAMES, rep.default_pooling):
            config = EmbedConfig(pooling=pooling, window_seconds=seconds)
            table = embed_dataset(data, rep, EmbeddingStore(tmp_path / f"s-{name}"), config)
            results[name, pooling] = table.vectors
    long = [c.path.name for c in data.clips].index("long.wav")
    windowed, whole = results["windowed", FRAMES][long], results["whole", FRAMES][long]
    assert windowed.shape == whole.shape
    close(windowed, whole, 1e-6)  # frames: float rounding of batched arithmetic only
    check = close_pooled if rep.default_pooling == "mean+std" else close
    check(results["windowed", rep.default_pooling], results["whole", rep.default_pooling])


def test_features_and_tag_read_long_files_in_windows_with_the_whole_files_numbers(tmp_path):
    from tfaudio.models.handcrafted.extract import ExtractConfig, extract
    from tfaudio.models.yamnet.model import YamnetRepresentation
    from tfaudio.models.yamnet.tagging import score_file

    path = write(tmp_path / "data" / "a" / "long.wav", tone(21.7, 22050, silence=(2.0, 4.5)), 22050)
    data = load_dataset(tmp_path / "data")
    windowed = extract(data, config=ExtractConfig(window_seconds=4.0)).matrix
    close_pooled(windowed, extract(data, config=ExtractConfig(window_seconds=1000.0)).matrix)
    yamnet = YamnetRepresentation(None)
    scores = score_file(path, yamnet, window_seconds=4.0)
    blocks = list(scores.blocks)
    assert len(blocks) > 3 and scores.seconds == pytest.approx(21.7, abs=1e-3)
    whole = yamnet.model.embed(load(path, SR)[None])
    close(np.concatenate(blocks), whole.scores[0][whole.patch_mask[0]], 1e-6)


def test_frame_pool_of_one_window_is_pool_and_of_many_agrees():
    rng = np.random.default_rng(0)
    frames = (rng.standard_normal((5000, 4)) * [1, 100, 1e-3, 500] + [0, -400, 0, 3]).astype(np.float32)
    for method in ("mean", "max", "mean+std"):
        reference = pool(frames[None], np.ones((1, len(frames)), bool), method)[0]
        one = FramePool(method)
        one.add(frames)
        np.testing.assert_array_equal(one.result(), reference)  # bit for bit
        many, other = FramePool(method), FramePool(method)
        for index, part in enumerate(np.array_split(frames, 7)):
            (many if index < 4 else other).add(part)
        many.merge(other.state())
        close(many.result()[None], reference[None], 1e-5)  # pool's own float32 rounding
        wide = frames.astype(np.float64)
        exact = {"mean": wide.mean(0), "max": wide.max(0), "mean+std": np.concatenate([wide.mean(0), wide.std(0)])}
        close(many.result()[None], exact[method][None], 1e-7)  # the running statistics lose nothing
    frames_pool = FramePool(FRAMES)
    parts = np.array_split(frames, 3)
    for index in (2, 0, 1):  # out of order: put back in order
        frames_pool.add(parts[index], index)
    np.testing.assert_array_equal(frames_pool.result(), frames)


# -- batches ---------------------------------------------------------------------------------------


def test_thirty_lengths_make_a_handful_of_widths_and_batches_bounded_by_audio(tmp_path):
    for i in range(30):
        write(tmp_path / "data" / "a" / f"c{i:02d}.wav", tone(0.5 + 0.37 * i, seed=i))
    data = load_dataset(tmp_path / "data")
    model = Blocks()
    config = EmbedConfig(batch_size=8, batch_seconds=20.0)
    table = embed_dataset(data, model, EmbeddingStore(tmp_path / "store"), config)
    assert len(table.clips) == 30 and model.windows == 30
    # lengths over 4.5 octaves make at most two widths per octave, not 30 shapes
    assert len(model.widths) <= 10 and all(bucket_width(w) == w for w in model.widths), model.widths
    batches = list(iter_window_batches(
        data.clips, lambda clip: plan_windows(clip.path, None, sample_rate=SR, window_seconds=60.0),
        max_samples=20 * SR, max_windows=8))
    assert all(len(b.windows) <= 8 and (b.waveforms.size <= 20 * SR or len(b.windows) == 1) for b in batches)
    assert all(b.waveforms.shape[1] == bucket_width(int(b.lengths.max())) for b in batches)
    assert all(b.waveforms.shape[1] <= 1.5 * b.lengths.max() + 1024 for b in batches)  # little padding
    # the Beam runner's grouping forms the same batches from the same windows
    windows = [w for b in batches for w in b.windows]
    ordered = sorted(windows, key=lambda w: w.path)
    planned = [[w.path for w in group] for group in group_windows(ordered, max_samples=20 * SR, max_windows=8)]
    assert planned == [[w.path for w in b.windows] for b in batches]


def test_yamnet_traces_once_over_thirty_lengths(tmp_path):
    from tfaudio.models.yamnet.model import YamnetRepresentation

    for i in range(30):
        write(tmp_path / "data" / "a" / f"c{i:02d}.wav", tone(0.3 + 0.21 * i, seed=i))
    model = YamnetRepresentation(None)
    embed_dataset(load_dataset(tmp_path / "data"), model, EmbeddingStore(tmp_path / "store"), EmbedConfig(batch_size=4))
    assert model.model.embed_graph.experimental_get_tracing_count() == 1


def test_the_next_batch_decodes_while_the_model_works(tmp_path, monkeypatch):
    import tfaudio.data.batches as batches

    for i in range(6):
        write(tmp_path / "data" / "a" / f"c{i}.wav", tone(1.0, seed=i))
    decoding: list[float] = []
    real = batches.read_window
    monkeypatch.setattr(batches, "read_window", lambda w: (decoding.append(time.monotonic()), real(w))[1])

    class Slow(Blocks):
        calls: list[tuple[float, float]] = []

        def frames(self, waveforms, lengths):
            begin = time.monotonic()
            time.sleep(0.3)
            self.calls.append((begin, time.monotonic()))
            return super().frames(waveforms, lengths)

    model = Slow()
    embed_dataset(load_dataset(tmp_path / "data"), model, EmbeddingStore(tmp_path / "s"), EmbedConfig(batch_size=2))
    assert len(model.calls) == 3
    during = [t for t in decoding if any(begin < t < end for begin, end in model.calls)]
    assert during, "no clip was decoded while the model worked on a batch"


# -- memory ------------------------------------------------------------------------------------------

# VmHWM, not ru_maxrss: a child forked from a large pytest process inherits the parent's
# ru_maxrss across exec (the high-water mark lives with the process, not its memory map), so
# it would report the test runner's peak; VmHWM belongs to the new memory map that exec creates.
_MEMORY_RUN = """
import sys, numpy as np, soundfile as sf
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_pipeline import Blocks
from tfaudio.data.dataset import load_dataset
from tfaudio.pipeline.local import EmbedConfig, embed_dataset
from tfaudio.store import EmbeddingStore
def peak_kb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
folder = Path(sys.argv[1])
for i, minutes in enumerate(map(float, sys.argv[2].split(","))):
    with sf.SoundFile(folder / "data" / "a" / f"long{{i}}.wav", "w", 16000, 1, "PCM_16") as out:
        rng = np.random.default_rng(i)
        for _ in range(int(minutes * 6)):  # written 10 s at a time
            out.write((0.1 * rng.standard_normal(160000)).astype(np.float32))
before = peak_kb()
table = embed_dataset(load_dataset(folder / "data"), Blocks(), EmbeddingStore(folder / "store"), EmbedConfig())
assert table.stats.computed == len(table.clips) > 0, table.stats
print(before, peak_kb())
"""


def _peak_rss_mb(tmp_path: Path, minutes: str) -> tuple[float, float]:
    folder = tmp_path / minutes.replace(",", "+")
    (folder / "data" / "a").mkdir(parents=True)
    script = _MEMORY_RUN.format(tests=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", script, str(folder), minutes], capture_output=True, text=True, check=True)
    before, peak = map(int, done.stdout.split()[-2:])
    return before / 1024, peak / 1024  # VmHWM is in kB


@pytest.mark.slow
def test_memory_does_not_grow_with_the_files_length(tmp_path):
    _, peak_15 = _peak_rss_mb(tmp_path, "15")
    _, peak_60 = _peak_rss_mb(tmp_path, "60")
    _, peak_3h = _peak_rss_mb(tmp_path, "60,120")
    assert peak_60 - peak_15 < 150, (peak_15, peak_60)
    assert peak_3h < 2048, peak_3h


# -- outputs -----------------------------------------------------------------------------------------


def test_sharded_output_reads_back_as_the_table_and_knows_when_it_is_current(synth_data, tmp_path):
    data = load_dataset(synth_data)
    model, store = Blocks(), EmbeddingStore(tmp_path / "store")
    config = EmbedConfig(pooling="mean+std")
    table = embed_dataset(data, model, store, config)
    folder, stats = embed_to_folder(data, model, tmp_path / "out", store, config, shard_bytes=512)
    assert folder == tmp_path / "out" / "blocks" and stats.cached == 80
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["model"] == "blocks" and manifest["representation"] == {"model": "blocks"}
    assert len(manifest["shards"]) > 1 and sorted(p.name for p in folder.glob("part-*")) == [
        s["name"] for s in manifest["shards"]]
    back = read_embeddings(tmp_path / "out", "blocks").sort_values("file").reset_index(drop=True)
    expected = table.to_frame().sort_values("file").reset_index(drop=True)
    np.testing.assert_array_equal(back[[f"e{i:04d}" for i in range(6)]].to_numpy(), expected.iloc[:, 4:].to_numpy())
    assert list(back["file"]) == list(expected["file"])
    assert sum(b.num_rows for b in read_embeddings(folder, batches=True)) == 80
    from tfaudio.pipeline.local import plan_embedding

    assert current_output(folder, plan_embedding(data, model, config)) == []
    # today's single file is read the same way
    table.write(tmp_path / "single.parquet")
    assert len(read_embeddings(tmp_path / "single.parquet")) == 80


def test_frame_rows_carry_their_start_time_and_tfrecords_are_examples(synth_data, tmp_path):
    data = load_dataset(synth_data)
    folder, _ = embed_to_folder(data, Blocks(), tmp_path / "out", EmbeddingStore(tmp_path / "s"),
                                EmbedConfig(pooling=FRAMES))
    rows = read_embeddings(tmp_path / "out", "blocks", frames=True)
    one = rows[rows["file"] == rows["file"].iloc[0]]
    np.testing.assert_allclose(one["start"], one["frame"] * 0.01)
    assert len(one) == 1 + (SR - 400) // 160
    folder, _ = embed_to_folder(data, Blocks(), tmp_path / "tf", EmbeddingStore(tmp_path / "s"), file_format="tfrecord")
    import tensorflow as tf

    records = list(tf.data.TFRecordDataset([str(p) for p in sorted(folder.glob("part-*.tfrecord"))]))
    example = tf.train.Example.FromString(records[0].numpy())
    assert len(records) == 80 and len(example.features.feature["embedding"].float_list.value) == 3


def test_every_format_reads_back_what_it_wrote_and_resumes_from_it(synth_data, tmp_path):
    """One table of formats: what the writers write, `read_embeddings` and the Beam runner's resume
    read back, in every format (TFRecord included)."""
    from tfaudio.pipeline import beam_io
    from tfaudio.pipeline.local import plan_embedding
    from tfaudio.store.formats import FORMATS, format_of

    data, model = load_dataset(synth_data), Blocks()
    store = EmbeddingStore(tmp_path / "s")
    for pooling in ("mean+std", FRAMES):
        config = EmbedConfig(pooling=pooling)
        read = {}
        for name, fmt in FORMATS.items():
            folder, _ = embed_to_folder(data, model, tmp_path / name, store, config, file_format=name, shard_bytes=512)
            manifest = json.loads((folder / "_manifest.json").read_text())
            assert len(manifest["shards"]) > 1 and manifest["file_format"] == name
            assert all(format_of(folder / s["name"]).suffix == fmt.suffix for s in manifest["shards"])
            frame = read_embeddings(folder).sort_values(["file", *(["frame"] if pooling == FRAMES else [])])
            read[name] = frame.reset_index(drop=True)
            assert sum(b.num_rows for b in read_embeddings(folder, batches=True)) == len(frame)
            # resuming (the Beam runner's earlier output) finds every clip's vector in any format
            key = plan_embedding(data, model, config).key
            sources = beam_io.earlier_sources(str(folder), [], key)
            assert len(sources) == 80
            shard = sources[frame["audio_sha256"].iloc[-1]]
            digests = {digest for digest, source in sources.items() if source == shard}
            vectors = beam_io.read_shard_vectors(shard, digests, pooling)
            assert set(vectors) == digests
            columns = [c for c in frame.columns if c.startswith("e")]
            for digest, rows in frame[frame["audio_sha256"].isin(digests)].groupby("audio_sha256"):
                np.testing.assert_array_equal(np.atleast_2d(vectors[digest]), rows[columns].to_numpy(np.float32))
        for name in FORMATS:
            pd.testing.assert_frame_equal(read[name], read["parquet"], check_dtype=False)
        assert read["parquet"]["group"].isna().all() == read["tfrecord"]["group"].isna().all()


def test_run_embedding_chooses_the_layout_and_the_runner_in_one_place(synth_data, tmp_path):
    from tfaudio.pipeline.run import RunSettings, RunSettingsError, run_embedding

    outputs = {}
    for fmt in ("parquet", "shards", "tfrecord"):
        (summary,) = run_embedding(synth_data, ["handcrafted"], tmp_path / fmt, settings=RunSettings(
            file_format=fmt, store=str(tmp_path / "store")))
        assert (summary.clips, summary.runner, summary.up_to_date) == (80, "local", False)
        outputs[fmt] = Path(summary.output)
        (again,) = run_embedding(synth_data, ["handcrafted"], tmp_path / fmt, settings=RunSettings(
            file_format=fmt, store=str(tmp_path / "store")))
        assert again.up_to_date and again.output == summary.output and again.clips == 80
    assert outputs["parquet"] == tmp_path / "parquet" / "handcrafted.parquet" and outputs["parquet"].is_file()
    assert (outputs["shards"] / "part-00000.parquet").is_file()
    assert (outputs["tfrecord"] / "part-00000.tfrecord").is_file()
    frames = [read_embeddings(path).sort_values("file").reset_index(drop=True) for path in outputs.values()]
    for frame in frames[1:]:
        columns = [c for c in frame.columns if c.startswith("e")]
        np.testing.assert_array_equal(frame[columns].to_numpy(), frames[0][columns].to_numpy())
    with pytest.raises(RunSettingsError, match="--strict applies to the local runner"):
        next(run_embedding(synth_data, ["handcrafted"], tmp_path / "beam", EmbedConfig(strict=True),
                           RunSettings(runner="direct")))
    with pytest.raises(ValueError, match="unknown output format 'csv'; choose one of parquet, shards, tfrecord"):
        next(run_embedding(synth_data, ["handcrafted"], tmp_path / "csv", settings=RunSettings(file_format="csv")))
    assert not (tmp_path / "beam").exists() and not (tmp_path / "csv").exists()


def test_the_pipeline_names_no_model():
    """A model is its own folder plus a registry line: the pipeline knows models only through
    the Representation interface, so no model is named anywhere in it (comments included)."""
    import tfaudio.pipeline
    from tfaudio.models import registry

    words = {spelling.split(":")[0].lower() for spelling, _ in registry.model_kinds()}
    words |= {"hub:", "hf:", "hand-crafted", "hugging face", "tf-hub"}
    assert {"handcrafted", "yamnet", "vggish", "wav2vec2", "autoencoder"} <= words
    for path in Path(tfaudio.pipeline.__file__).parent.glob("*.py"):
        text = path.read_text().lower()
        named = sorted(word for word in words if word in text)
        assert not named, f"{path.name} names {named}: say it through the Representation interface instead"


# -- nothing lost, nothing wrong cached ----------------------------------------------------------------

_SLOW_RUN = """
import sys, time
sys.path.insert(0, {tests!r})
from test_pipeline import Blocks
from tfaudio.data.dataset import load_dataset
from tfaudio.pipeline.local import EmbedConfig, embed_dataset
from tfaudio.store import EmbeddingStore

class Slow(Blocks):
    def frames(self, waveforms, lengths):
        time.sleep(0.05)
        out = super().frames(waveforms, lengths)
        print("batch", flush=True)
        return out

config = EmbedConfig(batch_size=2, flush_every=10**6, flush_seconds={flush_seconds})
embed_dataset(load_dataset(sys.argv[1]), Slow(), EmbeddingStore(sys.argv[2]), config)
"""


def _start_slow_run(synth_data, store: Path, flush_seconds: float) -> subprocess.Popen:
    script = _SLOW_RUN.format(tests=str(Path(__file__).parent), flush_seconds=flush_seconds)
    return subprocess.Popen([sys.executable, "-c", script, str(synth_data), str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stored(store: Path) -> int:
    return sum(len(pd.read_parquet(p, columns=["audio_sha256"])) for p in store.glob("*/part-*.parquet"))


@pytest.mark.parametrize("moment", [0.0, 0.6, 1.3])
def test_kill_9_at_any_moment_keeps_a_whole_store_and_the_rerun_computes_only_the_rest(synth_data, tmp_path, moment):
    store = tmp_path / "store"
    run = _start_slow_run(synth_data, store, flush_seconds=0.25)
    lines = 0
    while lines < 3 and run.poll() is None:  # past start-up: the model is working
        lines += run.stdout.readline().startswith("batch")
    time.sleep(moment)
    run.send_signal(signal.SIGKILL)
    run.wait()
    kept = _stored(store)  # every shard reads back whole (a torn one would raise here)
    model = Blocks()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)  # nothing damaged to repair
        table = embed_dataset(load_dataset(synth_data), model, EmbeddingStore(store), EmbedConfig(batch_size=2))
    assert (table.stats.cached, table.stats.computed) == (kept, 80 - kept)
    assert model.windows == 80 - kept
    assert not list(store.glob("*/quarantine/*"))


def test_sigterm_flushes_what_was_computed_before_exiting(synth_data, tmp_path):
    store = tmp_path / "store"
    run = _start_slow_run(synth_data, store, flush_seconds=3600)  # only the signal can flush
    batches = 0
    while batches < 5:
        batches += run.stdout.readline().startswith("batch")
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 128 + signal.SIGTERM
    assert "Traceback" not in run.stderr.read()
    assert _stored(store) >= 2 * 4  # the batches whose clips were finished, at least


def test_non_finite_vectors_are_refused_naming_the_file_and_never_cached(synth_data, tmp_path):
    class Exploding(Blocks):
        def frames(self, waveforms, lengths):
            out = super().frames(waveforms, lengths)
            loud = np.abs(waveforms).max(axis=1) > 0.5  # the noise class is quiet: only tones explode
            out.embeddings[loud] = np.inf
            return out

    data = load_dataset(synth_data)
    store = EmbeddingStore(tmp_path / "store")
    table = embed_dataset(data, Exploding(), store)
    assert table.stats.skipped and all("non-finite" in p.reason for p in table.stats.skipped)
    assert all(np.isfinite(table.vectors).all(axis=1))
    assert _stored(tmp_path / "store") == len(table.clips) < 80
    with pytest.raises(NonFiniteVectors, match=r"\.wav: the model gave non-finite values"):
        embed_dataset(data, Exploding(), EmbeddingStore(tmp_path / "other"), EmbedConfig(strict=True))
