"""The ``python`` tool set: persistent interpreters in bubblewrap (or rlimits-only) sandboxes.

Every test starts real sandboxes; each ToolContext is closed by the fixture,
and one test checks that closing leaves no process behind.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool, ToolException

from mirograph.agents.tools.base import ToolContext, server_of, tool_specs
from mirograph.agents.tools.sandbox import NOTE_FALLBACK, NOTE_RESET, alive, process_tree
from mirograph.agents.tools.sandbox import isolation as sandbox
from mirograph.agents.tools.tool_refs import ToolRefError, resolve_tools

SECRET = "sk-test-secret"
RESTARTED = "[sandbox: the Python interpreter was restarted"
RESET = "[sandbox: new Python interpreter for an existing sandbox"


@dataclass
class Run:
    """The python tools of one ToolContext (one engine process's view of a run)."""

    ctx: ToolContext
    tools: dict[str, BaseTool]

    async def py(self, code: str, sandbox_id: str | None = None) -> str:
        args = {"code_block": code} | ({"sandbox_id": sandbox_id} if sandbox_id else {})
        return str(await self.tools["run_python_code"].ainvoke(args))

    async def sh(self, command: str, sandbox_id: str | None = None) -> str:
        args = {"command": command} | ({"sandbox_id": sandbox_id} if sandbox_id else {})
        return str(await self.tools["run_command"].ainvoke(args))


MakeRun = Callable[..., Run]


@pytest.fixture
async def make_run(tmp_path: Path) -> AsyncIterator[MakeRun]:
    """``make_run(**options)``: the tools on ``tmp_path/workspace``; all closed afterwards."""
    contexts: list[ToolContext] = []

    def make(**options: Any) -> Run:
        ctx = ToolContext("r1", tmp_path / "workspace")
        contexts.append(ctx)
        settings = {"timeout_s": 3, "memory_mb": 256, **options}
        tools = resolve_tools([{"python": settings}], ctx)
        return Run(ctx, {tool.name: tool for tool in tools})

    yield make
    for ctx in contexts:
        await ctx.aclose()


def sandbox_processes() -> list[int]:
    """Processes under this test process (the sandboxes' bwrap and interpreters), less the
    bounded-work processes that other tools keep for reuse (``agents/tools/bounded.py``)."""
    return [
        pid
        for pid in process_tree(os.getpid())
        if pid != os.getpid() and alive(pid) and not _bounded_worker(pid)
    ]


def _bounded_worker(pid: int) -> bool:
    try:
        return b"mirograph.agents.tools.bounded" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def test_state_persists_and_output_and_tracebacks_come_back(make_run: MakeRun) -> None:
    run = make_run()
    assert await run.py("x = 41\nprint('hello', x)") == "hello 41\n"
    assert await run.py("x + 1") == "42\n"  # a final expression is shown, like a notebook
    failed = await run.py("import sys\nprint('before')\n1 / 0")
    assert failed.startswith("before\nTraceback (most recent call last):")
    assert failed.rstrip().splitlines()[-1] == "ZeroDivisionError: division by zero"
    assert "mirograph" not in failed  # no frame of the sandbox server leaks into tracebacks
    syntax = await run.py("def broken(:")
    assert "SyntaxError" in syntax
    assert await run.py("import os\nos.system('echo from a subprocess')") == (
        "from a subprocess\n0\n"
    )
    assert await run.py("x") == "41\n"  # still there after errors
    # Cells compile as plain modules (no __future__ flag of the server leaks in).
    assert await run.py("def f(a: int): pass\nf.__annotations__") == "{'a': <class 'int'>}\n"


async def test_tools_and_placeholder_sandbox_ids(make_run: MakeRun) -> None:
    run = make_run()
    tools = run.tools
    assert sorted(tools) == ["create_sandbox", "run_command", "run_python_code"]
    assert {server_of(tool) for tool in tools.values()} == {"tool-python"}
    [spec] = [s for s in tool_specs(list(tools.values())) if s.name == "run_python_code"]
    assert sorted(spec.schema["properties"]) == ["code_block", "sandbox_id"]
    assert spec.schema["required"] == ["code_block"]

    assert await run.py("y = 7", sandbox_id="<sandbox_id>") == ""
    for placeholder in ("", "default", "sandbox_id", "None", "null", " <sandbox_id> "):
        args = {"code_block": "y", "sandbox_id": placeholder}
        assert await tools["run_python_code"].ainvoke(args) == "7\n"
    unknown = await run.py("y", sandbox_id="sbx-nothere")
    assert unknown == "[sandbox: there is no sandbox 'sbx-nothere'; used the default sandbox]\n7\n"


async def test_create_sandbox_gives_its_own_namespace_and_folder(make_run: MakeRun) -> None:
    run = make_run()
    workspace = run.ctx.workspace
    boxes = workspace.parent / f"{workspace.name}.sandboxes"  # out of every sandbox's reach
    await run.py("v = 'default'\nopen('in_default.txt', 'w').write('d')")
    created = await run.tools["create_sandbox"].ainvoke({})
    sandbox_id = created.split("sandbox_id: ", 1)[1].split(".", 1)[0]
    assert (boxes / sandbox_id).is_dir()

    missing = await run.py("v", sandbox_id=sandbox_id)
    assert missing.rstrip().endswith("NameError: name 'v' is not defined")
    await run.py("v = 'mine'\nopen('in_new.txt', 'w').write('n')", sandbox_id=sandbox_id)
    assert await run.py("v", sandbox_id=sandbox_id) == "'mine'\n"
    assert await run.py("v") == "'default'\n"
    # The default sandbox's folder is the workspace, shared with the files tools.
    assert (workspace / "in_default.txt").read_text() == "d"
    assert (boxes / sandbox_id / "in_new.txt").read_text() == "n"
    assert not (workspace / "in_new.txt").exists()
    assert await run.sh("pwd; ls", sandbox_id=sandbox_id) == (
        f"{(boxes / sandbox_id).resolve()}\nin_new.txt\n"
    )


async def test_run_command_output_exit_code_and_leftovers(make_run: MakeRun) -> None:
    run = make_run(timeout_s=2)
    assert await run.sh("echo out; echo err >&2; exit 3") == "out\nerr\n[exit code: 3]"
    left = await run.sh("sleep 60 & echo started")
    assert left.startswith("started\n[sandbox: stopped 1 process(es) the code left running")
    with pytest.raises(ToolException, match=r"the command ran past the 2 s time limit"):
        await run.sh("sleep 30")
    assert await run.sh("echo fine") == "fine\n"


async def test_files_written_by_the_host_can_be_changed_by_the_sandbox(make_run: MakeRun) -> None:
    run = make_run()
    workspace = run.ctx.workspace
    workspace.mkdir(parents=True)
    (workspace / "notes.txt").write_text("host\n")  # as the files tools would, as this user
    await run.py("with open('notes.txt', 'a') as f:\n    f.write('sandbox\\n')")
    assert (workspace / "notes.txt").read_text() == "host\nsandbox\n"


async def test_host_secrets_are_invisible(
    make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", SECRET)
    run = make_run()
    seen = await run.py(
        "import os\n"
        "print(dict(os.environ))\n"
        "for pid in ['self', '1'] + [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    try:\n"
        "        print(pid, open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as exc:\n"
        "        print(pid, type(exc).__name__)\n"
    )
    assert "HOME" in seen and "/proc" not in seen.split("\n", 1)[0]
    assert SECRET not in seen and "TAVILY" not in seen
    shell = await run.sh("env; cat /proc/1/environ /proc/self/environ 2>&1")
    assert SECRET not in shell and "TAVILY" not in shell


async def test_sandbox_cannot_write_outside_its_folder(make_run: MakeRun, tmp_path: Path) -> None:
    run = make_run()
    host_tmp = Path("/tmp") / f"mirograph-escape-{uuid.uuid4().hex}"
    targets = [tmp_path / "escaped.txt", Path("/etc/mirograph-escaped"), Path("/usr/escaped")]
    code = "\n".join(
        [
            f"open({str(host_tmp)!r}, 'w').write('x')  # the sandbox's own private /tmp",
            "results = []",
            f"for path in {[str(t) for t in targets]!r}:",
            "    try:",
            "        open(path, 'w').write('x')",
            "        results.append('WROTE ' + path)",
            "    except OSError as exc:",
            "        results.append('denied ' + type(exc).__name__)",
            "print(results)",
        ]
    )
    result = await run.py(code)
    assert "WROTE" not in result and result.count("denied") == 3
    assert not host_tmp.exists()
    assert not any(target.exists() for target in targets)
    assert await run.py("open('inside.txt', 'w').write('ok')") == "2\n"
    assert (run.ctx.workspace / "inside.txt").read_text() == "ok"


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


CONNECT = (
    "import socket\n"
    "s = socket.socket()\n"
    "s.settimeout(2)\n"
    "try:\n"
    "    s.connect(('127.0.0.1', {port}))\n"
    "    print('connected')\n"
    "except OSError as exc:\n"
    "    print('no connection:', type(exc).__name__)\n"
)


async def test_no_network_unless_asked(make_run: MakeRun, listener: int) -> None:
    offline = make_run()
    assert (await offline.py(CONNECT.format(port=listener))).startswith("no connection")
    await offline.ctx.aclose()
    online = make_run(network=True)
    reached = await online.py(CONNECT.format(port=listener))  # (a new run on the same folder)
    assert reached.splitlines()[-1] == "connected"


async def test_a_fork_bomb_is_contained(make_run: MakeRun) -> None:
    run = make_run(max_processes=16)
    await run.py("kept = 'state'")
    result = await run.py("import os\nwhile True:\n    os.fork()")
    assert "BlockingIOError" in result  # the process limit stops the loop
    # The pid namespace holds bwrap's init and the interpreter, nothing else.
    assert await run.py("len([p for p in os.listdir('/proc') if p.isdigit()])") == "2\n"
    assert await run.py("kept") == "'state'\n"
    assert len(sandbox_processes()) == 3  # bwrap, its init, the interpreter


async def test_a_memory_bomb_fails_and_the_interpreter_lives_on(make_run: MakeRun) -> None:
    run = make_run()
    await run.py("kept = 1")
    result = await run.py("b = bytearray(4 * 2**30)")
    assert result.rstrip().splitlines()[-1] == "MemoryError"
    hog = await run.py("hog = []\nwhile True:\n    hog.append(bytearray(2**24))")
    assert hog.rstrip().splitlines()[-1] == "MemoryError"
    assert await run.py("del hog\nkept + 1") == "2\n"


async def test_an_endless_loop_is_stopped_and_the_next_call_restarts(make_run: MakeRun) -> None:
    run = make_run(timeout_s=2)
    await run.py("x = 1\nopen('kept.txt', 'w').write('kept')")
    with pytest.raises(ToolException, match=r"^the code ran past the 2 s time limit") as caught:
        await run.py("while True:\n    pass")
    assert "\n" not in str(caught.value)
    after = await run.py("print(open('kept.txt').read())\nx")
    first, rest = after.split("\n", 1)
    assert first.startswith(RESTARTED) and "2 s time limit" in first
    assert rest.startswith("kept\n") and "NameError: name 'x' is not defined" in rest
    assert not (await run.py("1")).startswith("[sandbox")  # said once


async def test_the_cpu_limit_stops_a_call(make_run: MakeRun) -> None:
    run = make_run(cpu_s=1, timeout_s=20)
    with pytest.raises(ToolException, match=r"CPU time limit of 1 s"):
        await run.py("while True:\n    pass")
    assert (await run.py("'ok'")).endswith("\n'ok'\n")


async def test_output_is_cut_with_a_marker(make_run: MakeRun) -> None:
    run = make_run(max_output_chars=200)
    result = await run.py("print('x' * 5000)\nprint('THE END')")
    assert "[... output truncated:" in result
    assert result.startswith("x" * 100) and result.endswith("THE END\n")
    assert len(result) < 300
    # The count is the child's, of what it dropped: not a second cut's of its marker.
    head, marker, tail = result.split("\n", 2)
    omitted = int(marker.split(": ")[1].split()[0])
    assert len(head) + omitted + len(tail) == len("x" * 5000 + "\nTHE END\n")


async def test_rlimits_fallback_keeps_limits_and_a_clean_environment(
    make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", SECRET)
    run = make_run(isolation="rlimits", timeout_s=2, max_processes=16)
    first = await run.py(
        "import os\nprint(dict(os.environ))\nprint(open('/proc/self/environ').read())"
    )
    assert first.startswith(NOTE_FALLBACK + "\n")
    assert "HOME" in first and SECRET not in first and "TAVILY" not in first
    assert not (await run.py("1")).startswith("[sandbox")  # the note comes once
    assert SECRET not in await run.sh("env")
    bomb = await run.py("b = bytearray(4 * 2**30)")
    assert bomb.rstrip().endswith("MemoryError")
    forks = await run.py("import os\nwhile True:\n    os.fork()")
    assert "BlockingIOError" in forks
    assert len(sandbox_processes()) == 1  # the interpreter; what it forked died with the call
    with pytest.raises(ToolException, match="time limit"):
        await run.py("while True:\n    pass")
    assert (await run.py("print('back')")).startswith(RESTARTED)


async def test_auto_uses_bubblewrap_and_says_so(
    make_run: MakeRun, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mirograph.sandbox")
    run = make_run()
    assert await run.py("1") == "1\n"  # no fallback note
    assert "python sandbox isolation: bubblewrap (network off)" in caplog.text


async def test_auto_without_bubblewrap_falls_back_loudly(
    make_run: MakeRun, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "bwrap_executable", lambda: None)
    run = make_run()
    created = await run.tools["create_sandbox"].ainvoke({})
    assert created.startswith(f"{NOTE_FALLBACK}\nSandbox created with sandbox_id: sbx-")
    warnings = [r for r in caplog.records if "bubblewrap unavailable" in r.message]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert "(bwrap is not installed)" in warnings[0].message
    assert await run.py("1") == "1\n"  # the note came with the first result only


async def test_bubblewrap_required_but_missing_is_a_tool_error(
    make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "bwrap_executable", lambda: None)
    run = make_run(isolation="bubblewrap")
    with pytest.raises(ToolException, match=r"bubblewrap cannot run here: bwrap is not installed"):
        await run.py("1")


async def test_the_default_sandbox_cannot_steer_where_other_sandboxes_live(
    make_run: MakeRun, tmp_path: Path
) -> None:
    run = make_run()
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    # Plant links where sandbox folders and the marker would be if they lived inside.
    link = f"os.symlink({str(victim)!r}, "
    await run.py(f"import os\n{link}'sandboxes')\n{link}'.default')")
    created = await run.tools["create_sandbox"].ainvoke({})
    sandbox_id = created.split("sandbox_id: ", 1)[1].split(".", 1)[0]
    await run.py("open('x.txt', 'w').write('1')", sandbox_id=sandbox_id)
    assert list(victim.iterdir()) == [] and victim.stat().st_uid == os.geteuid()
    workspace = run.ctx.workspace
    assert (workspace.parent / f"{workspace.name}.sandboxes" / sandbox_id / "x.txt").exists()


async def test_a_resume_finds_the_sandboxes_with_their_files_but_fresh_state(
    make_run: MakeRun,
) -> None:
    before = make_run()
    await before.py("x = 1\nopen('kept.txt', 'w').write('kept')")
    created = await before.tools["create_sandbox"].ainvoke({})
    sandbox_id = created.split("sandbox_id: ", 1)[1].split(".", 1)[0]
    await before.py("y = 2\nopen('mine.txt', 'w').write('mine')", sandbox_id=sandbox_id)
    await before.ctx.aclose()  # the engine process ends

    after = make_run()  # a new process, same workspace
    result = await after.py("print(open('kept.txt').read())\nx")
    note, rest = result.split("\n", 1)
    assert note.startswith(RESET) and "files were kept" in note
    assert rest.startswith("kept\n") and "NameError" in rest
    assert not (await after.py("1")).startswith("[sandbox")
    named = await after.py("open('mine.txt').read()", sandbox_id=sandbox_id)
    assert named == f"{NOTE_RESET}\n'mine'\n"


async def test_closing_the_run_stops_every_interpreter(make_run: MakeRun) -> None:
    run = make_run()
    await run.py("1")
    created = await run.tools["create_sandbox"].ainvoke({})
    await run.py("2", sandbox_id=created.split("sandbox_id: ", 1)[1].split(".", 1)[0])
    pids = sandbox_processes()
    assert len(pids) == 6  # two sandboxes: bwrap, its init and the interpreter each
    await run.ctx.aclose()
    assert not [pid for pid in pids if alive(pid)]
    assert sandbox_processes() == []


def test_options_are_checked(tmp_path: Path) -> None:
    ctx = ToolContext("r1", tmp_path)
    with pytest.raises(ToolRefError, match=r"python\.bogus: unknown option; python takes: network"):
        resolve_tools([{"python": {"bogus": 1}}], ctx)
    with pytest.raises(ToolRefError, match=r"python\.isolation"):
        resolve_tools([{"python": {"isolation": "docker"}}], ctx)
    assert len(resolve_tools(["python"], ctx)) == 3


def test_a_flow_without_bubblewrap_says_so_before_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mirograph.flows.loader import validate_flow

    flow = validate_flow(
        {
            "name": "x",
            "models": {"m": {}},
            "agents": {"main": {"model": "m", "tools": ["python"]}},
            "entry": "main",
        }
    )
    assert flow.environment_warnings() == []  # bubblewrap works here
    monkeypatch.setattr(sandbox, "bwrap_executable", lambda: None)
    [warning] = flow.environment_warnings()
    assert warning.startswith("python: bubblewrap unavailable (bwrap is not installed)")
    assert "resource limits only" in warning
