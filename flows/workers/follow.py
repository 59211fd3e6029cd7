"""``mirograph watch`` for runs the workers run: follow one across workers.

A fleet run has gaps between sessions: queued until a worker takes it, and for a
moment after a worker dies (its lease dead, the store still saying ``running``)
until the sweep's continuation starts on another. Watching goes on through them,
drawing each session's events once (``flows.watch`` follows one session), and
ends when the run ends or stays paused.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.console import Console

from mirograph.flows.runs import find_run
from mirograph.state.store import open_registry

if TYPE_CHECKING:
    from mirograph.flows.runner import RunOutcome

#: Seconds between two looks at the run while no worker runs it.
POLL_S = 0.5
#: Statuses (as stored) of a run that goes on: a worker has it, or will.
GOING_ON = ("queued", "running")


async def watch_fleet_run(
    run_id: str, *, store_url: str | None, redis_url: str | None, console: Console
) -> RunOutcome:
    """Draw the run's events as ``mirograph run`` draws them, from its first, through
    every session, until it ends or stays paused; its outcome then."""
    from mirograph.flows.runner import RunOutcome
    from mirograph.flows.watch import WatchView, follow_events

    view = WatchView(run_id, console)
    last = 0
    said_waiting = False
    first = True
    try:
        async with open_registry(store_url) as registry:
            while True:
                record = find_run(registry, run_id)
                status = record.effective_status
                if first or status == "running" or record.status not in GOING_ON:
                    first = False
                    async for event in follow_events(
                        run_id, store_url=store_url, redis_url=redis_url, after=last
                    ):
                        last = max(last, int(event.get("seq") or last))
                        view(event)
                    record = find_run(registry, run_id)
                    if record.status not in GOING_ON:
                        break
                if record.effective_status != "running":
                    if not said_waiting:
                        console.print(
                            f"run {run_id} is {record.effective_status}: waiting for a worker"
                            " to take it (Ctrl-C stops watching, not the run)",
                            style="dim",
                            markup=False,
                        )
                        said_waiting = True
                    await asyncio.sleep(POLL_S)
                else:
                    said_waiting = False
    finally:
        view.stop()
    return RunOutcome(record.id, record.effective_status, record.answer, record.reason)
