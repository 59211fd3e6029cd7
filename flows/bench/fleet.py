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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mirograph.flows.bench.harness import place_files, question_for
from mirograph.flows.runner import RunOutcome

if TYPE_CHECKING:
    from mirograph.flows.bench.harness import Attempt, BenchSettings

#: How often the bench reads the status of a run it waits for (one registry read).
POLL_S = 0.5
#: Seconds without a worker taking any of the bench's runs before the bench says so.
STALL_S = 60.0
#: Stored statuses at which a fleet run's session is over: ended, or stopped.
SETTLED = ("completed", "no_answer", "paused", "failed")


@dataclass
class FleetWatch:
    """What the bench's waits share: when a worker last moved one of its runs on, so
    that a fleet that takes none (no worker on this store and broker, or none that can
    import the flow's tools) is said once, not waited on in silence."""

    say: Callable[[str], None]
    stopping: Callable[[], str | None]
    moved_at: float = field(default_factory=time.monotonic)
    warned: bool = False

    def seen(self, status: str) -> None:
        if status != "queued":
            self.moved_at = time.monotonic()

    def check_stall(self, run_id: str) -> None:
        if not self.warned and time.monotonic() - self.moved_at > STALL_S:
            self.warned = True
            self.say(
                f"warning: no worker has taken a run of this bench for {STALL_S:.0f} s (run"
                f" {run_id} waits queued): is a `mirograph worker` running on this --store"
                " and --broker, and can it import the flow's tools? Its log says why it"
                " refuses a run"
            )


async def run_on_fleet(
    settings: BenchSettings, attempt: Attempt, status: str | None, watch: FleetWatch
) -> RunOutcome:
    """Hand the attempt's run to the workers (``status``: its stored status, None: new)
    and wait for its session to be over, or for the bench to stop."""
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
    return await wait_for_end(settings.store_url, attempt.run_id, watch)


async def wait_for_end(store_url: str | None, run_id: str, watch: FleetWatch) -> RunOutcome:
    """The run's outcome once its stored status settles (``queued`` and ``running``,
    a dead worker's included, are the fleet's to finish). Stopped (Ctrl-C), the
    bench stops waiting: the workers go on, and the same command again collects it."""
    from mirograph.flows.runs import find_run
    from mirograph.state.store import open_registry

    async with open_registry(store_url) as registry:
        while True:
            record = await asyncio.to_thread(find_run, registry, run_id)
            watch.seen(record.status)
            if record.status in SETTLED:
                return RunOutcome(run_id, record.status, record.answer, record.reason)
            reason = watch.stopping()
            if reason:
                return RunOutcome(
                    run_id, record.status, None, f"{reason}; the workers go on with it"
                )
            if record.status == "queued":
                watch.check_stall(run_id)
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
