"""Connections to the PostgreSQL store, and the one-line errors when there is none."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from mirograph.errors import StoreURLError
from mirograph.state.store import shown_url as shown

#: Seconds to wait for the server before saying it is not there.
CONNECT_TIMEOUT_S = 10


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """An autocommit connection to the store at ``url``, or ``StoreURLError`` in one
    line naming the URL (password hidden) and how to get a server there."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **kwargs)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StoreURLError(
            f"cannot reach the PostgreSQL store {shown(url)} ({reason}); start PostgreSQL"
            " there (e.g. `pg_ctl start` or `systemctl start postgresql`) or pass"
            " --store naming a running server"
        ) from None
    except psycopg.ProgrammingError as exc:  # a malformed URL
        raise StoreURLError(
            f"store URL {shown(url)} is not a PostgreSQL URL psycopg can use ({exc});"
            " write it as postgresql://USER@HOST:PORT/DATABASE"
        ) from None


def create_once(conn: psycopg.Connection[Any], name: str, statements: list[str]) -> None:
    """Run schema ``statements`` in one transaction under an advisory lock named
    ``name``: two processes creating the same table at once would otherwise race
    in PostgreSQL's catalogue (``CREATE TABLE IF NOT EXISTS`` is not atomic)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        for statement in statements:
            conn.execute(statement)


class Link:
    """The synchronous connection to the store that a registry and its leases share:
    one statement (or transaction) at a time (``lock``), and made again when the
    server dropped it (a restart) — see ``reconnecting``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.RLock()
        self._conn = connect(url)

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The connection; a new one if the server closed the last (a restart)."""
        if self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )  # a failure stays psycopg's: the caller sees the store still away
        return self._conn

    def lost(self) -> bool:
        """Whether the last statement found the connection gone."""
        return bool(self._conn.closed or self._conn.broken)

    def close(self) -> None:
        self._conn.close()


F = TypeVar("F", bound=Callable[..., Any])


def reconnecting(method: F) -> F:
    """Run ``method`` again, once, on a new connection when its statement found the
    server's connection gone: a restarted server costs one round trip, not the run."""

    @functools.wraps(method)
    def again(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except psycopg.OperationalError:
            if not self._link.lost():
                raise
            return method(self, *args, **kwargs)

    return again  # type: ignore[return-value]
