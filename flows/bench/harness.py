"""Run a benchmark: every attempt at every task is an ordinary run, N at once, resumable.

The output folder is the bench's memory. ``bench.json`` fixes what the bench
is (dataset, flow, K, seed, judge, and the id its runs are named after);
``results.jsonl`` gains one line per judged attempt, written as it is judged.
Running the same command again therefore continues: a judged attempt is not
run again, an attempt whose run ended is only judged, and an attempt whose run
stopped mid-task (killed, paused, a model outage) resumes from its checkpoint,
where the reference harness starts the task over.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirograph.errors import (
    BrokerUnavailableError,
    MirographError,
    ModelServerError,
    RunBusyError,
    RunFailedError,
    RunNotFoundError,
    StoreUnavailableError,
)
from mirograph.flows.bench.judges import Judge
from mirograph.flows.bench.records import AttemptResult
from mirograph.flows.bench.results import ResultsFile
from mirograph.flows.bench.tasks import BenchTask, Dataset
from mirograph.text import describe

if TYPE_CHECKING:  # the engine is imported when attempts run: a bad dataset is said at once
    from mirograph.flows.bench.fleet import FleetWatch
    from mirograph.flows.loader import FlowConfig
    from mirograph.flows.runner import RunOutcome
    from mirograph.graphs.run_control import RunControl


@dataclass(frozen=True)
class BenchSettings:
    """What ``mirograph bench`` was asked to do."""

    dataset: Dataset
    #: The flow as given (a shipped name, a path) and as loaded; a custom graph: its ref.
    flow_name: str
    flow: FlowConfig | str
    runs: int
    concurrency: int
    judge: Judge
    out: Path
    seed: int = 0
    limit: int | None = None
    store_url: str | None = None
    #: The workers' Redis broker: attempts run on the fleet (``fleet``), not here.
    broker_url: str | None = None
    #: Lines the bench has to say before it runs (e.g. its flow changed); filled by it.
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Attempt:
    """The ``k``-th run of the task at ``index`` (its place in the dataset)."""

    task: BenchTask
    index: int
    k: int
    run_id: str


@dataclass
class BenchOutcome:
    """What a bench session did: every judged attempt so far, and what is left."""

    rows: list[AttemptResult]
    total: int
    #: Attempts that did not finish this session, with the reason (rerun to continue).
    unfinished: list[tuple[Attempt, str]] = field(default_factory=list)
    #: Set when the bench stopped early (Ctrl-C, a model or store outage).
    stopped: str | None = None


# -- the output folder --------------------------------------------------------------


# -- the plan -----------------------------------------------------------------------


def plan_attempts(settings: BenchSettings, bench_id: str) -> list[Attempt]:
    """Every attempt of the bench, in the order they run: shuffled with the seed."""
    attempts = [
        Attempt(task, index, k, f"{bench_id}-{index + 1:05d}-{k}")
        for index, task in enumerate(settings.dataset.tasks)
        for k in range(1, settings.runs + 1)
    ]
    random.Random(settings.seed).shuffle(attempts)
    return attempts


def question_for(task: BenchTask) -> str:
    """The question as the agent sees it: the task, and the files placed in its workspace."""
    if not task.files:
        return task.question
    names = ", ".join(f"`{path.name}`" for path in task.files)
    return (
        f"{task.question}\n\nAttached to this task (in your working folder, the workspace"
        f" your tools read files from): {names}"
    )


def place_files(task: BenchTask, run_id: str) -> None:
    """Copy the task's files into the run's workspace before the run starts."""
    from mirograph.flows.runner import run_dir

    if not task.files:
        return
    workspace = run_dir(run_id) / "workspace"
    for path in task.files:
        try:
            workspace.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, workspace / path.name)
        except OSError as exc:
            raise OSError(
                f"cannot copy the attached file {path} into run {run_id}'s workspace"
                f" ({exc.strerror or exc}); put the file back (or free the disk) and run"
                " the same command again"
            ) from None


# -- running ------------------------------------------------------------------------


class BenchRunner:
    """Runs the attempts a bench still owes, ``concurrency`` at once, on one event loop."""

    def __init__(
        self,
        settings: BenchSettings,
        *,
        on_result: Callable[[AttemptResult, int, int], None] | None = None,
        say: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.settings = settings
        self.on_result = on_result
        self.say = say
        self.fleet_watch: FleetWatch | None = None
        self.controls: set[RunControl] = set()
        self.stopping: str | None = None

    def _fleet_watch(self) -> FleetWatch:
        from mirograph.flows.bench.fleet import FleetWatch

        if self.fleet_watch is None:
            self.fleet_watch = FleetWatch(self.say, lambda: self.stopping)
        return self.fleet_watch

    def stop(self, reason: str) -> None:
        """Start no new attempt; ask the runs in flight to pause after their step."""
        self.stopping = self.stopping or reason
        for control in list(self.controls):
            control.request_pause(reason)

    async def run(self, bench_id: str, rows: list[AttemptResult]) -> BenchOutcome:
        """Run what the bench ``bench_id`` still owes, ``rows`` being what it keeps of
        ``results.jsonl`` (read first: a torn last line is cut before any append)."""
        settings = self.settings
        results = ResultsFile(settings.out / "results.jsonl")
        done = {(str(r["task_id"]), int(r["attempt"])) for r in rows}
        attempts = plan_attempts(settings, bench_id)
        owed = [a for a in attempts if (a.task.task_id, a.k) not in done]
        outcome = BenchOutcome(rows=rows, total=len(attempts))
        gate = asyncio.Semaphore(settings.concurrency)

        async def one(attempt: Attempt) -> None:
            async with gate:
                if self.stopping:
                    outcome.unfinished.append((attempt, self.stopping))
                    return
                try:
                    row = await self._attempt(attempt)
                except RunBusyError as exc:  # another process runs it: left to that one
                    outcome.unfinished.append((attempt, str(exc)))
                    return
                except (_Unfinished, *OUTAGES) as exc:
                    self._away(outcome, attempt, str(exc))
                    return
                except Exception as exc:  # sorted below: an outage, or this task
                    why = describe(exc)
                    store_away = await store_away_reason(self.settings.store_url)
                    if store_away:  # the store's own errors come in many kinds
                        self._away(outcome, attempt, f"{store_away} ({why})")
                        return
                    # This task could not be run (a question longer than the context, a
                    # run that failed, a model that refused the key): an attempt with no
                    # answer, counted wrong until a rerun tries it again; the others go on.
                    row = await self._failed(attempt, why)
                results.append(row)
                outcome.rows.append(row)
                if self.on_result is not None:
                    self.on_result(row, len(outcome.rows), outcome.total)

        await asyncio.gather(*(one(a) for a in owed))
        outcome.stopped = self.stopping
        return outcome

    def _away(self, outcome: BenchOutcome, attempt: Attempt, why: str) -> None:
        """The model, the store or this machine is away (or Ctrl-C): the next attempts
        would stop too, so none is started; the same command again continues."""
        outcome.unfinished.append((attempt, why))
        self.stop(why)

    async def _attempt(self, attempt: Attempt) -> AttemptResult:
        """Run (or resume, or only read) one attempt's run, then judge its answer.

        Raises ``_Unfinished`` for a run that stopped without ending (paused)."""
        from mirograph.flows.runner import ENDED, get_run, run_report
        from mirograph.state.store import open_store

        settings = self.settings
        try:
            async with open_store(settings.store_url) as store:
                status = get_run(store, attempt.run_id).status
        except RunNotFoundError:
            status = None
        if settings.broker_url is not None:
            from mirograph.flows.bench.fleet import run_on_fleet

            ran = await run_on_fleet(settings, attempt, status, self._fleet_watch())
        else:
            ran = await self._run_here(attempt, status)
        if ran.status == "failed":
            raise RunFailedError(f"run {attempt.run_id} failed: {ran.reason}")
        if ran.status not in ENDED:
            raise _Unfinished(f"run {attempt.run_id} {ran.status}: {ran.reason}")
        report = await run_report(attempt.run_id, store_url=settings.store_url)
        verdict = await settings.judge.judge(attempt.task, ran.answer, settings.dataset.benchmark)
        return result_row(attempt, report, ran.answer, verdict.as_record(), verdict.correct)

    async def _run_here(self, attempt: Attempt, status: str | None) -> RunOutcome:
        """Start (``status`` None) or resume the attempt's run in this process."""
        from mirograph.flows.runner import resume_run, start_run
        from mirograph.graphs.run_control import RunControl

        settings = self.settings
        control = RunControl()
        self.controls.add(control)
        try:
            if status is None:
                place_files(attempt.task, attempt.run_id)
                ran = await start_run(
                    question_for(attempt.task),
                    settings.flow,
                    run_id=attempt.run_id,
                    store_url=settings.store_url,
                    control=control,
                )
            else:
                ran = await resume_run(
                    attempt.run_id,
                    store_url=settings.store_url,
                    control=control,
                    flow=None if isinstance(settings.flow, str) else settings.flow,
                )
        finally:
            self.controls.discard(control)
        return ran

    async def _failed(self, attempt: Attempt, why: str) -> AttemptResult:
        """The row of an attempt that ended without an answer because it could not run."""
        from mirograph.flows.runner import run_report

        try:
            report = await run_report(attempt.run_id, store_url=self.settings.store_url)
        except Exception:  # refused before its run was stored
            report = {}
        judge = {
            "verdict": "incorrect",
            "method": "none",
            "model": None,
            "prompt_version": None,
            "detail": f"no answer: {why}",
        }
        row = result_row(attempt, report, None, judge, False)
        row["stop_reason"] = "failed"
        return row


