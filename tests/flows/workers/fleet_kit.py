"""What the workers' tests share: a model policy, flows, workers as subprocesses.

The policy (served by an in-process ``SimServer``, so every request is recorded)
works ``STEPS`` steps on the run's topic, one ``step`` tool call a turn, and
carries a chain digest of every result it saw in its replies: its boxed answer
``topic:steps:digest`` is what an uninterrupted run answers only if the run saw
each result exactly once, in order (``expected_answer``). A ``team`` run's
planner hands the work to a ``helper`` sub-agent and boxes its report.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from support.team_policy import TOOL
from support.testkit import TESTS

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

HERE = Path(__file__).parent
STEPS = 4
#: How late the model may record a request a killed worker sent just before its end.
LOG_LAG_S = 1.0
_TOPIC = re.compile(r"Work on (\S+) now\.")
_RESULT = re.compile(r"result (\S+)#(\d+)")
_CHAIN = re.compile(r"chain=([\w/]+)")
_REPORT = re.compile(r"REPORT\[[^\]]+\]")


def question(topic: str) -> str:
    return f"Work on {topic} now."


def chained(previous: str, result: str) -> str:
    return hashlib.sha256(f"{previous}|{result}".encode()).hexdigest()[:12]


def expected_chain(topic: str, steps: int = STEPS) -> str:
    chain = topic
    for n in range(1, steps + 1):
        chain = chained(chain, f"result {topic}#{n}")
    return chain


def expected_answer(topic: str, kind: str, steps: int = STEPS) -> str:
    """The answer of an uninterrupted run of ``kind`` (``single`` or ``team``)."""
    if kind == "team":
        return f"REPORT[{topic}/helper:{steps}:{expected_chain(topic + '/helper', steps)}]"
    return f"{topic}:{steps}:{expected_chain(topic, steps)}"


@dataclass
class Request:
    """One model request the policy answered: whose, which turn, when."""

    topic: str
    agent: str
    done: int
    at: float


@dataclass
class FleetPolicy:
    steps: int = STEPS
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        system = messages[0]["content"]
        done = sum(1 for m in messages if m["role"] == "assistant")
        first = str(messages[1]["content"])
        tools = TOOL.findall(system)
        delegates = [(s, t) for s, t in tools if s.startswith("agent-")]
        own = [(s, t) for s, t in tools if not s.startswith("agent-")]
        topic = _TOPIC.search(first)[1]  # type: ignore[index]
        agent = "helper" if first.startswith("Sub-task for helper:") else "main"
        if agent == "helper":
            topic = f"{topic}/helper"
        with self.lock:
            self.requests.append(Request(topic, agent, done, time.time()))
        last = str(messages[-1]["content"])
        if delegates:
            return self._planner(topic, done, last, delegates, messages)
        chain = _last_chain(messages) or topic
        if is_closing_request(last):  # the last reply carries the chain of every result
            if agent == "helper":
                return f"Reporting.</think>\n\nREPORT[{topic}:{done - 1}:{chain}]"
            return f"Done.</think>\n\nFinal: \\boxed{{{topic}:{done - 1}:{chain}}}"
        if done > 0 and (result := _RESULT.search(last)):
            chain = chained(chain, result.group(0))
        if done < self.steps:
            call = render_call(own[0][0], own[0][1], {"topic": topic, "n": done + 1})
            return f"Step {done + 1}, chain={chain}.</think>\n\nWorking.\n\n{call}"
        return f"All {done} steps taken, chain={chain}.</think>\n\nI can answer now."

    def _planner(
        self,
        topic: str,
        done: int,
        last: str,
        delegates: list[tuple[str, str]],
        messages: list[dict[str, Any]],
    ) -> str:
        if is_closing_request(last):
            reports = _REPORT.findall("\n".join(str(m["content"]) for m in messages[2:]))
            return f"Reports in.</think>\n\nFinal: \\boxed{{{' '.join(reports)}}}"
        if done == 0:
            server, tool = delegates[0]
            call = render_call(server, tool, {"subtask": f"Sub-task for helper: {question(topic)}"})
            return f"Delegating.</think>\n\nHanding it over.\n\n{call}"
        return "The report is back.</think>\n\nI can answer now."

    def turns(self) -> dict[tuple[str, int], int]:
        """How many times each (topic, turn) was asked for."""
        counts: dict[tuple[str, int], int] = {}
        with self.lock:
            for request in self.requests:
                key = (request.topic, request.done)
                counts[key] = counts.get(key, 0) + 1
        return counts


def _last_chain(messages: list[dict[str, Any]]) -> str | None:
    for message in reversed(messages):
        if message["role"] == "assistant" and (found := _CHAIN.search(str(message["content"]))):
            return found[1]
    return None


def write_flows(folder: Path, base_url: str) -> dict[str, Path]:
    """The ``single`` and ``team`` flows on the model at ``base_url``."""
    model = {"m": {"base_url": base_url, "max_tokens": 256}}
    worker_agent = {"model": "m", "max_turns": STEPS + 3, "tools": ["fleet_tools:step"]}
    flows = {
        "single": {
            "name": "fleet-single",
            "models": model,
            "agents": {"main": {**worker_agent, "role": "main"}},
            "entry": "main",
        },
        "team": {
            "name": "fleet-team",
            "models": model,
            "agents": {
                "helper": worker_agent,
                "planner": {"model": "m", "role": "main", "max_turns": 6, "sub_agents": ["helper"]},
            },
            "entry": "planner",
        },
    }
    paths = {}
    for kind, spec in flows.items():
        paths[kind] = folder / f"{kind}.yaml"
        paths[kind].write_text(yaml.safe_dump(spec), encoding="utf-8")
    return paths


def environ(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A subprocess's environment: its own ``MIROGRAPH_HOME``, the tests' modules."""
    env = {k: v for k, v in os.environ.items() if k not in ("MIROGRAPH_STORE", "MIROGRAPH_BROKER")}
    env.update({"MIROGRAPH_HOME": str(home), **(extra or {})})
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE), str(TESTS), os.environ.get("PYTHONPATH")])
    )
    return env


