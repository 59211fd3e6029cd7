"""Who may use the web view: the rules every request passes before its handler.

- Bound to a loopback address, the page and the API answer this machine only. A
  request must name a loopback host (``Host``), so a web page elsewhere cannot
  reach the API through a DNS name that resolves to 127.0.0.1 (DNS rebinding).
- Bound to any other address, a token is required for everything but the page
  and its static assets (``MIROGRAPH_UI_TOKEN``, or one generated and printed
  once). A browser brings it once in the address (``/?token=...``): it is moved into an HttpOnly,
  SameSite=Strict cookie and the address is cleaned. Scripts send
  ``Authorization: Bearer TOKEN``. No token: 401; a wrong one: 403.
- A request that changes state (POST) must be JSON from this page's own origin:
  a form or a page on another site cannot send it (cross-site request forgery).
- A request a browser marks as sent by another site's page (``Sec-Fetch-Site``:
  ``cross-site`` or ``same-site``, which is another port of this host too) reaches
  nothing but the page and its assets: such a page could not read the answer, but
  it could still make the server work (open event streams, list 2,000 runs) or
  time the answers to learn which runs exist.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Sent with every answer: only this server's own scripts, styles and images run or
#: load in its pages, so text that slipped through as markup could run nothing either.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        b" connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
        b" form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
#: The cookie that carries the token in a browser, named after the token
#: (``cookie_name``): two servers on one host (ports are not part of a cookie's
#: scope) keep a cookie each instead of overwriting one another's.
COOKIE = "mirograph_ui_token"
#: Paths served to anyone: the page, its code and styles hold no run data (without
#: the token, the page can say that it needs one).
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
#: A Host header as browsers send it: a name or an IP literal, an optional port.
HOST_SHAPE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
#: ``Sec-Fetch-Site`` values of requests sent by another site's page.
FOREIGN_SITES = frozenset({"cross-site", "same-site"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookie_name(token: str) -> str:
    """The cookie of the server whose token is ``token`` (a digest of it, not it)."""
    return f"{COOKIE}_{hashlib.sha256(token.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Access:
    """The rules of one server: its token (None: none asked) and whether it is bound
    to a loopback address."""

    token: str | None
    loopback: bool

    def verdict(self, conn: HTTPConnection) -> Response | None:
        """None when the request may go on, else the response that refuses it."""
        if self.loopback and not _loopback_host(_host(conn)):
            return _refuse(
                403,
                "this server answers only requests to 127.0.0.1 or localhost; open it by"
                " that address",
            )
        if conn.url.path in PUBLIC_PATHS or conn.url.path.startswith(PUBLIC_PREFIXES):
            return None
        if conn.headers.get("sec-fetch-site", "").strip().lower() in FOREIGN_SITES:
            return _refuse(403, "requests from another site's page may not use the API")
        if self.token is not None:
            given = _bearer(conn) or conn.cookies.get(cookie_name(self.token))
            if not given:
                return _refuse(
                    401,
                    "a token is required: open the address `mirograph ui` printed (it ends"
                    " in ?token=...), or send Authorization: Bearer TOKEN",
                )
            if not same_token(given, self.token):
                return _refuse(403, "wrong token: use the one `mirograph ui` printed")
        if conn.scope.get("method") == "POST":
            return _cross_site(conn)
        return None


def _bearer(conn: HTTPConnection) -> str | None:
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def same_token(given: str, token: str) -> bool:
    """Whether ``given`` is the token, in a time that tells nothing of either (not even
    the token's length: both are hashed first)."""
    digest = hashlib.sha256
    return hmac.compare_digest(digest(given.encode()).digest(), digest(token.encode()).digest())


def _host(conn: HTTPConnection) -> str:
    """The request's one Host header; "" when it has none or several (a request that
    names two hosts names none we can trust)."""
    hosts = conn.headers.getlist("host")
    return hosts[0] if len(hosts) == 1 else ""


def _loopback_host(host_header: str) -> bool:
    """Whether the Host header names a loopback host, and only that: a header that is
    not ``host[:port]`` (``evil.example@127.0.0.1``, ``[::1]evil``) is refused, not
    read for the part that looks local."""
    if not HOST_SHAPE.fullmatch(host_header):
        return False
    host = urlsplit(f"//{host_header}").hostname or ""
    return is_loopback(host)


def _cross_site(conn: HTTPConnection) -> Response | None:
    """Refuses a POST that a form or another site's page could have sent."""
    kind = conn.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        return _refuse(415, "send the request as JSON (Content-Type: application/json)")
    origin = conn.headers.get("origin")
    if origin and urlsplit(origin).netloc != conn.headers.get("host"):
        return _refuse(403, f"requests from another site ({origin}) may not change runs")
    return None


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class GuardMiddleware:
    """Applies ``Access`` to every HTTP request; moves a ``?token=`` into the cookie."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        conn = HTTPConnection(scope)
        token = self.access.token
        given = conn.query_params.get("token")
        host_ok = not self.access.loopback or _loopback_host(_host(conn))
        if token is not None and given is not None and conn.url.path == "/" and host_ok:
            await self._take_token(given, token, scope, receive, send)
            return
        refused = self.access.verdict(conn)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _take_token(
        given: str, token: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if not same_token(given, token):
            await _refuse(403, "wrong token: use the one `mirograph ui` printed")(
                scope, receive, send
            )
            return
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(cookie_name(token), token, httponly=True, samesite="strict", path="/")
        await response(scope, receive, send)


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
        await send(message)

    return sending
