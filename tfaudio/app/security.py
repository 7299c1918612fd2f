"""Who may talk to `tfaudio serve`, and what every response says about itself.

The model is Jupyter's and TensorBoard's: a server on loopback, opened through a URL that holds a
random token. Anyone else on the machine can reach the port, so the port alone proves nothing:

- The token (secrets.token_urlsafe) is accepted once in the query string of a GET, which answers
  with a session cookie (HttpOnly, SameSite=Strict) and a redirect to the same URL without the
  token, so it stays out of the history and of any Referer. Every request (pages, media, API)
  then needs the cookie, or `Authorization: token <TOKEN>` for scripts; otherwise 401. Both are
  compared in constant time.
- The cookie is stateless: a random nonce and its HMAC under a key made at start-up, so a
  restart ends every session and nothing is kept per session. Its name holds the port, since
  browsers share cookies between the ports of one host and two servers must not overwrite each
  other's.
- Anything but GET/HEAD is a change, refused unless it carries the session's CSRF token (an HMAC
  of the cookie's nonce, which the pages hold in a <meta> tag and the scripts send as
  X-CSRF-Token), comes from this origin (Origin, when sent, must be this Host; Sec-Fetch-Site must
  not say cross-site) and fits MAX_BODY bytes. A page of another site can make a browser send a
  POST, never with that header.
- The Host header must name the loopback address the server listens on (127.0.0.1, localhost,
  [::1] with the port): a site that points its own name at 127.0.0.1 (DNS rebinding) is refused.
  A server bound beyond loopback accepts any Host; the token is then its only guard.
- Every response carries a strict Content-Security-Policy (scripts, styles and media from the
  server only; no inline script; no framing), X-Content-Type-Options nosniff, Referrer-Policy
  no-referrer and Cache-Control no-store.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from starlette.exceptions import HTTPException

#: The most bytes one request may send (an uploaded query file): larger ones get 413.
MAX_BODY = 50 * 1024 * 1024
CSRF_HEADER = "x-csrf-token"

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
#: Sent with every response, whoever made it (a page, a file, a refusal, an error).
HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
_SAFE_METHODS = {"GET", "HEAD"}


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host headers a server bound to `host`:`port` answers: the loopback names with the port,
    or None (any) when it listens beyond loopback."""
    if not is_loopback(host):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", host if ":" not in host.strip("[]") else f"[{host.strip('[]')}]"}
    return frozenset(f"{name}:{port}" for name in names)


@dataclass(frozen=True)
class GuardConfig:
    """What the guard checks. token: the one in the printed URL. port: the server's (names the
    cookie). hosts: Host headers accepted (None: any). max_body: bytes per request. key: the
    HMAC key of cookies and CSRF tokens (random per start unless given)."""

    token: str
    port: int
    hosts: frozenset[str] | None
    max_body: int = MAX_BODY
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def cookie(self) -> str:
        return f"tfaudio-serve-{self.port}"

    def _mac(self, purpose: str, nonce: str) -> str:
        return hmac.new(self.key, f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        """A fresh cookie value: nonce.mac."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac('session', nonce)}"

    def session(self, cookie: str | None) -> str | None:
        """The nonce of a cookie value this server made, else None."""
        nonce, _, mac = (cookie or "").partition(".")
        if nonce and mac and hmac.compare_digest(mac, self._mac("session", nonce)):
            return nonce
        return None

    def csrf(self, nonce: str) -> str:
        """The CSRF token of a session."""
        return self._mac("csrf", nonce)

    def token_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


def _headers(scope) -> dict[str, str]:
    """The request's headers, lower-case names (the last of repeated ones)."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


def _cookie(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header (the first one), else None."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return None


class _TooLarge(HTTPException):
    """A body over the limit, met while a handler reads it: an HTTPException(413), so Starlette
    answers 413 rather than a server error."""


class Guard:
    """ASGI middleware around the whole app: refusals (400, 401, 403, 413) and the redirect that
    trades the URL's token for a cookie, and HEADERS on every response. A request that passes
    reaches the app with scope["tfaudio.csrf"] (the session's CSRF token, None for token-header
    clients) for the pages to embed."""

    def __init__(self, app, config: GuardConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":  # no websockets here
            return None
        send = self._with_headers(send)
        headers = _headers(scope)
        refusal = self._host_problem(headers)
        if refusal:
            return await _plain(send, 400, refusal)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        method = scope["method"]
        if given is not None and method in _SAFE_METHODS:
            if not self.config.token_matches(given):
                return await _plain(send, 401, "wrong token: open the URL `tfaudio serve` printed")
            return await self._trade_token(scope, send, query)
        nonce = self.config.session(_cookie(headers.get("cookie", ""), self.config.cookie))
        scripted = headers.get("authorization", "").partition(" ")
        by_header = scripted[0].lower() == "token" and self.config.token_matches(scripted[2].strip())
        if nonce is None and not by_header:
            return await _plain(send, 401, "this server needs its token: open the URL `tfaudio serve` printed "
                                           "(http://HOST:PORT/?token=...)")
        if method not in _SAFE_METHODS:
            problem = self._change_problem(headers, nonce, by_header)
            if problem:
                return await _plain(send, 403, problem)
            length = headers.get("content-length", "0")
            if not length.isdigit() or int(length) > self.config.max_body:
                return await _plain(send, 413, f"request too large: at most {self.config.max_body // 2**20} MB")
            receive = self._limited(receive)
        scope = {**scope, "tfaudio.csrf": self.config.csrf(nonce) if nonce else None}
        started = []

        async def sending(message):
            if message["type"] == "http.response.start":
                started.append(True)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except _TooLarge:
            if not started:
                await _plain(send, 413, f"request too large: at most {self.config.max_body // 2**20} MB")

    def _host_problem(self, headers: dict[str, str]) -> str | None:
        hosts = self.config.hosts
        if hosts is not None and headers.get("host", "").lower() not in hosts:
            return "unknown Host: open the URL `tfaudio serve` printed (its address, not another name for it)"
        return None

    def _change_problem(self, headers: dict[str, str], nonce: str | None, by_header: bool) -> str | None:
        """Why a POST (or any change) is refused as cross-site, or None."""
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "cross-site request refused"
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{headers.get('host', '')}":
            return "cross-origin request refused (Origin is not this server)"
        if by_header:
            return None
        given = headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.config.csrf(nonce).encode()):
            return "missing or wrong CSRF token: reload the page"
        return None

    async def _trade_token(self, scope, send, query) -> None:
        """303 to the same path without the token, setting the session cookie."""
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
        cookie = f"{self.config.cookie}={self.config.new_session()}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode("latin-1", "replace")),
                                (b"set-cookie", cookie.encode()), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    def _limited(self, receive):
        """`receive` that stops a body longer than max_body (a sender may lie about its length)."""
        total = 0

        async def limited():
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.config.max_body:
                    raise _TooLarge(413, f"request too large: at most {self.config.max_body // 2**20} MB")
            return message

        return limited

    @staticmethod
    def _with_headers(send):
        ours = {name.encode() for name, _ in HEADERS}

        async def sending(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ours]
                if not any(k.lower() == b"cache-control" for k, _ in kept):
                    kept.append((b"cache-control", b"no-store"))
                message = {**message, "headers": kept + [(k.encode(), v.encode()) for k, v in HEADERS]}
            await send(message)

        return sending


async def _plain(send, status: int, text: str) -> None:
    body = f"tfaudio serve: {text}\n".encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
