"""The takeover sweep: continue every run the fleet owes whose runner is gone.

The store says which runs the fleet owes: those ``queued`` (handed to the
workers) and those ``running`` under a lease a worker took (``state.leases``'s
worker tag; a run a person ran and killed stays theirs). Each whose lease no
live runner holds, and for which no task is waiting (``mirograph:queued``), gets
its continuation queued (a task counts as waiting while its message is in the queue,
not once a worker took it). That covers a worker killed mid-run (its lease dies
with its process on its host, and expires elsewhere within the workers' short
TTL), a task lost with Redis (restarted empty: the store still knows the run),
and a worker that took a task and died before it held the lease. Sending one
continuation too many is harmless: the lease lets exactly one runner run.

Celery beat runs the sweep every ``sweep_every(takeover_after)`` seconds, in its
own process (``SweepScheduler``): a task would wait behind the runs that fill
every worker's threads, which is exactly when a takeover is needed.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from celery import beat

from mirograph.flows.workers import broker
from mirograph.flows.workers.app import QUEUE, SWEEP_TASK
from mirograph.flows.workers.task import current_worker, open_registry_now
from mirograph.state.registry import RunRecord

log = logging.getLogger("mirograph.workers.sweep")


def owed(record: RunRecord) -> bool:
    """Whether the fleet owes ``record`` a runner now: queued, or a worker's run whose
    runner is gone."""
    lease = record.lease
    if lease is not None and lease.is_live():
        return False
    return record.status == "queued" or (lease is not None and lease.by_worker)


def sweep(store_url: str | None, broker_url: str) -> list[str]:
    """Queue the continuation of each run the fleet owes whose runner is gone; their ids."""
    registry = open_registry_now(store_url)
    try:
        candidates = [record.id for record in registry.runnable() if owed(record)]
    finally:
        registry.close()
    if not candidates:
        return []
    with broker.client(broker_url) as redis_client:
        waiting = waiting_runs(redis_client)
    queued: list[str] = []
    for run_id in sorted(set(candidates) - waiting):
        broker.enqueue(broker_url, run_id)
        queued.append(run_id)
        log.info("run %s has no live runner: continuation queued", run_id)
    return queued


def waiting_runs(redis_client: Any) -> set[str]:
    """Runs with a task still in the queue: sent (``mirograph:queued``) and not yet
    delivered. A task delivered to a worker that died before its run took the lease
    is not waiting (its entry is dropped), so the run is continued now rather than
    when Redis redelivers it (``visibility_timeout``)."""
    sent: dict[str, str] = redis_client.hgetall(broker.QUEUED_KEY)
    if not sent:
        return set()
    in_queue = set()
    for key in redis_client.scan_iter(match=f"{QUEUE}*", count=100):
        if redis_client.type(key) != "list":
            continue
        for raw in redis_client.lrange(key, 0, -1):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                in_queue.add(json.loads(raw)["headers"]["id"])
    gone = [task for task in sent if task not in in_queue]
    if gone:
        redis_client.hdel(broker.QUEUED_KEY, *gone)
    return {run for task, run in sent.items() if task in in_queue}


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
