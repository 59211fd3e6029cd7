"""The ``mirograph`` command line: demo, run, resume, pause, ls, show, export, sim-model,
ui, the workers' submit, worker, beat and watch, and bench.

Exit codes: 0 completed; 1 the run failed (still resumable), or an internal
error (one line naming a crash report that holds the traceback); 2 bad input
(flow file, run id, store URL, option, a path that cannot be written), or a run
that is not there or is held by another live process; 3 the run paused (asked
for, or the model server unavailable): resume it; 4 the run ended without an
answer (the reason says why); 130 stopped at once by Ctrl-C twice (still
resumable). An error of ``mirograph.errors``' tree exits with its node's
``exit_code`` and its one line; any other exception is a bug (exit 1, never 2).

Everything printed for a person passes through ``printable`` (control
characters from questions, replies and tool results never reach the terminal);
JSON output is exact JSON.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeGuard, TypeVar

import typer
from rich.console import Console

from mirograph.errors import FlowError, InternalError, MirographError
from mirograph.flows.terminal import printable
from mirograph.state.registry import RUN_STATUSES
from mirograph.state.store import shown_url
from mirograph.text import describe

if TYPE_CHECKING:
    from mirograph.flows.runner import RunOutcome
    from mirograph.graphs.config import FlowConfig
    from mirograph.graphs.run_control import RunControl

# Commands import the engine when they run, not here: `--help`, `ls` and `pause`
# must answer at once, without LangGraph, LangChain or the OpenAI client.


class _App(typer.Typer):
    """The command, with an error of the tree turned into its one line and exit code,
    and any other exception (a bug) into one line and a crash report."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = kwargs.get("args") or (args[0] if args else None) or sys.argv[1:]
        for number, arg in enumerate(argv, 1):
            if not _is_text(arg):  # bytes the locale cannot decode arrive as surrogates
                _say(
                    f"argument {number} ({arg.encode('utf-8', 'backslashreplace').decode()})"
                    " is not valid UTF-8 text; pass questions, ids and values as UTF-8"
                )
                sys.exit(2)
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if _for_the_user(exc):
                _say(str(exc))
                sys.exit(exc.exit_code)
            _crash(exc)  # a bug, not bad input: never a traceback, never exit 2


app = _App(
    name="mirograph",
    help="Long, resumable research investigations driven by MiroThinker on LangGraph.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

T = TypeVar("T")

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="MIROGRAPH_STORE",
        show_envvar=False,
        help="Store URL (default $MIROGRAPH_STORE, else sqlite:///$MIROGRAPH_HOME/runs.db).",
    ),
]
RedisOpt = Annotated[
    str | None,
    typer.Option(
        "--redis",
        envvar="MIROGRAPH_REDIS",
        show_envvar=False,
        help="Redis carrying live events (default $MIROGRAPH_REDIS; none: poll the store).",
    ),
]
BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        envvar="MIROGRAPH_BROKER",
        show_envvar=False,
        help="The workers' Redis broker (default $MIROGRAPH_BROKER, else redis://127.0.0.1:6379/0).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run as one JSON object.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a flow key, e.g. agents.main.max_turns=50."),
]


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr (control characters neutralised), then exit with ``code``."""
    _say(message)
    raise typer.Exit(code)


def _say(message: str) -> None:
    err.print(f"error: {printable(message, multiline=False)}", markup=False, soft_wrap=True)


def _for_the_user(exc: BaseException) -> TypeGuard[MirographError]:
    """An error of the tree a person acts on; an ``InternalError`` is a bug like any other."""
    return isinstance(exc, MirographError) and not isinstance(exc, InternalError)


def _is_text(arg: object) -> bool:
    if not isinstance(arg, str):
        return True
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _crash(exc: BaseException) -> NoReturn:
    """An internal error: the traceback goes to a report file, the user gets one line."""
    from mirograph.flows.crash import write_crash_report

    try:
        where = f"details in {write_crash_report(exc)}"
    except Exception:  # the report is a courtesy: its failure must not become a traceback
        where = "no crash report could be written"
    err.print(
        f"error: internal error ({printable(describe(exc), multiline=False)});"
        f" {where}; please report it with that file",
        markup=False,
        soft_wrap=True,
    )
    sys.exit(1)


def _call(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine, turning an error of the tree into one line and its exit code."""
    # The command's imports are done: their ~500,000 objects live as long as the
    # process. Frozen, they are not walked again by every full collection, which
    # otherwise takes ~80 ms of loading a 600-turn state (benchmarks/long_run.py).
    gc.freeze()
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        _fail("interrupted; the run is paused and resumable with `mirograph resume RUN_ID`", 130)
    except Exception as exc:
        if not _for_the_user(exc):
            raise  # a bug: the app turns it into one line and a crash report
        _fail(str(exc), exc.exit_code)


