"""Start, pause and resume runs from the web view, with the CLI's own effects.

A start or a resume is a ``mirograph run`` / ``mirograph resume`` process of its
own, in a session of its own: it outlives the web server (stopping ``mirograph
ui`` stops no run), and a run started here is the run the CLI would start. With a
broker the run is queued for the workers, as ``submit`` and ``resume --broker``
queue it (the same functions). The flow is loaded and checked here first, so a
broken flow is refused before anything runs, in the CLI's words. The store URL
reaches the process through its environment (never its command line, which other
users can read); the web view's token does not reach it at all. A pause is the
registry's request, as ``mirograph pause`` makes it. Each process writes what it
prints to ``$MIROGRAPH_HOME/ui/<run id>.log``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mirograph.errors import FlowError, RunStateError, UserInputError
from mirograph.flows.graph_ref import is_graph_ref
from mirograph.flows.runs import find_run
from mirograph.graphs.config import FlowConfig
from mirograph.state.registry import RunRecord, check_run_id
from mirograph.state.store import Store, mirograph_home

#: The longest question the page may send (a longer one belongs in a file).
MAX_QUESTION_CHARS = 200_000
#: Seconds a start or a resume may take to show in the store before it is left to go on.
SHOW_WAIT_S = 60.0
#: Seconds between two looks at the registry while waiting for that.
LOOK_S = 0.05
#: Environment variables the runs' processes do not get.
WITHHELD_ENV = ("MIROGRAPH_UI_TOKEN",)


class SteeringError(UserInputError):
    """A start or resume refused, in one line (the API's 400 or 409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Steering:
    """Starts and resumes runs as processes of their own; asks running ones to pause."""

    def __init__(self, store: Store, store_url: str | None, broker: str | None = None) -> None:
        self.store = store
        self.store_url = store_url
        self.broker = broker
        self._children: set[asyncio.Task[int]] = set()
        #: Runs whose resume is being started (their process not yet seen running).
        self._resuming: set[str] = set()

    async def start(self, question: str, flow: str | None, overrides: Sequence[str] = ()) -> str:
        """Starts an investigation; its run id once it is in the store."""
        from mirograph.flows.loader import load_flow
        from mirograph.flows.runner import new_run_id

        question = question.strip()
        if not question:
            raise SteeringError("the question is empty: write what to investigate")
        if len(question) > MAX_QUESTION_CHARS:
            raise SteeringError(
                f"the question has {len(question):,} characters (at most"
                f" {MAX_QUESTION_CHARS:,}); put long material in a file for a tool to read"
            )
        flow = (flow or "").strip() or None
        target: FlowConfig | str
        if is_graph_ref(flow):
            if overrides:
                raise FlowError(
                    "--set applies to flow files; a custom graph reads its own settings"
                )
            _check_graph_ref(str(flow))
            target = str(flow)
        else:
            target = await asyncio.to_thread(load_flow, flow, list(overrides))
        run_id = new_run_id()
        if self.broker:
            from mirograph.flows.workers.submit import submit_run

            await submit_run(
                question, target, run_id=run_id, store_url=self.store_url, broker_url=self.broker
            )
            return run_id
        argv = ["run", "-", "--id", run_id]
        if flow:
            argv += ["--flow", flow]
        for override in overrides:
            argv += ["--set", override]
        await self._launch(run_id, argv, question, lambda: self._found(run_id) is not None, "start")
        return run_id

    async def resume(self, run_id: str) -> RunRecord:
        """Continues a paused, failed or killed run; its row once it runs again. A
        second resume while one is being started (a double click) is refused: it
        would start a process that the run's lease then turns away."""
        record = find_run(self.store.registry, run_id)
        if run_id in self._resuming:
            raise SteeringError(f"run {run_id} is being resumed", 409)
        self._resuming.add(run_id)
        try:
            return await self._resume(record)
        finally:
            self._resuming.discard(run_id)

    async def _resume(self, record: RunRecord) -> RunRecord:
        run_id = record.id
        status = record.effective_status
        if status == "running":
            raise SteeringError(f"run {run_id} is already running", 409)
        if status in ("completed", "no_answer", "queued"):
            raise SteeringError(f"run {run_id} is {status}: there is nothing to resume", 409)
        if self.broker:
            from mirograph.flows.workers.submit import queue_resume

            await queue_resume(run_id, store_url=self.store_url, broker_url=self.broker)
            return find_run(self.store.registry, run_id)
        before = record.updated_at

        def moved() -> bool:
            now = self._found(run_id)
            return now is not None and (
                now.effective_status in ("running", "queued") or now.updated_at != before
            )

        await self._launch(run_id, ["resume", run_id], None, moved, "resume")
        return find_run(self.store.registry, run_id)

    def pause(self, run_id: str) -> RunRecord:
        """Asks the running ``run_id`` to pause at its next step (``mirograph pause``)."""
        record = find_run(self.store.registry, run_id)
        if record.effective_status != "running":
            raise RunStateError(
                f"run {run_id} is {record.effective_status}, not running: there is nothing to pause"
            )
        self.store.registry.request_pause(run_id, "paused from the web view")
        return record

    async def aclose(self) -> None:
        """Stops waiting for the processes (they run on: they are their own sessions)."""
        for task in list(self._children):
            task.cancel()
        await asyncio.gather(*self._children, return_exceptions=True)

    # -- processes ---------------------------------------------------------------------

    def _found(self, run_id: str) -> RunRecord | None:
        try:
            return find_run(self.store.registry, check_run_id(run_id))
        except RunStateError:
            return None

    async def _launch(
        self,
        run_id: str,
        argv: list[str],
        stdin: str | None,
        shown: Callable[[], bool],
        what: str,
    ) -> None:
        log = log_path(run_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as sink:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mirograph",
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                env=self._env(),
                start_new_session=True,
            )
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode())
            await proc.stdin.drain()
            proc.stdin.close()
        waiting = asyncio.create_task(proc.wait())
        self._children.add(waiting)
        waiting.add_done_callback(self._children.discard)
        deadline = time.monotonic() + SHOW_WAIT_S
        while time.monotonic() < deadline:
            if shown():
                return
            if waiting.done():
                if waiting.result() != 0 and not shown():
                    raise SteeringError(f"the {what} failed: {last_line(log)}")
                return
            await asyncio.sleep(LOOK_S)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in WITHHELD_ENV}
        env["MIROGRAPH_HOME"] = str(mirograph_home())
        if self.store_url:
            env["MIROGRAPH_STORE"] = self.store_url
        return env


def _check_graph_ref(ref: str) -> None:
    """Refuses a custom graph whose file or package is not there before a process
    starts (it would only fail in its log, seconds later). The builder itself is not
    imported: that would run the user's code in the server."""
    target = ref.rpartition(":")[0]
    if target.endswith(".py"):
        if not Path(target).expanduser().is_file():
            raise FlowError(f"graph {ref!r}: file {target!r} does not exist")
        return
    top = target.split(".")[0]
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = False
    # the process runs `python -m mirograph` here, so this folder is on its path too
    if not found and not (Path(top).is_dir() or Path(f"{top}.py").is_file()):
        raise FlowError(
            f"graph {ref!r}: cannot import {target!r} (no module named {top!r}); use"
            " path/to/file.py:function or an importable package.module:function"
        )


def log_path(run_id: str) -> Path:
    """Where the process started for ``run_id`` writes what it prints."""
    return mirograph_home() / "ui" / f"{check_run_id(run_id)}.log"


def last_line(path: Path) -> str:
    """The last line a process wrote (its one-line error), or a pointer to its log."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    return lines[-1].removeprefix("error: ").strip() if lines else f"see {path}"
