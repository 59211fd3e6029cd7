"""Hand runs to the workers: ``mirograph submit`` and ``mirograph resume --broker``.

A submitted run is checked as ``run`` checks it (the flow builds, its keys are
set, the question fits) and the broker is asked before anything is stored, so a
broken flow or an unreachable broker leaves nothing behind. The run is stored as
``queued``; a worker's first session starts it from its question.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

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
    ids = None if run_id is None else [run_id]
    return (
        await submit_runs([question], flow, run_ids=ids, store_url=store_url, broker_url=broker_url)
    )[0]


async def submit_runs(
    questions: Sequence[str],
    flow: FlowConfig | str,
    *,
    run_ids: Sequence[str] | None = None,
    store_url: str | None = None,
    broker_url: str | None = None,
) -> list[str]:
    """``submit_run`` for many runs of one flow: the broker checked, the store opened
    and the graph built once for all (each once per run cost a submitter ~100 ms a
    run, the fleet's runs waiting on it); returns their ids. Every question and id is
    checked before anything is stored; a run whose task the broker lost is paused."""
    from mirograph.flows.graph_ref import canonical, load_builder
    from mirograph.flows.loader import ready_to_run
    from mirograph.flows.runner import GRAPH_KEY, check_question_fits, compiled_run, new_run_id
    from mirograph.state.store import open_store

    if not questions:
        raise UserInputError("no question to submit; pass at least one")
    if run_ids is not None and len(run_ids) != len(questions):
        raise UserInputError(
            f"{len(questions)} questions but {len(run_ids)} run ids; pass one id per question"
        )
    if any(not question.strip() for question in questions):
        raise UserInputError("the question is empty; pass the question to investigate")
    ids = [check_run_id(i) for i in run_ids] if run_ids is not None else None
    if ids is not None and len(set(ids)) < len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise UserInputError(f"run id {twice[0]} is given twice; give each run its own id")
    url = broker.broker_url(broker_url)
    broker.check_broker(url)  # first: an unreachable broker is said at once
    if isinstance(flow, str):
        ref = canonical(flow)
        load_builder(ref)
        name, spec = ref, {GRAPH_KEY: ref}
    else:
        ready_to_run(flow, source=flow.name)
        name, spec = flow.name, flow.model_dump(mode="json")
    ids = ids if ids is not None else [new_run_id() for _ in questions]
    records = [
        RunRecord(
            id=run_id,
            question=question,
            flow=name,
            flow_spec=spec,
            status="queued",
            pid=os.getpid(),
        )
        for question, run_id in zip(questions, ids, strict=True)
    ]
    async with open_store(store_url) as store:
        # The graph is the flow's, whichever run: built once, a graph that cannot build
        # is refused, and every question must fit its entry agent.
        async with compiled_run(store, records[0]) as run:
            if run.entry is not None:
                for question in questions:
                    check_question_fits(run.entry, question)
        with broker.enqueuer(url) as send:
            for record in records:
                store.registry.create(record)
                try:
                    send(record.id)
                except Exception:
                    store.registry.update(
                        record.id,
                        status="paused",
                        reason="the broker went away before it was queued",
                    )
                    raise
    return ids


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