def mirograph(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirograph", *args],
        env=environ(home, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def mirograph_popen(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mirograph", *args],
        env=environ(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


class WorkerProcess:
    """``mirograph worker`` (or ``beat``) in a session of its own (a worker's embedded
    beat dies with it); its log lines are collected as they come."""

    def __init__(
        self, home: Path, *args: str, env: dict[str, str] | None = None, command: str = "worker"
    ) -> None:
        self.home = home
        self.lines: list[str] = []
        #: What its log says once it works: a worker is ready, beat has started.
        self.ready = " ready." if command == "worker" else "beat: Starting"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mirograph", command, *args],
            env=environ(home, env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        wait_for(lambda: self.ready in self.log() or self.proc.poll() is not None, timeout)
        assert self.proc.poll() is None, f"worker exited {self.proc.returncode}:\n{self.log()}"
        return self

    def signal(self, sig: int) -> None:
        """Signal the worker's whole session (SIGKILL: beat and all)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        else:
            self.signal(signal.SIGKILL)  # anything it left in its session


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str = "condition",
    details: Callable[[], str] | None = None,
) -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds (saying
    ``details()`` too, e.g. a worker's log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            more = f"\n{details()}" if details else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{more}")
        time.sleep(0.05)


def submit_all(runs: dict[str, str], flows: dict[str, Path], store: str, broker: str) -> None:
    """Submit ``runs`` (topic -> kind; the topic is the run id) through the Python API."""
    import asyncio

    from mirograph.flows.loader import load_flow
    from mirograph.flows.workers.submit import submit_run

    async def submit() -> None:
        for topic, kind in runs.items():
            flow = load_flow(str(flows[kind]), [])
            await submit_run(
                question(topic), flow, run_id=topic, store_url=store, broker_url=broker
            )

    asyncio.run(submit())


def statuses(store: str, run_ids: list[str]) -> dict[str, str]:
    """Each run's status as stored (PostgreSQL)."""
    from mirograph.state.postgres.registry import PostgresRunRegistry

    registry = PostgresRunRegistry(store)
    try:
        return {run_id: registry.get(run_id).status for run_id in run_ids}
    finally:
        registry.close()


def status_of(store: str, run_id: str) -> str:
    return statuses(store, [run_id])[run_id]


def steps_logged(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def answers(store: str, run_ids: list[str]) -> dict[str, str | None]:
    from mirograph.state.postgres.registry import PostgresRunRegistry

    registry = PostgresRunRegistry(store)
    try:
        return {run_id: registry.get(run_id).answer for run_id in run_ids}
    finally:
        registry.close()


def tool_calls(log: Path) -> dict[str, list[tuple[int, int]]]:
    """(step, pid) of each logged tool call, by topic, in order."""
    calls: dict[str, list[tuple[int, int]]] = {}
    lines = log.read_text().splitlines() if log.exists() else []
    for line in lines:
        topic, step_no, pid = line.split()
        calls.setdefault(topic, []).append((int(step_no), int(pid)))
    return calls


def tool_topic(run_id: str, kind: str) -> str:
    return f"{run_id}/helper" if kind == "team" else run_id


def check_exactly_once(
    runs: dict[str, str],
    store: str,
    log: Path,
    policy: FleetPolicy,
    kills: dict[int, float] | None = None,
) -> int:
    """Every run completed with an uninterrupted run's answer and tool-call sequence; a
    tool call ran twice only where a killed worker (``kills``: pid -> when) had it in
    flight, and a model turn was asked again only across a kill. Returns how many
    tool calls ran again."""
    kills = kills or {}
    assert statuses(store, list(runs)) == dict.fromkeys(runs, "completed")
    assert answers(store, list(runs)) == {
        run_id: expected_answer(run_id, kind) for run_id, kind in runs.items()
    }
    calls = tool_calls(log)
    again = 0
    for run_id, kind in runs.items():
        made = calls[tool_topic(run_id, kind)]
        steps = [n for n, _ in made]
        distinct = [n for i, n in enumerate(steps) if i == 0 or steps[i - 1] != n]
        assert distinct == list(range(1, STEPS + 1)), (run_id, made)
        for i in range(1, len(made)):
            if made[i][0] == made[i - 1][0]:  # ran again: only after its runner was killed
                assert made[i - 1][1] in kills, (run_id, made)
                again += 1
    asked: dict[tuple[str, int], list[float]] = {}
    for request in policy.requests:
        asked.setdefault((request.topic, request.done), []).append(request.at)
    for key, times in asked.items():
        for earlier, later in itertools.pairwise(sorted(times)):
            # Across a kill (a request the killed worker sent reaches the model's log a
            # moment later: the server shares this busy process).
            assert any(earlier < at + LOG_LAG_S and at < later for at in kills.values()), (
                key,
                times,
                kills,
            )
    return again
