"""The failure catalog, reading side: what tfaudio reads back is checked before it is used.

Store shards holding a wrong vector are quarantined and recomputed; a damaged identity.json is
named by `store info`; an output with a damaged part is not "up to date"; exports are identified
before their graph is loaded; `tfaudio models` checks YAMNet's weights file; a damaged
`autoencoder:PATH` leaves a comparison as unavailable; one decoding verdict refuses absurd
samples in every reader; libmpg123's own lines stay off the terminal.

Each finding that came from a command runs the installed console script once
(`helpers.run_process`); the rest is checked in-process, on small generated files.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from conftest import sine, write_tree
from helpers import run_process

RATE = 16000
TFAUDIO = str(Path(sys.executable).parent / "tfaudio")


def environment(root: Path, **extra: str) -> dict:
    """A user's environment: offline, a fresh TFAUDIO_HOME, no weights or data of ours."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TFAUDIO_MODELS", "TFAUDIO_DATA", "KERAS_HOME", "TFAUDIO_STORE")}
    return {**env, "TFAUDIO_HOME": str(root / "home"), "TFAUDIO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def tfaudio(root: Path, *args, **extra: str):
    return run_process([TFAUDIO, *map(os.fsdecode, args)], env=environment(root, **extra), cwd=root, timeout=300)


def absurd_wav(path: Path) -> Path:
    """A float WAV whose samples are ±1e30: it parses, but is garbage, not loud audio."""
    sf.write(path, np.where(np.arange(RATE) % 2, 1e30, -1e30).astype(np.float32), RATE, subtype="FLOAT")
    return path


# --- 1 + 4. wrong vectors in the store, and the one decoding verdict -------------------------------


#: A value no representation gives: the mark of a vector served from the damaged store below.
PLANTED = 7.0


def damaged_store(store: Path, key: str, digests: list[str], width: int) -> tuple[Path, Path]:
    """The store of `key` holding a vector of PLANTED values per clip, in two shards: one whose
    only vector holds a NaN, one whose first vector has 10 values. Returns (NaN shard, short shard)."""
    folder = store / key
    folder.mkdir(parents=True)
    (folder / "identity.json").write_text(json.dumps({"model": "handcrafted"}))
    vectors = [[PLANTED] * width for _ in digests]
    vectors[0][3] = float("nan")
    vectors[1] = vectors[1][:10]
    shards = {folder / "part-1-nan.parquet": slice(0, 1), folder / "part-2-short.parquet": slice(1, None)}
    for path, rows in shards.items():
        count = len(digests[rows])
        pq.write_table(pa.table({"audio_sha256": digests[rows], "frames": pa.array([-1] * count, pa.int64()),
                                 "vector": pa.array(vectors[rows], pa.list_(pa.float32()))}), path)
    return tuple(shards)


def test_wrong_store_vectors_are_quarantined_and_absurd_samples_refused(tmp_path):
    """Finding: a NaN vector in a shard was served with exit 0, a 10-value one broke the run with
    `all input arrays must have the same shape`; a WAV of ±1e30 samples that `info` calls
    unreadable was embedded (YAMNet: an absurd vector, cached)."""
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.registry import get
    from tfaudio.pipeline.local import plan_embedding

    data = write_tree(tmp_path / "data", per_class=2)
    dataset, model = load_dataset(data), get("handcrafted")
    plan = plan_embedding(dataset, model)
    store = tmp_path / "store"
    nan_shard, short_shard = damaged_store(store, plan.key, list(plan.hashes), model.pooled_dim(plan.pooling))
    absurd_wav(data / "rain" / "absurd.wav")

    run = tfaudio(tmp_path, "embed", data, "--model", "handcrafted", "--out", tmp_path / "out",
                  "--store", store).check()

    for shard in (nan_shard, short_shard):
        assert f"{shard}: damaged shard" in run.stderr, run.describe()
        assert (shard.parent / "quarantine" / shard.name).is_file() and not shard.exists()
    assert "not finite" in run.stderr and "a vector of 10 values where 104 are expected" in run.stderr
    assert "absurd.wav: holds samples of magnitude 1e+30" in run.stderr, run.describe()
    assert "RuntimeWarning" not in run.stderr and "non-finite values (NaN or inf) for this clip" not in run.stderr
    out = pq.read_table(tmp_path / "out" / "handcrafted.parquet").to_pandas()
    assert sorted(out["file"]) == sorted(dataset.relative(c) for c in dataset.clips)  # absurd.wav left out
    vectors = out.filter(like="e0").to_numpy()
    assert vectors.shape == (4, 104) and np.isfinite(vectors).all()
    assert not (vectors == PLANTED).all(axis=1).any() and len(np.unique(vectors, axis=0)) == 4  # recomputed


def test_lookup_without_a_dimension_takes_the_common_length(tmp_path):
    from tfaudio.store import EmbeddingStore

    messages = []
    store = EmbeddingStore(tmp_path / "store", on_problem=messages.append)
    digests = [f"{i:064x}" for i in range(4)]
    store.add("k", {"model": "m"}, digests[:3], [np.full(8, i, np.float32) for i in range(3)])
    folder = tmp_path / "store" / "k"
    pq.write_table(pa.table({"audio_sha256": [digests[3]], "frames": pa.array([-1], pa.int64()),
                             "vector": pa.array([[1.0] * 5], pa.list_(pa.float32()))}), folder / "part-9-odd.parquet")

    found = store.lookup("k", digests)

    assert sorted(found) == digests[:3] and all(v.shape == (8,) for v in found.values())
    assert messages == [f"{folder / 'part-9-odd.parquet'}: damaged shard (a vector of 5 values where 8 are expected); "
                        f"moved to {folder / 'quarantine' / 'part-9-odd.parquet'}, its clips will be recomputed"]


def test_compact_moves_a_wrong_shard_aside_instead_of_merging_it(tmp_path):
    from tfaudio.store import EmbeddingStore
    from tfaudio.store.maintenance import compact

    messages = []
    store = EmbeddingStore(tmp_path / "store", on_problem=messages.append)
    digests = [f"{i:064x}" for i in range(4)]
    folder = tmp_path / "store" / "k"
    folder.mkdir(parents=True)
    nan = pa.array([[float("nan")] * 8], pa.list_(pa.float32()))
    pq.write_table(pa.table({"audio_sha256": [digests[3]], "frames": pa.array([-1], pa.int64()), "vector": nan}),
                   folder / "part-0-nan.parquet")  # the oldest shard: compact reads it first
    for i in range(3):
        store.add("k", {"model": "m"}, [digests[i]], [np.full(8, i, np.float32)])

    assert compact(store) == {"k": (4, 1)}

    assert (folder / "quarantine" / "part-0-nan.parquet").is_file()
    assert "part-0-nan.parquet: damaged shard (a vector with values that are not finite" in messages[0]
    found = store.lookup("k", digests, 8)
    assert sorted(found) == digests[:3] and [found[d][0] for d in digests[:3]] == [0, 1, 2]


def test_every_reader_gives_the_same_verdict_on_absurd_samples(tmp_path):
    from tfaudio.data.audio import AudioError, info, iter_chunks, iter_spans, load, read_span, verify

    path = absurd_wav(tmp_path / "absurd.wav")
    assert info(path).frames == RATE  # the header is fine: only decoding tells
    readers = {
        "verify": lambda: verify(path),
        "load": lambda: load(path),
        "load 8 kHz": lambda: load(path, 8000),
        "read_span": lambda: read_span(path, 0, 100),
        "iter_spans": lambda: list(iter_spans(path, [(0, 100)], 8000)),
        "iter_chunks": lambda: list(iter_chunks(path, 0.5)),
    }
    for name, read in readers.items():
        with pytest.raises(AudioError) as caught:
            read()
        assert caught.value.problem.startswith("holds samples of magnitude 1e+30"), name
    loud = tmp_path / "loud.wav"
    sf.write(loud, sine(440, 0.5, 1000.0), RATE, subtype="FLOAT")  # far beyond full scale, but audio
    assert np.abs(load(loud)).max() > 999


# --- 1. identity.json and output parts -----------------------------------------------------------


def test_store_info_names_a_damaged_identity_and_the_next_run_repairs_it(tmp_path):
    """Finding: `store info` raised JSONDecodeError on a damaged identity.json."""
    from tfaudio.store import EmbeddingStore

    store = EmbeddingStore(tmp_path / "store")
    store.add("0123456789abcdef", {"model": "handcrafted", "pooling": "mean"}, ["ab" * 32], [np.ones(4, np.float32)])
    about = tmp_path / "store" / "0123456789abcdef" / "identity.json"
    about.write_text('{"model": "handcr')

    run = tfaudio(tmp_path, "store", "info", "--store", tmp_path / "store").check()

    assert f"warning: {about}: damaged (not a JSON object)" in run.stderr, run.describe()
    assert "0123456789abcdef  (identity damaged)" in run.stdout and "1" in run.stdout, run.describe()
    store.add("0123456789abcdef", {"model": "handcrafted"}, ["cd" * 32], [np.ones(4, np.float32)])
    assert json.loads(about.read_text()) == {"model": "handcrafted"}
    assert len(store.lookup("0123456789abcdef", ["ab" * 32, "cd" * 32], 4)) == 2


def test_an_output_with_a_damaged_part_is_not_up_to_date(tmp_path):
    """Finding: `embed --format shards` called an output whose part file was damaged "up to date"."""
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.registry import get
    from tfaudio.pipeline.local import EmbedConfig, current_output, embed_to_folder, plan_embedding
    from tfaudio.store import EmbeddingStore, read_embeddings
    from tfaudio.store.formats import DamagedOutput

    data = write_tree(tmp_path / "data", per_class=2)
    dataset, model = load_dataset(data), get("handcrafted")
    plan = plan_embedding(dataset, model)
    folder, _ = embed_to_folder(dataset, model, tmp_path / "out", EmbeddingStore(tmp_path / "store"),
                                EmbedConfig(workers=1), plan=plan, file_format="shards")
    part = folder / "part-00000.parquet"
    good = part.read_bytes()
    assert current_output(folder, plan) == []  # whole: up to date
    cases = {"cut": good[: len(good) // 2], "empty": b""}
    for name, damaged in cases.items():
        part.write_bytes(damaged)
        assert current_output(folder, plan) is None, name
        with pytest.raises(DamagedOutput, match=f"^{part}: damaged embedding output"):
            read_embeddings(folder)
    table = pq.read_table(tmp_path / "store" / plan.key / next(p.name for p in (tmp_path / "store" / plan.key)
                                                               .glob("part-*.parquet")))
    assert table.num_rows == 4
    nan = pq.read_table(pa.BufferReader(good))
    nan = nan.set_column(nan.schema.get_field_index("e0003"), "e0003",
                         pa.array([float("nan")] * nan.num_rows, pa.float32()))
    pq.write_table(nan, part)
    assert current_output(folder, plan) is None
    with pytest.raises(DamagedOutput, match="not finite"):
        read_embeddings(folder)

    run = tfaudio(tmp_path, "embed", data, "--model", "handcrafted", "--out", tmp_path / "out", "--format", "shards",
                  "--store", tmp_path / "store").check()

    assert "up to date" not in run.stdout, run.describe()
    assert np.isfinite(read_embeddings(folder).filter(like="e0").to_numpy()).all()


# --- 2. exports ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A real (tiny) tfaudio export and a plain SavedModel that is not one."""
    from tfaudio.quiet import keras, tf
    from tfaudio.training.export import export_savedmodel

    root = tmp_path_factory.mktemp("exports")
    classifier = keras.Sequential([keras.Input((1600,)), keras.layers.Dense(2, activation="softmax")])
    metadata = {"class_names": ["high", "low"], "sample_rate": RATE, "num_samples": 1600}
    real = export_savedmodel(classifier, metadata, root / "real")

    class Plain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def double(self, x):
            return {"y": 2 * x}

    plain = root / "plain"
    module = Plain()
    tf.saved_model.save(module, str(plain), signatures={"serving_default": module.double})
    return real, plain


def copy_export(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_predict_refuses_a_savedmodel_with_a_forged_tfaudio_json(exports, tmp_path):
    """Finding: a plain SavedModel with a forged assets/tfaudio.json gave `TypeError ... missing
    required arguments`, after its graph had been loaded (a graph is a program)."""
    import hashlib

    real, plain = exports
    forged = copy_export(plain, tmp_path / "forged")
    metadata = json.loads((real / "assets" / "tfaudio.json").read_text())
    metadata["saved_model_sha256"] = hashlib.sha256((forged / "saved_model.pb").read_bytes()).hexdigest()
    (forged / "assets").mkdir(exist_ok=True)
    (forged / "assets" / "tfaudio.json").write_text(json.dumps(metadata))
    sf.write(tmp_path / "clip.wav", sine(440, 0.5), RATE)

    run = tfaudio(tmp_path, "predict", forged, tmp_path / "clip.wav").check(1)

    assert run.stdout == ""
    assert run.last_line() == (f"Error: {forged / 'saved_model.pb'}: its 'serving_default' signature is (x) -> (y), "
                               "not a tfaudio export's (waveform) -> (label, probabilities of the 2 classes "
                               "tfaudio.json names); export the model again (tfaudio train --out)"), run.describe()


def test_damaged_exports_are_named_before_their_graph_loads(exports, tmp_path, monkeypatch):
    from tfaudio.quiet import tf
    from tfaudio.training.export import ExportError, load

    real, plain = exports
    served = load(real)  # the control: a whole export loads and serves
    probabilities, labels = served.predict(sine(440, 0.3))
    assert probabilities.shape == (1, 2) and labels[0] in ("high", "low")
    assert len(json.loads((real / "assets" / "tfaudio.json").read_text())["saved_model_sha256"]) == 64

    def never(*args, **kwargs):
        raise AssertionError("the graph was loaded")

    monkeypatch.setattr(tf.saved_model, "load", never)
    truncated = copy_export(real, tmp_path / "truncated")
    graph = truncated / "saved_model.pb"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    garbage = copy_export(real, tmp_path / "garbage")
    (garbage / "assets" / "tfaudio.json").write_bytes(b"\x00not json{")
    old = copy_export(real, tmp_path / "old-truncated")  # an export from before the digest was recorded
    meta = json.loads((old / "assets" / "tfaudio.json").read_text())
    del meta["saved_model_sha256"]
    (old / "assets" / "tfaudio.json").write_text(json.dumps(meta))
    (old / "saved_model.pb").write_bytes((old / "saved_model.pb").read_bytes()[:300])
    bare = copy_export(plain, tmp_path / "bare")
    cases = {
        truncated: f"{graph}: changed since it was exported",
        garbage: f"{garbage / 'assets' / 'tfaudio.json'}: not readable JSON",
        old: f"{old / 'saved_model.pb'}: not a SavedModel (it does not parse",
        bare: f"{bare / 'assets' / 'tfaudio.json'}: missing; not a model exported by tfaudio",
    }
    for folder, message in cases.items():
        with pytest.raises(ExportError) as caught:
            load(folder)
        assert str(caught.value).startswith(message), str(caught.value)
        assert "export the model again" in str(caught.value)


# --- 2. an unusable autoencoder:PATH in a comparison -----------------------------------------------


def test_compare_lists_a_damaged_autoencoder_as_unavailable(tmp_path):
    """Finding: `compare --model autoencoder:PATH` with damaged weights stopped the comparison."""
    from helpers import TINY_AUTOENCODER
    from tfaudio.models.autoencoder.config import CONFIG_FILE, WEIGHTS_FILE

    data = write_tree(tmp_path / "data", per_class=3)
    model = tmp_path / "ae"
    model.mkdir()
    (model / CONFIG_FILE).write_text(json.dumps({"config": TINY_AUTOENCODER.to_dict()}))
    (model / WEIGHTS_FILE).write_bytes(b"\x89HDF\r\n" + bytes(200))

    run = tfaudio(tmp_path, "compare", data, "--model", "handcrafted", "--model", f"autoencoder:{model}",
                  "--classifier", "logreg", "--folds", "2", "--out", tmp_path / "report").check()

    assert f"autoencoder:{model}: unavailable, left out ({model / WEIGHTS_FILE}" in run.stderr, run.describe()
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert "handcrafted" in json.dumps(metrics["runs"]) and f"autoencoder:{model}" in json.dumps(metrics["unavailable"])


# --- 3. YAMNet's weights file checked by `tfaudio models` ------------------------------------------


def yamnet_like_h5(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A legacy Keras HDF5 weights file with zeros of these shapes (`<layer>/<variable>` names)."""
    import h5py

    layers: dict[str, list[str]] = {}
    for name in shapes:
        layer, variable = name.rsplit("/", 1)
        layers.setdefault(layer, []).append(variable)
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [layer.encode() for layer in layers]
        for layer, variables in layers.items():
            group = handle.create_group(layer)
            names = [f"{layer}/{v}:0" for v in variables]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, variable in zip(names, variables):
                group.create_dataset(name, data=np.zeros(shapes[f"{layer}/{variable}"], np.float32))
    return path


def test_models_reports_truncated_yamnet_weights_unusable(tmp_path):
    """Finding: `tfaudio models` called YAMNet usable with truncated or other weights."""
    from tfaudio.models.yamnet.weights_check import expected_variables, weights_problem

    shapes = expected_variables()
    whole = yamnet_like_h5(tmp_path / "whole.h5", shapes)
    assert weights_problem(whole) is None
    other = dict(shapes, **{"dense/kernel": (1024, 10), "dense/bias": (10,)})
    assert weights_problem(yamnet_like_h5(tmp_path / "other.h5", other)) == (
        "variable dense/kernel has shape (1024, 10) where YAMNet's network needs (1024, 521): another architecture")
    fewer = {k: v for k, v in shapes.items() if not k.startswith("layer14/")}
    assert weights_problem(yamnet_like_h5(tmp_path / "fewer.h5", fewer)).startswith("no variable layer14/")
    models = tmp_path / "models" / "yamnet"
    models.mkdir(parents=True)
    (models / "yamnet.h5").write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])

    run = tfaudio(tmp_path, "models", TFAUDIO_MODELS=str(tmp_path / "models")).check()

    (line,) = [line for line in run.stdout.splitlines() if line.startswith("yamnet")]
    assert line.split()[3] == "no" and "yamnet.h5: damaged, truncated or not an HDF5 weights file" in line, line


# --- 5. libmpg123's lines ---------------------------------------------------------------------------


def one_frame_mp3(path: Path) -> Path:
    """The first frame of an MP3 alone: libmpg123 prints "a one-frame stream? Duh..." to fd 2."""
    whole = path.with_name("whole.mp3")
    sf.write(whole, sine(440, 2.0), RATE)
    data = whole.read_bytes()
    header = int.from_bytes(data[:4], "big")
    assert header >> 21 == 0x7FF, "soundfile's MP3 starts with a frame"
    # MPEG-2 layer III at 16 kHz: 72 * bitrate / rate bytes (+1 with padding).
    bitrates = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
    size = 72 * bitrates[(header >> 12) & 0xF] * 1000 // RATE + ((header >> 9) & 1)
    path.write_bytes(data[:size])
    whole.unlink()
    return path


def test_libmpg123_lines_stay_off_the_terminal(tmp_path):
    """Finding: a raw libmpg123 line leaked to stderr on a one-frame MP3."""
    data = write_tree(tmp_path / "data", per_class=2)
    one_frame_mp3(data / "dog" / "one.mp3")

    run = tfaudio(tmp_path, "info", data).check()

    assert "one.mp3: damaged or too short to decode as .mp3" in run.stdout, run.describe()
    assert "mpg123" not in run.stderr and "Duh" not in run.stderr, run.describe()


def test_silencing_keeps_what_others_print(capfd):
    from tfaudio.data.decoder_noise import decoder_messages_silenced

    with decoder_messages_silenced():
        with decoder_messages_silenced():  # nested (another thread's decode): one redirection
            os.write(2, b"[src/libmpg123/parse.c:do_readahead():1083] warning: Cannot read next header\n")
            os.write(2, b"Note: Trying to resync...\n")
        os.write(2, b"progress 50%\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "progress 50%\nafter\n"
