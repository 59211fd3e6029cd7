"""``mirograph worker`` and ``mirograph beat``: start a Celery worker (or beat) on the store.

The broker and the store are checked first (before Celery is even imported), so
a wrong URL is one line at once, not Celery retrying forever. A worker's leases
expire a third of ``--takeover-after`` after their last renewal (``timing``), so
that a worker lost with its machine has its runs continued elsewhere in time.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from mirograph.flows.workers import broker
from mirograph.flows.workers.timing import TAKEOVER_AFTER_S, VISIBILITY_TIMEOUT_S, lease_ttl_for
from mirograph.state.store import LEASE_TTL_ENV

if TYPE_CHECKING:
    from mirograph.flows.workers.task import Worker


def prepare(
    store_url: str | None,
    broker_url: str | None,
    *,
    takeover_after_s: float = TAKEOVER_AFTER_S,
    visibility_timeout_s: float = VISIBILITY_TIMEOUT_S,
) -> Worker:
    """Check the broker and the store, configure the app and this process's worker."""
    from mirograph.errors import UserInputError

    if not takeover_after_s > 0:
        raise UserInputError(f"--takeover-after {takeover_after_s:g} must be a positive number")
    if not visibility_timeout_s > 0:
        raise UserInputError(
            f"--visibility-timeout {visibility_timeout_s:g} must be a positive number of seconds"
            " (default 3600: takeover is the sweep's job, not redelivery's)"
        )
    url = broker.broker_url(broker_url)
    broker.check_broker(url)
    asyncio.run(check_store(store_url))
    from mirograph.flows.workers.app import app, configure
    from mirograph.flows.workers.task import Worker, set_worker

    os.environ[LEASE_TTL_ENV] = str(lease_ttl_for(takeover_after_s))
    # Live events go to the broker's Redis too, unless another one is named.
    os.environ.setdefault("MIROGRAPH_REDIS", url)
    configure(
        app, url, visibility_timeout_s=visibility_timeout_s, takeover_after_s=takeover_after_s
    )
    return set_worker(Worker(store_url, url))


async def check_store(url: str | None) -> None:
    """Open the store's registry once: a store that cannot be opened is one line now."""
    from mirograph.state.store import open_registry

    async with open_registry(url):
        pass


def run_worker(*, concurrency: int, beat: bool, loglevel: str = "INFO") -> None:
    """Run the Celery worker in this process until it is stopped (SIGTERM: its runs
    pause at their next step and are queued again)."""
    from celery import signals

    from mirograph.flows.workers.app import app
    from mirograph.flows.workers.task import current_worker

    worker = current_worker()

    def stopping(**_: object) -> None:
        worker.stop()

    signals.worker_shutting_down.connect(stopping, weak=False)
    argv = [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        f"--hostname=mirograph-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--events",
    ]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)


def run_beat(*, loglevel: str = "INFO") -> None:
    """Run Celery beat (the takeover sweep) in this process until it is stopped."""
    from mirograph.flows.workers.app import app

    app.Beat(loglevel=loglevel, quiet=True).run()
