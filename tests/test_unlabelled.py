"""Archives as they come: the commands that need no labels (`info`, `features`, `embed`, `tag`)
take a flat folder of recordings, a nested tree, a list of files and a list on standard input,
with one discovery rule for all (and for Beam's listing); files that cannot be clips (a pipe, a
missing manifest row) are named, never opened; the commands that need labels refuse unlabelled
recordings in one line that says what they found and what they expect.

Most runs are in this process (click's runner); the two findings that came from the installed
command (`embed` on a flat folder, `embed` on a manifest naming a pipe, which hung) run it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import sine
from helpers import run_process

from tfaudio.cli.main import main
from tfaudio.data.dataset import DatasetError, load_dataset

BIN = Path(sys.executable).parent
#: Each layout as DATA: the argument and the (file, label) rows it gives, in order.
FLAT = [("a.wav", None), ("b.flac", None), ("c.wav", None)]
NESTED = [("b.wav", None), ("site1/c.wav", None), ("site1/day2/a.flac", None)]
LISTED = [("flat/c.wav", None), ("nested/site1/day2/a.flac", None), ("flat/c.wav", None)]  # a repeat is kept


def write(path: Path, freq: float, seconds: float = 0.5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sine(freq, seconds, 0.3), 16000)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """flat/ (3 recordings, a note, a pipe), nested/ (at three depths), classes/ (a class-folder
    tree), files.txt (two of them, a missing one, the pipe, a repeat), meta.csv without labels
    (one recording, the pipe, a missing one)."""
    root = tmp_path_factory.mktemp("unlabelled")
    for i, name in enumerate(("flat/a.wav", "flat/b.flac", "flat/c.wav", "nested/b.wav", "nested/site1/c.wav",
                              "nested/site1/day2/a.flac", "classes/dog/d.wav", "classes/rain/r.wav")):
        write(root / name, 300 + 90 * i)
    (root / "flat" / "notes.txt").write_text("recorded on the roof\n")
    os.mkfifo(root / "flat" / "pipe.wav")
    (root / "files.txt").write_text("flat/c.wav\n# a comment\n\nnested/site1/day2/a.flac\ngone.wav\nflat/pipe.wav\n"
                                    "flat/c.wav\n")
    (root / "meta.csv").write_text("filename,fold\nflat/a.wav,1\nflat/pipe.wav,1\ngone.wav,2\n")
    return root


@pytest.fixture
def offline(tmp_path, monkeypatch, root):
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    monkeypatch.chdir(root)
    return tmp_path


def invoke(*args, stdin: str | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin)


def stdin_list(root: Path) -> str:
    """LISTED as standard input gives it: names relative to the current folder (`root`)."""
    return "".join(f"{name}\n" for name, _ in LISTED)


LAYOUTS = {"flat": ("flat", None, FLAT), "nested": ("nested", None, NESTED), "list": ("files.txt", None, LISTED),
           "stdin": ("-", "stdin", LISTED)}


def rows(table: pd.DataFrame) -> list[tuple[str, str | None]]:
    return [(file, None if pd.isna(label) else label) for file, label in zip(table["file"], table["label"])]


# ------------------------------------------------------------------------------- one discovery rule


def test_every_layout_loads_without_inventing_classes(root, monkeypatch):
    monkeypatch.chdir(root)
    for data, expected in (("flat", FLAT), ("nested", NESTED), ("files.txt", LISTED), ("flat/b.flac", [("b.flac", None)])):
        dataset = load_dataset(root / data, labelled=False)
        assert [(dataset.relative(c), c.label) for c in dataset.clips] == expected, data
        assert dataset.classes == ()
    # A class-folder tree keeps its folder labels; a manifest without labels loads, unlabelled.
    classes = load_dataset(root / "classes", labelled=False)
    assert [(classes.relative(c), c.label) for c in classes.clips] == [("dog/d.wav", "dog"), ("rain/r.wav", "rain")]
    manifest = load_dataset(root / "meta.csv", labelled=False)
    assert [(manifest.relative(c), c.label, c.fold) for c in manifest.clips] == [("flat/a.wav", None, 1)]
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(stdin_list(root)))
    from_stdin = load_dataset("-", labelled=False)
    assert [(from_stdin.relative(c), c.label) for c in from_stdin.clips] == LISTED


def test_pipes_links_and_missing_files_are_named_and_never_opened(root):
    """A pipe is listed (opening it would wait for a writer forever), as is a missing row or
    line; a repeated list line is a warning."""
    flat = load_dataset(root / "flat", labelled=False)
    assert {(Path(p.path).name, p.reason) for p in flat.ignored} == {
        ("pipe.wav", "not a regular file (a pipe, socket or device)"), ("notes.txt", "unknown audio extension '.txt'")}
    listed = load_dataset(root / "files.txt", labelled=False)
    assert [p.reason for p in listed.ignored] == [
        "listed in files.txt (line 5) but not found",
        "listed in files.txt (line 6): not a regular file (a pipe, socket or device)"]
    assert [p.reason for p in listed.warnings] == ["files.txt line 7 repeats line 1 (the same file)"]
    manifest = load_dataset(root / "meta.csv", labelled=False)
    assert [(Path(p.path).name, p.reason) for p in manifest.ignored] == [
        ("pipe.wav", "listed in meta.csv (line 3): not a regular file (a pipe, socket or device)"),
        ("gone.wav", "listed in meta.csv (line 4) but not found")]


def test_beam_lists_the_clips_of_the_local_runner(root):
    """Beam's listing (for local DATA, and for a tree on a Beam filesystem, here the local one)
    gives the local runner's clips, in its order, and leaves out the same files."""
    from tfaudio.pipeline.sources import _remote_folders, list_clips

    for data in ("flat", "nested", "classes", "files.txt"):
        local = load_dataset(root / data, labelled=False)
        clips, ignored = list_clips(root / data)
        assert [(c.file, c.label) for c in clips] == [(local.relative(c), c.label) for c in local.clips], data
        assert ignored == list(local.ignored)
        if data in ("nested", "classes"):  # object stores hold no pipes: the trees without one
            remote, _ = _remote_folders(str(root / data))
            assert [(c.file, c.label) for c in remote] == [(c.file, c.label) for c in clips], data