def _resume_command(run_id: str, store: str | None) -> str:
    """The command that resumes ``run_id``: ``--store`` only where it is not the default
    (``$MIROGRAPH_STORE``), its password hidden (``***``: type yours)."""
    if not store or store == os.environ.get("MIROGRAPH_STORE"):
        return f"mirograph resume {run_id}"
    return f"mirograph resume {run_id} --store {shown_url(store)}"


def _drive(
    start: Callable[[RunControl], Coroutine[Any, Any, T]],
    store: str | None,
    as_json: bool,
    control: RunControl | None = None,
) -> T:
    """Run a session with live progress (on a terminal) or JSON events (``--json``).

    Ctrl-C once asks the run to pause after the step in progress; twice stops
    it at once. Either way the run stays resumable.
    """
    from mirograph.flows.progress import JsonEvents, RunProgress
    from mirograph.graphs.run_control import RunControl

    control = control or RunControl()
    if as_json:
        control.add_sink(JsonEvents(sys.stderr))
    live = err.is_terminal and not as_json
    progress = RunProgress(control, err) if live else None
    presses = 0

    async def main() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                control.request_pause("paused by Ctrl-C")
                err.print("pausing after the current step… (Ctrl-C again stops at once)")
            elif task is not None:
                task.cancel()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await start(control)
        except asyncio.CancelledError:
            if presses < 2:
                raise
            # The runner has marked the run paused and closed the store. Leave now:
            # a tool still running in a worker thread must not hold the exit.
            if progress is not None:
                progress.stop()  # the terminal gets its cursor back
            run_id = printable(control.run_id or "RUN_ID", multiline=False)
            err.print(
                f"error: stopped at once; run {run_id} is resumable:"
                f" {_resume_command(run_id, store)}",
                markup=False,
                soft_wrap=True,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    with progress or nullcontext(), _tool_output_aside():
        return _call(main())


@contextmanager
def _tool_output_aside() -> Iterator[None]:
    """While a run executes, what its tools print (Python's ``print`` and the file
    descriptor alike, subprocesses included) goes to ``$MIROGRAPH_HOME/tool-output.log``:
    stdout holds the answer or the ``--json`` report and nothing else, and a tool's
    escape sequences never reach the terminal."""
    from mirograph.state.store import mirograph_home

    try:
        mirograph_home().mkdir(parents=True, exist_ok=True)
        log = open(mirograph_home() / "tool-output.log", "ab", buffering=0)  # noqa: SIM115
    except OSError:
        yield  # no home to write to: the run itself will say so in one line
        return
    sys.stdout.flush()
    saved_fd, saved_stdout = os.dup(1), sys.stdout
    os.dup2(log.fileno(), 1)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = saved_stdout
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        log.close()


def _finish(outcome: RunOutcome, store: str | None, as_json: bool, *, fleet: bool = False) -> None:
    """Print the answer, or end in the one line that says why there is none.

    ``fleet``: the run was the workers' (``watch``), so its continuation goes back to them."""
    from mirograph.flows.runner import run_report

    if as_json:
        out.print_json(data=_call(run_report(outcome.id, store_url=store)))
    if outcome.status == "paused":
        resume = _resume_command(outcome.id, store) + (" --broker URL" if fleet else "")
        _fail(f"run {outcome.id} paused ({outcome.reason}); continue with: {resume}", 3)
    if outcome.status == "no_answer":
        _fail(f"run {outcome.id} ended without an answer: {outcome.reason}", 4)
    if not as_json:
        if err.is_terminal:  # off a terminal, stdout holds the answer and nothing else is said
            err.print(f"run {printable(outcome.id, multiline=False)} completed", style="dim")
        answer = outcome.answer if outcome.answer is not None else "(no boxed answer found)"
        print(printable(answer))


def _question_and_target(
    question: str, flow: str | None, overrides: list[str] | None
) -> tuple[str, FlowConfig | str]:
    """What ``run`` and ``submit`` start: the question (``-``: read from stdin) and the
    flow, loaded and checked, or a custom graph's reference (which takes no ``--set``)."""
    from mirograph.flows.graph_ref import is_graph_ref
    from mirograph.flows.loader import load_flow

    if question == "-":
        question = sys.stdin.read()
    _check_home()
    if is_graph_ref(flow):
        if overrides:
            raise FlowError("--set applies to flow files; a custom graph reads its own settings")
        return question, str(flow)
    return question, load_flow(flow, overrides or [])


@app.command()
def run(
    question: Annotated[
        str,
        typer.Argument(help="The question to investigate; - reads it from stdin (for long ones)."),
    ],
    flow: Annotated[
        str | None,
        typer.Option(
            "--flow",
            help="Shipped flow name, path to a YAML flow, or a custom graph"
            " (path/to/file.py:build_graph or package.module:build_graph).",
        ),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--id", help="Run id (default: generated).")] = None,
    store: StoreOpt = None,
    overrides: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start an investigation; prints the final answer."""
    from mirograph.flows.runner import start_run

    question, target = _question_and_target(question, flow, overrides)
    if not isinstance(target, str):
        for warning in target.environment_warnings():
            err.print(
                f"warning: {printable(warning, multiline=False)}",
                style="yellow",
                markup=False,
                soft_wrap=True,
            )
    outcome = _drive(
        lambda control: start_run(
            question, target, run_id=run_id, store_url=store, control=control
        ),
        store,
        as_json,
    )
    _finish(outcome, store, as_json)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue (see `mirograph ls`).")],
    store: StoreOpt = None,
    overrides: SetOpt = None,
    as_json: JsonOpt = False,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker", help="Queue the continuation for the workers on this Redis broker."
        ),
    ] = None,
) -> None:
    """Continue a paused, failed or killed run from its last checkpoint."""
    from mirograph.flows.runner import resume_run

    if broker is not None:
        _queue_resume(run_id, store, broker, overrides)
        return
    _check_home()
    outcome = _drive(
        lambda control: resume_run(
            run_id, store_url=store, overrides=overrides or [], control=control
        ),
        store,
        as_json,
    )
    _finish(outcome, store, as_json)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="The run to show (see `mirograph ls`).")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A run's timeline: agents, turns, tool calls with short results, sub-agent calls, answer."""
    from mirograph.flows.runner import run_report

    if as_json:
        out.print_json(data=_call(run_report(run_id, store_url=store)))
        return
    from mirograph.flows.views import render_show

    out.print(_call(render_show(run_id, store_url=store)))


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(help="The run to export (see `mirograph ls`).")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="jsonl: one JSON object per message, every agent, full tool results;"
            " miroflow: the MiroThinker agent's task-log JSON.",
        ),
    ] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """The full transcript of a run, every agent, tool results un-omitted, usage per turn."""
    from mirograph.flows.export import FORMATS, export_run

    if fmt not in FORMATS:
        _fail(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}", 2)
    if output is not None:
        _check_output(output)
    text = _call(export_run(run_id, fmt, store_url=store))
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}; {_OUTPUT_FIX}", 2)
    err.print(f"wrote {printable(output, multiline=False)}", style="dim", markup=False)


