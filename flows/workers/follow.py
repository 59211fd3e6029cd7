"""``mirograph watch`` for runs the workers run: follow one across workers.

A fleet run has gaps between sessions: queued until a worker takes it, and for a
moment after a worker dies (its lease dead, the store still saying ``running``)
until the sweep's continuation starts on another. Watching goes on through them,
drawing each session's events once (``flows.watch`` follows one session), and
ends when the run ends or stays paused. A store that goes away meanwhile is
waited for, said once (``flows.watch.StoreAway``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.console import Console

from mirograph.state.store import open_store

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
    from mirograph.flows.watch import StoreAway, WatchView, follow_events

    view = WatchView(run_id, console)
    away = StoreAway(store_url, view.say)
    last = 0
    said_waiting = False
    first = True
    try:
        # Open all along: a server store's sessions below share its connections, so a
        # session that starts while the store is away waits for it, not fails to open.
        async with open_store(store_url) as store:
            registry = store.registry
            while True:
                found = away.find(registry, run_id)
                if found is None:  # the store is away: look again in a moment
                    await asyncio.sleep(POLL_S)
                    continue
                record = found
                status = record.effective_status
                if first or status == "running" or record.status not in GOING_ON:
                    first = False
                    async for event in follow_events(
                        run_id,
                        store_url=store_url,
                        redis_url=redis_url,
                        after=last,
                        say=view.say,
                        away=away,
                    ):
                        last = max(last, int(event.get("seq") or last))
                        view(event)
                    found = away.find(registry, run_id)
                    if found is None:
                        continue
                    record = found
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
