"""Runs that transcript, show and export tests read back.

``team_run``: a planner hands sub-tasks to browsing (3 long pages, keep-K 1)
and coding (1 page), then echoes a planted key; each agent has its own
sim-model server, so each server's requests are exactly one agent's model
calls, in order. ``killed_team_run``: a run SIGKILLed while browsing's third
tool call blocks.
"""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from mirograph.agents.sim.server import SimServer
from mirograph.agents.sim.tokens import PrefixCache, count_tokens, encode_request
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run

from .testkit import Cli, wait_for_fifo
from .transcript_policy import story

QUESTION = "How do alpha and beta compare?"
#: Planted in the environment; the model repeats it and a tool echoes it.
SECRET = "tvly-PLANTEDsecret0key0do0not0leak"
AGENTS = ("planner", "browsing", "coding")
STEPS = {"browsing": 3, "coding": 1}


@dataclass
class TeamRun:
    run_id: str
    store: str
    answer: str | None
    #: Each agent's model requests, in the order they were made.
    requests: dict[str, list[dict[str, Any]]]

    def replies(self, agent: str) -> list[str]:
        """What the model said to each of ``agent``'s requests (the policy is pure)."""
        return [story(body, **STEPS) for body in self.requests[agent]]

    def usage(self, agent: str) -> list[dict[str, int]]:
        """The usage the server reported for each of ``agent``'s requests, recomputed."""
        cache = PrefixCache()
        found = []
        for body, reply in zip(self.requests[agent], self.replies(agent), strict=True):
            prompt = encode_request(body)
            found.append(
                {
                    "prompt_tokens": len(prompt),
                    "completion_tokens": count_tokens(reply),
                    "cached_tokens": cache.lookup_and_insert(prompt),
                }
            )
        return found


async def team_run(tmp_path: Path, run_id: str = "story") -> TeamRun:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                SimServer(partial(story, **STEPS), enable_prompt_tokens_details=True)
            )
            for name in AGENTS
        }
        flow = validate_flow(
            {
                "name": "story",
                "models": {
                    name: {"base_url": srv.base_url, "max_tokens": 512}
                    for name, srv in servers.items()
                },
                "agents": {
                    "planner": {
                        "model": "planner",
                        "role": "main",
                        "sub_agents": ["browsing", "coding"],
                        "tools": ["support.transcript_tools:reveal"],
                    },
                    "browsing": {
                        "model": "browsing",
                        "keep_tool_results": 1,
                        "tools": ["support.transcript_tools:fetch"],
                    },
                    "coding": {
                        "model": "coding",
                        "keep_tool_results": 1,
                        "tools": ["support.transcript_tools:fetch"],
                    },
                },
                "entry": "planner",
            }
        )
        outcome = await start_run(QUESTION, flow, run_id=run_id, store_url=store)
    assert outcome.status == "completed", outcome.reason
    requests = {name: list(srv.requests) for name, srv in servers.items()}
    return TeamRun(run_id, store, outcome.answer, requests)


def killed_team_run(cli: Cli, base_url: str, tmp_path: Path, run_id: str) -> None:
    """A team_policy run SIGKILLed while browsing's turn-3 tool call blocks."""
    fifo = tmp_path / "blocked.fifo"
    os.mkfifo(fifo)
    cli.env.update({"TEAM_FIFO": str(fifo)})
    flow = {
        "name": "team",
        "models": {"m": {"base_url": base_url, "max_tokens": 512}},
        "agents": {
            "planner": {"model": "m", "role": "main", "sub_agents": ["browsing", "coding"]},
            "browsing": {"model": "m", "max_turns": 20, "tools": ["support.team_tools:lookup"]},
            "coding": {"model": "m", "max_turns": 20, "tools": ["support.team_tools:compute"]},
        },
        "entry": "planner",
    }
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    runner = cli.popen(
        "run", "Compare alpha and beta.", "--flow", str(path), "--id", run_id,
        "--store", cli.store, env={"TEAM_BLOCK_AT": "browsing:3"},
    )  # fmt: skip
    assert wait_for_fifo(fifo, runner) == "blocked at browsing:3\n"
    runner.send_signal(signal.SIGKILL)
    assert runner.wait(timeout=30) == -signal.SIGKILL
