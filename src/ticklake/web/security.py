"""Security for ``ticklake serve``: host check, token, CSRF, body limit, safe lake paths.

A server on 127.0.0.1 still meets the network: any web page the user opens can make
the browser send requests to it. The middleware here stops the three attacks that
matter for a local dashboard (see ``docs/web.md``):

- **DNS rebinding**: a page on ``evil.example`` re-resolves its name to 127.0.0.1 and
  reads our API as same-origin. Every request's ``Host`` header must name localhost,
  127.0.0.1, [::1] or the bound host; anything else gets 421.
- **Cross-site request forgery**: state-changing requests (POST, PUT, PATCH, DELETE)
  need the ``X-Ticklake-CSRF`` header equal to the ``ticklake_csrf`` cookie (double
  submit; the cookie is ``SameSite=Strict``) and, when the browser sends ``Origin``,
  an origin on an allowed host. A request authenticated with ``Authorization: Bearer``
  is exempt: a browser never attaches that header cross-site on its own.
- **Other machines**: any bind but loopback needs ``TICKLAKE_TOKEN``; every request
  then carries it (``Authorization: Bearer``, or the ``ticklake_token`` cookie set by
  visiting ``/?token=...`` once), compared with :func:`hmac.compare_digest`.

Request bodies are capped (``Content-Length`` and the bytes actually read); downloads
go through :func:`resolve_inside`, which refuses anything outside a root directory.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ticklake.errors import TicklakeError
from ticklake.web.errors import ResourceNotFoundError, UnsafePathError

CSRF_COOKIE = "ticklake_csrf"
CSRF_HEADER = "x-ticklake-csrf"
TOKEN_COOKIE = "ticklake_token"
TOKEN_ENV = "TICKLAKE_TOKEN"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServeConfigError(TicklakeError, ValueError):
    """``ticklake serve`` was asked to start in an unsafe way."""

    exit_code = 2


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1).

    Examples:
        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host.strip("[]") in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a token."""
    if not is_loopback(host) and not token:
        raise ServeConfigError(
            f"refusing to listen on {host}: any address but 127.0.0.1/localhost needs a token. "
            f"Set {TOKEN_ENV} to a long random secret (e.g. `export {TOKEN_ENV}=$(python -c "
            "'import secrets; print(secrets.token_urlsafe(32))')`) and start again.",
            host=host,
        )
    if token is not None and len(token) < 16:
        raise ServeConfigError(
            f"{TOKEN_ENV} is too short ({len(token)} characters); use at least 16", host=host
        )


