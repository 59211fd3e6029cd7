"""Runs and clients for the web view's server-side tests (``tests/flows/ui``).

``build_runs`` puts three real runs in one store, each made by the engine over
HTTP against an in-process sim-model: ``story`` (a planner hands browsing 3 long
pages and coding 1; its question carries ``PLAIN_SECRET``, a value shaped like
no known key, so only the environment can say it is a secret), ``rolled`` (the
coding sub-agent's tool fails, so its turn is rolled back once), and ``stalled``
(the model server is not there: the run pauses with no turn). ``ui_client`` is
the app under Starlette's TestClient, addressed as the loopback host it
answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run
from mirograph.flows.ui.app import Settings, create_app

from .team_policy import team
from .testkit import free_port
from .transcript_policy import story

#: Not key-shaped (no provider prefix): masked only once it is in the environment.
PLAIN_SECRET = "uiPLAINsecret0value0in0question"
QUESTION = f"How do alpha and beta compare? Use ref {PLAIN_SECRET}."
#: What the page's own origin looks like to the app under TestClient.
LOCAL = "http://127.0.0.1:8765"


@dataclass
class Runs:
    """The store ``build_runs`` filled, and what the runs answered."""

    store: str
    answers: dict[str, str | None]


def broken(topic: str, step: int) -> str:
    """Compute one intermediate result for `topic` (step `step`); its backend is down."""
    raise RuntimeError(f"backend down for {topic} step {step}")


def _flow(base_url: str, tools: dict[str, str], **agents: dict[str, Any]) -> Any:
    spec: dict[str, Any] = {
        "name": "story",
        "models": {"m": {"base_url": base_url, "max_tokens": 512, "max_retries": 0}},
        "agents": {
            "planner": {
                "model": "m",
                "role": "main",
                "sub_agents": ["browsing", "coding"],
                "tools": ["support.transcript_tools:reveal"],
            },
            **{
                name: {"model": "m", "tools": [tool], **agents.get(name, {})}
                for name, tool in tools.items()
            },
        },
        "entry": "planner",
    }
    return validate_flow(spec)


async def build_runs(store_dir: Path) -> Runs:
    """``story``, ``rolled`` and ``stalled`` (see the module's docstring) in one store."""
    store = f"sqlite:///{store_dir / 'runs.db'}"
    answers: dict[str, str | None] = {}
    fetch = "support.transcript_tools:fetch"
    with SimServer(partial(story, browsing=3, coding=1)) as srv:
        flow = _flow(srv.base_url, {"browsing": fetch, "coding": fetch})
        outcome = await start_run(QUESTION, flow, run_id="story", store_url=store)
        assert outcome.status == "completed", outcome.reason
        answers["story"] = outcome.answer
    with SimServer(partial(team, browsing=1, coding=1)) as srv:
        tools = {"browsing": "support.team_tools:lookup", "coding": "support.ui_kit:broken"}
        flow = _flow(srv.base_url, tools, coding={"max_rollbacks": 1})
        outcome = await start_run("Roll it back.", flow, run_id="rolled", store_url=store)
        assert outcome.status == "completed", outcome.reason
        answers["rolled"] = outcome.answer
    down = _flow(f"http://127.0.0.1:{free_port()}/v1", {"browsing": fetch, "coding": fetch})
    outcome = await start_run("Is the server there?", down, run_id="stalled", store_url=store)
    assert outcome.status == "paused", outcome.reason
    return Runs(store, answers)


@contextmanager
def ui_client(store: str | None, *, base_url: str = LOCAL, **settings: Any) -> Iterator[TestClient]:
    """The web view's app on ``store``, its lifespan running, under TestClient."""
    app = create_app(Settings(store_url=store, **settings))
    with TestClient(app, base_url=base_url) as client:
        yield client


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The messages of a server-sent event stream: ``event``, ``id`` and JSON ``data``
    of each (comments dropped)."""
    found = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value
        if fields:
            found.append(fields)
    return found


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """``check()``'s first truthy value, looked for until ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last saw {value!r}")
        time.sleep(0.05)