async def store_away_reason(store_url: str | None) -> str | None:
    """Why the run store cannot be read right now; None when it can."""
    from mirograph.state.store import open_registry, shown_url

    try:
        async with open_registry(store_url) as registry:
            await asyncio.to_thread(registry.list, 1)
    except Exception as exc:  # any failure to read it is the answer
        where = shown_url(store_url) if store_url else "(the default one)"
        return f"the run store {where} cannot be read: {describe(exc)}"
    return None


class _Unfinished(MirographError):
    """An attempt's run stopped without ending (paused): a rerun continues it."""


#: Errors that say the model, the store or this machine is away, not that a task is bad.
OUTAGES: tuple[type[BaseException], ...] = (
    BrokerUnavailableError,
    StoreUnavailableError,
    ModelServerError,
    OSError,
)


def result_row(
    attempt: Attempt,
    report: dict[str, Any],
    answer: str | None,
    judge: dict[str, Any],
    correct: bool,
) -> AttemptResult:
    usage = report.get("usage") or {}
    attempts = report.get("attempts") or []
    return {
        "task_id": attempt.task.task_id,
        "attempt": attempt.k,
        "run_id": attempt.run_id,
        "question": attempt.task.question,
        "answer": answer,
        "ground_truth": attempt.task.ground_truth,
        "correct": correct,
        "judge": judge,
        "group": attempt.task.group,
        "turns": int(usage.get("turns") or 0),
        "tool_calls": int(usage.get("tool_calls") or 0),
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "wall_s": float(report.get("wall_seconds") or 0.0),
        "stop_reason": report.get("stop_reason") or report.get("status"),
        "restarts": max(len(attempts) - 1, 0),
    }


def in_task_order(rows: list[AttemptResult], dataset: Dataset) -> list[AttemptResult]:
    """Rows sorted as the dataset lists its tasks, then by attempt."""
    place = {task.task_id: i for i, task in enumerate(dataset.tasks)}
    return sorted(rows, key=lambda r: (place.get(str(r["task_id"]), len(place)), r["attempt"]))
