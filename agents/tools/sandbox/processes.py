"""Host-side processes of a sandbox: the tree under a child, stopping it, talking to it.

The child's own twins (its leftovers' tree walk and kill, its end of the frame
protocol) are in ``child``; the process-table reading and frame encoding are
shared from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import os
import signal
from pathlib import Path
from typing import Any

from mirograph.agents.tools.sandbox import child as child_side
from mirograph.agents.tools.sandbox.child import descendants, encode_frame, proc_table
from mirograph.agents.tools.sandbox.limits import Limits, exit_reason


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants that exist now (zombies included)."""
    table = proc_table()
    return [root, *descendants(root, table)] if root in table else []


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that can still run (not gone, not a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in (b"Z", b"X")


def kill_tree(root: int) -> list[int]:
    """SIGKILL ``root`` and everything under it; the pids signalled. Blocking but quick.

    ``root`` is frozen first: it is a subreaper (or a namespace's parent), so
    its descendants' orphans stay under it until all are dead.
    """
    signalled: dict[int, None] = {}  # in order, once each: a killed pid may linger a moment
    with contextlib.suppress(OSError):
        os.kill(root, signal.SIGSTOP)
    for _ in range(1000):
        victims = [p for p in process_tree(root) if p != root and alive(p)]
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            signalled[pid] = None
    with contextlib.suppress(OSError):
        os.kill(root, signal.SIGKILL)
    return [root, *signalled]


def tasks_of(uid: int) -> int:
    """How many tasks (threads) ``uid`` runs now: what RLIMIT_NPROC counts."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total


@functools.cache
def server_source() -> str:
    """What the child's STUB execs: the whole ``child`` module, then its server."""
    return f"{inspect.getsource(child_side)}\nserve(CONFIG)\n"


class ChildProcess:
    """One sandbox process speaking the frame protocol (host side)."""

    def __init__(self, proc: asyncio.subprocess.Process, limits: Limits) -> None:
        self.proc = proc
        self.limits = limits
        self.pid = proc.pid  # host pid of bwrap, or of the interpreter itself

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode_frame(message))
        await self.proc.stdin.drain()

    async def receive(self) -> dict[str, Any] | None:
        """The next frame, or None when the child has gone."""
        assert self.proc.stdout is not None
        try:
            line = await self.proc.stdout.readline()
            if not line:
                return None
            size = int(line)
            if not 0 <= size <= 8 * self.limits.max_output_chars + 65_536:
                raise ValueError(size)
            message = json.loads(await self.proc.stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            return None
        return message if isinstance(message, dict) else None

    async def call(self, request: dict[str, Any]) -> dict[str, Any] | None:
        try:
            await self.send(request)
        except (ConnectionError, RuntimeError):
            return None
        return await self.receive()

    async def death(self) -> str:
        """Why the child ended (after ``receive`` saw it go)."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.kill()
            code = await self.proc.wait()
        stderr = b""
        if self.proc.stderr is not None:
            with contextlib.suppress(TimeoutError):
                stderr = await asyncio.wait_for(self.proc.stderr.read(4096), 1)
        lines = stderr.decode(errors="replace").strip().splitlines()
        reason = exit_reason(code, self.limits)
        return f"{reason} ({lines[-1][:300]})" if lines and code not in (0, None) else reason

    def kill(self) -> list[int]:
        """Stop the whole process tree now; the pids signalled."""
        return kill_tree(self.pid)

    async def close(self) -> None:
        pids = self.kill()
        with contextlib.suppress(ProcessLookupError):
            await self.proc.wait()
        for _ in range(500):  # the tree's processes are gone within moments of SIGKILL
            if not any(alive(p) for p in pids):
                break
            await asyncio.sleep(0.01)
