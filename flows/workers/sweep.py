"""The takeover sweep: continue every fleet run whose runner is gone.

A run handed to the workers (``mirograph:fleet``) that the store says is
``running`` or ``queued``, whose lease no live runner holds, and for which no
task is waiting (``mirograph:queued``), gets its continuation queued. That
covers a worker killed mid-run (its lease dies with its process on its host,
and expires elsewhere within the workers' short TTL), a task lost with Redis,
and a worker that took a task and died before it held the lease. Runs that
ended, failed or stay paused leave the fleet. Sending one continuation too many
is harmless: the lease lets exactly one runner run.

Celery beat runs the sweep every ``sweep_every(takeover_after)`` seconds, in its
own process (``SweepScheduler``): a task would wait behind the runs that fill
every worker's threads, which is exactly when a takeover is needed.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import beat

from mirograph.errors import RunNotFoundError
from mirograph.flows.workers import broker
from mirograph.flows.workers.app import SWEEP_TASK
from mirograph.flows.workers.task import RUNNABLE, current_worker, open_registry_now

log = logging.getLogger("mirograph.workers.sweep")


def sweep(store_url: str | None, broker_url: str) -> list[str]:
    """Queue the continuation of each fleet run whose runner is gone; their ids."""
    with broker.client(broker_url) as redis_client:
        members = sorted(redis_client.smembers(broker.FLEET_KEY))
        waiting = set(redis_client.hvals(broker.QUEUED_KEY))
    registry = open_registry_now(store_url)
    queued: list[str] = []
    try:
        for run_id in members:
            try:
                record = registry.get(run_id)
            except RunNotFoundError:
                broker.leave_fleet(broker_url, run_id)
                continue
            if record.status not in RUNNABLE:
                broker.leave_fleet(broker_url, run_id)
                continue
            if run_id in waiting or (record.lease is not None and record.lease.is_live()):
                continue
            broker.enqueue(broker_url, run_id)
            queued.append(run_id)
            log.info("run %s is %s with no live runner: continuation queued", run_id, record.status)
    finally:
        registry.close()
    return queued


def sweep_now() -> list[str]:
    """One sweep with this process's worker settings; failures are logged, not raised
    (the next sweep tries again: the store or Redis may be back by then)."""
    worker = current_worker()
    try:
        return sweep(worker.store_url, worker.broker_url)
    except Exception as exc:
        log.warning("takeover sweep failed: %s", exc)
        return []


class SweepScheduler(beat.Scheduler):
    """Celery beat's scheduler, running the sweep in beat's own process rather than
    sending it as a task; other entries are sent as usual. In memory: the schedule
    is the configuration, so there is nothing to persist."""

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        if entry.task != SWEEP_TASK:
            super().apply_entry(entry, producer)
            return
        sweep_now()  # quietly: the sweep logs what it queues

    def apply_async(
        self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if entry.task != SWEEP_TASK:
            return super().apply_async(entry, producer, advance, **kwargs)
        if advance:
            self.reserve(entry)
        sweep_now()
        return None
