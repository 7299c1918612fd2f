"""The failure catalog, second part (issue 21): option values checked when the command line is
read, outputs and stores checked before the work, full disks, concurrent runs into one folder,
archive bombs, digests said every time, and names that are not UTF-8 in pages.

Each finding that came from a command runs the installed console script (`.venv/bin/tfaudio`)
in its own process, offline with its own TFAUDIO_HOME. Full disks are small tmpfs mounts; where
mounting is not permitted (not root, a container without the capability) those tests skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import sine
from helpers import Finished, cli, run_process

CLI = shlex.split(os.environ.get("TFAUDIO_CLI", "")) or [str(Path(sys.executable).parent / "tfaudio")]
RATE = 16000


@pytest.fixture
def env(tmp_path) -> dict:
    """A user's environment: offline, no weights or data of ours, its own TFAUDIO_HOME, a strict
    UTF-8 stdout (as under any UTF-8 locale but C.UTF-8)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TFAUDIO_MODELS", "TFAUDIO_DATA", "KERAS_HOME", "TFAUDIO_STORE")}
    environment.update(TFAUDIO_HOME=str(tmp_path / "home"), TFAUDIO_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3",
                       LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8:strict")
    return environment


def tfaudio(*args, env: dict, cwd: Path, **options) -> Finished:
    return run_process([*CLI, *(os.fsdecode(a) for a in args)], env=env, cwd=cwd, **options)


def clips(root: Path, classes=("low", "high"), per_class: int = 2, seconds: float = 1.0) -> Path:
    """Class folders of short tones, a different pitch per class."""
    for number, name in enumerate(classes):
        folder = root / os.fsdecode(name)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            with open(folder / f"{i}.wav", "wb") as handle:  # soundfile cannot encode a name that is not UTF-8
                sf.write(handle, sine(220.0 * (number + 1) + 7 * i, seconds, 0.3, RATE), RATE, format="WAV")
    return root


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m", options: str = ""):
    """A small file system mounted at `path` for the block (skips the test where mounting is not
    permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root and CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill `disk` up to `leave` free bytes."""
    stats = os.statvfs(disk)
    (disk / "filler").write_bytes(bytes(max(stats.f_bavail * stats.f_frsize - leave, 0)))


def usage_error(result: Finished, option: str) -> str:
    """The error line of a usage error (exit 2) that names `option`."""
    result.check(2)
    line = result.last_line()
    assert line.startswith("Error: Invalid value for") and f"'{option}'" in line, result.describe()
    return line


# --- 1. numbers refused when the command line is read ---------------------------------------------


#: Each weak value the catalog found accepted (exit 0) or answered by a traceback or by
#: another library's message, and the option the error must name.
WEAK = {
    "embed --batch-size 0": (["embed", "DATA", "--model", "handcrafted", "--out", "o", "--batch-size", "0"],
                             "--batch-size"),
    "embed --window-seconds 0": (["embed", "DATA", "--model", "handcrafted", "--out", "o", "--window-seconds", "0"],
                                 "--window-seconds"),
    "embed --batch-seconds 0": (["embed", "DATA", "--model", "handcrafted", "--out", "o", "--batch-seconds", "0"],
                                "--batch-seconds"),
    "embed --max-duration 0": (["embed", "DATA", "--model", "handcrafted", "--out", "o", "--max-duration", "0"],
                               "--max-duration"),
    "train --lr -1": (["train", "DATA", "--lr", "-1"], "--lr"),
    "tag --top 0": (["tag", "x.wav", "--top", "0"], "--top"),
    "store gc --unused-days -1": (["store", "gc", "--unused-days", "-1"], "--unused-days"),
    "compare --folds 0": (["compare", "DATA", "--folds", "0", "--out", "r"], "--folds"),
    "datasets synth --duration -1": (["datasets", "synth", "s", "--duration", "-1"], "--duration"),
}


@pytest.mark.parametrize("case", list(WEAK))
def test_a_number_out_of_range_is_a_usage_error_before_any_work(tmp_path, env, case):
    args, option = WEAK[case]
    (tmp_path / "DATA").mkdir()
    result = tfaudio(*args, env=env, cwd=tmp_path, timeout=60)
    line = usage_error(result, option)
    assert "not in the range" in line
    assert result.seconds < 5, f"{case}: {result.seconds:.1f} s: checked after heavy imports?"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DATA"]  # nothing written, the store untouched


def test_every_numeric_option_has_a_validated_type():
    """Every option taking an int or a float states its range (cli/common.py), so the next
    option added gets one too."""
    import click

    from tfaudio.cli.main import main

    def commands(group, path=()):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command, (*path, name))
            else:
                yield " ".join((*path, name)), command

    bare = [f"{name} {param.opts[0]}" for name, command in commands(main) for param in command.params
            if isinstance(param, click.Option) and type(param.type) in (click.types.IntParamType,
                                                                       click.types.FloatParamType)
            and param.opts[0] not in ("--val-fold", "--fold")]  # fold numbers: any the manifest uses
    assert not bare, f"numeric options without a range: {bare}"


