"""The Beam pipeline (the optional extra tfaudio[beam]): on the FnApiRunner with two worker
processes it gives the local runner's vectors, lists unreadable files as dead letters, loads the
model once per worker and resumes from its own output; for Dataflow, Flink and Spark the graph
builds with their options (they cannot run here: no cloud project, no job-server downloads)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

beam = pytest.importorskip(
    "apache_beam", reason="Apache Beam is the optional extra tfaudio[beam] (`make test` installs it): "
    "pip install -e '.[dev,beam]'"
)

from tfaudio.data.synth import SynthConfig, make_dataset

WINDOW_SECONDS = 4.0  # the long clip below (10 s) is embedded as 3 windows
LONG_SECONDS = 10.0


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """yamnet.h5 of random (He-scaled) weights, in the layout of Google's file, for workers to load."""
    import keras
    from helpers import randomize, write_legacy_h5

    from tfaudio.models.yamnet import model as Y

    keras.utils.set_random_seed(7)
    model = Y.Yamnet()
    randomize(model.network, seed=7)
    path = tmp_path_factory.mktemp("weights") / "yamnet.h5"
    write_legacy_h5(model.network, path)
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """40 one-second clips in 4 classes, two 10 s clips longer than the window limit (one at
    16 kHz, one at 22.05 kHz) and a corrupt WAV, all listed in meta.csv."""
    import soundfile as sf

    root = make_dataset(tmp_path_factory.mktemp("archive"), SynthConfig(clips_per_class=10, seed=3))
    for name, rate in (("long.wav", 16000), ("long_resampled.wav", 22050)):
        t = np.arange(int(LONG_SECONDS * rate)) / rate
        sf.write(root / name, (0.3 * np.sin(2 * np.pi * (200 * t + 300 * t**2))).astype(np.float32), rate)
    (root / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    with open(root / "meta.csv", "a", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["long.wav", "chirp", 1])
        writer.writerow(["long_resampled.wav", "chirp", 2])
        writer.writerow(["corrupt.wav", "noise", 3])
    return root


def embed_config():
    from tfaudio.pipeline.local import EmbedConfig

    return EmbedConfig(window_seconds=WINDOW_SECONDS)


def local_output(archive: Path, weights: Path, out: Path) -> Path:
    """The local runner's output folder for the archive (what `tfaudio embed --out` writes)."""
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.registry import get
    from tfaudio.pipeline.local import embed_to_folder
    from tfaudio.store import EmbeddingStore

    folder, _ = embed_to_folder(load_dataset(archive), get("yamnet", weights_path=str(weights)), out,
                                EmbeddingStore(out / "store"), embed_config())
    return folder


def read_output(folder: Path) -> dict[str, np.ndarray]:
    """file -> vector of an output folder."""
    from tfaudio.store import read_embeddings

    frame = read_embeddings(folder)
    columns = [c for c in frame.columns if c[:1] == "e" and c[1:].isdigit()]
    return dict(zip(frame["file"], frame[columns].to_numpy(np.float32)))


def test_two_workers_give_the_local_vectors_and_dead_letters(archive, weights, tmp_path):
    from tfaudio.data.audio import AudioError, info
    from tfaudio.pipeline.beam import run_beam

    out = tmp_path / "out"
    summary = run_beam(archive, "yamnet", out, runner="direct", num_workers=2, config=embed_config(),
                       weights_path=str(weights))
    folder = Path(summary.output)
    beam_vectors = read_output(folder)
    local = read_output(local_output(archive, weights, tmp_path / "local"))
    assert set(beam_vectors) == set(local) and len(local) == 42  # 40 clips + the two long ones
    for file, vector in local.items():
        if file == "long_resampled.wav":  # windows read by seeking vs one streaming pass: soxr rounding
            np.testing.assert_allclose(beam_vectors[file], vector, atol=1e-5, err_msg=file)
        else:  # the same batches as the local runner: the same bits
            np.testing.assert_array_equal(beam_vectors[file], vector, err_msg=file)

    # The corrupt file is a dead letter, with the header's complaint, in the folder and the manifest.
    with pytest.raises(AudioError) as complaint:
        info(archive / "corrupt.wav")
    letters = [json.loads(line) for line in (folder / "_dead_letter.jsonl").read_text().splitlines()]
    assert [(Path(x["path"]).name, x["reason"]) for x in letters] == [("corrupt.wav", complaint.value.problem)]
    manifest = json.loads((folder / "_manifest.json").read_text())
    local_manifest = json.loads((tmp_path / "local" / "yamnet" / "_manifest.json").read_text())
    assert manifest["skipped"] == local_manifest["skipped"]
    assert sum(shard["rows"] for shard in manifest["shards"]) == 42
    # The same representation, settings and rows: a later local run finds the output up to date.
    for field in ("key", "stamp", "representation", "decode", "pooling", "complete"):
        assert manifest[field] == local_manifest[field], field

    # Counters: every clip computed, 3 windows per long clip, 1 s per short clip.
    assert (summary.clips, summary.computed, summary.cached, summary.failed) == (42, 42, 0, 1)
    assert summary.windows == 40 + 2 * 3
    assert summary.audio_seconds == pytest.approx(40 + 2 * LONG_SECONDS, abs=0.01)
    # The model was loaded once in each worker process that embedded (at most two of them).
    assert 1 <= summary.model_loads == len(summary.model_workers) <= 2

    # A second run reuses the output: nothing is computed again, and nothing changes.
    again = run_beam(archive, "yamnet", out, runner="direct", num_workers=2, config=embed_config(),
                     weights_path=str(weights))
    assert (again.clips, again.cached, again.computed, again.windows) == (42, 42, 0, 0)
    for file, vector in read_output(folder).items():
        np.testing.assert_array_equal(vector, beam_vectors[file], err_msg=file)
    assert json.loads((folder / "_manifest.json").read_text())["stamp"] == manifest["stamp"]
    assert not list(out.glob(".*work-*")), "work folders are removed once published"


@pytest.mark.parametrize(
    "runner, args",
    [
        ("dataflow", ["--project=tfaudio-test-123", "--region=europe-west4", "--temp_location=gs://tfaudio-test/tmp",
                      "--setup_file=./setup.py"]),
        ("flink", ["--flink_master=localhost:8081", "--environment_type=LOOPBACK"]),
        ("spark", ["--spark_master_url=spark://localhost:7077", "--environment_type=LOOPBACK"]),
    ],
)
def test_graph_builds_for_cluster_runners(runner, args, archive, weights, tmp_path):
    from tfaudio.pipeline.beam import RUNNERS, build_pipeline, pipeline_options, prepare_run

    options = pipeline_options(runner, 4, args)
    assert options.get_all_options()["runner"] == RUNNERS[runner]
    run, clips, _ = prepare_run(archive, "yamnet", tmp_path / "out", config=embed_config(), weights_path=str(weights))
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, run)
    proto = pipeline.to_runner_api()
    names = {t.unique_name for t in proto.components.transforms.values()}
    assert {"Plan", "Embed", "Pool", "Shards", "Finalize"} <= names
    assert len(clips) == 43 and not (tmp_path / "out").exists()  # building wrote nothing


