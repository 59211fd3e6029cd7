"""Test helpers shared across the suite: the CLI as a subprocess, flows, ports, pipes."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: This folder: the policies, tools and servers that flows in tests name.
SUPPORT = Path(__file__).parent
#: On the Python path of every test and subprocess, so that ``support.NAME`` imports.
TESTS = SUPPORT.parent
LISTENING = re.compile(r"sim-model listening on (http://127\.0\.0\.1:(\d+)/v1)")


def write_team_flow(
    path: Path,
    base_url: str,
    *,
    browsing: str = "support.team_tools:lookup",
    coding: str | None = "support.team_tools:compute",
    name: str = "team",
    **model: object,
) -> Path:
    """A planner with a browsing sub-agent (and a coding one unless ``coding`` is
    None), each with one tool given by import path, on one model at ``base_url``."""
    agents: dict[str, dict[str, object]] = {
        "browsing": {"model": "m", "max_turns": 20, "tools": [browsing]}
    }
    if coding is not None:
        agents["coding"] = {"model": "m", "max_turns": 20, "tools": [coding]}
    agents["planner"] = {"model": "m", "role": "main", "sub_agents": list(agents)}
    flow = {
        "name": name,
        "models": {"m": {"base_url": base_url, "max_tokens": 512, **model}},
        "agents": agents,
        "entry": "planner",
    }
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cli:
    """Runs ``python -m mirograph`` with the test's home and store."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> str:
        return f"sqlite:///{self.home / 'runs.db'}"

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "MIROGRAPH_HOME": str(self.home), **self.env, **(extra or {})}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mirograph", *args]

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            env=self.environ(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )


def stop(proc: subprocess.Popen[str], timeout: float = 20) -> None:
    """Ask a server process to stop (SIGTERM); kill it if it has not within ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def show(cli: Cli, run_id: str) -> dict:
    result = cli("show", run_id, "--store", cli.store, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@contextmanager
def held_run(cli: Cli, flow: Path, fifo: Path) -> Iterator[subprocess.Popen[str]]:
    """``mirograph run`` of a team flow on ``pause_tools`` (run id ``held``), held in
    browsing's turn-3 tool call; killed at the end if it still runs."""
    runner = cli.popen(
        "run", "Compare alpha and beta.", "--flow", str(flow), "--id", "held",
        "--store", cli.store, env={"PAUSE_BLOCK_AT": "browsing:3"},
    )  # fmt: skip
    assert wait_for_fifo(fifo, runner) == "holding browsing:3\n"
    try:
        yield runner
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=30)


def release(go: Path) -> None:
    """Let the held tool call go on."""
    with open(go, "w", encoding="utf-8") as fifo:
        fifo.write("go\n")


def read_until_closed(master: int, timeout: float = 60) -> bytes:
    """All a process wrote to the terminal (pty) whose master end is ``master``,
    until it closed it; closes ``master``."""
    drawn = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        assert ready, "the runner stopped writing to its terminal"
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the runner closed its terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    return drawn


def wait_for_fifo(fifo: Path, proc, timeout: float = 120) -> str:
    """Block until the tool announces itself on the FIFO (or the runner dies)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"tool never blocked; runner exit={proc.poll()}"
        return os.read(fd, 1024).decode()
    finally:
        os.close(fd)