_OUTPUT_FIX = "give -o a file path in an existing, writable folder"


def _check_output(output: Path) -> None:
    """Refuse an ``export -o`` path that cannot be written, before the export is built."""
    if output.is_dir():
        _fail(f"cannot write {output}: it is a folder; {_OUTPUT_FIX}", 2)
    parent = output.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        _fail(f"cannot write {output}: {parent} {what}; {_OUTPUT_FIX}", 2)
    if not os.access(parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        _fail(f"cannot write {output}: permission denied; {_OUTPUT_FIX}", 2)


def _check_home() -> None:
    """Refuse a ``MIROGRAPH_HOME`` that cannot hold runs (workspaces, event logs) before
    anything is stored: a file, a path under a file, or a folder that cannot be written."""
    from mirograph.state.store import mirograph_home

    home = mirograph_home()
    existing = next((p for p in (home, *home.parents) if p.exists()), None)
    fix = "set MIROGRAPH_HOME to a writable folder"
    if existing is None:
        return
    if not existing.is_dir():
        what = "is a file" if existing == home else f"is under the file {existing}"
        _fail(f"MIROGRAPH_HOME {home} {what}; {fix}", 2)
    if not os.access(existing, os.W_OK | os.X_OK):
        _fail(f"MIROGRAPH_HOME {home} cannot be written (in {existing}); {fix}", 2)


@app.command("ls")
def list_command(
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="Only runs with this status (repeatable): " + ", ".join(RUN_STATUSES),
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many runs.")] = 50,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of runs.")] = False,
) -> None:
    """List runs, newest first: id, status, question, flow, turns, tokens, age."""
    from mirograph.flows.list_view import list_row, print_list
    from mirograph.flows.runs import list_runs

    unknown = sorted(set(status or ()) - set(RUN_STATUSES))
    if unknown:
        _fail(f"unknown status {unknown[0]!r}; use one of: {', '.join(RUN_STATUSES)}", 2)
    records = _call(list_runs(store_url=store, limit=limit, statuses=status or ()))
    rows = [list_row(r) for r in records]
    if as_json:
        out.print_json(data=rows)
        return
    if not records:
        hint = "" if status else '; start one with `mirograph run "question"`'
        err.print(f"no runs{' with that status' if status else ' yet'}{hint}")
        return
    print_list(rows, out)