# --- 2. tracebacks that are now one line --------------------------------------------------------


def test_a_tiny_synthetic_duration_is_one_line(tmp_path, env):
    result = tfaudio("datasets", "synth", "s", "--duration", "0.0001", env=env, cwd=tmp_path, timeout=60).check(1)
    assert result.last_line() == "Error: a synthetic clip must last at least 0.01 s, got 0.0001 s"
    assert not (tmp_path / "s").exists()


def test_a_store_that_cannot_be_written_is_refused_before_work(tmp_path, env):
    data = clips(tmp_path / "data")
    (tmp_path / "afile").write_text("not a folder")
    through_file = tfaudio("embed", data, "--model", "handcrafted", "--out", "o", "--store", "afile/sub",
                           env=env, cwd=tmp_path, timeout=60).check(1)
    assert through_file.last_line() == "Error: afile/sub: a part of this path is a file, not a folder (afile)"
    with tmpfs(tmp_path / "readonly", options=",ro") as readonly:
        refused = tfaudio("embed", data, "--model", "handcrafted", "--out", "o", "--store", readonly / "store",
                          env=env, cwd=tmp_path, timeout=60).check(1)
    assert refused.last_line() == f"Error: {readonly / 'store'}: cannot write there (Read-only file system)"
    assert not (tmp_path / "o").exists()
    assert through_file.seconds + refused.seconds < 8  # refused before TensorFlow is imported


def test_an_output_name_too_long_for_the_file_system_is_refused_before_work(tmp_path, env):
    data = clips(tmp_path / "data")
    name = "x" * 240 + ".csv"  # fits (255 bytes), but not under its temporary name
    result = tfaudio("features", data, "--out", name, env=env, cwd=tmp_path, timeout=60).check(1)
    line = result.last_line()
    assert "is 244 bytes long; at most 237 fit here" in line and "choose a shorter name" in line
    assert result.seconds < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


NON_UTF8_CLASS = b"noi\xfese"


def test_visualize_shows_a_class_named_in_bytes_that_are_not_utf8(tmp_path, env, monkeypatch):
    """In this process (click's runner), to keep the catalog's time: the traceback came from the
    page and the output's digest, not from the console entry."""
    data = clips(tmp_path / "data", classes=(b"tone", NON_UTF8_CLASS), per_class=5, seconds=0.5)
    for name in ("TFAUDIO_HOME", "TFAUDIO_OFFLINE"):
        monkeypatch.setenv(name, env[name])
    page = tmp_path / "page.html"
    result = cli("visualize", data, "--model", "handcrafted", "--out", page, "--thumbnail-seconds", "0.5",
                 "--audio-rate", "8000")
    assert result.exit_code == 0, result.output
    text = page.read_bytes().decode("utf-8")  # strict: no surrogate escaped in
    assert "noi\\\\xfese" in text and "\\udcfe" not in text  # the printable form, JSON-escaped
    assert "(10 clips, 2 classes" in result.output


