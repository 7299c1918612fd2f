"""`tfaudio serve`: the app assembled (routes, guard) and run on uvicorn.

    app = build_app("recordings.index", "labels.db", port=8888)     # App: .asgi, .state, .token
    serve("recordings.index", "labels.db")                           # prints the URL, runs until Ctrl-C

`serve` binds its socket itself before uvicorn starts, so the port is known (port 0: any free
one) when the URL is printed and when the guard learns which Host headers are this server.
SIGINT and SIGTERM stop it gracefully (open requests finish, at most GRACE seconds): every label
acknowledged was committed before its answer, so stopping loses none.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tfaudio.app.security import MAX_BODY, Guard, GuardConfig, allowed_hosts, is_loopback

#: Seconds open requests get to finish once the server is told to stop.
GRACE = 3


@dataclass(frozen=True, eq=False)
class App:
    """A built app: `asgi` (the guarded ASGI application), `state` (tfaudio.app.state.AppState),
    `token` (the one the URL carries), `port`."""

    asgi: Guard
    state: object
    token: str
    port: int

    def url(self, host: str = "127.0.0.1") -> str:
        """The URL to open: http://HOST:PORT/?token=TOKEN."""
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/?token={self.token}"


def routes():
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from tfaudio.app import api, detectors, pages

    return [
        Route("/", pages.search_page),
        Route("/rounds", pages.rounds_page),
        Route("/labels", pages.labels_page),
        Route("/train", pages.train_page),
        Route("/media/{source}/{ident}/{what}", api.media_route),
        Route("/api/upload", api.upload_route, methods=["POST"]),
        Route("/api/search", api.search_route, methods=["POST"]),
        Route("/api/label", api.label_route, methods=["POST"]),
        Route("/api/undo", api.undo_route, methods=["POST"]),
        Route("/api/rounds", api.rounds_route, methods=["POST"]),
        Route("/api/detector", detectors.detector_route),
        Route("/api/point", detectors.point_route),
        Route("/api/threshold", detectors.threshold_route, methods=["POST"]),
        Route("/api/train", detectors.train_route, methods=["POST"]),
        Route("/api/export", detectors.export_route, methods=["POST"]),
        Route("/api/detect", detectors.detect_route, methods=["POST"]),
        Route("/api/jobs/{job}", detectors.job_route),
        Route("/download/{job}/{name}", detectors.download_route),
        Mount("/static", StaticFiles(directory=pages.STATIC), name="static"),
    ]


def build_app(index, labels, *, port: int, host: str = "127.0.0.1", annotator: str = "", token: str | None = None,
              max_body: int = MAX_BODY) -> App:
    """The app over `index` (a SearchIndex or its folder) and `labels` (a LabelStore or its
    SQLite file, created when absent), for a server at `host`:`port` (names the cookie and the
    Host headers accepted). token: the URL's (default: a fresh secrets.token_urlsafe(32))."""
    from starlette.applications import Starlette

    from tfaudio.app.state import AppState
    from tfaudio.labels.store import LabelStore
    from tfaudio.search.index import SearchIndex

    index = index if isinstance(index, SearchIndex) else SearchIndex.open(index)
    store = labels if isinstance(labels, LabelStore) else LabelStore(labels)
    state = AppState(index, store, annotator=annotator)
    starlette = Starlette(routes=routes())
    starlette.state.tfaudio = state
    token = token or secrets.token_urlsafe(32)
    guard = Guard(starlette, GuardConfig(token=token, port=port, hosts=allowed_hosts(host, port), max_body=max_body))
    return App(guard, state, token, port)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one). "localhost" binds 127.0.0.1."""
    address = "127.0.0.1" if host == "localhost" else host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as err:
        sock.close()
        from tfaudio.app.errors import AppError

        raise AppError(f"{host}:{port}: cannot listen there ({err.strerror}); choose another --port or leave it "
                       "at 0 for any free one") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def warning_for(host: str, port: int) -> str | None:
    """What to say when the server can be reached from other machines (None on loopback)."""
    if is_loopback(host):
        return None
    return (f"listening on {host}:{port}, beyond this machine: anyone who can reach it and learns the token can "
            "read the indexed audio and change the labels, and plain http sends the token unencrypted; use "
            "--host 127.0.0.1 (the default) and an SSH tunnel to reach it from elsewhere")


def serve(index, labels, *, host: str = "127.0.0.1", port: int = 0, annotator: str = "", open_browser: bool = False,
          say: Callable[[str], None] = print, warn: Callable[[str], None] | None = None) -> None:
    """Run the app until SIGINT or SIGTERM: open the index and the store, bind host:port, `say`
    the URL (with its token), open a browser when asked, serve. warn: where the warning for a
    host beyond loopback goes (default: stderr)."""
    import uvicorn

    from tfaudio.outputs import check_writable

    if isinstance(labels, (str, os.PathLike)) and not os.path.exists(labels):
        check_writable(labels, folder=False)  # a store to create: refused now, not at the first label
    sock = bind(host, port)
    try:
        port = sock.getsockname()[1]
        app = build_app(index, labels, port=port, host=host, annotator=annotator)
        try:
            caution = warning_for(host, port)
            if caution:
                (warn or _to_stderr)(f"warning: {caution}")
            shown = "127.0.0.1" if is_loopback(host) else (socket.gethostname() if host in ("0.0.0.0", "::") else host)
            say(f"tfaudio serve: {app.state.index.path} ({len(app.state.index)} windows of "
                f"{len(app.state.recordings)} files, {app.state.index.model}); labels in {app.state.store.path}")
            say(f"Open this URL in a browser (it holds the token: keep it to yourself):\n    {app.url(shown)}")
            say("Press Ctrl-C to stop.")
            sys.stdout.flush()
            if open_browser:
                import webbrowser

                threading.Timer(0.5, webbrowser.open, [app.url(shown)]).start()
            config = uvicorn.Config(app.asgi, log_level="warning", access_log=False, lifespan="off",
                                    timeout_graceful_shutdown=GRACE)
            with _stopping_quietly():
                uvicorn.Server(config).run(sockets=[sock])
        finally:
            app.state.close()
    finally:
        sock.close()


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _stopping_quietly:
    """While uvicorn runs it takes SIGINT and SIGTERM itself, and after its graceful stop raises
    the signal again: with handlers that only note it in place, the stop ends `serve` normally
    (exit status 0) rather than as an interrupt. Outside the main thread, nothing to do."""

    def __enter__(self):
        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self.saved[number] = signal.signal(number, lambda *_: None)
        return self

    def __exit__(self, *exc):
        for number, handler in self.saved.items():
            signal.signal(number, handler)
        return False
