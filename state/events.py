"""A run's event stream in its store: appended by the session that runs it, read by
``show``, ``export``, ``watch`` and the web view, on any machine that opens the store.

Each event has a sequence number in its run (1, 2, …, over all its sessions), so a
reader asks for "the events of run R after S" and a live copy (Redis) is matched
with the stored one. A SQLite store keeps them where they always were, one JSON
line per event in ``$MIROGRAPH_HOME/runs/<id>/events.jsonl`` (the line number is
the sequence number); a PostgreSQL store in a table (``state.postgres.events``).
Every event arrives scrubbed of secrets (``RunControl.emit``).

An event is shown live (``EventWriter.listen``) only once it is stored: a number a
watcher saw is never given again by a later session (a runner killed with events
not stored yet had them never shown), and a session that lost its lease stores
nothing more (PostgreSQL: each insert is fenced by the session's lease).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from mirograph.errors import EventLogError

if TYPE_CHECKING:
    from mirograph.state.leases import Lease

EVENTS_FILE = "events.jsonl"
#: The events one read returns at most (a follower reads again for the rest).
READ_LIMIT = 5000
#: What a writer tells of each event once it is stored: its sequence number and JSON text.
Stored = Callable[[int, str], None]


class EventWriter(Protocol):
    """One session's appender: ``append`` is cheap (the engine calls it inline)."""

    def append(self, event: dict[str, Any]) -> tuple[int, str]:
        """Append ``event``; its sequence number and JSON text."""
        ...

    def listen(self, stored: Stored) -> None:
        """Call ``stored`` with each event once it is stored, in order (live copies)."""
        ...

    async def aclose(self) -> None:
        """Everything appended is stored (or said lost in one warning); stop."""
        ...


class EventStore(Protocol):
    """The events of a store's runs."""

    async def writer(self, run_id: str, lease: Lease | None = None) -> EventWriter:
        """A session's appender; with the session's ``lease``, it stores nothing once
        the lease is lost (a taken-over runner cannot take the new session's numbers)."""
        ...

    async def read(
        self, run_id: str, after: int = 0, limit: int = READ_LIMIT
    ) -> list[tuple[int, dict[str, Any]]]:
        """(seq, event) of the run's events after ``after``, oldest first."""
        ...

    def location(self, run_id: str) -> str:
        """Where a person finds the events (a file, or the store's table)."""
        ...


def encode(event: dict[str, Any]) -> str:
    """One event as a JSON line: its name, time and run first, for people reading."""
    head = {k: event[k] for k in ("event", "ts", "run_id") if k in event}
    return json.dumps({**head, **event}, ensure_ascii=False, default=str)


async def read_all(events: EventStore, run_id: str) -> list[dict[str, Any]]:
    """Every event of the run, oldest first."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        batch = await events.read(run_id, after)
        found.extend(event for _, event in batch)
        if len(batch) < READ_LIMIT:
            return found
        after = batch[-1][0]


class FileEvents:
    """Events as JSON lines in a file per run under ``$MIROGRAPH_HOME`` (SQLite stores)."""

    def __init__(self, folder: Callable[[str], Path]) -> None:
        #: The run's folder (``$MIROGRAPH_HOME/runs/<id>``, read when asked).
        self._folder = folder
        #: Where the last read of each file stopped: (seq, byte offset), for followers.
        self._cursors: dict[Path, tuple[int, int]] = {}

    def path(self, run_id: str) -> Path:
        return self._folder(run_id) / EVENTS_FILE

    def location(self, run_id: str) -> str:
        return str(self.path(run_id))

    async def writer(self, run_id: str, lease: Lease | None = None) -> FileEventWriter:
        """The file's appender (``lease`` unused: a line is stored as it is written)."""
        return FileEventWriter(self.path(run_id))

    async def read(
        self, run_id: str, after: int = 0, limit: int = READ_LIMIT
    ) -> list[tuple[int, dict[str, Any]]]:
        """Complete lines only (one being written, or cut by a crash, waits or is
        skipped); an unreadable line keeps its number. A missing log has none."""
        path = self.path(run_id)
        seq, offset = self._cursors.get(path, (0, 0))
        if seq > after:
            seq, offset = 0, 0
        found: list[tuple[int, dict[str, Any]]] = []
        try:
            file = path.open("rb")
        except OSError:
            return found
        with file:
            file.seek(offset)
            for line in file:
                if not line.endswith(b"\n"):
                    break
                seq += 1
                offset += len(line)
                if seq <= after:
                    continue
                try:
                    found.append((seq, json.loads(line)))
                except ValueError:
                    continue
                if len(found) >= limit:
                    break
        self._cursors[path] = (seq, offset)
        return found


class FileEventWriter:
    """Appends one session's events to the run's file (line-buffered: a crash loses none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stored: Stored | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._seq = _complete_lines(path)
            self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise EventLogError(
                f"cannot write the run's event log {path}: {exc.strerror or exc};"
                " set MIROGRAPH_HOME to a writable folder (or move what is in the way)"
            ) from exc

    def append(self, event: dict[str, Any]) -> tuple[int, str]:
        text = encode(event)
        with self._lock:
            self._file.write(text + "\n")
            self._seq += 1
            if self._stored is not None:  # line-buffered: stored once written
                self._stored(self._seq, text)
            return self._seq, text

    def listen(self, stored: Stored) -> None:
        self._stored = stored

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()


def _complete_lines(path: Path) -> int:
    """The lines of the file; a last line cut by a crash is ended first, so the next
    event starts a line of its own (and its number counts the cut one)."""
    try:
        file = path.open("rb+")
    except FileNotFoundError:
        return 0
    with file:
        lines, last = 0, b"\n"
        while chunk := file.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
        if last != b"\n":
            file.write(b"\n")
            lines += 1
    return lines
