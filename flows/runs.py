"""Find runs and ask them to pause: the registry side of the Python API.

Only the run registry is read or written here; no graph, model or checkpoint
code is imported, so ``mirograph ls`` and ``mirograph pause`` answer at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from mirograph.state.registry import RunRecord, SqliteRunRegistry, check_run_id
from mirograph.state.store import open_registry


def find_run(registry: SqliteRunRegistry, run_id: str) -> RunRecord:
    """The run's registry row, or ``RunNotFoundError``; every entry that takes a run
    id comes through here (or ``run_dir``), so the id is checked here."""
    return registry.get(check_run_id(run_id))


async def list_runs(
    *, store_url: str | None = None, limit: int = 200, statuses: Sequence[str] = ()
) -> list[RunRecord]:
    """Runs newest first, optionally only those with one of ``statuses``."""
    async with open_registry(store_url) as registry:
        return registry.list(limit, statuses)


async def request_pause(
    run_id: str, *, store_url: str | None = None, reason: str = "paused by `mirograph pause`"
) -> RunRecord:
    """Ask the process running ``run_id`` (any process on this store) to pause at
    its next step boundary; returns the run's row as it was."""
    async with open_registry(store_url) as registry:
        record = find_run(registry, run_id)
        if record.effective_status == "running":
            registry.request_pause(run_id, reason)
        return record