@app.command()
def pause(
    run_id: Annotated[str, typer.Argument(help="The running run to pause (see `mirograph ls`).")],
    store: StoreOpt = None,
) -> None:
    """Pause a run that another process is running, at its next step boundary."""
    from mirograph.flows.runs import request_pause

    record = _call(request_pause(run_id, store_url=store))
    status = record.effective_status
    if status == "queued":
        from mirograph.flows.workers.submit import unqueue

        if _call(unqueue(run_id, store_url=store)):
            err.print(
                printable(
                    f"paused run {run_id} before a worker took it; continue with:"
                    f" {_resume_command(run_id, store)} --broker URL",
                    multiline=False,
                ),
                markup=False,
                soft_wrap=True,
            )
            return
    if status != "running":
        _fail(f"run {run_id} is {status}, not running; nothing to pause", 2)
    err.print(
        printable(
            f"asked run {run_id} to pause after its current step; its process marks it paused"
            f" (`mirograph show {run_id}`), then: {_resume_command(run_id, store)}",
            multiline=False,
        ),
        markup=False,
        soft_wrap=True,
    )


@app.command()
def demo(store: StoreOpt = None) -> None:
    """See the whole engine work offline: a simulated model, a bundled corpus, pause, resume."""
    from mirograph.flows.demo import DEMO_NOTICE, run_demo
    from mirograph.flows.views import render_show
    from mirograph.graphs.run_control import RunControl

    _check_home()
    err.print(DEMO_NOTICE, markup=False, soft_wrap=True)
    control = RunControl(on_event=_say_pause_and_resume)
    result = _drive(lambda control: run_demo(control, store_url=store), store, False, control)
    out.print(_call(render_show(result.run_id, store_url=store)))
    if result.status == "paused":
        _fail(f"demo run {result.run_id} paused ({result.reason})", 3)
    if result.status != "completed":
        _fail(f"demo run {result.run_id} {result.status}: {result.reason}", 1)
    out.print(f"answer: {printable(result.answer)}", markup=False)
    out.print(
        f"full transcript: mirograph export {result.run_id} --format jsonl (or miroflow)",
        markup=False,
        soft_wrap=True,
    )


def _say_pause_and_resume(event: dict[str, Any]) -> None:
    """The demo's own lines: its pause and its resume are what it is there to show."""
    run_id = printable(event["run_id"], multiline=False)
    if event["event"] == "run_paused":
        reason = printable(event["reason"], multiline=False)
        err.print(f"⏸  run {run_id} paused: {reason}", markup=False)
    elif event["event"] == "run_resumed":
        err.print(f"▶  run {run_id} resumed from its checkpoint", markup=False)