def test_beam_is_imported_only_by_a_beam_run():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tfaudio.cli.main import main\n"
        "import tfaudio.pipeline.beam\n"
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
        "print('apache_beam' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_listing_on_beam_filesystems_gives_the_local_rows(archive):
    """The listing used for gs:// and other Beam filesystems, run here through Beam's local
    filesystem: the manifest's rows and the class folders' clips are the local dataset's."""
    from tfaudio.data.dataset import _from_tree
    from tfaudio.pipeline import sources

    local, _ = sources.list_clips(archive)
    by_manifest = sources._remote_manifest(str(archive / "meta.csv"), None)
    assert [(c.file, c.label, c.fold, c.group) for c in by_manifest] == [(c.file, c.label, c.fold, c.group) for c in local]
    assert [Path(c.path) for c in by_manifest] == [Path(c.path) for c in local]

    # The folder read as a tree (its manifest aside): the clips of the local tree rule, in its
    # order; unlabelled, since three clips sit beside the class folders.
    by_folders, ignored = sources._remote_folders(str(archive))
    tree = _from_tree(archive.resolve())
    assert [(c.file, c.label) for c in by_folders] == [(tree.relative(c), c.label) for c in tree.clips]
    assert len(by_folders) == 43 and {c.label for c in by_folders} == {None}
    assert [Path(p.path).name for p in ignored] == ["meta.csv"]


def test_the_entry_point_runs_beam_in_any_format_and_resumes_from_it(archive, tmp_path):
    """`run_embedding` (what `tfaudio embed --runner direct` calls) on the hand-crafted baseline,
    whose long clips need a clip state: TFRecord shards with the local runner's vectors, and a
    second run reads them back instead of computing (resume reads every output format)."""
    from tfaudio.pipeline.local import EmbedConfig
    from tfaudio.pipeline.run import RunSettings, run_embedding

    config = EmbedConfig(window_seconds=WINDOW_SECONDS)
    beam = RunSettings(runner="direct", num_workers=2, file_format="tfrecord")
    (first,) = run_embedding(archive, ["handcrafted"], tmp_path / "beam", config, beam)
    assert (first.runner, first.clips, first.computed, first.cached) == ("direct", 42, 42, 0)
    assert [Path(p.path).name for p in first.skipped] == ["corrupt.wav"]
    assert sorted(p.suffix for p in Path(first.output).glob("part-*")) == [".tfrecord"] * len(
        list(Path(first.output).glob("part-*")))
    (local,) = run_embedding(archive, ["handcrafted"], tmp_path / "local", config,
                             RunSettings(file_format="shards", store=str(tmp_path / "store")))
    on_beam, here = read_output(Path(first.output)), read_output(Path(local.output))
    assert set(on_beam) == set(here) and len(here) == 42
    for file, vector in here.items():
        if file == "long_resampled.wav":
            # Windows read by seeking vs one streaming pass: soxr's ~1e-7 on samples, which the
            # spectral contrast's per-band quantiles turn into up to ~0.3 % on a few statistics.
            np.testing.assert_allclose(on_beam[file], vector, rtol=1e-2, atol=1e-4, err_msg=file)
        else:
            np.testing.assert_array_equal(on_beam[file], vector, err_msg=file)
    (again,) = run_embedding(archive, ["handcrafted"], tmp_path / "beam", config, beam)
    assert (again.clips, again.cached, again.computed) == (42, 42, 0)
    for file, vector in read_output(Path(again.output)).items():
        np.testing.assert_array_equal(vector, on_beam[file], err_msg=file)


