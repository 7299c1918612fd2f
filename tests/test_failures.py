"""The failure catalog: bad input and faults a user meets, each run the way the user runs it.

Every command runs as `python -m tfaudio.cli ...` in a subprocess, and every case asserts the
message (naming the file or entry), the exit status, that stderr holds no Python traceback, and
that nothing already there was lost or written where it must not be.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import run_cli, sine, write_tree

RATE = 16000
OFFLINE_SWITCHES = ("TFAUDIO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def cli(*args, home: Path, env: dict | None = None, offline: bool = True, timeout: int = 600):
    """`python -m tfaudio.cli ARGS` with its cache in `home` (:func:`conftest.run_cli`)."""
    environment = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES and k != "TFAUDIO_MODELS"}
    environment.update({"TFAUDIO_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})
    if offline:
        environment["TFAUDIO_OFFLINE"] = "1"
    return run_cli(args, environment, timeout=timeout)


def tone(seconds: float = 0.5, frequency: float = 440.0) -> np.ndarray:
    return sine(frequency, seconds, 0.3, RATE)


def files_outside(root: Path, *inside: Path) -> dict[str, bytes]:
    """Every file under `root` but outside the `inside` folders, with its bytes."""
    return {
        str(p): p.read_bytes() for p in root.rglob("*")
        if p.is_file() and not any(p.is_relative_to(folder) for folder in inside)
    }


@contextlib.contextmanager
def serving(folder: Path):
    """A local HTTP server for `folder`, yielding its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def esc_zip(path: Path, rows: list[str]) -> Path:
    """An ESC-50-shaped zip whose manifest lists `rows` (each also stored under audio/)."""
    buffer = io.BytesIO()
    sf.write(buffer, tone(), RATE, format="WAV")
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    with zipfile.ZipFile(path, "w") as bundle:
        for i, name in enumerate(rows):
            bundle.writestr(f"ESC-50-master/audio/{name}", buffer.getvalue())
            lines.append(f"{name},{i % 5 + 1},0,dog,True,{100 + i},A")
        bundle.writestr("ESC-50-master/meta/esc50.csv", "\n".join(lines) + "\n")
    return path


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused_fetch(tmp_path: Path, dataset: str, archive: Path | None = None, **cli_options) -> tuple[str, Path]:
    """`datasets fetch DATASET --out tmp_path/out`, of `archive` served over HTTP with its digest
    (None: of what the command finds itself). Asserts it exits 1 with every file outside out/
    and home/ as it was (a victim unchanged, nothing added); returns (stderr, out)."""
    out, home = tmp_path / "out", tmp_path / "home"
    before = files_outside(tmp_path, out, home)
    with contextlib.ExitStack() as stack:
        source = []
        if archive is not None:
            url = stack.enter_context(serving(archive.parent))
            source = ["--url", f"{url}/{archive.name}", "--sha256", sha256(archive)]
            cli_options["offline"] = False
        code, _, err = cli("datasets", "fetch", dataset, *source, "--out", out, home=home, **cli_options)
    assert code == 1
    assert files_outside(tmp_path, out, home) == before
    return err, out


# --- fetch: archives and their manifests never write outside --out --------------------------


@pytest.mark.parametrize("row", ["../../victim.wav", "ABSOLUTE"])
def test_fetch_refuses_an_esc_manifest_row_that_leaves_out(tmp_path, row):
    victim = tmp_path / "victim.wav"  # what the row aims at: it must survive untouched
    victim.write_bytes(b"the user's own file")
    row = str(victim) if row == "ABSOLUTE" else row  # out/audio/../../victim.wav is tmp_path/victim.wav
    served = tmp_path / "served"
    served.mkdir()
    archive = esc_zip(served / "ESC-50-master.zip", ["1-100-A-0.wav", row])

    err, out = refused_fetch(tmp_path, "esc10", archive)

    assert f"names {row!r}" in err and "not a plain file name" in err and "refusing" in err
    assert not (out / "meta.csv").exists() and not list(out.rglob("*.wav"))  # refused before writing