@app.command("sim-model")
def sim_model(
    policy: Annotated[str, typer.Option("--policy", help="module:function returning the reply.")],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0 = any free).")] = 8000,
    latency_ms: Annotated[int, typer.Option("--latency-ms", help="Delay per reply.")] = 0,
    max_model_len: Annotated[
        int,
        typer.Option(
            "--max-model-len",
            "--max-context-tokens",
            help="Context length, as vLLM's: longer requests get HTTP 400.",
        ),
    ] = 262_144,
    model_name: Annotated[
        str,
        typer.Option(
            "--model-name", "--served-model-name", help="Served name; others get HTTP 404."
        ),
    ] = "mirothinker",
    enable_prompt_tokens_details: Annotated[
        bool,
        typer.Option(
            "--enable-prompt-tokens-details",
            help="Report usage.prompt_tokens_details (cached tokens), as vLLM's flag.",
        ),
    ] = False,
    reasoning_parser: Annotated[
        str | None,
        typer.Option(
            "--reasoning-parser",
            help="deepseek_r1 or qwen3: return the thinking apart, in --reasoning-field.",
        ),
    ] = None,
    reasoning_field: Annotated[
        str,
        typer.Option(
            "--reasoning-field",
            help="reasoning (recent vLLM) or reasoning_content (older vLLM, SGLang).",
        ),
    ] = "reasoning",
    tool_call_parser: Annotated[
        str | None,
        typer.Option(
            "--tool-call-parser",
            help="Any name: return native tool_calls for requests with tools (else HTTP 400).",
        ),
    ] = None,
) -> None:
    """Serve a simulated OpenAI-compatible model (for tests, benchmarks, the demo).

    It behaves as vLLM does with the same flags: see agents/sim/vllm.py.
    """
    from mirograph.agents.sim.scripting import load_policy
    from mirograph.agents.sim.server import serve_forever
    from mirograph.agents.sim.vllm import VllmOptions

    load_policy(policy)  # a bad spec is a PolicySpecError: one line, exit 2
    try:
        options = VllmOptions(
            model_name=model_name,
            max_model_len=max_model_len,
            enable_prompt_tokens_details=enable_prompt_tokens_details,
            reasoning_parser=reasoning_parser,
            reasoning_field=reasoning_field,
            tool_call_parser=tool_call_parser,
        )
    except ValueError as exc:
        _fail(f"sim-model: {exc}", 2)
    _check_port(port)
    try:
        serve_forever(policy, port=port, latency_ms=latency_ms, options=options)
    except RuntimeError as exc:  # lost a race for the port after the check
        _fail(f"{exc}; {_PORT_FIX}", 2)


_PORT_FIX = "choose another --port (0 picks a free one)"


def _check_port(port: int) -> None:
    """Refuse a port out of range or in use with one line, before the server starts
    (the server would log its own multi-line failure, or wrap the number around)."""
    import socket

    if not 0 <= port <= 65535:
        _fail(f"--port {port} is out of range 0-65535; {_PORT_FIX}", 2)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; {_PORT_FIX}", 2)


@app.command()
def ui(
    store: StoreOpt = None,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to serve on (a token is asked on any, loopback too)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0 = any free).")] = 8765,
    bench_dirs: Annotated[
        list[Path] | None,
        typer.Option("--bench", help="Folder of `mirograph bench` outputs (default ./bench)."),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option("--broker", help="Queue runs started or resumed here for these workers."),
    ] = None,
    redis: RedisOpt = None,
    no_token: Annotated[
        bool,
        typer.Option(
            "--no-token",
            help="Ask no token (loopback only): any user of this machine may then steer runs.",
        ),
    ] = False,
) -> None:
    """Watch and steer runs in a browser: runs, agent trees, every turn, live."""
    from mirograph.flows.ui.app import Settings
    from mirograph.flows.ui.server import serve

    _check_home()
    settings = Settings(
        store_url=store,
        broker=broker,
        redis_url=redis,
        bench_roots=list(bench_dirs or [Path("bench")]),
    )
    serve(settings, host, port, lambda line: print(line, flush=True), ask_token=not no_token)


# -- workers (flows/workers) -------------------------------------------------------


