"""The run registry: one row per run, so runs can be listed and found by id.

The checkpoint holds a run's state; the registry holds what a person looks
for (question, flow, status, timestamps, usage) and the resolved flow needed
to rebuild the run's graph on resume, in any process or machine.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any, Literal, get_args

from mirograph.errors import LeaseLostError, RunNotFoundError, UserInputError
from mirograph.state.leases import LEASE_COLUMNS, Lease, SqliteLeases, fenced, process_alive

__all__ = ["RUN_STATUSES", "RunRecord", "RunStatus", "SqliteRunRegistry", "check_run_id"]

#: ``no_answer``: the run ended, but its entry agent gave no answer (every reply
#: malformed, cut or empty); the reason says why. ``queued``: handed to the workers
#: (``mirograph submit``, ``resume --broker``), waiting for one to take it.
RunStatus = Literal["running", "paused", "completed", "no_answer", "failed", "queued"]
#: The same statuses as values (``ls --status`` checks and lists them).
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)

_SCHEMA = """
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
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)
"""

#: Columns added after the first release, with their definitions (added to old files).
_LATER_COLUMNS = {
    # Why a pause was asked for by another process (``mirograph pause``); NULL: none.
    "pause_requested": "TEXT",
    # Running seconds of the sessions that ended; the one in progress is not included.
    "wall_seconds": "REAL NOT NULL DEFAULT 0",
    # When the session in progress (or the last one) started.
    "session_started_at": "REAL",
    # The date the run's system prompts state (its first day, where it was created).
    "run_date": "TEXT",
}
COLUMNS = (
    "id, question, flow, flow_spec, status, reason, answer, usage, pid, created_at, updated_at,"
    " pause_requested, wall_seconds, session_started_at, run_date"
)
COLUMN_NAMES = tuple(c.strip() for c in COLUMNS.split(","))
#: A run's row with its lease (if it has one).
_SELECT = (
    "SELECT {}, l.run_id, {} FROM mirograph_runs r"
    " LEFT JOIN mirograph_leases l ON l.run_id = r.id".format(
        ", ".join(f"r.{c}" for c in COLUMN_NAMES),
        ", ".join(f"l.{c.strip()}" for c in LEASE_COLUMNS.split(",")),
    )
)


#: The runs a worker may run (``runnable``): handed to the workers, or being run.
RUNNABLE_WHERE = "WHERE r.status IN ('queued', 'running')"


#: What a run id may be: it names a directory under ``$MIROGRAPH_HOME/runs``.
RUN_ID_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is safe as a file name (no ``..``, ``/``, control characters)."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        shown = repr(run_id) if len(str(run_id)) <= 40 else repr(str(run_id)[:40]) + "…"
        raise UserInputError(f"run id {shown} is not allowed: use {RUN_ID_RULE} (no '..')")
    return run_id


@dataclass
class RunRecord:
    id: str
    question: str
    flow: str
    flow_spec: dict[str, Any]
    status: RunStatus
    reason: str | None = None
    answer: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    pause_requested: str | None = None
    wall_seconds: float = 0.0
    session_started_at: float | None = None
    #: ``YYYY-MM-DD``: the day the run was created, where it was (None: an older run).
    run_date: str | None = None
    #: The run's lease as read with the row; None: it never had one (an older version's run).
    lease: Lease | None = None

    @property
    def effective_status(self) -> RunStatus:
        """``running`` while a live runner holds the run's lease, and only then.

        A runner killed with SIGKILL cannot update its row; such a run is
        reported as ``paused`` (resumable), not as running forever. A run from
        before leases falls back to its recorded pid.
        """
        live = self.lease is not None and self.lease.is_live()
        if self.status != "running":
            # A resume that holds the lease but has not yet marked the row is running.
            return (
                "running" if live and self.status in ("paused", "failed", "queued") else self.status
            )
        if self.lease is not None:
            return "running" if live else "paused"
        return "running" if process_alive(self.pid) else "paused"


class SqliteRunRegistry:
    """Registry table in the same SQLite file as the checkpoints."""

    def __init__(self, path: Path) -> None:
        #: Who runs each run (the lease table is created first: the row reads join it).
        self.leases = SqliteLeases(path)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=10000")  # first: the others may wait
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # durable against process crashes
        self._conn.execute(_SCHEMA)
        self._add_later_columns()

    def _add_later_columns(self) -> None:
        """Bring a store made by an older version up to date, once, even when
        several processes open it at the same moment (the write lock orders them)."""
        if set(_LATER_COLUMNS) <= self._columns():
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            present = self._columns()
            for name, definition in _LATER_COLUMNS.items():
                if name not in present:
                    self._conn.execute(f"ALTER TABLE mirograph_runs ADD COLUMN {name} {definition}")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _columns(self) -> set[str]:
        return {row[1] for row in self._conn.execute("PRAGMA table_info(mirograph_runs)")}

    def close(self) -> None:
        self._conn.close()
        self.leases.close()

    def create(self, record: RunRecord) -> None:
        check_run_id(record.id)
        try:
            self._conn.execute(
                f"INSERT INTO mirograph_runs ({INSERT_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                insert_values(record, time.time()),
            )
        except sqlite3.IntegrityError:
            raise duplicate_id(record.id) from None

    def update(self, run_id: str, *, lease: Lease | None = None, **fields: Any) -> None:
        """Set ``fields`` of the run; with ``lease``, only while that lease is the
        run's current one (fencing), else ``LeaseLostError``."""
        fields = encoded(fields)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        condition, params = fenced(lease)
        cursor = self._conn.execute(
            f"UPDATE mirograph_runs SET {assignments} WHERE id = ?{condition}",
            (*fields.values(), run_id, *params),
        )
        if lease is not None and cursor.rowcount == 0:
            raise lease_lost(run_id, self.leases.holder(run_id))

    def get(self, run_id: str) -> RunRecord:
        """The run's row, or ``RunNotFoundError``."""
        row = self._conn.execute(f"{_SELECT} WHERE r.id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return record_from_row(row)

    def runnable(self) -> list[RunRecord]:
        """Runs recorded as ``queued`` or ``running``, whatever their runner's state:
        where the takeover sweep looks for runs whose runner is gone."""
        return list(map(record_from_row, self._conn.execute(f"{_SELECT} {RUNNABLE_WHERE}")))

    def list(self, limit: int = 200, statuses: Sequence[str] = ()) -> list[RunRecord]:
        """Newest first; ``statuses`` filters by effective status (a dead runner's
        ``running`` row counts as ``paused``)."""
        query = f"{_SELECT} ORDER BY r.created_at DESC"
        if not statuses:
            rows = self._conn.execute(f"{query} LIMIT ?", (limit,)).fetchall()
            return [record_from_row(row) for row in rows]
        return with_statuses(map(record_from_row, self._conn.execute(query)), limit, statuses)

    def request_pause(self, run_id: str, reason: str) -> None:
        """Ask the process running ``run_id`` to pause at its next step boundary."""
        self._conn.execute(
            "UPDATE mirograph_runs SET pause_requested = ? WHERE id = ?", (reason, run_id)
        )

    def step_check(self, lease: Lease) -> str | None:
        """Why the runner holding ``lease`` must stop at this step boundary, in one
        read: its lease was taken over (checked first), or a pause was asked; else
        None. (Every step asks: two reads on two connections cost twice as much.)"""
        row = self._conn.execute(
            "SELECT l.token, l.owner, r.pause_requested FROM mirograph_leases l"
            " LEFT JOIN mirograph_runs r ON r.id = l.run_id WHERE l.run_id = ?",
            (lease.run_id,),
        ).fetchone()
        return step_verdict(row, lease)

    def pause_request(self, run_id: str) -> str | None:
        """Why another process asked this run to pause, if it did (a read: never waits)."""
        row = self._conn.execute(
            "SELECT pause_requested FROM mirograph_runs WHERE id = ?", (run_id,)
        ).fetchone()
        return row[0] if row else None


# -- what every registry shares (SQLite here, PostgreSQL in state.postgres) ----------


def insert_values(record: RunRecord, now: float) -> tuple[Any, ...]:
    """A new run's column values, in the order of ``INSERT_COLUMNS``."""
    return (
        record.id,
        record.question,
        record.flow,
        json.dumps(record.flow_spec),
        record.status,
        record.reason,
        record.answer,
        json.dumps(record.usage),
        record.pid,
        now,
        now,
        record.run_date or date.fromtimestamp(now).isoformat(),
    )


INSERT_COLUMNS = (
    "id, question, flow, flow_spec, status, reason, answer, usage, pid, created_at,"
    " updated_at, run_date"
)


def duplicate_id(run_id: str) -> UserInputError:
    return UserInputError(
        f"run id {run_id!r} already exists; resume it with"
        f" `mirograph resume {run_id}` or pick another --id"
    )


def encoded(fields: dict[str, Any]) -> dict[str, Any]:
    """An update's fields as stored (JSON where the column holds JSON), stamped now;
    only the table's own columns: their names go into the statement."""
    unknown = set(fields) - set(COLUMN_NAMES)
    if unknown:
        raise ValueError(f"not columns of a run: {sorted(unknown)}")
    out = dict(fields)
    for name in ("flow_spec", "usage"):
        if name in out:
            out[name] = json.dumps(out[name])
    out["updated_at"] = time.time()
    return out


def lease_lost(run_id: str, holder: Lease | None) -> LeaseLostError:
    """A write of a session whose lease was taken over (``holder``: who has it now)."""
    by = f" by pid {holder.pid} on {holder.host}" if holder else ""
    return LeaseLostError(f"run {run_id} was taken over{by}; this session's changes were not saved")


def with_statuses(
    records: Iterable[RunRecord], limit: int, statuses: Sequence[str]
) -> list[RunRecord]:
    """The first ``limit`` records whose effective status is one of ``statuses`` (a dead
    runner's row says running: the effective status needs a look at each row)."""
    return list(islice((r for r in records if r.effective_status in statuses), limit))


def step_verdict(row: tuple[Any, ...] | None, lease: Lease) -> str | None:
    """``step_check``'s answer from its one read (token, owner, pause_requested)."""
    if row is None or (row[0], row[1]) != (lease.token, lease.owner):
        return f"run {lease.run_id} was taken over by another runner"
    return row[2]


def record_from_row(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0],
        question=row[1],
        flow=row[2],
        flow_spec=json.loads(row[3]),
        status=row[4],
        reason=row[5],
        answer=row[6],
        usage=json.loads(row[7] or "{}"),
        pid=row[8],
        created_at=row[9],
        updated_at=row[10],
        pause_requested=row[11],
        wall_seconds=row[12] or 0.0,
        session_started_at=row[13],
        run_date=row[14],
        lease=Lease(*row[15:]) if row[15] is not None else None,
    )
