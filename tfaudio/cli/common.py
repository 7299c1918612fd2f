"""Pieces every `tfaudio` command module shares (kept apart from `tfaudio.cli.main` so command
modules can import them without importing the command group itself)."""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from collections.abc import Callable, Mapping

import click

from tfaudio.errors import TfaudioError, TfaudioWarning
from tfaudio.runtime import PRECISIONS


#: Numbers that options take, checked when click parses the command line (before TensorFlow is
#: imported, so in about a second): a value outside its range is a one-line usage error naming
#: the option, never a traceback or a silently odd run. One name per concept; `count(n)` for a
#: count with a floor of its own (`--folds` needs 2).


def count(minimum: int = 1) -> click.IntRange:
    """A whole number of things, at least `minimum`."""
    return click.IntRange(min=minimum)


#: How many of something where none makes no sense: a batch, epochs, classes shown, workers.
COUNT = count(1)
#: How many of something where 0 means "none" or "skip": fine-tuning epochs, patience.
COUNT_OR_ZERO = count(0)
#: A length of audio in seconds: more than 0.
SECONDS = click.FloatRange(min=0, min_open=True)
#: A rate or scale that must be above 0: a learning rate, a perplexity.
POSITIVE = click.FloatRange(min=0, min_open=True)
#: A rate where 0 is a choice: the fine-tuning learning rate (0 keeps the fine-tuned blocks as they are).
NON_NEGATIVE = click.FloatRange(min=0)
#: An age in days: 0 or more.
DAYS = click.FloatRange(min=0)
#: A share of the clips strictly between 0 and 1.
FRACTION = click.FloatRange(0, 1, min_open=True, max_open=True)
#: A random seed: numpy and scikit-learn take 0 .. 2**32 - 1.
SEED = click.IntRange(0, 2**32 - 1)


def friendly_errors(command=None, *, prefixes: Mapping[type[TfaudioError], str] | None = None):
    """Wrap a command so what the user can fix reads as one message, not a stack trace.

    A TfaudioError (or a FileNotFoundError) becomes `Error: <message>` with exit status 1,
    the message led by `prefixes[type]` where one is given (`visualize` says "model
    unavailable: "). Each distinct TfaudioWarning (a clamped t-SNE perplexity, a quarantined
    cache shard, a clip too short to analyse) is printed as one `warning: ...` line on stderr once
    the command ends, failed or not; other warnings are shown as Python shows them. Use as `@friendly_errors` or
    `@friendly_errors(prefixes={...})`.
    """
    if command is None:
        return functools.partial(friendly_errors, prefixes=prefixes)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        printable_streams()
        notes = {}  # message -> None: each distinct warning once, in order
        show = warnings.showwarning

        def keep(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, TfaudioWarning):
                notes[str(message)] = None
            else:  # not ours to judge: show it as Python would have
                show(message, category, filename, lineno, file, line)

        with warnings.catch_warnings():  # restores the filters and showwarning on the way out
            warnings.simplefilter("always", TfaudioWarning)
            warnings.showwarning = keep
            try:
                return command(*args, **kwargs)
            except (TfaudioError, FileNotFoundError) as err:
                prefix = next((p for kind, p in (prefixes or {}).items() if isinstance(err, kind)), "")
                raise click.ClickException(f"{prefix}{err}") from None
            finally:
                for note in notes:
                    click.echo(f"warning: {note}", err=True)

    return wrapper


def printable_streams() -> None:
    """Let stdout and stderr print every file name. A name holding a byte that is not UTF-8
    reaches Python as a surrogate escape (`bad\\udcffbyte.wav`), which a strict UTF-8 stream
    (any UTF-8 locale but C.UTF-8) refuses with UnicodeEncodeError. Commands print names through
    tfaudio.data.audio.printable_path (`bad\\xffbyte.wav`); this is the net for a name printed
    as it is."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, disable=total < 2, dynamic_ncols=True)


def echo_precision_warning(precision: str, *, training: bool = False) -> None:
    """Before the work starts: one `warning: ...` line when `precision` will not pay off here
    (`tfaudio.runtime.precision_warning`); a one-line error when bfloat16 inference cannot run
    (oneDNN switched off). training: Keras mixed precision, not inference's graph rewrite."""
    if precision == "float32":
        return
    from tfaudio.runtime import precision_warning

    if not training:
        check_precision_runs(precision)
    note = precision_warning(precision, training=training)
    if note:
        click.echo(f"warning: {note}", err=True)


