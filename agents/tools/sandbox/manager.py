"""The sandboxes of one run: their ids and folders, their interpreters, their results.

A sandbox is a directory plus, while it is in use, ONE long-lived Python
interpreter whose state (variables, imports) persists across calls. The
default sandbox's directory is the run workspace itself, so files written by
code are the files the ``files`` tools see; ``create`` makes more under
``<workspace>.sandboxes/<id>``, beside the workspace and never inside any
folder a sandbox can write (code in the default sandbox could otherwise swap
that folder for a link and steer the host's later file operations). Sandbox
ids are those directories, so they survive a resume; the default sandbox
leaves a marker, ``<workspace>.sandboxes/.default``, once it has had an
interpreter. A sandbox that existed before this process (a resume) gets a new
interpreter whose first result says the Python state was reset; files are
kept.

The wall-time limit of a call is enforced here: past it the interpreter's
whole process tree is killed and the next call starts a fresh one, saying so.
Disk use inside the sandbox folder is bounded per file (RLIMIT_FSIZE), not in
total.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Through the module: tests replace isolation.bwrap_executable to simulate its absence.
from mirograph.agents.tools.sandbox import isolation as _isolation
from mirograph.agents.tools.sandbox.child import STUB
from mirograph.agents.tools.sandbox.isolation import (
    Backend,
    Isolation,
    adopt,
    bubblewrap_problem,
    bwrap_args,
    child_env,
    sandbox_uid,
    unprivileged_python,
)
from mirograph.agents.tools.sandbox.limits import Limits, truncate
from mirograph.agents.tools.sandbox.processes import (
    ChildProcess,
    process_tree,
    server_source,
    tasks_of,
)
from mirograph.errors import ToolError

log = logging.getLogger("mirograph.sandbox")

DEFAULT_ID = "default"
SANDBOXES_DIR = "sandboxes"
DEFAULT_MARKER = ".default"
START_TIMEOUT_S = 30.0

NOTE_FALLBACK = (
    "[sandbox: bubblewrap unavailable; running with resource limits only,"
    " no filesystem or network isolation]"
)
NOTE_RESET = (
    "[sandbox: new Python interpreter for an existing sandbox (the run was resumed);"
    " the Python state was reset (variables and imports are gone), files were kept]"
)
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SandboxError(ToolError):
    """A one-line reason a sandbox call failed (the tool layer shows it to the model)."""


@dataclass
class _Sandbox:
    id: str
    path: Path
    #: It existed before this process touched it (a resume): its first interpreter says so.
    inherited: bool
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    interpreter: ChildProcess | None = None
    #: Why the last interpreter was stopped; the next one's first result says it.
    lost: str | None = None
    started: bool = False


class SandboxManager:
    """The sandboxes of one run: ids, interpreters, isolation, cleanup."""

    def __init__(
        self,
        workspace: Path,
        limits: Limits,
        isolation: Isolation = "auto",
        on_first_start: Callable[[], None] | None = None,
    ) -> None:
        self.workspace = Path(os.path.abspath(workspace))
        self.limits = limits
        self.isolation = isolation
        self._on_first_start = on_first_start
        self._sandboxes: dict[str, _Sandbox] = {}
        self._backend: Backend | None = None
        self._noted_fallback = False
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- ids ---------------------------------------------------------------

    @property
    def root(self) -> Path:
        """Where sandbox folders live: beside the workspace, out of every sandbox's reach."""
        return self.workspace.parent / f"{self.workspace.name}.{SANDBOXES_DIR}"

    def _default(self) -> _Sandbox:
        box = self._sandboxes.get(DEFAULT_ID)
        if box is None:
            inherited = (self.root / DEFAULT_MARKER).exists()
            box = self._sandboxes[DEFAULT_ID] = _Sandbox(DEFAULT_ID, self.workspace, inherited)
        return box

    def lookup(self, sandbox_id: str | None) -> tuple[_Sandbox, str | None]:
        """The sandbox for ``sandbox_id`` and a note when an unknown id fell back to default.

        ``None``/placeholders mean the default sandbox; ids are folders, so one
        made before a resume is found again.
        """
        if sandbox_id is None or sandbox_id == DEFAULT_ID:
            return self._default(), None
        box = self._sandboxes.get(sandbox_id)
        if box is not None:
            return box, None
        path = self.root / sandbox_id
        if ID_PATTERN.fullmatch(sandbox_id) and path.is_dir() and not path.is_symlink():
            box = self._sandboxes[sandbox_id] = _Sandbox(sandbox_id, path, inherited=True)
            return box, None
        note = f"[sandbox: there is no sandbox {sandbox_id!r}; used the default sandbox]"
        return self._default(), note

    async def create(self) -> str:
        """A new sandbox's id (its folder exists; its interpreter starts on first use)."""
        await self._notes(None)
        while True:
            sandbox_id = f"sbx-{secrets.token_hex(4)}"
            path = self.root / sandbox_id
            try:
                await asyncio.to_thread(self._make_root)
                await asyncio.to_thread(path.mkdir)
            except FileExistsError:
                continue
            except OSError as exc:
                raise SandboxError(f"cannot create {path}: {exc.strerror or exc}") from None
            self._sandboxes[sandbox_id] = _Sandbox(sandbox_id, path, inherited=False)
            return sandbox_id

    def _make_root(self) -> None:
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)

    # -- backend -----------------------------------------------------------

    @property
    def backend(self) -> Backend | None:
        """The isolation in use, once decided (on first use)."""
        return self._backend

    async def _ensure_backend(self) -> Backend:
        if self._backend is None:
            if self.isolation == "rlimits":
                self._backend = "rlimits"
            else:
                problem = await asyncio.to_thread(bubblewrap_problem)
                if problem is None:
                    self._backend = "bubblewrap"
                elif self.isolation == "bubblewrap":
                    raise SandboxError(
                        f"isolation 'bubblewrap' was asked for, but bubblewrap cannot run here:"
                        f" {problem}"
                    )
                else:
                    self._backend = "rlimits"
                    log.warning(
                        "python sandbox: bubblewrap unavailable (%s); running with resource"
                        " limits only, no filesystem or network isolation",
                        problem,
                    )
            if self._backend == "rlimits" and self.isolation == "rlimits":
                log.warning(
                    "python sandbox: isolation 'rlimits': resource limits only,"
                    " no filesystem or network isolation"
                )
            log.info(
                "python sandbox isolation: %s (network %s)",
                self._backend,
                "on" if self.limits.network else "off",
            )
        return self._backend

    def _fallback_note(self) -> list[str]:
        if self._backend == "rlimits" and not self._noted_fallback:
            self._noted_fallback = True
            return [NOTE_FALLBACK]
        return []

    async def notes_for_first_result(self) -> list[str]:
        """The one-time isolation note, for a result that starts no process."""
        await self._ensure_backend()
        return self._fallback_note()

    # -- processes ---------------------------------------------------------

    async def _spawn(self, box: _Sandbox, mode: str) -> ChildProcess:
        backend = await self._ensure_backend()
        folder = box.path
        await self._prepared(box)
        root = os.geteuid() == 0
        python = sys.executable
        if backend == "rlimits" and root:
            python = await asyncio.to_thread(unprivileged_python) or ""
            if not python:
                raise SandboxError(
                    "no Python interpreter here can run as an unprivileged user;"
                    " install Python system-wide or use bubblewrap"
                )
        if backend == "bubblewrap":
            exe = _isolation.bwrap_executable()
            if exe is None:
                raise SandboxError("bubblewrap is no longer installed")
            argv = [*bwrap_args(exe, folder, self.limits), "--"]
            nproc = self.limits.max_processes + (0 if root else 1)  # + bwrap's own init
        else:
            argv = []
            nproc = self.limits.max_processes
            if not root:  # RLIMIT_NPROC counts all of the user's tasks here
                nproc += await asyncio.to_thread(tasks_of, os.getuid())
        argv += [python, "-I", "-B", "-c", STUB]
        config = {
            "mode": mode,
            "cpu_s": self.limits.cpu_s,
            "memory_mb": self.limits.memory_mb,
            "max_file_mb": self.limits.max_file_mb,
            "nproc": nproc,
            "uid": sandbox_uid(folder) if root else None,
            "max_chars": self.limits.max_output_chars,
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=child_env(folder, python),
                cwd=folder,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"could not start the sandbox: {exc}") from None
        child = ChildProcess(proc, self.limits)
        if self._on_first_start is not None:
            callback, self._on_first_start = self._on_first_start, None
            callback()
        try:
            await child.send({"source": server_source(), "config": config})
            ready = await asyncio.wait_for(
                child.receive(), max(START_TIMEOUT_S, self.limits.timeout_s)
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            ready = None
        except BaseException:  # cancelled while starting: leave nothing behind
            self._retire(child)
            raise
        if not ready or not ready.get("ready"):
            if proc.returncode is None and ready is not None:
                child.kill()
            reason = await child.death()
            await child.close()
            raise SandboxError(f"the sandbox could not start: it {reason}")
        return child

    async def _prepared(self, box: _Sandbox) -> None:
        try:
            await asyncio.to_thread(self._prepare, box)
        except OSError as exc:
            raise SandboxError(
                f"cannot prepare the sandbox folder {box.path}: {exc.strerror or exc}"
            ) from None

    def _prepare(self, box: _Sandbox) -> None:
        """Create the sandbox folder; as root, hand the host's files in it to its uid."""
        self._make_root()
        box.path.mkdir(parents=True, exist_ok=True)
        if box.id == DEFAULT_ID:
            marker = self.root / DEFAULT_MARKER
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
            os.close(os.open(marker, flags, 0o600))
        if os.geteuid() == 0:
            adopt(box.path, sandbox_uid(box.path), frozenset())

    async def _interpreter(self, box: _Sandbox, notes: list[str]) -> ChildProcess:
        if box.interpreter is not None and box.interpreter.proc.returncode is None:
            await self._prepared(box)
            return box.interpreter
        if box.interpreter is not None:  # died between calls (e.g. a CPU limit in a thread)
            reason = await box.interpreter.death()
            await box.interpreter.close()
            box.interpreter = None
            box.lost = box.lost or f"it {reason} between calls"
        child = await self._spawn(box, "interpreter")
        if box.lost:
            notes.append(
                f"[sandbox: the Python interpreter was restarted because {box.lost};"
                " variables and imports were lost, files were kept]"
            )
        elif box.inherited and not box.started:
            notes.append(NOTE_RESET)
        box.interpreter, box.lost, box.started = child, None, True
        return child

    def _discard(self, box: _Sandbox, why: str) -> None:
        """Kill the interpreter now (no await: safe while being cancelled)."""
        child, box.interpreter = box.interpreter, None
        box.lost = why
        if child is not None:
            self._retire(child)

    async def run_python(self, code: str, sandbox_id: str | None) -> str:
        box, note = self.lookup(sandbox_id)
        async with box.lock:
            notes = await self._notes(note)
            child = await self._interpreter(box, notes)
            limit = self.limits.timeout_s
            try:
                reply = await asyncio.wait_for(child.call({"code": code}), limit)
            except TimeoutError:
                self._discard(box, f"the previous call ran past the {limit:g} s time limit")
                raise SandboxError(
                    f"the code ran past the {limit:g} s time limit and was stopped; the Python"
                    " interpreter restarts on the next call (variables are lost, files are kept)"
                ) from None
            except asyncio.CancelledError:
                self._discard(box, "the previous call was cancelled")
                raise
            if reply is None:
                reason = await child.death()
                self._discard(box, f"the previous call's interpreter {reason}")
                raise SandboxError(
                    f"the Python interpreter {reason}; it restarts on the next call"
                    " (variables are lost, files are kept)"
                )
            return self._result(notes, reply)

    async def run_command(self, command: str, sandbox_id: str | None) -> str:
        box, note = self.lookup(sandbox_id)
        async with box.lock:
            notes = await self._notes(note)
            child = await self._spawn(box, "command")
            limit = self.limits.timeout_s
            try:
                reply = await asyncio.wait_for(child.call({"command": command}), limit)
            except TimeoutError:
                self._retire(child)
                raise SandboxError(
                    f"the command ran past the {limit:g} s time limit and was stopped"
                ) from None
            except asyncio.CancelledError:
                self._retire(child)
                raise
            if reply is None:
                reason = await child.death()
                self._retire(child)
                raise SandboxError(f"the command's sandbox {reason}")
            self._retire(child)
            result = self._result(notes, reply)
            code = reply.get("exit_code")
            if code:
                result = f"{result.rstrip()}\n[exit code: {code}]".lstrip("\n")
            return result

    async def _notes(self, note: str | None) -> list[str]:
        if self._closed:
            raise SandboxError("the run's sandboxes are closed")
        await self._ensure_backend()
        return [*self._fallback_note(), *([note] if note else [])]

    def _retire(self, child: ChildProcess) -> None:
        """Stop ``child``'s tree now and reap it in the background (awaited by aclose)."""
        child.kill()
        task = asyncio.get_running_loop().create_task(child.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _result(self, notes: list[str], reply: dict[str, Any]) -> str:
        output = truncate(str(reply.get("output", "")), self.limits.max_output_chars)
        stopped = reply.get("stopped") or 0
        if stopped:
            output = (
                f"{output.rstrip()}\n[sandbox: stopped {stopped} process(es) the code left"
                " running; processes do not outlive a call]"
            ).lstrip("\n")
        return "\n".join([*notes, output]) if notes else output

    def host_pids(self) -> list[int]:
        """Host pids of the live interpreters' process trees (for checks and tests)."""
        pids: list[int] = []
        for box in self._sandboxes.values():
            if box.interpreter is not None:
                pids += process_tree(box.interpreter.pid)
        return pids

    async def aclose(self) -> None:
        """Stop every interpreter and wait until their processes are gone."""
        self._closed = True
        children = [b.interpreter for b in self._sandboxes.values() if b.interpreter]
        for box in self._sandboxes.values():
            box.interpreter = None
        await asyncio.gather(*(c.close() for c in children), *self._closing)