def _shard_settings(folder: Path, flush_seconds: float = 30.0):
    """What the steps that write rows read of a run (`beam._Run`'s fields)."""
    from types import SimpleNamespace

    folder.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(work=str(folder), pooling="mean", frame_hop_seconds=0.48, file_format="parquet",
                           flush_seconds=flush_seconds)


def _key(position: int, digest: str = "d0") -> tuple:
    return (position, f"/data/c{position}.wav", f"c{position}.wav", "dog", None, None, digest)


def test_shards_are_flushed_by_size_and_by_time(tmp_path):
    """A worker's rows wait at most `flush_seconds` (or until `shard_bytes` of vectors) before
    their shard is written: what a killed run keeps."""
    from tfaudio.pipeline.beam_io import RowShards, read_shard

    shards = RowShards(str(tmp_path), "mean", 0.48, "parquet", flush_seconds=0.2, shard_bytes=3 * 4 * 8)
    vector = np.arange(8, dtype=np.float32)
    assert shards.add(_key(0, "a"), vector) == [] and shards.due() == []
    time.sleep(0.25)
    assert shards.due() != []  # by time: one row, 0.25 s old
    (by_time,) = list(tmp_path.glob("part-*"))
    assert read_shard(str(by_time)).num_rows == 1
    written = [d for i in range(1, 4) for d in shards.add(_key(i, f"d{i}"), vector)]  # by size: 3 vectors
    assert [d["rows"] for d in written] == [3] and [p for _, p in written[0]["ids"]] == ["d1", "d2", "d3"]
    assert shards.flush() == [] and len(list(tmp_path.glob("part-*"))) == 2


def test_a_clip_whose_windows_did_not_all_arrive_is_a_dead_letter(tmp_path):
    """PoolClips once dropped such a clip without a word (a resumed run then published 480 of
    500 clips and no dead letter): now every clip of that audio is a dead letter saying why."""
    from tfaudio.pipeline.beam_fns import DEAD, SHARDS, PoolClips

    pool = PoolClips(_shard_settings(tmp_path))
    pool.start_bundle()
    frames = np.ones((2, 4), np.float32)
    keys = (_key(3), _key(9))  # a clip and its copy under another name
    parts = [((0, 0), 0, 3, frames, keys), ((2, 5), 2, 3, frames, ())]  # window 1 of 3 never came
    out = list(pool.process(("d0", parts)))
    assert [(o.tag, o.value["path"], o.value["reason"]) for o in out] == [
        (DEAD, "/data/c3.wav", "only 2 of its 3 windows were embedded"),
        (DEAD, "/data/c9.wav", "only 2 of its 3 windows were embedded"),
    ]
    whole = [*parts, ((1, 7), 1, 3, frames, ())]
    assert list(pool.process(("d0", whole))) == []  # pooled, buffered for a shard
    (written,) = pool.finish_bundle()  # the shard, as a windowed value of the SHARDS output
    assert written.tag == SHARDS and written.value.value["rows"] == 2
    assert list(written.value.value["ids"]) == [(3, "d0"), (9, "d0")]


def test_finalizing_fails_and_names_the_clips_neither_rows_nor_dead_letters(tmp_path):
    """Every listed clip must be a row or a dead letter; else nothing is published, the work
    folder stays for a resume, and the error names the first clips missing and their count."""
    from tfaudio.pipeline import beam_io
    from tfaudio.pipeline.beam_finish import UnaccountedClips, check_accounted, finalize

    run = _shard_settings(tmp_path / ".m.work-1")
    run.final = str(tmp_path / "m")
    listed = [[i, f"/data/c{i}.wav", f"c{i}.wav", "dog", None, None] for i in range(12)]
    beam_io.write_bytes(beam_io.join(run.work, beam_io.CLIPS), "".join(json.dumps(x) + "\n" for x in listed).encode())
    shards = [{"name": "part-a-00000.parquet", "rows": 5, "ids": [(i, f"d{i}") for i in range(5)]}]
    dead = [{"path": "/data/c5.wav", "reason": "corrupt", "audio_sha256": "d5"}]
    finalize(None, shards, dead, run)
    assert not Path(run.final).exists() and Path(run.work, beam_io.CLIPS).exists()
    with pytest.raises(UnaccountedClips) as error:
        check_accounted(run.work)
    assert str(error.value).startswith(
        "the Beam run accounted for 6 of 12 clips: 6 are neither a row nor a dead letter (/data/c6.wav, "
        "/data/c7.wav, /data/c8.wav, /data/c9.wav, /data/c10.wav, and 1 more); nothing was published")