def host_of(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8765`` -> ``::1``), lower-case.

    Examples:
        >>> host_of("LocalHost:8765"), host_of("[::1]:80"), host_of("127.0.0.1")
        ('localhost', '::1', '127.0.0.1')
    """
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def resolve_inside(root: Path, relative: str) -> Path:
    """Return ``root / relative`` resolved, if it is an existing file inside ``root``.

    Refuses NUL bytes, absolute paths, ``..`` components (also after URL decoding, which
    the web framework has done once already), backslashes, and symlinks whose target
    lies outside ``root``.
    """
    text = relative
    if "\x00" in text or "%00" in text.lower():
        raise UnsafePathError("path contains a NUL byte", path=relative)
    if "%" in text:  # a second encoding layer (%252e%252e) must not sneak '..' through
        raise UnsafePathError("path contains percent-encoding; request the plain name", path=text)
    if "\\" in text:
        raise UnsafePathError("path contains a backslash", path=text)
    candidate = Path(text)
    if candidate.is_absolute() or text.startswith("/"):
        raise UnsafePathError(
            "absolute paths are not allowed; give a path inside the run", path=text
        )
    if any(part == ".." for part in candidate.parts):
        raise UnsafePathError("'..' is not allowed in a path", path=text)
    base = root.resolve()
    target = (base / candidate).resolve()
    if not target.is_relative_to(base):
        raise UnsafePathError(
            f"{text} resolves outside {base.name}/ (a symlink?); refusing it", path=text
        )
    if not target.is_file():
        raise ResourceNotFoundError(f"no file {text!r} here", path=text)
    return target


@dataclass
class SecurityConfig:
    """What the middleware enforces; built by :func:`ticklake.web.app.create_app`."""

    token: str | None = None
    bound_host: str = "127.0.0.1"
    extra_hosts: Iterable[str] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allowed_hosts: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        hosts = set(LOOPBACK_HOSTS) | {host_of(self.bound_host)}
        hosts |= {host_of(h) for h in self.extra_hosts}
        hosts.discard("0.0.0.0")
        hosts.discard("::")
        self.allowed_hosts = frozenset(hosts)


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        out.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is treated as no cookies
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def _equal(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def _reject(send: Send, status: int, message: str, kind: str) -> None:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Plotly injects <style> elements and draws with data: images; everything else is 'self'.
_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    b"base-uri 'none'; form-action 'self'"
)
# /docs serves Swagger UI from the swagger-ui-bundle-v2 wheel; its CSS uses data: images.
_DOCS_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; frame-ancestors 'none'"
)


class SecurityMiddleware:
    """ASGI middleware enforcing :class:`SecurityConfig` on every HTTP request."""

    def __init__(self, app: ASGIApp, config: SecurityConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        config = self.config
        host = host_of(headers.get("host", ""))
        if host not in config.allowed_hosts:
            await _reject(
                send,
                421,
                f"host {host!r} is not served here (DNS rebinding protection); "
                "open the dashboard at http://127.0.0.1 or the bound address",
                "HostNotAllowed",
            )
            return
        cookies = _cookies(headers)
        method = scope["method"].upper()
        bearer = headers.get("authorization", "")
        bearer_token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else None
        set_cookies: list[bytes] = []
        if config.token is not None:
            query_token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            if _equal(query_token[0] if query_token else None, config.token) and method == "GET":
                # Visiting /?token=... once logs the browser in; the cookie carries it on.
                set_cookies.append(
                    f"{TOKEN_COOKIE}={config.token}; Path=/; HttpOnly; SameSite=Strict".encode()
                )
            elif not (
                _equal(bearer_token, config.token)
                or _equal(cookies.get(TOKEN_COOKIE), config.token)
            ):
                await _reject(
                    send,
                    401,
                    "this server needs its token: send 'Authorization: Bearer <TICKLAKE_TOKEN>' "
                    "or open /?token=<TICKLAKE_TOKEN> once in the browser",
                    "TokenRequired",
                )
                return
        bearer_ok = config.token is not None and _equal(bearer_token, config.token)
        if method not in SAFE_METHODS and not bearer_ok:
            problem = self._csrf_problem(headers, cookies)
            if problem is not None:
                await _reject(send, 403, problem, "CsrfRejected")
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
            await _reject(
                send,
                413,
                f"request body larger than {config.max_body_bytes:,} bytes",
                "RequestTooLarge",
            )
            return
        if CSRF_COOKIE not in cookies:
            set_cookies.append(
                f"{CSRF_COOKIE}={secrets.token_urlsafe(24)}; Path=/; SameSite=Strict".encode()
            )
        if method not in SAFE_METHODS:
            # Read the whole (small) body here so a streamed body over the limit gets a
            # clean 413 instead of an error from deep inside the framework's parser.
            body = await self._read_body(receive)
            if body is None:
                await _reject(
                    send,
                    413,
                    f"request body larger than {config.max_body_bytes:,} bytes",
                    "RequestTooLarge",
                )
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, self._decorate(send, scope, set_cookies))

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.config.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _csrf_problem(self, headers: dict[str, str], cookies: dict[str, str]) -> str | None:
        cookie = cookies.get(CSRF_COOKIE)
        if not cookie or not _equal(headers.get(CSRF_HEADER), cookie):
            return (
                "missing or wrong CSRF token: send the X-Ticklake-CSRF header equal to the "
                "ticklake_csrf cookie (the dashboard does this; API clients can use "
                "'Authorization: Bearer' with a token instead)"
            )
        origin = headers.get("origin")
        if origin and origin != "null":
            origin_host = (urlsplit(origin).hostname or "").lower()
            if origin_host not in self.config.allowed_hosts:
                return f"cross-origin request from {origin!r} refused"
        return None

    @staticmethod
    def _decorate(send: Send, scope: Scope, cookies: list[bytes]) -> Send:
        is_docs = scope.get("path", "") in ("/docs", "/redoc")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                headers += [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", _DOCS_CSP if is_docs else _CSP))
                headers += [(b"set-cookie", cookie) for cookie in cookies]
                message["headers"] = headers
            await send(message)

        return wrapped


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out the already-read body once, then defers to the client."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