def test_fetch_refuses_a_tar_whose_members_leave_out(tmp_path):
    victim = tmp_path / "victim.wav"
    victim.write_bytes(b"the user's own file")
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "speech_commands_v0.01.tar.gz"
    wav = io.BytesIO()
    sf.write(wav, tone(), RATE, format="WAV")
    with tarfile.open(archive, "w:gz") as bundle:
        for name in ("yes/0a0b0c0d_nohash_0.wav", "../../victim.wav", str(tmp_path / "absolute.wav")):
            member = tarfile.TarInfo(name)
            member.size = len(wav.getvalue())
            bundle.addfile(member, io.BytesIO(wav.getvalue()))
        link = tarfile.TarInfo("yes/link.wav")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../victim.wav"
        bundle.addfile(link)

    err, out = refused_fetch(tmp_path, "speech-commands", archive)

    assert "refusing to extract" in err
    for entry in ("'../../victim.wav'", f"'{tmp_path / 'absolute.wav'}' is an absolute path", "'yes/link.wav'"):
        assert entry in err
    assert not list(out.rglob("*.wav")) and not (out / "meta.csv").exists()  # nothing extracted at all


def test_fetch_checks_an_archive_placed_by_hand(tmp_path):
    victim = tmp_path / "victim.wav"
    victim.write_bytes(b"the user's own file")
    models = tmp_path / "models"
    (models / "datasets").mkdir(parents=True)
    placed = esc_zip(models / "datasets" / "ESC-50-master.zip", ["1-100-A-0.wav", "../../victim.wav"])

    err, _ = refused_fetch(tmp_path, "esc10", env={"TFAUDIO_MODELS": str(models)})

    # Not the known ESC-50 archive: refused by its digest, with the command that uses it anyway
    assert f"sha256 {sha256(placed)}, but esc10's archive has sha256" in err and "not used" in err
    advice = f"--url {placed.resolve().as_uri()} --sha256 {sha256(placed)}"
    assert advice in err
    # ... and taking the advice, its entries are still checked
    code, _, err = cli("datasets", "fetch", "esc10", *advice.split(), "--out", tmp_path / "out", home=tmp_path / "home",
                       env={"TFAUDIO_MODELS": str(models)})
    assert code == 1 and "verified against the digest given with --sha256 (placed by hand)" in err
    assert "names '../../victim.wav'" in err and victim.read_bytes() == b"the user's own file"


# --- datasets: what is left out or doubtful is listed, never dropped silently ----------------


#: Tones 100 Hz apart between labels.
write_tree = functools.partial(write_tree, spacing=100)


def test_info_lists_link_loops_dangling_links_and_links_to_folders(tmp_path):
    data = write_tree(tmp_path / "data")
    (data / "dog" / "loop_a.wav").symlink_to("loop_b.wav")
    (data / "dog" / "loop_b.wav").symlink_to("loop_a.wav")
    (data / "dog" / "gone.wav").symlink_to("never_there.wav")
    (data / "dog" / "more").symlink_to(data / "rain")
    (data / "dog" / "linked.wav").symlink_to(data / "dog" / "dog_0.wav")  # a link to a file is a clip

    code, out, _ = cli("info", data, "--json", home=tmp_path / "home")

    assert code == 0
    facts = json.loads(out)
    ignored = {Path(i["path"]).name: i["reason"] for i in facts["ignored"]}
    assert all(ignored[name].startswith("symbolic link loop") for name in ("loop_a.wav", "loop_b.wav"))
    assert ignored["gone.wav"].startswith("broken symbolic link")
    assert ignored["more"].startswith("symbolic link to a folder (not followed")
    assert facts["clips_per_class"] == {"dog": 4, "rain": 3}  # every real clip still counted
    code, text, _ = cli("info", data, home=tmp_path / "home")
    assert code == 0 and "4 ignored file(s)" in text and "gone.wav: broken symbolic link" in text


