"""``sandbox.child``: the server inside a real bubblewrap sandbox, spoken to directly,
and the helpers the host shares with it.

Each test starts the child as the manager does (bwrap, ``python -I -B -c STUB``, the
server's source and settings as the first frame) and speaks frames to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mirograph.agents.tools.sandbox.child import (
    STUB,
    descendants,
    encode_frame,
    head_tail,
    truncated,
)
from mirograph.agents.tools.sandbox.isolation import (
    adopt,
    bwrap_args,
    bwrap_executable,
    child_env,
    sandbox_uid,
)
from mirograph.agents.tools.sandbox.limits import Limits
from mirograph.agents.tools.sandbox.processes import ChildProcess, server_source

ROOT = os.geteuid() == 0
REPLY_TIMEOUT_S = 30

Start = Callable[..., Awaitable[ChildProcess]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """``await start(mode, **limits)``: a child in a bwrap sandbox on ``tmp_path/box``,
    its settings sent, its ready frame not yet read; every one is stopped afterwards."""
    children: list[ChildProcess] = []
    folder = tmp_path / "box"
    folder.mkdir()
    if ROOT:
        adopt(folder, sandbox_uid(folder), frozenset())

    async def begin(mode: str = "interpreter", **settings: Any) -> ChildProcess:
        limits = Limits(**{"memory_mb": 256, **settings})
        exe = bwrap_executable()
        assert exe is not None
        argv = [*bwrap_args(exe, folder, limits), "--", sys.executable, "-I", "-B", "-c", STUB]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env(folder),
            cwd=folder,
            start_new_session=True,
        )
        child = ChildProcess(proc, limits)
        children.append(child)
        config = {
            "mode": mode,
            "cpu_s": limits.cpu_s,
            "memory_mb": limits.memory_mb,
            "max_file_mb": limits.max_file_mb,
            "nproc": limits.max_processes + (0 if ROOT else 1),
            "uid": sandbox_uid(folder) if ROOT else None,
            "max_chars": limits.max_output_chars,
        }
        await child.send({"source": server_source(), "config": config})
        return child

    yield begin
    for child in children:
        await child.close()


async def ready(child: ChildProcess) -> dict[str, Any]:
    reply = await asyncio.wait_for(child.receive(), REPLY_TIMEOUT_S)
    assert reply is not None and reply["ready"] is True, reply
    return reply


async def call(child: ChildProcess, **request: str) -> dict[str, Any] | None:
    return await asyncio.wait_for(child.call(request), REPLY_TIMEOUT_S)


async def test_frames_on_the_wire(start: Start) -> None:
    """The protocol by hand: decimal byte count, newline, UTF-8 JSON; both directions."""
    child = await start()
    stdin, stdout = child.proc.stdin, child.proc.stdout
    assert stdin is not None and stdout is not None
    size = int(await asyncio.wait_for(stdout.readline(), REPLY_TIMEOUT_S))
    hello = json.loads(await stdout.readexactly(size))
    assert hello["ready"] is True and hello["python"] == platform.python_version()
    assert hello["pid"] < 10  # its own pid namespace
    body = json.dumps({"code": "print('é')"}).encode()
    stdin.write(b"%d\n" % len(body) + body)
    size = int(await asyncio.wait_for(stdout.readline(), REPLY_TIMEOUT_S))
    assert json.loads((await stdout.readexactly(size)).decode("utf-8")) == {
        "output": "é\n",
        "stopped": 0,
        "exit_code": None,
    }


async def test_cells_share_state_and_show_their_value_and_errors(
    start: Start, tmp_path: Path
) -> None:
    child = await start()
    await ready(child)
    assert await call(child, code="x = 6\nx * 7") == {
        "output": "42\n",
        "stopped": 0,
        "exit_code": None,
    }
    reply = await call(child, code="print('before')\nx / 0")
    assert reply is not None
    assert reply["output"].startswith("before\nTraceback (most recent call last):\n")
    assert '  File "<cell 2>", line 2, in <module>' in reply["output"]
    assert reply["output"].endswith("ZeroDivisionError: division by zero\n")
    assert "mirograph" not in reply["output"]  # no frame of the server
    # As root the server drops to the sandbox's own uid; otherwise it keeps the user's.
    expected = sandbox_uid(tmp_path / "box") if ROOT else os.getuid()
    assert await call(child, code="import os\nos.getuid()") == {
        "output": f"{expected}\n",
        "stopped": 0,
        "exit_code": None,
    }


async def test_a_call_stops_the_processes_it_left_running(start: Start) -> None:
    child = await start()
    await ready(child)
    reply = await call(
        child, code="import subprocess\nfor _ in range(2):\n    subprocess.Popen(['sleep', '60'])"
    )
    assert reply == {"output": "", "stopped": 2, "exit_code": None}
    assert await call(child, code="'still here'") == {
        "output": "'still here'\n",
        "stopped": 0,
        "exit_code": None,
    }


async def test_a_command_child_answers_once_with_the_exit_code(start: Start) -> None:
    child = await start("command")
    await ready(child)
    reply = await call(child, command="echo out; echo err >&2; exit 3")
    assert reply == {"output": "out\nerr\n", "stopped": 0, "exit_code": 3}
    assert await asyncio.wait_for(child.proc.wait(), REPLY_TIMEOUT_S) == 0


async def test_the_child_cuts_long_output_by_bytes(start: Start) -> None:
    child = await start(max_output_chars=100)
    await ready(child)
    reply = await call(child, code="print('h' * 75 + 'm' * 1000 + 't' * 24)")
    assert reply is not None
    assert reply["output"] == truncated("h" * 75, "t" * 24 + "\n", 1000, "bytes")


async def test_memory_past_the_limit_is_an_error_in_the_cell(start: Start) -> None:
    child = await start(memory_mb=128)
    await ready(child)
    reply = await call(child, code="b = bytearray(512 * 2**20)")
    assert reply is not None and reply["output"].endswith("MemoryError\n")
    assert await call(child, code="1 + 1") == {"output": "2\n", "stopped": 0, "exit_code": None}


async def test_cpu_past_the_limit_ends_the_child_with_a_reason(start: Start) -> None:
    child = await start(cpu_s=1)
    await ready(child)
    assert await call(child, code="while True:\n    pass") is None  # the child is gone
    assert await child.death() == "ran past the CPU time limit of 1 s and was stopped"


def test_a_frame_is_a_byte_count_a_newline_and_json() -> None:
    assert encode_frame({"code": "é"}) == b'18\n{"code": "\\u00e9"}'


def test_descendants_walk_a_process_table() -> None:
    table = {1: (0, b"S"), 2: (1, b"S"), 3: (2, b"S"), 4: (2, b"Z"), 5: (1, b"R"), 9: (8, b"S")}
    assert sorted(descendants(2, table)) == [3, 4]
    assert sorted(descendants(1, table)) == [2, 3, 4, 5]
    assert descendants(3, table) == []
    assert descendants(7, table) == []


def test_the_cut_keeps_three_quarters_head_one_quarter_tail() -> None:
    assert head_tail(100) == (75, 25)
    assert head_tail(3) == (3, 0)
    assert (
        truncated("ab", "yz", 7, "bytes") == "ab\n[... output truncated: 7 bytes omitted ...]\nyz"
    )
