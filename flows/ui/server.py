"""``mirograph ui``: the web view served by uvicorn on one socket of its own.

The socket is bound here, before uvicorn starts, so that a port in use or an
address this machine does not have is one line (and ``--port 0`` can print the
port it got). The token: ``MIROGRAPH_UI_TOKEN`` when set, else one generated now
and printed once, in the address to open; on loopback too (every user of the
machine reaches 127.0.0.1, and starting a run runs code), unless ``--no-token``.
It is put in this process's environment, so the masking every log and answer
passes through hides it like any other secret. uvicorn's access log is off: the
first request's address holds the token.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import replace

import uvicorn

from mirograph.errors import UserInputError
from mirograph.flows.ui.app import Settings, create_app
from mirograph.flows.ui.guard import is_loopback

TOKEN_ENV = "MIROGRAPH_UI_TOKEN"
#: The shortest token accepted from the environment.
MIN_TOKEN_CHARS = 16


def choose_token(host: str, *, ask: bool = True) -> tuple[str | None, bool]:
    """The token to ask for (None: none) and whether it was generated here.

    Asked by default even on loopback: a run started through the API runs code as
    this user, and every user of this machine can reach 127.0.0.1. ``ask=False``
    (``--no-token``) is for a machine of one's own, and only on loopback.
    """
    given = os.environ.get(TOKEN_ENV)
    if not ask:
        if not is_loopback(host):
            raise UserInputError(
                f"--no-token serves {host} to anyone who can reach it; drop --no-token"
                " (a token is generated) or serve on 127.0.0.1"
            )
        return None, False
    if given is not None:
        if len(given.strip()) < MIN_TOKEN_CHARS:
            raise UserInputError(
                f"{TOKEN_ENV} is shorter than {MIN_TOKEN_CHARS} characters; set a longer one"
                " (or unset it: one is generated)"
            )
        # masked as it is asked: a value set with spaces or a newline around it would
        # otherwise be masked only with them, and an answer quoting the token shows it
        os.environ[TOKEN_ENV] = given.strip()
        return given.strip(), False
    token = secrets.token_urlsafe(24)
    os.environ[TOKEN_ENV] = token
    return token, True


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or one line saying why not."""
    if not 0 <= port <= 65535:
        raise UserInputError(f"--port {port} is out of range 0-65535; choose another")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserInputError(f"--host {host!r} is not an address here: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserInputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port"
            " (0 picks a free one)"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket, host: str, token: str | None) -> str:
    """The address a person opens (with the token, when one is asked)."""
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = socket.gethostname()
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(
    settings: Settings,
    host: str,
    port: int,
    say: Callable[[str], None],
    *,
    ask_token: bool = True,
) -> None:
    """Serve until interrupted; ``say`` prints the address (and the token, once)."""
    token, generated = choose_token(host, ask=ask_token)
    settings = replace(settings, token=token, loopback=is_loopback(host))
    sock = bind(host, port)
    say(f"mirograph ui: open {address(sock, host, token)}")
    if generated:
        say("(a token was generated for this server; set MIROGRAPH_UI_TOKEN to choose one)")
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))
