"""Keeping the MP3 decoder's own messages off the terminal.

libsndfile decodes MP3 with libmpg123, which prints its notes straight to the C library's
stderr (file descriptor 2), past Python: a one-frame file gives
``[src/libmpg123/parse.c:do_readahead():1083] warning: Cannot read next header, a one-frame
stream? Duh...``, a damaged one ``Note: Trying to resync...``. tfaudio reports such a file
itself, by name, so these lines are noise. `decoder_messages_silenced` points descriptor 2 at a
temporary file while libsndfile works on an MP3 and, when done, writes back to the terminal
every captured line that is not libmpg123's, so what other threads printed meanwhile (a
progress bar, a warning) still appears, a moment late.

Descriptor 2 belongs to the whole process, so the redirection is shared: the first thread to
enter installs it and the last to leave restores it (a lock and a count), and a thread decoding
a WAV meanwhile is unaffected (its decoder prints nothing).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

# What libmpg123 prints: "[src/libmpg123/<file>:<function>():<line>] ..." and its bare
# "Note: ..." / "Warning: ..." lines (resync, Xing header size), never Python's own output.
_DECODER_LINE = re.compile(rb"^(\[[^\]]*mpg123[^\]]*\]|Note: |Warning: |Big trouble)")

_lock = threading.Lock()
_users = 0
_saved: int | None = None  # the real descriptor 2 while redirected
_capture = None  # the temporary file descriptor 2 points at meanwhile


@contextlib.contextmanager
def decoder_messages_silenced(active: bool = True) -> Iterator[None]:
    """While inside, libmpg123's lines never reach the terminal (active=False: do nothing, for
    formats whose decoders print nothing)."""
    if not active:
        yield
        return
    entered = _enter()
    try:
        yield
    finally:
        if entered:
            _leave()


def _enter() -> bool:
    global _users, _saved, _capture
    with _lock:
        if _users == 0:
            try:
                capture = tempfile.TemporaryFile()
                _flush_python_stderr()
                saved = os.dup(2)
                os.dup2(capture.fileno(), 2)
            except OSError:  # no descriptor 2 to redirect (closed), or no temporary file: leave it be
                return False
            _saved, _capture = saved, capture
        _users += 1
        return True


def _leave() -> None:
    global _users, _saved, _capture
    with _lock:
        _users -= 1
        if _users:
            return
        _flush_python_stderr()
        saved, capture = _saved, _capture
        _saved = _capture = None
        os.dup2(saved, 2)
        os.close(saved)
        with capture:
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True) if not _DECODER_LINE.match(line)]
        pending = memoryview(b"".join(kept))
        while pending:
            pending = pending[os.write(2, pending):]


def _flush_python_stderr() -> None:
    """Write out what Python buffered for stderr, so it lands on the right side of the switch."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
