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
import fcntl
import hashlib
import json
import os
import random
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirograph.errors import (
    MirographError,
    ModelServerError,
    RunBusyError,
    RunFailedError,
    RunNotFoundError,
    StoreUnavailableError,
    UserInputError,
)
from mirograph.flows.bench.judges import Judge
from mirograph.flows.bench.records import AttemptResult
from mirograph.flows.bench.tasks import BenchTask, Dataset

if TYPE_CHECKING:  # the engine is imported when attempts run: a bad dataset is said at once
    from mirograph.flows.loader import FlowConfig
    from mirograph.graphs.run_control import RunControl

#: The settings that make a bench what it is: a rerun must give the same ones.
IDENTITY = ("dataset", "tasks_digest", "benchmark", "flow", "runs", "seed", "limit", "judge")


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


@contextmanager
def locked_out_dir(out: Path) -> Iterator[None]:
    """Hold ``out`` for this bench: two benches writing one folder would interleave."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 (held open)
    except OSError as exc:
        raise UserInputError(
            f"cannot write the bench's output folder {out} ({exc.strerror or exc});"
            " pass a writable --out"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserInputError(
                f"another `mirograph bench` is writing {out}; wait for it to end or pass"
                " another --out"
            ) from None
        yield


def bench_identity(settings: BenchSettings) -> dict[str, Any]:
    return {
        "dataset": str(settings.dataset.source),
        "tasks_digest": tasks_digest(settings.dataset),
        "benchmark": settings.dataset.benchmark,
        "flow": settings.flow_name,
        "runs": settings.runs,
        "seed": settings.seed,
        "limit": settings.limit,
        "judge": settings.judge.name,
    }


def tasks_digest(dataset: Dataset) -> str:
    """A digest of what the tasks ask and expect: an edited dataset file is a new bench."""
    digest = hashlib.sha256()
    for task in dataset.tasks:
        digest.update(json.dumps([task.task_id, task.question, task.ground_truth]).encode())
        for path in task.files:  # an edited attachment is another task too
            digest.update(path.name.encode() + b"\0" + _file_digest(path))
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> bytes:
    file_hash = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                file_hash.update(block)
    except OSError as exc:
        raise UserInputError(
            f"cannot read the attached file {path} ({exc.strerror or exc}); put it back"
        ) from None
    return file_hash.digest()


def flow_digest(flow: FlowConfig | str) -> str:
    """A digest of the flow as it runs (a custom graph: its reference)."""
    spec = flow if isinstance(flow, str) else flow.model_dump(mode="json")
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def open_bench(settings: BenchSettings) -> str:
    """The bench's id: read from ``bench.json`` (whose settings must match), or made."""
    path = settings.out / "bench.json"
    identity = bench_identity(settings)
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            bench_id = str(saved["bench_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserInputError(
                f"{path} cannot be read ({exc}); pass another --out for a new bench"
            ) from None
        changed = [key for key in IDENTITY if saved.get(key) != identity[key]]
        if changed:
            key = changed[0]
            if key == "tasks_digest":
                raise UserInputError(
                    f"the tasks of {settings.dataset.source} changed since the bench in"
                    f" {settings.out} started; pass another --out for a bench of the new tasks"
                )
            raise UserInputError(
                f"{settings.out} holds a bench with {key} {saved.get(key)!r}, not"
                f" {identity[key]!r}; rerun with the same options to continue it, or pass"
                " another --out"
            )
        digest = flow_digest(settings.flow)
        if saved.get("flow_digest") != digest:
            # A fixed flow file (a model name, a URL) is what the unfinished attempts
            # continue on; the judged ones keep what they ran with. Said, and recorded.
            settings.notes.append(
                f"the flow {settings.flow_name} changed since this bench started: its"
                " unfinished attempts continue with the changed flow"
            )
            _write_atomically(
                path, json.dumps({**saved, "flow_digest": digest}, ensure_ascii=False, indent=2)
            )
        return bench_id
    bench_id = f"bench-{_slug(settings.dataset.benchmark)}-{secrets.token_hex(3)}"
    tasks = [t.task_id for t in settings.dataset.tasks]
    record = {
        "bench_id": bench_id,
        **identity,
        "flow_digest": flow_digest(settings.flow),
        "created_at": time.time(),
        "tasks": tasks,
    }
    _write_atomically(path, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    return bench_id


def _slug(name: str) -> str:
    kept = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return kept[:24] or "bench"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_results(path: Path) -> list[AttemptResult]:
    """The judged attempts in ``results.jsonl``. A last line torn by a kill mid-write
    (no newline, not JSON) is cut off the file: its attempt is judged again. Any other
    line that is not a result is one error naming it."""
    if not path.exists():
        return []
    rows: list[AttemptResult] = []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = 0
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            row = None
            if number == len(lines) and not line.endswith("\n"):  # torn by a kill
                with open(path, "r+b") as handle:
                    handle.truncate(kept)
                break
        if not _is_result(row):
            raise UserInputError(
                f"{path}:{number}: not a result line; remove the line (its attempt is then"
                " run or judged again) or pass another --out"
            )
        kept += len(line.encode("utf-8"))
        rows.append(row)  # type: ignore[arg-type]
    return rows


def _is_result(row: object) -> bool:
    """Whether ``row`` has what a rerun and the scoring read, of the right kinds."""
    if not isinstance(row, dict):
        return False
    attempt, task_id = row.get("attempt"), row.get("task_id")
    return (
        isinstance(task_id, str | int)
        and not isinstance(task_id, bool)
        and isinstance(attempt, int)
        and not isinstance(attempt, bool)
        and attempt >= 1
        and isinstance(row.get("correct"), bool)
        and isinstance(row.get("judge"), dict)
        and all(isinstance(row.get(k, 0), int | float) for k in _NUMBERS)
    )


_NUMBERS = ("turns", "tool_calls", "prompt_tokens", "completion_tokens", "wall_s", "restarts")


def latest_rows(path: Path) -> list[AttemptResult]:
    """Each attempt's last line in ``results.jsonl`` (an attempt judged again has two)."""
    return list({(str(r["task_id"]), int(r["attempt"])): r for r in read_results(path)}.values())


def judged_rows(path: Path) -> list[AttemptResult]:
    """The attempts a rerun keeps: not a ``judge_error``, which is judged again (its
    run ended, so only the judge is asked: a judge that was away may be back)."""
    return [r for r in latest_rows(path) if (r.get("judge") or {}).get("verdict") != "judge_error"]


class ResultsFile:
    """``results.jsonl``, appended one durable line per judged attempt."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()  # there from the start: an empty file says nothing is judged yet
        with open(path, "rb") as handle:  # a last line left without its newline gets one
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - 1, 0))
            unended = size > 0 and handle.read(1) != b"\n"
        if unended:
            with open(path, "ab") as out:
                out.write(b"\n")

    def append(self, row: AttemptResult) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())


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
    ) -> None:
        self.settings = settings
        self.on_result = on_result
        self.controls: set[RunControl] = set()
        self.stopping: str | None = None

    def stop(self, reason: str) -> None:
        """Start no new attempt; ask the runs in flight to pause after their step."""
        self.stopping = self.stopping or reason
        for control in list(self.controls):
            control.request_pause(reason)

    async def run(self) -> BenchOutcome:
        settings = self.settings
        bench_id = open_bench(settings)
        rows = judged_rows(settings.out / "results.jsonl")  # a torn last line cut first
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
                    # The model, the store or this machine is away (or Ctrl-C): the next
                    # attempts would stop too, so none is started; a rerun continues.
                    outcome.unfinished.append((attempt, str(exc)))
                    self.stop(str(exc))
                    return
                except MirographError as exc:
                    # This task cannot be run (a question longer than the model's
                    # context, a tool that fails to start): an attempt with no answer,
                    # counted wrong as the reference counts it; the others go on.
                    row = await self._failed(attempt, str(exc))
                results.append(row)
                outcome.rows.append(row)
                if self.on_result is not None:
                    self.on_result(row, len(outcome.rows), outcome.total)

        await asyncio.gather(*(one(a) for a in owed))
        outcome.stopped = self.stopping
        return outcome

    async def _attempt(self, attempt: Attempt) -> AttemptResult:
        """Run (or resume, or only read) one attempt's run, then judge its answer.

        Raises ``_Unfinished`` for a run that stopped without ending (paused)."""
        from mirograph.flows.runner import ENDED, get_run, resume_run, run_report, start_run
        from mirograph.graphs.run_control import RunControl
        from mirograph.state.store import open_store

        settings = self.settings
        try:
            async with open_store(settings.store_url) as store:
                status = get_run(store, attempt.run_id).status
        except RunNotFoundError:
            status = None
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
        if ran.status == "failed":
            raise RunFailedError(f"run {attempt.run_id} failed: {ran.reason}")
        if ran.status not in ENDED:
            raise _Unfinished(f"run {attempt.run_id} {ran.status}: {ran.reason}")
        report = await run_report(attempt.run_id, store_url=settings.store_url)
        verdict = await settings.judge.judge(attempt.task, ran.answer, settings.dataset.benchmark)
        return result_row(attempt, report, ran.answer, verdict.as_record(), verdict.correct)

    async def _failed(self, attempt: Attempt, why: str) -> AttemptResult:
        """The row of an attempt that ended without an answer because it could not run."""
        from mirograph.flows.runner import run_report

        try:
            report = await run_report(attempt.run_id, store_url=self.settings.store_url)
        except MirographError:  # refused before its run was stored
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


class _Unfinished(MirographError):
    """An attempt's run stopped without ending (paused): a rerun continues it."""


#: Errors that say the model, the store or this machine is away, not that a task is bad.
OUTAGES: tuple[type[BaseException], ...] = (
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
