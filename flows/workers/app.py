"""The Celery app of the workers: ``celery -A mirograph.flows.workers.app ...``.

Its broker is ``$MIROGRAPH_BROKER`` (default Redis on this machine), so Celery's
own tools see the fleet: ``celery -A mirograph.flows.workers.app inspect active``
lists each worker's runs, and Flower (``celery -A mirograph.flows.workers.app
flower``) shows workers and tasks. ``mirograph worker`` and ``mirograph submit``
configure it with their ``--broker``.

Tasks are acknowledged when they end (``task_acks_late``), so a worker killed
mid-run leaves its task unacknowledged: Redis redelivers it after the
transport's ``visibility_timeout``; the takeover sweep does not wait for that.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from mirograph.flows.workers.broker import BROKER_ENV, DEFAULT_BROKER
from mirograph.flows.workers.timing import (
    TAKEOVER_AFTER_S,
    VISIBILITY_TIMEOUT_S,
    restore_every,
    sweep_every,
)

#: The task that runs or continues one run (its one argument: the run id).
RUN_TASK = "mirograph.run"
#: The takeover sweep, run by Celery beat (``mirograph worker --beat``, ``mirograph beat``).
SWEEP_TASK = "mirograph.sweep"
#: The queue runs wait in.
QUEUE = "mirograph"


def configure(
    target: Celery,
    broker: str,
    *,
    visibility_timeout_s: float = VISIBILITY_TIMEOUT_S,
    takeover_after_s: float = TAKEOVER_AFTER_S,
) -> Celery:
    """Point ``target`` at ``broker`` with the settings runs need."""
    target.conf.update(
        broker_url=broker,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s,
            # Scan for tasks past it every so often (the transport's default: 100 s).
            "unacked_restore_interval": restore_every(visibility_timeout_s),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
            "max_retries": 2,
        },
        broker_connection_timeout=3,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_publish_retry=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=True,
        beat_scheduler="mirograph.flows.workers.sweep:SweepScheduler",
        beat_schedule={
            "takeover-sweep": {"task": SWEEP_TASK, "schedule": sweep_every(takeover_after_s)},
        },
        accept_content=["json"],
        task_serializer="json",
    )
    return target


app = configure(Celery("mirograph"), os.environ.get(BROKER_ENV) or DEFAULT_BROKER)


@app.task(name=RUN_TASK, bind=True)
def run_task(self: Any, run_id: str) -> str:
    """Run or continue ``run_id`` on this worker's event loop; returns how it ended."""
    from mirograph.flows.workers.task import run_in_worker

    return run_in_worker(run_id, task_id=self.request.id)


@app.task(name=SWEEP_TASK)
def sweep_task() -> list[str]:
    """The takeover sweep (beat runs it in its own process: see ``sweep``)."""
    from mirograph.flows.workers.sweep import sweep_now

    return sweep_now()
