"""A bench's attempts run by the workers (``bench --broker``) instead of in this process.

Each new attempt is submitted as a run (its attached files stored with it first,
so a worker on another machine restores them into its workspace); a stopped one
is queued again; then the bench waits for the run's stored status to say it
ended. A run that a dead worker left ``running`` is not stopped: the fleet's
sweep gives it to another worker, and the bench goes on waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from mirograph.flows.bench.harness import place_files, question_for
from mirograph.flows.runner import RunOutcome

if TYPE_CHECKING:
    from mirograph.flows.bench.harness import Attempt, BenchSettings

#: How often the bench reads the status of a run it waits for (one registry read).
POLL_S = 0.5
#: Stored statuses at which a fleet run's session is over: ended, or stopped.
SETTLED = ("completed", "no_answer", "paused", "failed")


async def run_on_fleet(
    settings: BenchSettings,
    attempt: Attempt,
    status: str | None,
    stopping: Callable[[], str | None],
) -> RunOutcome:
    """Hand the attempt's run to the workers (``status``: its stored status, None: new)
    and wait for its session to be over, or for ``stopping`` to give a reason."""
    from mirograph.flows.workers.submit import queue_resume, submit_runs

    if status is None:
        place_files(attempt.task, attempt.run_id)  # a worker sharing this home sees them
        await store_attachments(settings.store_url, attempt)
        await submit_runs(
            [question_for(attempt.task)],
            settings.flow,
            run_ids=[attempt.run_id],
            store_url=settings.store_url,
            broker_url=settings.broker_url,
        )
    elif status in ("paused", "failed"):
        await queue_resume(
            attempt.run_id, store_url=settings.store_url, broker_url=settings.broker_url
        )
    return await wait_for_end(settings.store_url, attempt.run_id, stopping)


async def wait_for_end(
    store_url: str | None, run_id: str, stopping: Callable[[], str | None]
) -> RunOutcome:
    """The run's outcome once its stored status settles (``queued`` and ``running``,
    a dead worker's included, are the fleet's to finish). Stopped (Ctrl-C), the
    bench stops waiting: the workers go on, and the same command again collects it."""
    from mirograph.flows.runs import find_run
    from mirograph.state.store import open_registry

    async with open_registry(store_url) as registry:
        while True:
            record = await asyncio.to_thread(find_run, registry, run_id)
            if record.status in SETTLED:
                return RunOutcome(run_id, record.status, record.answer, record.reason)
            reason = stopping()
            if reason:
                return RunOutcome(run_id, "running", None, f"{reason}; the workers go on with it")
            await asyncio.sleep(POLL_S)


async def store_attachments(store_url: str | None, attempt: Attempt) -> None:
    """On a PostgreSQL store, the task's files go into the run's stored workspace."""
    from mirograph.state.postgres.files import StoredFile
    from mirograph.state.store import is_postgres_url, open_store

    if not attempt.task.files or not is_postgres_url(store_url):
        return
    files = []
    for path in attempt.task.files:
        content = await asyncio.to_thread(path.read_bytes)
        stamp = path.stat()
        sha = hashlib.sha256(content).hexdigest()
        files.append((StoredFile(path.name, len(content), stamp.st_mtime_ns, sha), content))
    async with open_store(store_url) as store:
        await store.files.put(attempt.run_id, files)
