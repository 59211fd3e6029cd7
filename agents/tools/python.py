"""The ``python`` tool set (server ``tool-python``): sandboxed Python and shell.

``create_sandbox()``, ``run_python_code(code_block, sandbox_id)`` and
``run_command(command, sandbox_id)``. A missing, unknown or placeholder
``sandbox_id`` means the run's default sandbox, whose working directory is the
run workspace (shared with the ``files`` tools). Each sandbox keeps one
long-lived interpreter, so variables and imports persist. The slips the weights
make in these calls (``python`` for ``run_python_code``, ``code`` for
``code_block``) are repaired before a call runs, as the reference engine does
(``mirograph.graphs.slips``).

How sandboxes are isolated and limited: ``mirograph.agents.tools.sandbox`` (its
``isolation`` and ``child`` modules).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from mirograph.agents.fields import DAY_S, TIB_MB, Bool, Float, Int
from mirograph.agents.tools.base import ToolContext, documented, on_server, with_description
from mirograph.agents.tools.sandbox import (
    Limits,
    SandboxError,
    SandboxManager,
    bubblewrap_problem,
)

SERVER = "tool-python"

#: sandbox_id values models write when they mean "no particular sandbox".
PLACEHOLDERS = frozenset(
    {
        "",
        "default",
        "none",
        "null",
        "nil",
        "undefined",
        "sandbox",
        "sandbox_id",
        "sandboxid",
        "sandbox-id",
        "id",
        "your_sandbox_id",
        "default_sandbox",
        "current",
        "main",
    }
)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Let sandboxed code use the network (off: no network at all under bubblewrap).
    network: Bool = False
    #: Wall time of one call, in seconds; past it the interpreter is restarted.
    timeout_s: Float = Field(60, gt=0, le=DAY_S)
    #: CPU seconds one call may use (all threads of the interpreter together).
    cpu_s: Int = Field(60, gt=0, le=int(DAY_S))
    #: Address-space limit of each sandbox process, in MiB (may exceed RAM: it is
    #: virtual memory; past 1 TiB it is a slip).
    memory_mb: Int = Field(1024, ge=64, le=TIB_MB)
    #: Processes (and threads) a sandbox may run at once.
    max_processes: Int = Field(64, ge=4, le=65_536)
    #: Largest file a sandbox may write, in MiB.
    max_file_mb: Int = Field(100, gt=0, le=TIB_MB)
    #: Output kept from one call (head and tail, with a marker in between).
    max_output_chars: Int = Field(20_000, ge=100, le=10_000_000)
    #: bubblewrap (namespaces + limits), rlimits (limits only), or auto: bubblewrap if it works.
    isolation: Literal["auto", "bubblewrap", "rlimits"] = "auto"


def warnings(options: Options) -> list[str]:
    """What a user must know before trusting the sandbox here (shown by run and show)."""
    found = _memory_warnings(options)
    if options.isolation == "rlimits":
        found.append(
            "python: isolation is 'rlimits': resource limits only, no filesystem or"
            " network isolation"
        )
    elif options.isolation == "auto" and (problem := bubblewrap_problem()):
        found.append(
            f"python: bubblewrap unavailable ({problem}); sandboxed code runs with resource"
            " limits only, no filesystem or network isolation; install bubblewrap"
        )
    return found


def _memory_warnings(options: Options) -> list[str]:
    """A memory limit above this machine's RAM limits nothing (valid: another machine may
    run the flow, and the limit is on address space)."""
    try:
        ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        return []
    if options.memory_mb <= ram_mb:
        return []
    return [
        f"python: memory_mb {options.memory_mb} is above this machine's memory ({ram_mb} MiB);"
        " the sandbox is not limited by it"
    ]


def sandbox_choice(sandbox_id: str | None) -> str | None:
    """``sandbox_id`` as given, or None when it is missing or a placeholder."""
    if sandbox_id is None:
        return None
    cleaned = sandbox_id.strip().strip("<>{}[]()'\"`$ ").strip()
    return None if cleaned.lower() in PLACEHOLDERS else cleaned


def _as_text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else str(value)


SANDBOX_ID = "The sandbox to use, from create_sandbox; omit it for the default sandbox."
CODE_BLOCK = "The Python code to run."
COMMAND = "The shell command to run (with /bin/sh -c)."

SandboxId = Annotated[str | None, BeforeValidator(_as_text), Field(description=SANDBOX_ID)]


class CodeArgs(BaseModel):
    code_block: str = Field(description=CODE_BLOCK)
    sandbox_id: SandboxId = None


class CommandArgs(BaseModel):
    command: str = Field(description=COMMAND)
    sandbox_id: SandboxId = None


class NoArgs(BaseModel):
    pass


def make_tools(ctx: ToolContext) -> list[BaseTool]:
    options: Options = ctx.options if ctx.options is not None else Options()
    limits = Limits(
        timeout_s=options.timeout_s,
        cpu_s=options.cpu_s,
        memory_mb=options.memory_mb,
        max_processes=options.max_processes,
        max_file_mb=options.max_file_mb,
        max_output_chars=options.max_output_chars,
        network=options.network,
    )
    manager = SandboxManager(
        ctx.workspace,
        limits,
        options.isolation,
        on_first_start=lambda: ctx.on_close(manager.aclose),
    )
    network = "network on" if options.network else "no network"
    limits_text = (
        f"Limits per call: {options.timeout_s:g} s wall time, {options.cpu_s} s CPU,"
        f" {options.memory_mb} MB memory, {options.max_processes} processes; {network}."
        " Processes started by a call are stopped when it ends."
    )

    async def create_sandbox() -> str:
        try:
            notes = await manager.notes_for_first_result()
            sandbox_id = await manager.create()
        except SandboxError as exc:
            raise ToolException(str(exc)) from None
        text = (
            f"Sandbox created with sandbox_id: {sandbox_id}. Pass this sandbox_id to"
            " run_python_code and run_command; it has its own Python interpreter and its own"
            f" working directory, {manager.root / sandbox_id}."
        )
        return "\n".join([*notes, text])

    async def run_python_code(code_block: str, sandbox_id: str | None = None) -> str:
        try:
            return await manager.run_python(code_block, sandbox_choice(sandbox_id))
        except SandboxError as exc:
            raise ToolException(str(exc)) from None

    async def run_command(command: str, sandbox_id: str | None = None) -> str:
        try:
            return await manager.run_command(command, sandbox_choice(sandbox_id))
        except SandboxError as exc:
            raise ToolException(str(exc)) from None

    # The descriptions hold run-time limits, so they are not docstrings: ``documented``
    # lays them out as the docstrings of the other tools are listed.
    code_help = documented(
        "Run Python code in a sandbox's persistent interpreter, like a notebook cell:"
        " variables and imports persist between calls, and the value of a final expression"
        " is printed. The working directory is the sandbox's folder (the default sandbox's"
        " folder is the run workspace, shared with the file tools); use relative paths."
        f" {limits_text}",
        {"code_block": CODE_BLOCK, "sandbox_id": SANDBOX_ID},
        "The call's output as text: stdout and stderr as printed, any traceback, and the"
        " final expression's value; a long output keeps its start and end. Code that runs"
        " past the time limit gives an error message; the interpreter then restarts,"
        " losing its variables.",
    )
    create_help = documented(
        "Create a new, separate sandbox (its own Python interpreter and working folder)."
        " Rarely needed: without a sandbox_id, run_python_code and run_command use the"
        " run's default sandbox.",
        {},
        "A line with the new sandbox's sandbox_id and its working folder.",
    )
    command_help = documented(
        "Run a shell command (/bin/sh -c) in a sandbox's working folder, in a fresh"
        " process. Python state is not shared with run_python_code, files are."
        f" {limits_text}",
        {"command": COMMAND, "sandbox_id": SANDBOX_ID},
        "The command's output as text (stdout and stderr as printed), then"
        ' "[exit code: N]" when it is not 0; a long output keeps its start and end.'
        " A command that runs past the time limit gives an error message.",
    )
    made = [
        (create_sandbox, create_help, NoArgs),
        (run_python_code, code_help, CodeArgs),
        (run_command, command_help, CommandArgs),
    ]
    tools = [
        with_description(
            StructuredTool.from_function(
                coroutine=function,
                name=function.__name__,
                description=description,
                args_schema=schema,
                handle_tool_error=False,
            ),
            description,
        )
        for function, description, schema in made
    ]
    return [on_server(tool, SERVER) for tool in tools]