@pytest.mark.parametrize("command", ["compare", "train", "visualize", "projector", "autoencoder train"])
def test_labelled_commands_refuse_unlabelled_recordings_in_one_line(command, root, offline):
    extra = {"compare": ["--model", "handcrafted", "--out", offline / "r"], "train": ["--out", offline / "m"],
             "visualize": ["--model", "handcrafted", "--out", offline / "v.html"],
             "projector": ["--model", "handcrafted", "--out", offline / "p"],
             "autoencoder train": ["--out", offline / "ae"]}[command]
    flat = invoke(*command.split(), root / "flat", *extra)
    assert flat.exit_code == 1, flat.output
    assert flat.output.strip().splitlines()[-1] == (
        f"Error: {root / 'flat'}: 3 audio file(s) but no class sub-folders, and this command needs labelled clips. "
        "Expected one sub-folder per class holding .aif, .aiff, .au, .flac, .mp3, .oga, .ogg, .opus, .wav, .wave "
        "files, or a CSV manifest filename,label[,fold][,group] (embed, tag, features and info also take "
        "unlabelled recordings)")
    listed = invoke(*command.split(), root / "files.txt", *extra)
    assert listed.exit_code == 1 and "files.txt: a list of files carries no labels" in listed.output
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['label'\]"):
        load_dataset(root / "meta.csv")


# ----------------------------------------------------------------------------- the commands