# --- 3. full disks --------------------------------------------------------------------------------


def test_embed_on_a_full_disk_says_which_one_and_what_was_kept(tmp_path, env, monkeypatch):
    data = clips(tmp_path / "data")
    with tmpfs(tmp_path / "disk") as disk:
        fill(disk, leave=4096)
        store_full = tfaudio("embed", data, "--model", "handcrafted", "--out", "o", "--store", disk / "store",
                             env=env, cwd=tmp_path, timeout=120).check(1)
        # the same with --out on the full disk, in this process (the catalog's time)
        for name in ("TFAUDIO_HOME", "TFAUDIO_OFFLINE"):
            monkeypatch.setenv(name, env[name])
        out_full = cli("embed", data, "--model", "handcrafted", "--out", disk / "out", "--store", tmp_path / "store")
        left = sorted(p.name for p in disk.iterdir())
    line = store_full.last_line()
    assert line.startswith(f"Error: no space left on the disk holding the embedding store {disk / 'store'} ("), line
    assert "4 of 4 clips (handcrafted) were embedded" in line and "a rerun computes only the rest" in line
    assert out_full.exit_code == 1 and "Traceback" not in out_full.output
    line = out_full.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: no space left on the disk holding --out {disk / 'out'} ("), line
    assert "are kept in the embedding store, so a rerun only writes the output" in line
    assert (tmp_path / "store").is_dir() and "out" not in left  # vectors kept; no empty or partial output


def test_train_refuses_before_training_when_the_export_will_not_fit(tmp_path, env):
    data = clips(tmp_path / "data", per_class=5)
    with tmpfs(tmp_path / "disk") as disk:
        result = tfaudio("train", data, "--backbone", "small_cnn", "--epochs", "1", "--fine-tune-epochs", "0",
                         "--out", disk / "model", "--logdir", "runs", env=env, cwd=tmp_path, timeout=120).check(1)
    line = result.last_line()
    assert line.startswith(f"Error: not enough room: the export in {disk / 'model'} about "), line
    assert "parameters), but only 1.0 MB is free there" in line
    assert "epoch" not in result.stderr  # refused before training


def test_an_export_that_fills_the_disk_says_where_the_weights_are(tmp_path, monkeypatch):
    """The export fails with TensorFlow's own error (not an OSError) when the disk fills during
    it; the run's checkpoints survive, also without --logdir, and the message names them."""
    from types import SimpleNamespace

    from tfaudio.training import export, loop
    from tfaudio.training.config import TrainingError

    def full(*args, **kwargs):
        raise RuntimeError("{{function_node SaveV2}} part-00000: No space left on device [Op:SaveV2]")

    monkeypatch.setattr(export, "export_savedmodel", full)
    scratch = tmp_path / "tfaudio-train-x"
    (scratch / "checkpoints").mkdir(parents=True)
    (scratch / "checkpoints" / "phase1_best.weights.h5").write_bytes(b"weights")
    result = SimpleNamespace(logdir=None, classifier=None, metadata=dict)
    with pytest.raises(TrainingError) as caught:
        loop._keep_outputs(result, scratch, tmp_path / "model", tflite=False)
    message = str(caught.value)
    assert "no space left on its disk" in message and "the model was not exported" in message
    assert f"kept in {scratch / 'checkpoints'} (phase1_best.weights.h5)" in message
    assert (scratch / "checkpoints" / "phase1_best.weights.h5").exists()


# --- 4. two runs into one --out -------------------------------------------------------------------


def locked(folder: Path) -> bool:
    """Whether another process holds the lock of `folder`."""
    if not folder.is_dir():
        return False
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(handle)


def test_a_second_embed_into_the_same_out_is_refused_naming_the_first(tmp_path, env):
    data = clips(tmp_path / "data", per_class=3)
    first = subprocess.Popen([*CLI, "embed", str(data), "--model", "handcrafted", "--out", "o"], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not locked(tmp_path / "o") and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, "the first run ended before the second could start"
        second = tfaudio("embed", data, "--model", "handcrafted", "--out", "o", env=env, cwd=tmp_path, timeout=60)
    finally:
        out, err = first.communicate(timeout=120)
    second.check(1)
    assert f"Error: o: pid {first.pid} (" in second.last_line() and "embed" in second.last_line()
    assert "is writing there now; wait for it to end or choose another folder" in second.last_line()
    assert first.returncode == 0, err.decode(errors="replace")
    assert b"6 clips -> o/handcrafted.parquet" in out


# --- 5. archives: bombs and digests -------------------------------------------------------------


def online(env: dict) -> dict:
    """`env` allowed to download (here from file:// URLs only)."""
    return {k: v for k, v in env.items() if k not in ("TFAUDIO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}


def esc_archive(path: Path, members: dict[str, bytes]) -> Path:
    """An ESC-50-shaped zip (deflated) holding `members` as ESC-10 clips."""
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for i, (name, payload) in enumerate(members.items()):
            bundle.writestr(f"ESC-50-master/audio/{name}", payload)
            lines.append(f"{name},{i % 5 + 1},0,dog,True,{100 + i},A")
        bundle.writestr("ESC-50-master/meta/esc50.csv", "\n".join(lines) + "\n")
    return path


def test_fetch_refuses_a_zip_bomb_before_extracting(tmp_path, env):
    bomb = esc_archive(tmp_path / "bomb.zip", {f"1-{i}-A-0.wav": bytes(4 << 20) for i in range(3)})  # 12 MB in ~12 kB
    result = tfaudio("datasets", "fetch", "esc10", "--url", bomb.as_uri(), "--out", "esc", env=online(env),
                     cwd=tmp_path, timeout=60).check(1)
    line = result.last_line()
    assert "refusing to extract it: its 3 file(s) would expand to 12.0 MB" in line and "decompression bomb" in line
    # a mirror without --sha256 is used, but never without a word
    assert "NOT verified: no digest was given for" in result.stderr
    assert not list((tmp_path / "esc").rglob("*.wav"))


def test_fetch_says_how_much_room_an_archive_needs(tmp_path, env):
    rng = np.random.default_rng(0)
    archive = esc_archive(tmp_path / "mirror.zip", {f"1-{i}-A-0.wav": rng.bytes(700_000) for i in range(2)})
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with tmpfs(tmp_path / "disk") as disk:
        result = tfaudio("datasets", "fetch", "esc10", "--url", archive.as_uri(), "--sha256", digest, "--out",
                         disk / "esc", env=online(env), cwd=tmp_path, timeout=60).check(1)
        extracted = list(disk.rglob("*.wav"))
    assert f"sha256 {digest}, verified against the digest given with --sha256" in result.stderr
    line = result.last_line()
    assert "not extracted: its 2 file(s) need 2.3 MB" in line and "but only 1.0 MB is free there" in line, line
    assert not extracted


def test_fetch_refuses_a_tar_bomb_before_extracting(tmp_path, env):
    import io
    import tarfile

    bomb = tmp_path / "speech_commands_v0.01.tar.gz"
    with tarfile.open(bomb, "w:gz") as bundle:
        member = tarfile.TarInfo("yes/0a0b0c0d_nohash_0.wav")
        member.size = 8 << 20  # 8 MB of zeros in ~8 kB
        bundle.addfile(member, io.BytesIO(bytes(member.size)))
    result = tfaudio("datasets", "fetch", "speech-commands", "--url", bomb.as_uri(), "--out", "sc", env=online(env),
                     cwd=tmp_path, timeout=60).check(1)
    assert "refusing to extract it: its 1 file(s) would expand to 8.0 MB" in result.last_line()
    assert not list((tmp_path / "sc").rglob("*.wav"))
