"""Run leases on PostgreSQL: ``state.leases``'s contract, for many machines at once.

The lease row of a run is locked (``SELECT … FOR UPDATE``) while one acquirer
reads and replaces it, so of two acquirers exactly one wins, on any machine;
each acquisition increments the run's ``token``, which ``fenced`` checks on
every write of a session.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import astuple

import psycopg

from mirograph.errors import RunBusyError
from mirograph.state.leases import (
    LEASE_COLUMNS,
    LEASE_TTL_S,
    RENEW_BUSY_MS,
    RENEW_EVERY_S,
    Lease,
    new_owner,
    process_started,
    this_host,
)
from mirograph.state.postgres.connect import Link, create_once, reconnecting

SCHEMA = """
CREATE TABLE IF NOT EXISTS mirograph_leases (
    run_id TEXT PRIMARY KEY,
    token BIGINT NOT NULL,
    owner TEXT,
    pid INTEGER,
    pid_started BIGINT,
    host TEXT,
    acquired_at DOUBLE PRECISION,
    expires_at DOUBLE PRECISION NOT NULL
)
"""


class PostgresLeases:
    """Leases in a table of the PostgreSQL store (beside the registry)."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = LEASE_TTL_S,
        renew_every_s: float = RENEW_EVERY_S,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
        link: Link | None = None,
    ) -> None:
        #: The connection, shared with the registry when it made this.
        self._link = link or Link(url)
        self._own_link = link is None
        create_once(self._link.conn, "mirograph_leases", [SCHEMA])
        self.ttl_s = ttl_s
        self.renew_every_s = renew_every_s
        self.host = host or this_host()
        self._clock = clock

    def close(self) -> None:
        if self._own_link:
            self._link.close()

    @reconnecting
    def acquire(self, run_id: str, *, pid: int | None = None) -> Lease:
        """Take the run's lease for this process (or ``pid``), with the next token;
        a live holder raises ``RunBusyError`` naming it, a dead or expired one is
        taken over. The row is locked from the read to the write."""
        pid = pid or os.getpid()
        owner, started = new_owner(), process_started(pid)
        with self._link.lock, self._link.conn.transaction():
            self._link.conn.execute(
                "INSERT INTO mirograph_leases (run_id, token, expires_at) VALUES (%s, 0, 0)"
                " ON CONFLICT (run_id) DO NOTHING",
                (run_id,),
            )
            try:
                # NOWAIT: the row is locked only while its holder writes under the lease
                # (a fenced checkpoint's FOR KEY SHARE) or another runner takes it, so
                # the run is busy. Waiting would block this event loop, and with it the
                # very write being waited for when both runners share the loop (a
                # worker given the same run twice): a deadlock, seen in the fleet tests.
                with self._link.conn.transaction():
                    row = self._link.conn.execute(
                        f"SELECT run_id, {LEASE_COLUMNS} FROM mirograph_leases"
                        " WHERE run_id = %s FOR UPDATE NOWAIT",
                        (run_id,),
                    ).fetchone()
            except psycopg.errors.LockNotAvailable:
                raise RunBusyError(
                    f"run {run_id} is being written by another runner right now; try again"
                    " once it has stopped (`mirograph ls`)"
                ) from None
            assert row is not None  # inserted above, never deleted
            current = Lease(*row)
            now = self._clock()
            if current.is_live(host=self.host, now=now):
                raise RunBusyError(current.busy_message())
            lease = Lease(
                run_id, current.token + 1, owner, pid, started, self.host, now, now + self.ttl_s
            )
            self._link.conn.execute(
                "UPDATE mirograph_leases SET token = %s, owner = %s, pid = %s,"
                " pid_started = %s, host = %s, acquired_at = %s, expires_at = %s"
                " WHERE run_id = %s",
                (*astuple(lease)[1:], run_id),
            )
        return lease

    @reconnecting
    def renew(self, lease: Lease) -> bool | None:
        """Push the lease's expiry forward: True renewed, False lost (another runner
        holds it now), None skipped (the row was locked; try again later)."""
        with self._link.lock:
            try:
                with self._link.conn.transaction():
                    self._link.conn.execute(f"SET LOCAL lock_timeout = '{RENEW_BUSY_MS}ms'")
                    cursor = self._link.conn.execute(
                        "UPDATE mirograph_leases SET expires_at = %s"
                        " WHERE run_id = %s AND token = %s AND owner = %s",
                        (self._clock() + self.ttl_s, lease.run_id, lease.token, lease.owner),
                    )
            except psycopg.errors.LockNotAvailable:
                return None
        return cursor.rowcount == 1

    @reconnecting
    def release(self, lease: Lease) -> bool:
        """Give the lease up (the token stays); False if it was no longer ours."""
        with self._link.lock:
            cursor = self._link.conn.execute(
                "UPDATE mirograph_leases SET owner = NULL, expires_at = 0"
                " WHERE run_id = %s AND token = %s AND owner = %s",
                (lease.run_id, lease.token, lease.owner),
            )
        return cursor.rowcount == 1

    def holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is still the run's current lease."""
        current = self.get(lease.run_id)
        return current is not None and (current.token, current.owner) == (lease.token, lease.owner)

    def holder(self, run_id: str) -> Lease | None:
        """The run's live holder, or None."""
        current = self.get(run_id)
        return current if current is not None and current.is_live(host=self.host) else None

    @reconnecting
    def expired(self) -> list[Lease]:
        """Held leases whose holder is gone: what a takeover sweep would pick up."""
        with self._link.lock:
            rows = self._link.conn.execute(
                f"SELECT run_id, {LEASE_COLUMNS} FROM mirograph_leases WHERE owner IS NOT NULL"
            ).fetchall()
        now = self._clock()
        leases = [Lease(*row) for row in rows]
        return [lease for lease in leases if not lease.is_live(host=self.host, now=now)]

    @reconnecting
    def get(self, run_id: str) -> Lease | None:
        """The run's lease row as stored (held or released), None if it never had one."""
        with self._link.lock:
            row = self._link.conn.execute(
                f"SELECT run_id, {LEASE_COLUMNS} FROM mirograph_leases WHERE run_id = %s",
                (run_id,),
            ).fetchone()
        return Lease(*row) if row else None


def fenced(lease: Lease | None) -> tuple[str, tuple[object, ...]]:
    """SQL condition (and its parameters) true only while ``lease`` is the run's
    current lease: appended to a write, it refuses a runner that lost its lease."""
    if lease is None:
        return "", ()
    return (
        " AND EXISTS (SELECT 1 FROM mirograph_leases WHERE run_id = %s AND token = %s"
        " AND owner = %s)",
        (lease.run_id, lease.token, lease.owner),
    )