@app.command()
def submit(
    question: Annotated[
        str, typer.Argument(help="The question to investigate; - reads it from stdin.")
    ],
    flow: Annotated[
        str | None,
        typer.Option("--flow", help="Shipped flow name, path to a YAML flow, or a custom graph."),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--id", help="Run id (default: generated).")] = None,
    store: StoreOpt = None,
    broker: BrokerOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Queue an investigation for the workers; prints its run id."""
    from mirograph.flows.workers.submit import submit_run

    question, target = _question_and_target(question, flow, overrides)
    queued = _call(submit_run(question, target, run_id=run_id, store_url=store, broker_url=broker))
    print(printable(queued, multiline=False))


@app.command()
def watch(
    run_id: Annotated[str, typer.Argument(help="The run to follow (see `mirograph ls`).")],
    store: StoreOpt = None,
    redis: RedisOpt = None,
) -> None:
    """Follow a run live from any machine: the lines `run` prints, until it ends."""
    from mirograph.flows.workers.follow import watch_fleet_run

    outcome = _call(watch_fleet_run(run_id, store_url=store, redis_url=redis, console=err))
    _finish(outcome, store, False, fleet=True)


def _queue_resume(run_id: str, store: str | None, broker: str, overrides: list[str] | None) -> None:
    from mirograph.flows.workers.submit import queue_resume

    if overrides:
        _fail("--set applies to a resume here; resume without --broker to change the flow", 2)
    _call(queue_resume(run_id, store_url=store, broker_url=broker))
    err.print(
        printable(
            f"queued run {run_id} for the workers; follow it: mirograph watch {run_id}",
            multiline=False,
        ),
        markup=False,
        soft_wrap=True,
    )


@app.command()
def worker(
    store: StoreOpt = None,
    broker: BrokerOpt = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Runs at once in this worker.", min=1)
    ] = 8,
    takeover_after: Annotated[
        float,
        typer.Option(
            "--takeover-after",
            help="Seconds within which a dead worker's runs continue on another.",
        ),
    ] = 60.0,
    visibility_timeout: Annotated[
        float,
        typer.Option(
            "--visibility-timeout",
            help="Seconds after which Redis redelivers a dead worker's task (Celery's).",
        ),
    ] = 3600.0,
    beat: Annotated[
        bool, typer.Option("--beat", help="Also run the takeover sweep (Celery beat) here.")
    ] = False,
) -> None:
    """Run investigations from the queue, many at once on one event loop (Celery worker)."""
    from mirograph.flows.workers.worker import prepare, run_worker

    _check_home()
    _call(_prepared(prepare, store, broker, takeover_after, visibility_timeout))
    run_worker(concurrency=concurrency, beat=beat)


@app.command("beat")
def beat_command(
    store: StoreOpt = None,
    broker: BrokerOpt = None,
    takeover_after: Annotated[
        float,
        typer.Option("--takeover-after", help="As the workers' --takeover-after."),
    ] = 60.0,
) -> None:
    """Run the takeover sweep on its own (Celery beat): dead workers' runs continue."""
    from mirograph.flows.workers.worker import prepare, run_beat

    _call(_prepared(prepare, store, broker, takeover_after, 3600.0))
    run_beat()


async def _prepared(prepare: Callable[..., Any], *args: Any) -> None:
    """``prepare`` off the event loop (it checks the store with a loop of its own)."""
    store, broker, takeover_after, visibility_timeout = args
    await asyncio.to_thread(
        prepare,
        store,
        broker,
        takeover_after_s=takeover_after,
        visibility_timeout_s=visibility_timeout,
    )


@app.command("bench")
def bench_command(
    dataset: Annotated[
        Path,
        typer.Argument(
            help="The dataset: a standardized JSONL, GAIA's metadata.jsonl (or its folder),"
            " a BrowseComp(-ZH) or xbench-DeepSearch CSV, HLE JSONL/CSV, a FRAMES TSV/CSV."
        ),
    ],
    benchmark: Annotated[
        str | None,
        typer.Option("--benchmark", help="The benchmark's name, where the file does not say it."),
    ] = None,
    flow: Annotated[
        str | None, typer.Option("--flow", help="Shipped flow name, YAML flow or custom graph.")
    ] = None,
    runs: Annotated[int, typer.Option("--runs", "-k", help="Runs per task (K).", min=1)] = 1,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-n", help="Runs at once.", min=1, max=1024)
    ] = 4,
    judge: Annotated[
        str,
        typer.Option(
            "--judge",
            help="exact (GAIA's rules), a model key of the flow, or MODEL@URL"
            " (an OpenAI-compatible endpoint).",
        ),
    ] = "exact",
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N tasks.", min=1)
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Results folder (default bench/BENCHMARK-FLOW); reruns continue."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the attempts' order.")] = 0,
    store: StoreOpt = None,
    broker: Annotated[
        str | None,
        typer.Option("--broker", help="Run the attempts on the workers of this Redis broker."),
    ] = None,
    overrides: SetOpt = None,
) -> None:
    """Evaluate a flow on a benchmark: K runs per task, judged, scored, plotted; resumable."""
    from mirograph.flows.bench.command import BenchOptions, bench

    _check_home()
    options = BenchOptions(
        dataset=dataset,
        benchmark=benchmark,
        flow=flow,
        overrides=overrides or [],
        runs=runs,
        concurrency=concurrency,
        judge=judge,
        limit=limit,
        out=out_dir,
        seed=seed,
        store=store,
        broker=broker,
    )
    code = bench(options, err, out)
    if code:
        raise typer.Exit(code)
