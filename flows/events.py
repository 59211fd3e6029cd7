"""A run's events: one per model call, tool call, agent call and session start or end.

They go to the run's store (``Store.events``: ``events.jsonl`` under
``$MIROGRAPH_HOME/runs/<id>`` for SQLite, a table for PostgreSQL, so ``show``,
``export`` and ``watch`` on another machine see them) and, when Redis is
configured, are published live (``flows.live``) for ``watch`` and the web view.
Every string has passed through ``redact`` (``RunControl.emit``): an API key that
a tool echoed never reaches the store.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mirograph.flows.live import LivePublisher
from mirograph.state.events import EVENTS_FILE, EventWriter, FileEventWriter, read_all
from mirograph.state.store import mirograph_home, open_store

__all__ = ["EVENTS_FILE", "EventLog", "RunEvents", "events_path", "read_events", "run_events"]


def events_path(run_id: str) -> Path:
    """The event file of a run on a SQLite store (on this machine)."""
    return mirograph_home() / "runs" / run_id / EVENTS_FILE


class EventLog(FileEventWriter):
    """An event sink appending to one ``events.jsonl`` (line-buffered: a crash loses none)."""

    def __call__(self, event: dict[str, Any]) -> None:
        self.append(event)


class RunEvents:
    """The event sink of one session: each event gets its sequence number in the run,
    is stored (``writer``) and, with a ``live`` publisher, published once stored (a
    watcher never sees an event a crash loses and a later session renumbers)."""

    def __init__(self, run_id: str, writer: EventWriter, live: LivePublisher | None) -> None:
        self.run_id = run_id
        self._writer = writer
        self._live = live
        if live is not None:
            writer.listen(functools.partial(live.publish, run_id))

    def __call__(self, event: dict[str, Any]) -> None:
        self._writer.append(event)

    async def aclose(self) -> None:
        """Store what is left (the session's end included); give the live copies a
        moment to go out, never longer than a fraction of a second."""
        try:
            await self._writer.aclose()
        finally:
            if self._live is not None:
                await self._live.drain(within=0.5)


async def run_events(run_id: str, *, store_url: str | None = None) -> list[dict[str, Any]]:
    """Every stored event of the run, oldest first, from whichever machine wrote them."""
    async with open_store(store_url) as store:
        return await read_all(store.events, run_id)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The events of a log file, oldest first; a line cut by a crash is skipped, and a
    log that cannot be read (missing, a folder, no permission) has none: reports go on."""
    try:
        lines = path.open(encoding="utf-8")
    except OSError:
        return
    with lines:
        for line in lines:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