def test_duplicated_rows_and_the_same_audio_under_two_labels_are_reported(tmp_path):
    data = write_tree(tmp_path / "data")
    shutil.copy(data / "dog" / "dog_1.wav", data / "rain" / "rain_copy.wav")  # same bytes, other label
    rows = ["filename,label", "dog/dog_0.wav,dog", "dog/dog_1.wav,dog", "rain/rain_0.wav,rain",
            "rain/rain_copy.wav,rain", "dog/dog_0.wav,dog", "rain/rain_0.wav,dog"]
    (data / "meta.csv").write_text("\n".join(rows) + "\n")

    code, out, _ = cli("info", data, "--json", home=tmp_path / "home")

    assert code == 0
    facts = json.loads(out)
    warnings = {(w["path"], w["reason"]) for w in facts["warnings"]}
    assert ("dog/dog_0.wav", "meta.csv line 6 repeats line 2 (same file, label 'dog')") in warnings
    assert ("rain/rain_0.wav",
            "meta.csv line 7 lists the file of line 4 under another label: 'dog', not 'rain'") in warnings
    assert facts["duplicates"] == [{
        "path": str(data / "rain" / "rain_copy.wav"),
        "reason": "same audio as dog/dog_1.wav, which is labelled 'dog', not 'rain'",
    }]
    assert facts["clips"] == 6  # reported, not dropped: the user decides


def test_manifest_rows_outside_the_folder_are_named_and_keep_their_written_form(tmp_path):
    from tfaudio.data.dataset import load_dataset

    data = write_tree(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sf.write(elsewhere / "up.wav", tone(0.5, 900), RATE)
    sf.write(elsewhere / "absolute.wav", tone(0.5, 950), RATE)
    rows = ["filename,label", "dog/dog_0.wav,dog", "rain/rain_0.wav,rain",
            "../elsewhere/up.wav,dog", f"{elsewhere / 'absolute.wav'},rain"]
    (data / "meta.csv").write_text("\n".join(rows) + "\n")

    code, out, _ = cli("info", data, "--json", home=tmp_path / "home")

    assert code == 0
    facts = json.loads(out)
    assert [(w["path"], w["reason"]) for w in facts["warnings"]] == [
        ("../elsewhere/up.wav", "meta.csv line 4 points outside the dataset folder"),
        (str(elsewhere / "absolute.wav"), "meta.csv line 5 points outside the dataset folder"),
    ]
    assert facts["clips"] == 4  # still used: it is the user's own manifest
    assert str(elsewhere / "up.wav") not in out  # never the absolute path of a row written relative
    dataset = load_dataset(data)
    assert [dataset.relative(c) for c in dataset.clips][2:] == ["../elsewhere/up.wav", str(elsewhere / "absolute.wav")]


# --- audio: damaged files are named and counted as unreadable -------------------------------


def test_info_counts_truncated_and_non_finite_files_as_unreadable(tmp_path):
    data = write_tree(tmp_path / "data", per_class=2)
    long = tone(3.0)
    for suffix in (".flac", ".mp3"):
        whole = tmp_path / f"whole{suffix}"
        sf.write(whole, long, RATE)
        (data / "dog" / f"cut{suffix}").write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    nan = long.copy()
    nan[100] = np.nan
    sf.write(data / "rain" / "nan.wav", nan, RATE, subtype="FLOAT")
    huge = np.where(np.arange(len(long)) % 2, 1e30, -1e30).astype(np.float32)
    sf.write(data / "rain" / "huge.wav", huge, RATE, subtype="FLOAT")

    code, out, _ = cli("info", data, "--json", home=tmp_path / "home")

    assert code == 0
    facts = json.loads(out)
    unreadable = {Path(u["path"]).name: u["reason"] for u in facts["unreadable"]}
    assert set(unreadable) == {"cut.flac", "cut.mp3", "nan.wav", "huge.wav"}
    assert "decoding failed" in unreadable["cut.flac"]
    assert unreadable["cut.mp3"].startswith("truncated or corrupt: the header promises 48000 frames")
    assert unreadable["nan.wav"] == "contains non-finite samples (NaN or inf), first at frame 100"
    assert unreadable["huge.wav"].startswith("holds samples of magnitude 1e+30")
    assert facts["clips_per_class"] == {"dog": 2, "rain": 2}  # the good clips, all of them


def test_a_200_byte_mp3_is_called_damaged_not_a_missing_file(tmp_path):
    from tfaudio.data.audio import AudioError, load

    data = write_tree(tmp_path / "data", per_class=2)
    whole = tmp_path / "whole.mp3"
    sf.write(whole, tone(1.0), RATE)
    stub = data / "dog" / "stub.mp3"
    stub.write_bytes(whole.read_bytes()[:200])

    with pytest.raises(AudioError) as caught:
        load(stub)
    assert caught.value.problem == ("damaged or too short to decode as .mp3 (200 bytes): "
                                    "no complete audio frame was found")
    code, out, _ = cli("info", data, home=tmp_path / "home")
    assert code == 0
    assert "stub.mp3: damaged or too short to decode as .mp3 (200 bytes)" in out
    assert "regular file" not in out and "possibly a pipe" not in out


NON_UTF8 = b"bad\xffbyte.wav"


def non_utf8_tree(tmp_path: Path) -> tuple[Path, str]:
    """Two classes of readable clips, one named with a byte that is not UTF-8, plus a broken one."""
    data = write_tree(tmp_path / "data", per_class=4)
    name = os.fsencode(data / "dog") + b"/" + NON_UTF8
    sf.write(name, tone(0.5, 777), RATE)  # as bytes: soundfile cannot encode such a str itself
    Path(os.fsdecode(os.fsencode(data / "rain") + b"/broken\xff.wav")).write_bytes(b"RIFF" + bytes(60))
    return data, os.fsdecode(name)


def test_non_utf8_file_names_in_info_features_and_embed(tmp_path):
    data, _ = non_utf8_tree(tmp_path)
    home = tmp_path / "home"

    code, out, _ = cli("info", data, home=home)
    assert code == 0 and "9 readable in 2 classes" in out
    assert "broken\\xff.wav" in out  # named, its bad byte shown escaped

    code, out, err = cli("features", data, "--out", tmp_path / "f.csv", home=home)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "f.csv")
    assert "dog/bad\\xffbyte.wav" in set(table["file"]) and len(table) == 9
    assert "broken" in err and "the header is not recognised" in err

    code, out, err = cli("embed", data, "--model", "handcrafted", "--out", tmp_path / "emb", home=home)
    assert code == 0, err
    assert len(pd.read_parquet(tmp_path / "emb" / "handcrafted.parquet")) == 9


