"""``mirograph bench``: everything checked before anything runs, then the session.

The dataset is read whole, the flow loaded and the judge made first, so a
malformed row, a broken flow or an unknown judge is one line and nothing is
started. Ctrl-C once starts no new attempt and pauses the runs in flight after
their step (the same command continues them); twice stops at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mirograph.errors import UserInputError
from mirograph.flows.bench.harness import BenchRunner, BenchSettings
from mirograph.flows.bench.results import owed_again
from mirograph.flows.bench.session import BenchReport, run_bench
from mirograph.flows.terminal import printable


@dataclass(frozen=True)
class BenchOptions:
    """The command line's options, as typed."""

    dataset: Path
    benchmark: str | None
    flow: str | None
    overrides: list[str]
    runs: int
    concurrency: int
    judge: str
    limit: int | None
    out: Path | None
    seed: int
    store: str | None
    broker: str | None = None


def prepare(options: BenchOptions) -> BenchSettings:
    """Dataset, flow and judge, each checked; raises one ``UserInputError`` line."""
    from mirograph.flows.bench.datasets import load_dataset

    # The dataset first: a bad row is said before the engine is even imported.
    dataset = load_dataset(options.dataset, options.benchmark, limit=options.limit)
    if not dataset.tasks:
        raise UserInputError(f"{options.dataset} holds no task to run; check the file")

    from mirograph.flows.bench.judges.make import make_judge
    from mirograph.flows.graph_ref import is_graph_ref
    from mirograph.flows.loader import load_flow

    if is_graph_ref(options.flow):
        if options.overrides:
            raise UserInputError("--set applies to flow files; a custom graph reads its own")
        flow: object = str(options.flow)
        flow_name = str(options.flow)
        models = {}
    else:
        loaded = load_flow(options.flow, options.overrides)
        flow, flow_name, models = loaded, options.flow or loaded.name, loaded.models
    broker = None
    if options.broker is not None:  # checked now: a wrong URL fails before any run exists
        from mirograph.flows.workers import broker as fleet_broker
        from mirograph.state.store import is_postgres_url

        if not is_postgres_url(options.store or os.environ.get("MIROGRAPH_STORE")):
            raise UserInputError(
                "--broker hands the attempts to workers, which must reach their runs: pass"
                " --store postgresql://… (or set MIROGRAPH_STORE), the store the workers use"
            )

        broker = fleet_broker.broker_url(options.broker)
        fleet_broker.check_broker(broker)
    judge = make_judge(options.judge, models)
    out = options.out or Path("bench") / f"{_stem(dataset.benchmark)}-{_stem(flow_name)}"
    return BenchSettings(
        dataset=dataset,
        flow_name=flow_name,
        flow=flow,  # type: ignore[arg-type]
        runs=options.runs,
        concurrency=options.concurrency,
        judge=judge,
        out=out.resolve(),
        seed=options.seed,
        limit=options.limit,
        store_url=options.store,
        broker_url=broker,
    )


def _stem(name: str) -> str:
    """A flow or benchmark name as a folder name (a flow file: its file name's stem)."""
    from mirograph.flows.bench.folder import slug

    return slug(Path(name).stem if name.endswith((".yaml", ".yml")) else name, "flow")


def bench(options: BenchOptions, err: Console, out: Console) -> int:
    """Run the command; returns its exit code (0 all judged, 3 some left to continue)."""
    settings = prepare(options)

    def say(line: str) -> None:
        err.print(printable(line, multiline=False), markup=False, soft_wrap=True)

    report = asyncio.run(_session(settings, say))
    return finish(report, settings, say, out)


async def _session(settings: BenchSettings, say: Callable[[str], None]) -> BenchReport:
    loop = asyncio.get_running_loop()
    presses = 0
    held: list[BenchRunner] = []

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1 and held:
            held[0].stop("paused by Ctrl-C")
            if settings.broker_url is not None:
                say("stopping: no new attempt is handed out; the workers go on with theirs")
            else:
                say("pausing the runs in flight after their step… (Ctrl-C again stops at once)")
        else:
            say(
                "error: stopped at once; run the same `mirograph bench` command again to"
                " continue (every run in flight resumes from its checkpoint)"
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await run_bench(settings, say=say, on_start=held.append)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def finish(
    report: BenchReport, settings: BenchSettings, say: Callable[[str], None], out: Console
) -> int:
    from mirograph.flows.bench.scoring import summary_table

    out.print(summary_table(report.summary))
    for path in report.files:
        say(f"wrote {path}")
    outcome = report.outcome
    if not outcome.unfinished:
        owed = [r for r in outcome.rows if owed_again(r)]
        if not owed:
            return 0
        first = owed[0]
        failed = sum(1 for r in owed if r.get("stop_reason") == "failed")
        parts = [f"{failed} failed"] if failed else []
        parts += [f"{len(owed) - failed} could not be judged"] if len(owed) > failed else []
        detail = " ".join(str(first["judge"].get("detail") or "").split())[:200]
        say(
            f"error: {len(owed)} of {outcome.total} attempts are not done ({', '.join(parts)};"
            f" {first['task_id']} #{first['attempt']}: {detail}); they count as wrong for now:"
            " run the same command again to try them again"
        )
        return 3
    attempt, why = outcome.unfinished[0]
    say(
        f"error: {len(outcome.unfinished)} of {outcome.total} attempts are not finished"
        f" ({attempt.task.task_id} #{attempt.k}: {why}); run the same command again to"
        " continue them from their checkpoints"
    )
    return 3
