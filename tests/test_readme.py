"""The README as a newcomer meets it: short, opening with the two set-up commands, its links to
docs/ resolving, and every command line of its walkthrough run as the user runs it.

The walkthrough is the ```bash blocks that follow a `<!-- walkthrough -->` line. Each line of
such a block is run, in order, in one folder, with the installed programs (the `tfaudio`
console script and the `python` of this environment; `saved_model_cli` beside them):

* `. .venv/bin/activate` is what puts those programs first on PATH: the test does that itself;
* `export NAME=VALUE ...` sets variables for the lines after it, and `NAME=VALUE command` for
  that command alone, as a shell does;
* a comment line `#   → PATH PATH ...` after a command names the outputs the README says it
  writes (relative to the folder the commands run in): each must exist once it has run.

To save time, commands that read nothing an earlier one writes run two at a time (see
`run_walkthrough`); each command's test checks its exit status, that no traceback appeared, that
it exited within seconds of its last output with no worker left behind (helpers.Finished.check),
and its outputs.

Substitution: the README's data and weights are `../shared/...`, the folder beside the
checkout. The commands run verbatim in `<tmp>/main`, beside a stand-in `<tmp>/shared` in which

* `datasets/esc10` is generated two-second clips under the file names, labels and folds of the
  25 ESC-10 clips that `scripts/wav2vec2_projection.py` lists (5 classes, fold = the name's
  first digit) and of any other ESC-10 clip a walkthrough command names (for `predict`), with a
  `meta.csv` as ESC-10's;
* `datasets/speech_commands` is 12 generated words (`<word>_<speaker>_nohash_0.flac`, 4
  speakers) under `audio/commands/` and 12 cuts of generated noise under `audio/noise/`, with a
  `meta.csv` (label `speech` / `noise`, speaker-disjoint folds) as the real one's;
* `models` links the real `../shared/models` (YAMNet, MobileNetV2), so the networks are the
  real ones. A command that needs weights missing there is skipped with the reason, and so is
  every later command that reads what a skipped (or failed, or deselected) one would have
  written.

Wav2Vec2 (`hf:` names and the default model of `scripts/wav2vec2_projection.py`) is served
offline from a Hugging Face cache in `<tmp>/hf` holding a tiny random Wav2Vec2 under each hub id
the walkthrough names, in the hub's layout: real Wav2Vec2 weights need the hub. The runs are
offline (`TFAUDIO_OFFLINE=1`, `HF_HUB_OFFLINE=1`) with a fresh `TFAUDIO_HOME`. The epochs are
the README's own (the README keeps them small); the data is what makes the runs fast.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, SHARED
from helpers import Finished, run_process

README = REPO / "README.md"
DOCS = REPO / "docs"
MARK = "<!-- walkthrough -->"
BIN = Path(sys.executable).parent
#: The programs a walkthrough line may start with, and what runs for each.
PROGRAMS = {"tfaudio": BIN / "tfaudio", "python": Path(sys.executable), "saved_model_cli": BIN / "saved_model_cli"}
MAX_LINES = 250
#: One command's limit; its exit within seconds of its last output is checked too (helpers).
COMMAND_TIMEOUT = 300
SR = 16000
HF_REVISION = "0123456789abcdef0123456789abcdef01234567"
#: Walkthrough commands run at a time (see run_walkthrough).
PARALLEL = 2


# ------------------------------------------------------------------------------ reading the README


@dataclass
class Command:
    """One walkthrough line: `argv` run with `env` added; `outputs` that must exist after it."""

    step: str
    line: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


def logical_lines(block: list[str]) -> list[str]:
    """A bash block's lines with backslash continuations joined."""
    lines, pending = [], ""
    for raw in block:
        text = f"{pending} {raw.strip()}" if pending else raw.strip()
        if text.endswith("\\"):
            pending = text[:-1].rstrip()
            continue
        lines.append(text)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def walkthrough(text: str) -> list[Command]:
    """Every command of the blocks marked `<!-- walkthrough -->`, in order; `export` lines
    become the environment of the commands after them."""
    lines = text.splitlines()
    commands: list[Command] = []
    exported: dict[str, str] = {}
    step, fenced, i = "", False, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            step = line.lstrip("#").strip()
        elif not fenced and line.strip() == MARK:
            assert lines[i + 1].startswith("```bash"), f"README line {i + 2}: {MARK} must precede a ```bash block"
            end = lines.index("```", i + 2)
            for entry in logical_lines(lines[i + 2:end]):
                outputs = re.fullmatch(r"#\s*→\s*(.*)", entry)
                if outputs:
                    assert commands, f"{entry!r} follows no command"
                    commands[-1].outputs += outputs.group(1).split()
                    continue
                if not entry or entry.startswith("#"):
                    continue
                words = shlex.split(entry, comments=True)
                if words[0] in (".", "source"):  # activating the environment: PATH, below
                    continue
                if words[0] == "export":
                    exported.update(word.split("=", 1) for word in words[1:])
                    continue
                own = {}
                while re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    name, value = words.pop(0).split("=", 1)
                    own[name] = value
                commands.append(Command(step, entry, words, {**exported, **own}))
            i = end
        i += 1
    return commands