@pytest.mark.parametrize("layout", LAYOUTS)
def test_embed_features_and_info_take_any_layout(layout, root, offline):
    data, stdin, expected = LAYOUTS[layout]
    given = stdin_list(root) if stdin else None
    embedded = invoke("embed", data, "--model", "handcrafted", "--out", offline / "emb", stdin=given)
    assert embedded.exit_code == 0, embedded.output
    assert f"handcrafted: {len(expected)} clips -> " in embedded.output
    table = pd.read_parquet(offline / "emb" / "handcrafted.parquet")
    assert rows(table) == expected and table.filter(regex=r"^e\d{4}$").shape[1] == 104

    features = invoke("features", data, "--out", offline / "f.csv", stdin=given)
    assert features.exit_code == 0, features.output
    assert rows(pd.read_csv(offline / "f.csv")) == expected

    info = invoke("info", data, stdin=given)
    assert info.exit_code == 0, info.output
    assert f"clips      {len(expected)} readable (unlabelled)" in info.output
    if layout == "flat":
        assert "pipe.wav: not a regular file (a pipe, socket or device)" in info.output
        assert "ignored flat/pipe.wav" not in embedded.output  # named under its full path, on stderr
        assert f"ignored {root / 'flat' / 'pipe.wav'}: not a regular file" in embedded.output


def test_tag_takes_folders_lists_and_stdin_and_goes_on_past_a_bad_file(root, offline, monkeypatch, tmp_path):
    from conftest import shared_path

    monkeypatch.setenv("TFAUDIO_MODELS", str(shared_path("models", "yamnet", "yamnet.h5").parents[1]))
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    result = invoke("tag", tmp_path / "bad.wav", "flat", "files.txt", "-", "nested/site1", tmp_path / "nowhere.wav",
                    "flat/pipe.wav", "--top", "1", stdin="flat/a.wav\n")
    assert result.exit_code == 1
    tagged = [line.split("  (")[0] for line in result.output.splitlines() if line.endswith(" s)")]
    assert tagged == ["flat/a.wav", "flat/b.flac", "flat/c.wav", "flat/c.wav", "nested/site1/day2/a.flac", "flat/c.wav",
                      "flat/a.wav", "nested/site1/c.wav", "nested/site1/day2/a.flac"]
    assert sum(line.startswith("  overall") for line in result.output.splitlines()) == len(tagged)
    assert f"skipped {tmp_path / 'nowhere.wav'}: not found" in result.output
    assert "skipped flat/pipe.wav: not a regular file (a pipe, socket or device)" in result.output  # never opened
    assert f"skipped {tmp_path / 'bad.wav'}: " in result.output
    assert "listed in files.txt (line 6): not a regular file" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: 3 of 12 file(s) could not be tagged: ")


# ------------------------------------------------------------------------- the installed command


def tfaudio(*args, cwd: Path, home: Path):
    env = {**os.environ, "TFAUDIO_HOME": str(home), "TFAUDIO_OFFLINE": "1"}
    return run_process([str(BIN / "tfaudio"), *map(str, args)], env=env, cwd=cwd, timeout=120)


def test_the_command_embeds_a_flat_folder_and_names_its_pipe(root, tmp_path):
    """The README's archive example on a flat folder (it said "Expected one sub-folder per
    class"); the pipe beside the recordings is named, not opened."""
    run = tfaudio("embed", "flat/", "--model", "handcrafted", "--out", tmp_path / "out", cwd=root, home=tmp_path).check()
    assert f"handcrafted: 3 clips -> {tmp_path / 'out' / 'handcrafted.parquet'}" in run.stdout
    assert f"ignored {root / 'flat' / 'pipe.wav'}: not a regular file (a pipe, socket or device)" in run.stderr
    assert rows(pd.read_parquet(tmp_path / "out" / "handcrafted.parquet")) == FLAT


def test_the_command_on_a_manifest_naming_a_pipe_ends_and_names_it(root, tmp_path):
    """It hung forever, reading the pipe; a missing row was dropped without a word."""
    run = tfaudio("embed", "meta.csv", "--model", "handcrafted", "--out", tmp_path / "out", cwd=root,
                  home=tmp_path).check()
    assert "handcrafted: 1 clips -> " in run.stdout
    assert "ignored flat/pipe.wav: listed in meta.csv (line 3): not a regular file (a pipe, socket or device)" in run.stderr
    assert "ignored gone.wav: listed in meta.csv (line 4) but not found" in run.stderr