@pytest.mark.slow
def test_non_utf8_file_names_in_compare(tmp_path):
    data, _ = non_utf8_tree(tmp_path)

    code, out, err = cli("compare", data, "--model", "handcrafted", "--classifier", "logreg", "--folds", "2",
                         "--out", tmp_path / "report", home=tmp_path / "home")

    assert code == 0, err
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert any("broken" in p["path"] for p in metrics["skipped"] + metrics["dataset"]["unreadable"])
    assert (tmp_path / "report" / "index.html").is_file()


def test_a_one_sample_clip_is_embedded_with_a_warning(tmp_path):
    data = write_tree(tmp_path / "data")
    sf.write(data / "dog" / "blip.wav", np.array([0.5], np.float32), RATE)
    home = tmp_path / "home"

    code, out, err = cli("embed", data, "--model", "handcrafted", "--out", tmp_path / "emb", home=home)

    assert code == 0, err
    assert "blip.wav: only 1 sample(s) (0.06 ms) of audio, shorter than one 25 ms analysis window" in err
    assert len(pd.read_parquet(tmp_path / "emb" / "handcrafted.parquet")) == 7  # embedded all the same
    code, out, _ = cli("info", data, "--json", home=home)
    assert [Path(s["path"]).name for s in json.loads(out)["short"]] == ["blip.wav"]


# --- export: a version folder is whole or absent; predict uses the highest complete one -----