TEXT = README.read_text()
COMMANDS = walkthrough(TEXT)


# ----------------------------------------------------------------------------------- the README


def test_readme_is_short():
    lines = TEXT.count("\n")
    assert lines < MAX_LINES, f"README.md has {lines} lines; reference material belongs in docs/"


def test_readme_starts_with_the_two_setup_commands():
    head, fence, rest = TEXT.partition("```bash\n")
    assert fence, "README.md has no ```bash block"
    assert [line for line in head.splitlines() if line.strip()][:1] == ["# tfaudio"], head
    assert len([line for line in head.splitlines() if line.strip()]) <= 3, f"too much before the set-up:\n{head}"
    block = rest.split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]
    assert commands == ["make demo", "make test"], block


def markdown_links(path: Path) -> list[str]:
    """Targets of [text](target) links outside code blocks and code spans."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    found = set()
    for line in re.sub(r"```.*?```", "", path.read_text(), flags=re.S).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_resolve(page):
    """Every relative link of the README and of docs/ names a file that exists, and a heading
    of it where it names an anchor."""
    broken = []
    for target in markdown_links(page):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert not broken, f"{page.name}: links that resolve to nothing: {broken}"


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in markdown_links(README)}
    missing = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_every_option_is_in_the_cli_reference():
    """docs/cli.md names every command and every option `--help` shows."""
    import click

    from tfaudio.cli.main import main

    reference = (DOCS / "cli.md").read_text()
    missing = []

    def visit(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                if not sub.hidden:
                    visit(sub, f"{path} {name}".strip())
            return
        if f"tfaudio {path}" not in reference:
            missing.append(f"tfaudio {path}")
        for parameter in command.params:
            if isinstance(parameter, click.Option) and not parameter.hidden:
                for option in parameter.opts:
                    named = re.search(rf"{re.escape(option)}\b", reference)
                    if option.startswith("--") and option != "--help" and not named:
                        missing.append(f"tfaudio {path} {option}")

    visit(main, "")
    assert not missing, f"docs/cli.md does not mention: {missing}"


def test_the_walkthrough_covers_the_course_module():
    """Both demos, the exercise, the autoencoder, transfer learning, the projector and serving."""
    lines = [" ".join(c.argv) for c in COMMANDS]
    for needed in ("scripts/wav2vec2_projection.py", "scripts/finetune_commands_vs_noise.py",
                   "scripts/deep_feature_comparison.py", "tfaudio visualize", "--backbone mobilenet_v2",
                   "tfaudio compare", "tfaudio autoencoder train", "--model autoencoder", "tfaudio train",
                   "tfaudio projector", "tfaudio predict", "saved_model_cli run"):
        assert any(needed in line for line in lines), f"no walkthrough command has {needed!r}"
    for command in COMMANDS:
        assert command.argv[0] in PROGRAMS, f"{command.line!r}: the walkthrough runs only {sorted(PROGRAMS)}"


# ------------------------------------------------------------------------------- the stand-in data


def tone(f0: float, seconds: float, rng: np.random.Generator, harmonics: int = 4) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * f0 * k * t * (1 + 0.05 * t)) / k for k in range(1, harmonics + 1))
    return 0.3 * wave * np.hanning(t.size) + 0.01 * rng.standard_normal(t.size)


def write_esc10(folder: Path, mentioned: list[str]) -> None:
    """The 25 clips scripts/wav2vec2_projection.py lists, and the clips of `mentioned` (names
    like `audio/1-30344-A-0.flac`, labeled as the listed clips of the same ESC-50 class number),
    generated, with ESC-10's meta.csv."""
    spec = importlib.util.spec_from_file_location("projection", REPO / "scripts" / "wav2vec2_projection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # settings only: the script runs under `if __name__ == "__main__"`
    rng = np.random.default_rng(0)
    labels = sorted({label for label, _ in module.FILES})
    by_target = {Path(name).stem.rsplit("-", 1)[1]: label for label, name in module.FILES}
    clips = dict.fromkeys(module.FILES)
    for name in mentioned:
        target = Path(name).stem.rsplit("-", 1)[-1]
        assert target in by_target, f"no stand-in class for {name}: name a clip of {sorted(by_target.values())}"
        clips[(by_target[target], name)] = None
    rows = ["filename,label,fold"]
    for label, name in clips:
        c = labels.index(label)
        sound = tone(150 * (c + 1) + rng.uniform(0, 40), 2.0, rng, harmonics=1 + c)
        if c % 2:  # every other class as bursts, so classes differ in time as well as pitch
            sound *= (np.arange(sound.size) // (SR // (4 + c))) % 2
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / name, sound.astype(np.float32), SR)
        rows.append(f"{name},{label},{Path(name).name[0]}")
    (folder / "meta.csv").write_text("\n".join(rows) + "\n")


def mentioned_clips(commands: list[Command], dataset: str) -> list[str]:
    """The audio files inside `dataset` that commands name, relative to it (also inside a
    `python -c` program)."""
    found = []
    for command in commands:
        for word in command.argv:
            found += re.findall(re.escape(dataset) + r"([\w./-]+\.(?:flac|wav))", word)
    return sorted(set(found))


def write_speech_commands(folder: Path) -> None:
    """Words and noise cuts named as Speech Commands names them, with a meta.csv as ours."""
    rng = np.random.default_rng(1)
    rows = ["filename,label,fold,speaker"]
    for s, speaker in enumerate(("0a1b2c3d", "1b2c3d4e", "2c3d4e5f", "3d4e5f60")):
        for w, word in enumerate(("yes", "no", "up")):
            name = f"audio/commands/{word}_{speaker}_nohash_0.flac"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            sf.write(folder / name, tone(120 + 40 * s + 25 * w, 1.0, rng).astype(np.float32), SR)
            rows.append(f"{name},speech,{s + 1},{speaker}")
    for r, recording in enumerate(("white_noise", "pink_noise", "running_tap")):
        for cut in range(0, 80, 20):  # each cut in its own block of 20
            name = f"audio/noise/{recording}_{cut:03d}.flac"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            noise = rng.standard_normal(SR)
            sound = np.cumsum(noise) * 0.01 if r == 1 else noise * 0.1
            sf.write(folder / name, np.clip(sound, -1, 1).astype(np.float32), SR)
            rows.append(f"{name},noise,{cut // 20 + 1},")
    (folder / "meta.csv").write_text("\n".join(rows) + "\n")


def hub_ids(commands: list[Command]) -> set[str]:
    """The Hugging Face hub ids the walkthrough loads."""
    from tfaudio.models.wav2vec2.config import DEFAULT_MODEL

    ids = set()
    for command in commands:
        ids |= {word[3:] for word in command.argv if word.startswith("hf:") and not word[3:].startswith((".", "/"))}
        if command.argv[1:2] == ["scripts/wav2vec2_projection.py"] and "--model" not in command.argv:
            ids.add(DEFAULT_MODEL)
    return ids


def write_tiny_hub_models(cache: Path, ids: set[str]) -> None:
    """A tiny random Wav2Vec2 under each hub id, laid out as the hub's cache lays it out
    (built in a process of its own: transformers switches Keras for the process importing it)."""
    program = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
from helpers import TINY_WAV2VEC2
from tfaudio.models.wav2vec2.model import keep_keras_3
with keep_keras_3():
    import tensorflow as tf
    import transformers
tf.random.set_seed(0)
model = transformers.TFWav2Vec2Model(transformers.Wav2Vec2Config(**TINY_WAV2VEC2))
model.build_in_name_scope()
for folder in sys.argv[1:]:
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(folder)
"""
    folders = []
    for hub_id in sorted(ids):
        repo = cache / f"models--{hub_id.replace('/', '--')}"
        folders.append(repo / "snapshots" / HF_REVISION)
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(HF_REVISION)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", program, *map(str, folders)], check=True, env=env, timeout=300,
                   capture_output=True)


@dataclass
class Outcome:
    """What became of one walkthrough command: skipped (with the reason) or run."""

    skipped: str | None = None
    finished: Finished | None = None
    absent: list[str] = field(default_factory=list)  # outputs the README names that were not there
    error: str | None = None  # why it has no `finished`: killed at the timeout


def needed_weights(command: Command) -> list[tuple[str, ...]]:
    """The files under ../shared/models a command's networks load."""
    argv, line = command.argv, " ".join(command.argv)
    needs = []
    uses_yamnet = (
        "yamnet" in line
        or (argv[1] == "train" and "--backbone" not in argv)
        or (argv[1] == "compare" and "--model" not in argv)
        or (argv[1:2] == ["scripts/deep_feature_comparison.py"] and "--model" not in argv)
    )
    if uses_yamnet:
        needs.append(("models", "yamnet", "yamnet.h5"))
    if "mobilenet_v2" in line or (argv[1:2] == ["scripts/finetune_commands_vs_noise.py"] and "--backbone" not in argv):
        needs.append(("models", "keras", "models", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"))
    return needs


def written_by(command: Command) -> list[str]:
    """What later commands may read from this one: its outputs and its --out."""
    found = list(command.outputs)
    if "--out" in command.argv:
        found.append(command.argv[command.argv.index("--out") + 1])
    return [path.rstrip("/") for path in found]


def reads_from(command: Command, paths: list[str]) -> str | None:
    """The first argument of `command` that is one of `paths` or inside one (also after `=` or `:`)."""
    for word in command.argv[1:]:
        for value in (word, word.split("=", 1)[-1], word.split(":", 1)[-1]):
            if any(value == path or value.startswith(path + "/") for path in paths):
                return value
    return None


def prerequisites(index: int) -> set[int]:
    """The earlier commands whose outputs command `index` reads."""
    return {earlier for earlier in range(index) if reads_from(COMMANDS[index], written_by(COMMANDS[earlier]))}


def run_walkthrough(chosen: set[int], root: Path) -> dict[int, Outcome]:
    """Run the chosen commands and their prerequisites in one folder beside the stand-in data.

    Commands are taken in the README's order, two at a time (the machine's two cores), and
    each starts only once every earlier command whose output it reads has ended (a command
    whose input never came is skipped). So the order matters only where one command reads what
    another writes, and running them one by one, as a user does, gives the same files.
    """
    cwd, shared = root / "main", root / "shared"
    cwd.mkdir()
    (cwd / "scripts").symlink_to(REPO / "scripts")
    write_esc10(shared / "datasets" / "esc10", mentioned_clips(COMMANDS, "../shared/datasets/esc10/"))
    write_speech_commands(shared / "datasets" / "speech_commands")
    if (SHARED / "models").is_dir():
        (shared / "models").symlink_to(SHARED / "models")
    hub = root / "hf" / "hub"
    ids = hub_ids([COMMANDS[i] for i in chosen])
    if ids:
        write_tiny_hub_models(hub, ids)
    env = {k: v for k, v in os.environ.items() if k not in ("TFAUDIO_MODELS", "TFAUDIO_DATA", "KERAS_HOME")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(BIN.parent),
               TFAUDIO_HOME=str(root / "home"), TFAUDIO_OFFLINE="1", TFAUDIO_SHARED=str(shared),
               HF_HOME=str(root / "hf"), HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1")

    def run(index: int) -> Outcome:
        command = COMMANDS[index]
        argv = [str(PROGRAMS[command.argv[0]]), *command.argv[1:]]
        finished = run_process(argv, env={**env, **command.env}, cwd=cwd, timeout=COMMAND_TIMEOUT)
        return Outcome(finished=finished, absent=[p for p in command.outputs if not (cwd / p).exists()])

    def passed(index: int) -> bool:
        outcome = outcomes[index]
        return outcome.finished is not None and outcome.finished.code == 0 and not outcome.absent

    outcomes: dict[int, Outcome] = {}
    waiting = sorted(chosen)
    running: dict[int, concurrent.futures.Future] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        while waiting or running:
            for index in list(waiting):
                if len(running) == PARALLEL:
                    break
                needs = prerequisites(index)
                if not needs <= outcomes.keys():
                    continue  # an earlier command it reads from is still running
                waiting.remove(index)
                missing = [parts for parts in needed_weights(COMMANDS[index]) if not SHARED.joinpath(*parts).exists()]
                failed = sorted(n for n in needs if not passed(n))
                if missing:
                    outcomes[index] = Outcome(skipped=f"needs {SHARED.joinpath(*missing[0])} (the real weights "
                                                      "beside the checkout); absent here")
                elif failed:
                    outcomes[index] = Outcome(skipped=f"reads what walkthrough command {failed[0] + 1} "
                                                      f"({COMMANDS[failed[0]].line!r}) writes, and that did not run")
                else:
                    running[index] = pool.submit(run, index)
            if running:
                done, _ = concurrent.futures.wait(running.values(), return_when=concurrent.futures.FIRST_COMPLETED)
                for index in [i for i, future in running.items() if future in done]:
                    try:
                        outcomes[index] = running.pop(index).result()
                    except AssertionError as err:  # run_process: still running at the timeout
                        outcomes[index] = Outcome(error=str(err))
    return outcomes


@pytest.fixture(scope="module")
def walkthrough_runs(request, tmp_path_factory) -> dict[int, Outcome]:
    """The walkthrough commands this session selected, and what they read from, run once."""
    chosen = {item.callspec.params["index"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_walkthrough_command"}
    closure = set()
    while chosen - closure:
        index = min(chosen - closure)
        closure.add(index)
        chosen |= prerequisites(index)
    return run_walkthrough(closure, tmp_path_factory.mktemp("newcomer"))


@pytest.mark.parametrize("index", range(len(COMMANDS)),
                         ids=[f"{i + 1:02d}-{' '.join(c.argv[:3])[:60]}" for i, c in enumerate(COMMANDS)])
def test_walkthrough_command(walkthrough_runs, index):
    """README walkthrough command number `index + 1`: it exits 0, with no traceback, within
    seconds of its last output, leaving no worker behind, and writes what the README says."""
    outcome = walkthrough_runs[index]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.finished is not None, outcome.error
    outcome.finished.check()
    assert not outcome.absent, (f"{COMMANDS[index].line}\nthe README says it writes {outcome.absent}, which do not "
                                f"exist\n{outcome.finished.describe()}")


# ------------------------------------------------------------- the archive examples of docs/archives.md

ARCHIVES = DOCS / "archives.md"


def archive_examples() -> list[str]:
    """The command lines of docs/archives.md's bash blocks that embed the local `archive/` on
    the local runner, in order, comments cut off. Its Beam lines are left out: those for
    clusters and remote filesystems need them, and `--runner direct --num-workers 4` with YAMNet
    costs about a minute here (four workers, each building the model); tests/test_beam.py runs
    that runner through the same entry point, and tests/test_unlabelled.py checks that Beam
    lists the local runner's clips."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", ARCHIVES.read_text(), flags=re.S):
        for line in logical_lines(block.splitlines()):
            line = re.sub(r"\s+#.*$", "", line)
            if ("tfaudio embed archive/" in line or "tfaudio embed - " in line) and "--runner" not in line:
                found.append(line)
    return found


def test_the_archive_examples_run_as_written_on_a_flat_folder(tmp_path):
    """docs/archives.md's examples, run by bash as written, on an archive as it comes: a flat
    folder of recordings (one longer than a window, one at 22.05 kHz), no class folders, no
    manifest. Each exits 0 without a traceback and writes unlabelled rows."""
    examples = archive_examples()
    assert len(examples) >= 3 and any("--frames" in e for e in examples) and any("| tfaudio" in e for e in examples)
    weights = shared_weights()
    archive = tmp_path / "archive"
    archive.mkdir()
    rng = np.random.default_rng(2)
    sf.write(archive / "site-a_0600.flac", tone(220, 70.0, rng).astype(np.float32), SR)  # two windows
    sf.write(archive / "site-a_0700.flac", tone(330, 3.0, rng).astype(np.float32), SR)
    sf.write(archive / "site-b_0600.wav", (0.1 * rng.standard_normal(2 * 22050)).astype(np.float32), 22050)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TFAUDIO_HOME": str(tmp_path / "home"),
           "TFAUDIO_OFFLINE": "1", "TFAUDIO_MODELS": str(weights)}
    for line in examples:
        run_process(["bash", "-c", line], env=env, cwd=tmp_path, timeout=COMMAND_TIMEOUT).check()
    import pandas as pd

    from tfaudio.store import read_embeddings

    clips = pd.read_parquet(tmp_path / "embeddings" / "yamnet.parquet")
    assert sorted(clips["file"]) == ["site-a_0600.flac", "site-a_0700.flac", "site-b_0600.wav"]
    assert clips["label"].isna().all() and clips.filter(regex=r"^e\d{4}$").shape[1] == 1024
    frames = read_embeddings(tmp_path / "embeddings", "yamnet", frames=True)
    assert frames["label"].isna().all() and frames["start"].max() > 60
    assert sorted(pd.read_parquet(tmp_path / "flac" / "yamnet.parquet")["file"]) == ["archive/site-a_0600.flac",
                                                                                      "archive/site-a_0700.flac"]


def shared_weights() -> Path:
    """../shared/models, holding YAMNet's weights (skips where it is absent)."""
    path = SHARED / "models" / "yamnet" / "yamnet.h5"
    if not path.exists():
        pytest.skip(f"needs {path} (the real weights beside the checkout); absent here")
    return path.parents[1]
