"""Hand runs to the workers: ``mirograph submit`` and ``mirograph resume --broker``.

A submitted run is checked as ``run`` checks it (the flow builds, its keys are
set, the question fits) and the broker is asked before anything is stored, so a
broken flow or an unreachable broker leaves nothing behind. The run is stored as
``queued``; a worker's first session starts it from its question.
"""

from __future__ import annotations

import os

from mirograph.errors import RunBusyError, UserInputError
from mirograph.flows.workers import broker
from mirograph.graphs.config import FlowConfig
from mirograph.state.registry import RunRecord, check_run_id


async def submit_run(
    question: str,
    flow: FlowConfig | str,
    *,
    run_id: str | None = None,
    store_url: str | None = None,
    broker_url: str | None = None,
) -> str:
    """Store a new run as ``queued`` and queue its task; returns its id."""
    from mirograph.flows.graph_ref import canonical, load_builder
    from mirograph.flows.loader import ready_to_run
    from mirograph.flows.runner import GRAPH_KEY, check_question_fits, compiled_run, new_run_id
    from mirograph.state.store import open_store

    if not question.strip():
        raise UserInputError("the question is empty; pass the question to investigate")
    url = broker.broker_url(broker_url)
    broker.check_broker(url)  # first: an unreachable broker is said at once
    if isinstance(flow, str):
        ref = canonical(flow)
        load_builder(ref)
        name, spec = ref, {GRAPH_KEY: ref}
    else:
        ready_to_run(flow, source=flow.name)
        name, spec = flow.name, flow.model_dump(mode="json")
    run_id = check_run_id(new_run_id() if run_id is None else run_id)
    record = RunRecord(
        id=run_id, question=question, flow=name, flow_spec=spec, status="queued", pid=os.getpid()
    )
    async with open_store(store_url) as store:
        async with compiled_run(store, record) as run:  # a graph that cannot build: refused
            if run.entry is not None:
                check_question_fits(run.entry, question)
        store.registry.create(record)
        try:
            broker.enqueue(url, run_id)
        except Exception:
            store.registry.update(
                run_id, status="paused", reason="the broker went away before it was queued"
            )
            raise
    return run_id


async def queue_resume(
    run_id: str, *, store_url: str | None = None, broker_url: str | None = None
) -> RunRecord:
    """Queue the continuation of a paused, failed or killed run for the workers."""
    from mirograph.flows.runner import ENDED
    from mirograph.flows.runs import find_run
    from mirograph.state.store import open_registry

    url = broker.broker_url(broker_url)
    async with open_registry(store_url) as registry:
        record = find_run(registry, run_id)
        if record.status in ENDED:
            raise UserInputError(
                f"run {run_id} is {record.status}: there is nothing to continue"
                f" (`mirograph show {run_id}`)"
            )
        status = record.effective_status
        if status == "running" and record.lease is not None:
            raise RunBusyError(record.lease.busy_message())
        broker.check_broker(url)
        registry.update(run_id, status="queued", reason=None, pause_requested=None)
        broker.enqueue(url, run_id)
        return record


async def unqueue(run_id: str, *, store_url: str | None = None) -> bool:
    """Pause a queued run before a worker takes it; False if it is not queued. (A
    worker that takes it at that moment finds the pause asked and stops at once.)"""
    from mirograph.flows.runs import find_run
    from mirograph.state.store import open_registry

    async with open_registry(store_url) as registry:
        record = find_run(registry, run_id)
        if record.effective_status != "queued":
            return False
        reason = "paused by `mirograph pause` before a worker took it"
        registry.update(run_id, status="paused", reason=reason)  # first: see the docstring
        registry.request_pause(run_id, reason)
        return True
