"""The run registry on PostgreSQL: ``state.registry``'s contract, for many machines.

One row per run, read and written by every process that runs, lists, pauses or
shows runs; a session's writes are fenced by its lease (``fenced``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg

from mirograph.errors import RunNotFoundError
from mirograph.state.leases import LEASE_COLUMNS, Lease
from mirograph.state.postgres.connect import Link, create_once, reconnecting
from mirograph.state.postgres.leases import SCHEMA as LEASES_SCHEMA
from mirograph.state.postgres.leases import PostgresLeases, fenced
from mirograph.state.registry import (
    COLUMN_NAMES,
    INSERT_COLUMNS,
    RUNNABLE_WHERE,
    RunRecord,
    check_run_id,
    duplicate_id,
    encoded,
    insert_values,
    lease_lost,
    record_from_row,
    step_verdict,
    with_statuses,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS mirograph_runs (
    id TEXT PRIMARY KEY,
    question TEXT NOT NULL,
    flow TEXT NOT NULL,
    flow_spec TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    answer TEXT,
    usage TEXT NOT NULL DEFAULT '{}',
    pid INTEGER,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    pause_requested TEXT,
    wall_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    session_started_at DOUBLE PRECISION,
    run_date TEXT
)
"""
_INDEX = "CREATE INDEX IF NOT EXISTS mirograph_runs_created ON mirograph_runs (created_at DESC)"
_SELECT = (
    "SELECT {}, l.run_id, {} FROM mirograph_runs r"
    " LEFT JOIN mirograph_leases l ON l.run_id = r.id".format(
        ", ".join(f"r.{c}" for c in COLUMN_NAMES),
        ", ".join(f"l.{c.strip()}" for c in LEASE_COLUMNS.split(",")),
    )
)


class PostgresRunRegistry:
    """Registry table in the PostgreSQL store, beside its leases."""

    def __init__(self, url: str) -> None:
        self._link = Link(url)
        create_once(self._link.conn, "mirograph_runs", [LEASES_SCHEMA, SCHEMA, _INDEX])
        #: Who runs each run, on the same connection.
        self.leases = PostgresLeases(url, link=self._link)

    def close(self) -> None:
        self._link.close()

    def create(self, record: RunRecord) -> None:
        check_run_id(record.id)
        marks = ", ".join(["%s"] * len(INSERT_COLUMNS.split(",")))
        try:
            with self._link.lock:
                self._link.conn.execute(
                    f"INSERT INTO mirograph_runs ({INSERT_COLUMNS}) VALUES ({marks})",
                    insert_values(record, time.time()),
                )
        except psycopg.errors.UniqueViolation:
            raise duplicate_id(record.id) from None

    @reconnecting
    def update(self, run_id: str, *, lease: Lease | None = None, **fields: Any) -> None:
        """Set ``fields`` of the run; with ``lease``, only while that lease is the
        run's current one (fencing), else ``LeaseLostError``."""
        fields = encoded(fields)
        assignments = ", ".join(f"{name} = %s" for name in fields)
        condition, params = fenced(lease)
        with self._link.lock:
            cursor = self._link.conn.execute(
                f"UPDATE mirograph_runs SET {assignments} WHERE id = %s{condition}",
                (*fields.values(), run_id, *params),
            )
        if lease is not None and cursor.rowcount == 0:
            raise lease_lost(run_id, self.leases.holder(run_id))

    @reconnecting
    def get(self, run_id: str) -> RunRecord:
        """The run's row, or ``RunNotFoundError``."""
        with self._link.lock:
            row = self._link.conn.execute(f"{_SELECT} WHERE r.id = %s", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return record_from_row(row)

    @reconnecting
    @reconnecting
    def runnable(self) -> list[RunRecord]:
        """Runs recorded as ``queued`` or ``running`` (see ``SqliteRunRegistry.runnable``)."""
        with self._link.lock:
            rows = self._link.conn.execute(f"{_SELECT} {RUNNABLE_WHERE}").fetchall()
        return [record_from_row(row) for row in rows]

    def list(self, limit: int = 200, statuses: Sequence[str] = ()) -> list[RunRecord]:
        """Newest first; ``statuses`` filters by effective status (a dead runner's
        ``running`` row counts as ``paused``)."""
        query = f"{_SELECT} ORDER BY r.created_at DESC"
        with self._link.lock:
            if not statuses:
                rows = self._link.conn.execute(f"{query} LIMIT %s", (limit,)).fetchall()
                return [record_from_row(row) for row in rows]
            rows = self._link.conn.execute(query).fetchall()
        return with_statuses(map(record_from_row, rows), limit, statuses)

    @reconnecting
    def request_pause(self, run_id: str, reason: str) -> None:
        """Ask the process running ``run_id`` to pause at its next step boundary."""
        with self._link.lock:
            self._link.conn.execute(
                "UPDATE mirograph_runs SET pause_requested = %s WHERE id = %s", (reason, run_id)
            )

    @reconnecting
    def step_check(self, lease: Lease) -> str | None:
        """Why the runner holding ``lease`` must stop at this step boundary, in one
        read: its lease was taken over (checked first), or a pause was asked."""
        with self._link.lock:
            row = self._link.conn.execute(
                "SELECT l.token, l.owner, r.pause_requested FROM mirograph_leases l"
                " LEFT JOIN mirograph_runs r ON r.id = l.run_id WHERE l.run_id = %s",
                (lease.run_id,),
            ).fetchone()
        return step_verdict(row, lease)

    @reconnecting
    def pause_request(self, run_id: str) -> str | None:
        """Why another process asked this run to pause, if it did."""
        with self._link.lock:
            row = self._link.conn.execute(
                "SELECT pause_requested FROM mirograph_runs WHERE id = %s", (run_id,)
            ).fetchone()
        return row[0] if row else None
