"""Every error tfaudio raises for its user derives from TfaudioError, and the CLI prints one as a
one-line message."""

from __future__ import annotations

import ast
import builtins
import importlib
import warnings
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tfaudio.cli.common import friendly_errors
from tfaudio.cli.main import main
from tfaudio.errors import TfaudioError

PACKAGE = Path(__file__).resolve().parents[1] / "tfaudio"
BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException) and not issubclass(value, Warning)
}


def _base_name(node: ast.expr) -> str:
    """`ValueError` -> "ValueError", `keras.callbacks.Callback` -> "Callback"."""
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def exception_classes() -> dict[tuple[str, str], list[str]]:
    """(module, class) -> base names of every class in tfaudio/ that derives from an exception,
    found by reading the source (a class whose base is a built-in exception or another of them;
    warnings are not errors and are left out)."""
    classes = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                classes[module, node.name] = [_base_name(base) for base in node.bases]
    found: dict[tuple[str, str], list[str]] = {}
    while True:  # until no class joins: a subclass of a found class is found in a later round
        names = {name for _, name in found}
        more = {key: bases for key, bases in classes.items()
                if key not in found and any(b in BUILTIN_EXCEPTIONS or b in names for b in bases)}
        if not more:
            return found
        found.update(more)


def test_the_walk_finds_the_known_errors():
    names = {name for _, name in exception_classes()}
    # A few that live in different layers: if the walk missed these, the test below would prove nothing.
    assert {"AudioError", "SplitError", "ModelFilesError", "AutoencoderError", "VizError", "ExportError"} <= names
    assert "VizWarning" not in names


@pytest.mark.parametrize("module, name", sorted(exception_classes()), ids=lambda v: v.rsplit(".", 1)[-1])
def test_every_tfaudio_exception_is_a_tfaudio_error(module, name):
    cls = getattr(importlib.import_module(module), name, None)
    assert cls is not None, f"{module}.{name} is not defined at module level, so callers cannot catch it by name"
    if cls.__bases__ == (BaseException,):
        # Control flow, like KeyboardInterrupt (the console entry's Ctrl-C): never an error shown
        # to a user, and deliberately outside Exception so no `except Exception` swallows it.
        assert not issubclass(cls, Exception)
        return
    assert issubclass(cls, TfaudioError), f"{module}.{name} must derive from tfaudio.errors.TfaudioError"


def test_built_in_bases_are_kept_for_callers_that_catch_them():
    from tfaudio.models.autoencoder.config import AutoencoderError
    from tfaudio.models.wav2vec2.files import ModelFilesError
    from tfaudio.viz.points import VizError

    assert issubclass(AutoencoderError, ValueError) and issubclass(VizError, ValueError)
    assert issubclass(ModelFilesError, OSError)
    assert str(ModelFilesError("m: no config.json; pass a folder")) == "m: no config.json; pass a folder"


def test_errors_is_the_lowest_layer():
    tree = ast.parse((PACKAGE / "errors.py").read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "tfaudio"]


def _one_line_error(result, message: str) -> None:
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip() == f"Error: {message}"


def test_cli_prints_a_missing_dataset_as_one_line(tmp_path):
    result = CliRunner().invoke(main, ["info", str(tmp_path / "nowhere")])
    _one_line_error(result, f"{tmp_path / 'nowhere'}: no such file or folder")


def test_cli_prints_a_corrupt_file_as_one_line(tmp_path):
    corrupt = tmp_path / "broken.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    result = CliRunner().invoke(main, ["info", str(corrupt)])
    _one_line_error(result, f"{corrupt}: corrupt or header-only .wav file: Error in WAV file. No 'data' chunk marker.")


class _Problem(TfaudioError, ValueError):
    pass


def _command(error: BaseException | None, warn: bool = False, **wrap):
    @click.command()
    @friendly_errors(**wrap)
    def command():
        if warn:
            warnings.warn("perplexity clamped to 26.3", _viz_warning())
            warnings.warn("someone else's warning", DeprecationWarning)
        click.echo("done")
        if error is not None:
            raise error

    return command


def _viz_warning():
    from tfaudio.viz.points import VizWarning

    return VizWarning


def test_wrapper_turns_any_tfaudio_error_into_one_error_line_after_the_warnings():
    with pytest.warns(DeprecationWarning, match="someone else's"):  # passed on to Python untouched
        result = CliRunner().invoke(_command(_Problem("x.wav: too short; pass --pad"), warn=True))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stdout == "done\n"
    assert result.stderr.splitlines() == ["warning: perplexity clamped to 26.3", "Error: x.wav: too short; pass --pad"]


def test_wrapper_prefixes_only_the_kinds_it_is_told_to():
    from tfaudio.models.base import ModelUnavailable

    prefixes = {ModelUnavailable: "model unavailable: "}
    result = CliRunner().invoke(_command(ModelUnavailable("yamnet: no weights"), prefixes=prefixes))
    assert result.exit_code == 1 and result.stderr.splitlines()[-1] == "Error: model unavailable: yamnet: no weights"
    result = CliRunner().invoke(_command(_Problem("plain"), prefixes=prefixes))
    assert result.stderr.splitlines()[-1] == "Error: plain"
    result = CliRunner().invoke(_command(FileNotFoundError("gone.wav")))
    assert result.exit_code == 1 and result.stderr.splitlines()[-1] == "Error: gone.wav"


def test_wrapper_leaves_bugs_alone():
    result = CliRunner().invoke(_command(KeyError("a bug")))
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)  # not turned into a user error