EXPORT_SCRIPT = """
import os, signal, sys
import keras
from tfaudio.training import export

model = keras.Sequential([keras.Input((1600,)), keras.layers.Dense(2, activation="softmax")])
metadata = {"class_names": ["high", "low"], "sample_rate": 16000, "num_samples": 1600}
if sys.argv[2] == "kill":  # killed once the SavedModel is on disk, before its metadata
    backend_archive = type(keras.export.ExportArchive())  # ExportArchive() builds a backend subclass
    write_out = backend_archive.write_out

    def write_then_die(self, path, **kwargs):
        write_out(self, path, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    backend_archive.write_out = write_then_die
print(export.export_savedmodel(model, metadata, sys.argv[1]))
"""


def export_in_a_process(model_dir: Path, mode: str = "normal") -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", EXPORT_SCRIPT, str(model_dir), mode],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def exported_once(tmp_path_factory) -> Path:
    """saved_models/tiny/1: a two-class dense classifier over 0.1 s windows."""
    model_dir = tmp_path_factory.mktemp("saved_models") / "tiny"
    done = export_in_a_process(model_dir)
    assert done.returncode == 0, done.stderr
    return model_dir


@pytest.mark.slow
def test_kill_during_export_leaves_no_half_written_version(exported_once, tmp_path):
    model_dir = tmp_path / "tiny"
    shutil.copytree(exported_once, model_dir)
    first = {p.relative_to(model_dir): p.read_bytes() for p in (model_dir / "1").rglob("*") if p.is_file()}

    killed = export_in_a_process(model_dir, "kill")

    assert killed.returncode == -9
    assert sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".")) == ["1"]  # no 2/
    assert {p.relative_to(model_dir): p.read_bytes() for p in (model_dir / "1").rglob("*") if p.is_file()} == first
    sf.write(tmp_path / "clip.wav", tone(0.5), RATE)
    code, out, err = cli("predict", model_dir, tmp_path / "clip.wav", "--json", home=tmp_path / "home")
    assert code == 0, err
    assert set(json.loads(out)["probabilities"]) == {"high", "low"}
    again = export_in_a_process(model_dir)  # the next export takes the number the killed one never got
    assert again.returncode == 0 and again.stdout.strip().endswith(str(model_dir / "2"))


@pytest.mark.slow
def test_predict_passes_over_an_incomplete_version(exported_once, tmp_path):
    model_dir = tmp_path / "tiny"
    shutil.copytree(exported_once, model_dir)
    shutil.copytree(model_dir / "1", model_dir / "2")  # what an older tfaudio left when killed
    (model_dir / "2" / "assets" / "tfaudio.json").unlink()
    sf.write(tmp_path / "clip.wav", tone(0.5), RATE)

    code, out, err = cli("predict", model_dir, tmp_path / "clip.wav", "--json", home=tmp_path / "home")

    assert code == 0, err
    assert f"{model_dir / '2'}: incomplete export (no assets/tfaudio.json; interrupted?)" in err
    assert f"using {model_dir / '1'}" in err
    assert set(json.loads(out)["probabilities"]) == {"high", "low"}
    (model_dir / "1" / "assets" / "tfaudio.json").unlink()  # nothing complete left: a clear error
    code, _, err = cli("predict", model_dir, tmp_path / "clip.wav", home=tmp_path / "home")
    assert code == 1 and "no saved_model.pb in it nor a complete numbered version folder" in err
    assert "1/ lacks assets/tfaudio.json; 2/ lacks assets/tfaudio.json" in err


def test_an_unwritable_export_folder_is_refused_before_any_work(tmp_path):
    from tfaudio.training.export import ExportError, ensure_writable

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ExportError, match="a part of this path is a file, not a folder"):
        ensure_writable(tmp_path / "file" / "sub")
    with pytest.raises(ExportError, match="exists and is not a folder"):
        ensure_writable(tmp_path / "file")
    if os.geteuid() != 0:
        pytest.skip("a read-only folder needs a read-only tmpfs, which only root can mount")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(readonly)]).returncode:
        pytest.skip("mounting a tmpfs failed here")
    try:
        with pytest.raises(ExportError, match="Read-only file system"):
            ensure_writable(readonly / "saved_models")
    finally:
        subprocess.run(["umount", str(readonly)], check=True)
