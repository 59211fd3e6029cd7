"""A run's event log: one JSON line per model call, tool call and agent call.

Written with structlog to ``$MIROGRAPH_HOME/runs/<id>/events.jsonl`` as the run
goes (appended across sessions), so a run killed mid-way still has its trace.
Every string has passed through ``redact`` (``RunControl.emit``): an API key
that a tool echoed never reaches the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import structlog

from mirograph.errors import EventLogError
from mirograph.state.store import mirograph_home

EVENTS_FILE = "events.jsonl"


def events_path(run_id: str) -> Path:
    return mirograph_home() / "runs" / run_id / EVENTS_FILE


def _ordered(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """The event's name, time and run first, for people reading the file. (Events
    come scrubbed of secrets: ``RunControl.emit`` scrubs them once for every sink.)"""
    head = {k: event.pop(k) for k in ("event", "ts", "run_id") if k in event}
    return {**head, **event}


class EventLog:
    """Appends events to one run's ``events.jsonl`` (line-buffered: a crash loses none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise EventLogError(
                f"cannot write the run's event log {path}: {exc.strerror or exc};"
                " set MIROGRAPH_HOME to a writable folder (or move what is in the way)"
            ) from exc
        self._log = structlog.wrap_logger(
            structlog.WriteLogger(self._file),
            processors=[_ordered, structlog.processors.JSONRenderer(default=str)],
            wrapper_class=structlog.BoundLogger,
        )

    def __call__(self, event: dict[str, Any]) -> None:
        fields = dict(event)
        self._log.msg(fields.pop("event"), **fields)

    def close(self) -> None:
        self._file.close()


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The events of a log, oldest first; a line cut by a crash is skipped, and a log
    that cannot be read (missing, a folder, no permission) has none: reports go on."""
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
