"""One ``mirograph bench`` session: run what is owed, say progress, write every output.

The outputs are written again at the end of every session, finished or not, so
``summary.json`` and the plots always describe what ``results.jsonl`` holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirograph.errors import StoreUnavailableError, UserInputError
from mirograph.flows.bench.folder import locked_out_dir, open_bench, write_atomically
from mirograph.flows.bench.harness import (
    BenchOutcome,
    BenchRunner,
    BenchSettings,
    in_task_order,
    store_away_reason,
)
from mirograph.flows.bench.judges import Judge
from mirograph.flows.bench.records import AttemptResult
from mirograph.flows.bench.results import judged_rows, latest_rows
from mirograph.flows.bench.tasks import BenchTask

if TYPE_CHECKING:
    from mirograph.flows.loader import FlowConfig


@dataclass
class BenchReport:
    """What a session leaves: the outcome, the summary and the files written."""

    outcome: BenchOutcome
    summary: dict[str, Any]
    files: list[Path]


class ProgressLine:
    """``[done/total] task #k: verdict … · accuracy so far · ETA`` after each attempt."""

    def __init__(
        self,
        say: Callable[[str], None],
        done_before: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.say = say
        self.done_before = done_before
        self.clock = clock
        self.started = clock()
        self.correct = 0
        self.judged = 0

    def count_earlier(self, rows: list[AttemptResult]) -> None:
        self.judged = len(rows)
        self.correct = sum(1 for row in rows if row["correct"])

    def __call__(self, row: AttemptResult, done: int, total: int) -> None:
        self.judged += 1
        self.correct += bool(row["correct"])
        this_session = done - self.done_before
        elapsed = self.clock() - self.started
        left = total - done
        eta = elapsed / this_session * left if this_session > 0 else 0.0
        verdict = row["judge"].get("verdict", "correct" if row["correct"] else "incorrect")
        task_id = str(row["task_id"])
        task_id = task_id if len(task_id) <= 60 else task_id[:59] + "…"
        self.say(
            f"[{done}/{total}] {task_id} #{row['attempt']}: {verdict}"
            f" ({_count(row['turns'], 'turn')}, {_count(row['tool_calls'], 'tool call')},"
            f" {row['wall_s']:.0f} s)"
            f" · accuracy {self.correct / self.judged:.1%} · ETA {_duration(eta)}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def flow_model(flow: FlowConfig | str) -> str | None:
    """The entry agent's model name (``summary.json``'s ``model``); None for a custom graph."""
    if isinstance(flow, str):
        return None
    agent = flow.agents.get(flow.entry)
    model = flow.models.get(agent.model) if agent is not None else None
    return model.model if model is not None else None


async def run_bench(
    settings: BenchSettings,
    *,
    say: Callable[[str], None],
    on_start: Callable[[BenchRunner], None] | None = None,
) -> BenchReport:
    """Run the bench's owed attempts and write its outputs.

    ``on_start`` gets the runner before any attempt starts (the CLI's Ctrl-C calls
    its ``stop``: no new attempt, the runs in flight pause after their step)."""
    with locked_out_dir(settings.out):
        away = await store_away_reason(settings.store_url)
        if away:
            raise StoreUnavailableError(f"{away}; start it, then run the same command again")
        await check_judge(settings.judge, settings.dataset.benchmark)
        bench_id = open_bench(settings)  # made, or checked against the folder's, first
        for note in settings.notes:
            say(f"note: {note}")
        earlier = judged_rows(settings.out / "results.jsonl")
        progress = ProgressLine(say, len(earlier))
        progress.count_earlier(earlier)
        total = len(settings.dataset.tasks) * settings.runs
        say(
            f"bench {settings.dataset.benchmark}: {len(settings.dataset.tasks)} tasks x"
            f" {settings.runs} runs = {total} attempts ({len(earlier)} judged before),"
            f" {settings.concurrency} at once, judge {settings.judge.name}; results in"
            f" {settings.out}"
        )
        runner = BenchRunner(settings, on_result=progress, say=say)
        if on_start is not None:
            on_start(runner)
        try:
            outcome = await runner.run(bench_id, earlier)
        finally:
            await settings.judge.aclose()
        return write_outputs(settings, outcome)


#: A question any judge must grade: asked once before a bench with a model judge runs.
PROBE = BenchTask(task_id="judge-check", question="What is 2 + 2?", ground_truth="4")


async def check_judge(judge: Judge, benchmark: str) -> None:
    """A model judge that cannot grade ``2 + 2 = 4`` (a wrong model name, URL or key)
    would turn every attempt into a ``judge_error``: refuse it before anything runs."""
    if judge.name == "exact":
        return
    verdict = await judge.judge(PROBE, "4", benchmark)
    if verdict.verdict == "correct":
        return
    detail = " ".join(str(verdict.detail or "").split())
    detail = detail if len(detail) <= 300 else detail[:300] + "…"
    said = "could not grade" if verdict.verdict == "judge_error" else "graded wrong"
    raise UserInputError(
        f"the judge {judge.name} {said} a test answer (2 + 2 = 4: {detail}); check --judge:"
        " a model the endpoint serves, its URL and key"
    )


def write_outputs(settings: BenchSettings, outcome: BenchOutcome) -> BenchReport:
    """``summary.json``, the MiroThinker-compatible files and both plots, from every row."""
    from mirograph.flows.bench.compat import write_compatible
    from mirograph.flows.bench.plots import plot_scaling, plot_turns
    from mirograph.flows.bench.scoring import summarize

    out = settings.out
    rows = in_task_order(latest_rows(out / "results.jsonl"), settings.dataset)
    outcome.rows = rows
    summary = summarize(
        rows,
        benchmark=settings.dataset.benchmark,
        tasks=len(settings.dataset.tasks),
        runs=settings.runs,
        judge=settings.judge.name,
        flow=settings.flow_name,
        model=flow_model(settings.flow),
    )
    summary_path = out / "summary.json"
    write_atomically(summary_path, json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    files = [out / "results.jsonl", summary_path]
    files += write_compatible(out, rows, summary)
    name = settings.dataset.benchmark
    files.append(plot_scaling(rows, out / "scaling.png", title=f"{name}: accuracy by tool calls"))
    files.append(plot_turns(rows, out / "turns.png", title=f"{name}: turns per attempt"))
    return BenchReport(outcome, summary, files)
