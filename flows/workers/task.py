"""What a worker does with a task: run or continue one run, then say how it ended.

The run's lease decides who runs it: a task for a run that another live runner
holds, or that ended, ends at once (logged), so duplicates (a redelivered task,
a sweep's continuation) are harmless. A run that a session left paused (asked
with ``mirograph pause``, or its model server unavailable) stays paused: only a
run the store says is ``queued`` or ``running`` is run. A worker asked to stop
(SIGTERM: Celery's warm shutdown) pauses its runs at their next step and queues
their continuation, for another worker or itself once restarted.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from mirograph.errors import (
    MirographError,
    RunBusyError,
    RunFailedError,
    RunNotFoundError,
    StoreUnavailableError,
)
from mirograph.flows.workers import broker
from mirograph.flows.workers.loop import LoopThread
from mirograph.graphs.run_control import RunControl
from mirograph.state.leases import hold_as_worker
from mirograph.state.registry import SqliteRunRegistry

log = logging.getLogger("mirograph.workers")

#: Why a worker's runs pause when it is asked to stop (their continuation is queued).
STOPPING = "the worker is stopping; the run continues on another worker"
#: Statuses of a run a task may run: anything else (paused, failed, ended) stays.
RUNNABLE = ("queued", "running")


class NotToRun(Exception):  # a control-flow signal, not an error of the tree
    """The run must not run in this session: said (and logged) by the task."""

    def __init__(self, reason: str, *, requeue: bool = False) -> None:
        super().__init__(reason)
        self.requeue = requeue


@dataclass
class Worker:
    """This process's worker: where runs are stored and queued, its loop, its runs."""

    store_url: str | None
    broker_url: str
    loop: LoopThread = field(default_factory=LoopThread)
    stopping: bool = False
    controls: dict[str, RunControl] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _registry: Any = None

    def registry(self) -> SqliteRunRegistry:
        """One registry connection for the worker's own reads (the runs open theirs)."""
        with self.lock:
            if self._registry is None:
                self._registry = open_registry_now(self.store_url)
            return self._registry

    def stop(self) -> None:
        """Pause every run of this worker at its next step; take no new one."""
        with self.lock:
            self.stopping = True
            controls = list(self.controls.values())
        for control in controls:
            control.request_pause(STOPPING)


def open_registry_now(url: str | None) -> SqliteRunRegistry:
    """The store's registry, opened outside any event loop (the worker checked at its
    start that the store opens: ``check_store``)."""
    from mirograph.state.store import default_store_url, is_postgres_url, sqlite_path

    if is_postgres_url(url):
        from mirograph.state.postgres.registry import PostgresRunRegistry

        return PostgresRunRegistry(str(url))  # type: ignore[return-value]
    return SqliteRunRegistry(sqlite_path(url or default_store_url()))


_WORKER: Worker | None = None


def set_worker(worker: Worker) -> Worker:
    """Make ``worker`` this process's (``mirograph worker`` does, before Celery starts);
    the leases it takes are a worker's, which the takeover sweep continues."""
    global _WORKER
    hold_as_worker()
    _WORKER = worker
    return worker


def current_worker() -> Worker:
    """This process's worker; a plain ``celery worker`` reads the environment."""
    global _WORKER
    if _WORKER is None:
        import os

        hold_as_worker()
        _WORKER = Worker(os.environ.get("MIROGRAPH_STORE") or None, broker.broker_url())
    return _WORKER


class WorkerControl(RunControl):
    """A run's control that, once the session holds the lease (``begin``), checks the
    run may run here: the worker is not stopping, the store says it is runnable."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self._worker = worker

    def begin(self, run_id: str, **kwargs: Any) -> None:
        worker = self._worker
        if worker.stopping:
            raise NotToRun("the worker is stopping", requeue=True)
        status = worker.registry().get(run_id).status
        if status not in RUNNABLE:
            raise NotToRun(f"it is {status}")
        super().begin(run_id, **kwargs)


def run_in_worker(run_id: str, *, task_id: str | None = None) -> str:
    """The task's body: run or continue ``run_id``; returns a word for how it ended."""
    from mirograph.flows.runner import resume_run

    worker = current_worker()
    # Taken on receipt, not once the lease is held: a worker that dies in between must
    # not leave the run looking as if a task still waited for it (the sweep would
    # never continue it). Until the lease is held the sweep may send one more
    # continuation, which the lease makes harmless.
    broker.taken(worker.broker_url, task_id)
    if worker.stopping:
        _requeue(worker, run_id)
        return "requeued"
    ended = _ended(worker, run_id)
    if ended is not None:  # e.g. a dead worker's task redelivered after a takeover
        log.info("run %s is %s already: nothing to do", run_id, ended)
        return "nothing to do"
    control = WorkerControl(worker)
    with worker.lock:
        worker.controls[f"{run_id}:{task_id}"] = control
    try:
        outcome = worker.loop.run(resume_run(run_id, store_url=worker.store_url, control=control))
    except NotToRun as exc:
        log.info("run %s not run here: %s", run_id, exc)
        if exc.requeue:
            _requeue(worker, run_id)
            return "requeued"
        return "skipped"
    except RunBusyError as exc:  # another live runner has it (or took it over)
        log.info("run %s not run here: %s", run_id, exc)
        return "busy"
    except RunNotFoundError as exc:
        log.warning("%s", exc)
        return "not found"
    except StoreUnavailableError as exc:
        log.warning("run %s stopped: %s", run_id, exc)
        _mark_queued(worker, run_id)  # the sweep continues it once the store is back
        return "store unavailable"
    except RunFailedError as exc:
        log.warning("%s", exc)
        return "failed"
    except MirographError as exc:  # e.g. the store cannot be opened now: the sweep retries
        log.warning("run %s not run here: %s", run_id, exc)
        return "error"
    finally:
        with worker.lock:
            worker.controls.pop(f"{run_id}:{task_id}", None)
    if outcome.status == "paused" and outcome.reason == STOPPING:
        _requeue(worker, run_id)
        log.info("run %s paused: this worker is stopping; its continuation is queued", run_id)
        return "requeued"
    if outcome.status == "paused":
        log.info("run %s paused (%s); it stays paused", run_id, outcome.reason)
    else:
        log.info("run %s %s", run_id, outcome.status)
    return outcome.status


def _ended(worker: Worker, run_id: str) -> str | None:
    """The run's status if it ended (read without opening the run's store)."""
    from mirograph.flows.runner import ENDED

    try:
        status = worker.registry().get(run_id).status
    except Exception:  # not there, or the store is away: the run's session says so
        return None
    return status if status in ENDED else None


def _mark_queued(worker: Worker, run_id: str) -> bool:
    """Mark the run queued (what the sweep and tasks look for); False if the store is away."""
    try:
        worker.registry().update(run_id, status="queued", reason=None)
    except Exception as exc:  # still running in the store: the sweep continues it
        log.warning("run %s could not be marked queued: %s", run_id, exc)
        return False
    return True


def _requeue(worker: Worker, run_id: str) -> None:
    """Queue the run's continuation for any worker."""
    _mark_queued(worker, run_id)
    try:
        broker.enqueue(worker.broker_url, run_id)
    except Exception as exc:  # the run is queued in the store: the sweep sends it
        log.warning("run %s could not be queued again: %s", run_id, exc)