def check_precision_runs(precision: str) -> None:
    """Before any work: the one-line error (`tfaudio.runtime.check_rewrite_available`) when
    bfloat16 inference cannot run here, rather than a failure once clips are decoded."""
    if precision != "float32":
        from tfaudio.runtime import check_rewrite_available

        check_rewrite_available(precision)


#: What --precision says on the commands that run networks for inference.
INFERENCE_PRECISION_HELP = ("bfloat16: the networks run about 1.7-2x faster on CPUs with AVX512-BF16 / AMX (see "
                            "tfaudio info --system); cached separately from float32 vectors.")


def precision_option(help_text: str = INFERENCE_PRECISION_HELP, name: str = "--precision"):
    """The `--precision float32|bfloat16` option (default float32), with `help_text`."""
    return click.option(name, type=click.Choice(PRECISIONS), default="float32", show_default=True, help=help_text)


def renamed_option(old: str, new: str, dest: str, *, into=None, **option_kwargs):
    """Keep an option's old spelling working after a rename, with a one-line note.

    `old` ("--lr") becomes a hidden option; when it is given, stderr says `note: --lr is now
    --learning-rate (the old spelling still works)` and its value goes to the keyword `dest`
    ("learning_rate") of the command, as if `new` had been given. `option_kwargs` (type,
    multiple, is_flag, ...) must match the new option's. Apply it below `@click.command`.
    into: for an old option that became one value of another (`--ae-epochs 5` is now `--fit
    autoencoder.epochs=5`), into(old value, the new option's value) -> the new option's value.
    required=True (among option_kwargs): declare the new option without `required` (click would
    then refuse the old spelling alone); the command says `Missing option '--out'` when neither
    spelling is given.
    """
    hidden_dest = "renamed_" + old.lstrip("-").replace("-", "_")
    required = option_kwargs.pop("required", False)

    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(hidden_dest, None)
            # not `value in (None, (), False)`: 0 == False, and `--lr 0` is a value given
            if value is not None and value is not False and value != ():
                click.echo(f"note: {old} is now {new} (the old spelling still works)", err=True)
                kwargs[dest] = value if into is None else into(value, kwargs.get(dest))
            if required and kwargs.get(dest) is None:
                raise click.MissingParameter(ctx=click.get_current_context(), param_hint=f"'{new}'", param_type="option")
            return command(*args, **kwargs)

        return click.option(old, hidden_dest, hidden=True, default=None, **option_kwargs)(wrapper)

    return decorate


def check_store(store) -> None:
    """Before any work: the embedding store (`--store`, else the default one) can be written,
    so a read-only store or one under a file is refused in one line now rather than when the
    first vectors are flushed. A store URL (gs://...) is left to the runner."""
    from tfaudio.outputs import check_writable

    if store is not None and "://" in str(store):
        return
    if store is None:
        from tfaudio.store import default_root

        store = default_root()
    check_writable(store)


class ClipCounter:
    """`progress` that remembers its bars, so a failure can say how far the run got."""

    def __init__(self):
        self.bars = []

    def __call__(self, total: int, desc: str):
        bar = progress(total, desc)
        self.bars.append(bar)
        return bar

    def done(self) -> str:
        """How far the bar last opened got, e.g. `8 of 20 clips (handcrafted)`; `no clips` before any."""
        if not self.bars:
            return "no clips"
        bar = self.bars[-1]
        return f"{bar.n} of {bar.total} clips ({bar.desc})"


@contextlib.contextmanager
def full_disk_said(places: Mapping[str, object], kept: Callable[[str], str]):
    """Turn a full disk met inside the block (an OSError, or one of our errors raised from
    one) into one line: which of `places` ("the embedding store": path, ...) is full, its free room,
    kept(which) (what survived, what a rerun does). Other errors pass through unchanged."""
    from tfaudio.outputs import disk_full_message, is_disk_full

    try:
        yield
    except (OSError, TfaudioError) as err:
        if not is_disk_full(err):
            raise
        raise click.ClickException(disk_full_message(places, err, kept)) from None
