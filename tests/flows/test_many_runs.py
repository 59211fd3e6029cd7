"""Many runs in one process share the embedded store exactly as one run does.

Eight runs under ``asyncio.gather`` (as a worker or a benchmark runs them),
each writing an ~8 KB tool result (a blob) every turn, while a ninth run in
another process writes the same SQLite file. Every run completes with exactly
the history a run alone produces, and the event loop is never blocked for
long: no SQLite lock is held across an ``await``, no SQLite wait happens on
the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from support.many_tools import page_text
from support.testkit import Cli

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request
from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run
from mirograph.flows.transcript import load_transcripts
from mirograph.state.blobs import OFFLOAD_CHARS

RUNS = 8
TURNS = 4
#: The loop may pause for ordinary work (a graph build, a step), never for a lock wait.
MAX_LOOP_GAP_S = 1.0
OTHER = "other-process"
_TOPIC = re.compile(r"Read every page about (\S+)\.")


class PagePolicy:
    """Read pages 1..TURNS of the question's topic, one per turn, then answer with a
    digest of the conversation (so an answer differs if any byte of the history does).

    The other process's run announces its first request and holds its closing
    request until the in-process runs are done, so the two always overlap.
    """

    def __init__(self) -> None:
        self.other_started = threading.Event()
        self.ours_done = threading.Event()

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        topic = next(m for t in messages if (m := _TOPIC.search(str(t["content"]))))[1]
        done = sum(1 for m in messages if m["role"] == "assistant")
        if topic == OTHER:
            self.other_started.set()
        if is_closing_request(messages[-1]["content"]) or done >= TURNS:
            if topic == OTHER:
                assert self.ours_done.wait(120), "the in-process runs never finished"
            digest = hashlib.sha256(json.dumps(messages).encode()).hexdigest()[:16]
            return f"All pages read.</think>\n\nDone. \\boxed{{{topic}:{done}:{digest}}}"
        call = render_call("many_tools", "fetch", {"topic": topic, "page": done + 1})
        return f"Next is page {done + 1}.</think>\n\nReading.\n\n{call}"


def question(topic: str) -> str:
    return f"Read every page about {topic}."


def flow_spec(base_url: str) -> dict[str, Any]:
    return {
        "name": "pages",
        "models": {"m": {"base_url": base_url, "max_tokens": 512}},
        "agents": {
            "main": {
                "model": "m",
                "max_turns": TURNS + 2,
                "keep_tool_results": 3,
                "tools": ["support.many_tools:fetch"],
            }
        },
        "entry": "main",
    }


async def stored_history(store: str, run_id: str) -> list[tuple[str, str]]:
    """The run's full stored history (blobs restored), as (type, content) pairs."""
    transcript = await load_transcripts(run_id, store_url=store)
    return [(m.type, str(m.content)) for m in transcript.calls[0].messages]


class LoopTicker:
    """Measures the longest time the event loop went without running this coroutine."""

    def __init__(self, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.max_gap_s = 0.0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            await asyncio.sleep(self.period_s)
            now = time.perf_counter()
            self.max_gap_s = max(self.max_gap_s, now - last - self.period_s)
            last = now

    def stop(self) -> None:
        self._stop.set()


async def test_eight_runs_in_one_process_and_one_in_another_complete_exactly(
    cli: Cli, tmp_path: Path
) -> None:
    store = cli.store
    policy = PagePolicy()
    with SimServer(policy) as srv:
        flow = validate_flow(flow_spec(srv.base_url))
        alone = await start_run(question("topic-0"), flow, run_id="alone", store_url=store)
        assert alone.status == "completed", alone.reason
        expected = await stored_history(store, "alone")
        pages = [content for kind, content in expected if kind == "tool"]
        assert pages == [page_text("topic-0", n) for n in range(1, TURNS + 1)]
        assert all(len(page) > OFFLOAD_CHARS for page in pages)  # every turn writes a blob

        flow_file = tmp_path / "pages.yaml"
        flow_file.write_text(yaml.safe_dump(flow_spec(srv.base_url)), encoding="utf-8")
        other = cli.popen(
            "run", question(OTHER), "--flow", str(flow_file), "--store", store, "--id", OTHER
        )
        try:
            assert await asyncio.to_thread(policy.other_started.wait, 60), "other run not started"
            ticker = LoopTicker()
            ticking = asyncio.create_task(ticker.run())
            outcomes = await asyncio.gather(
                *(
                    start_run(question(f"topic-{i}"), flow, run_id=f"run-{i}", store_url=store)
                    for i in range(RUNS)
                ),
                return_exceptions=True,
            )
            ticker.stop()
            await ticking
        finally:
            policy.ours_done.set()
            _, err = await asyncio.to_thread(other.communicate, timeout=120)

    failed = [o for o in outcomes if isinstance(o, BaseException) or o.status != "completed"]
    assert not failed, failed
    assert other.returncode == 0, err
    assert outcomes[0].answer == alone.answer
    assert await stored_history(store, "run-0") == expected
    for i in range(1, RUNS):
        history = await stored_history(store, f"run-{i}")
        topic = f"topic-{i}"
        assert [c for kind, c in history if kind == "tool"] == [
            page_text(topic, n) for n in range(1, TURNS + 1)
        ]
        assert [kind for kind, _ in history] == [kind for kind, _ in expected]
        assert outcomes[i].answer.startswith(f"{topic}:")
    history = await stored_history(store, OTHER)
    assert [c for kind, c in history if kind == "tool"] == [
        page_text(OTHER, n) for n in range(1, TURNS + 1)
    ]
    assert ticker.max_gap_s < MAX_LOOP_GAP_S, f"event loop blocked {ticker.max_gap_s:.2f} s"
