"""What watching a run costs per turn: events, pause checks and redaction.

Every turn of an agent writes two events (its model call and its tool call)
to ``events.jsonl``, asks the store twice whether a pause was requested (at
the model step and at the tool step) and redacts the reply before it is
stored. Whole-run timings on a 2-core machine vary by ±15% from run to run,
more than these costs, so they are timed here one by one, many times, and
compared with the engine's time per turn (``long_run.py``, ~3 ms p50).

    python -m benchmarks.observability_cost [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from langchain_core.messages import AIMessage

from mirograph.flows.events import EventLog
from mirograph.graphs.run_control import RunControl
from mirograph.state.redact import redact_reply
from mirograph.state.registry import RunRecord
from mirograph.state.store import open_store

MODEL_CALL = {
    "event": "model_call", "ts": 1.0, "run_id": "bench", "agent": "main", "ns": "", "turn": 5,
    "max_turns": 600, "phase": "work", "latency_ms": 812.4, "prompt_tokens": 61234,
    "completion_tokens": 512, "cached_tokens": 60000, "outcome": "ok", "detail": None,
    "tool_calls": ["google_search"], "finish_reason": "stop",
}  # fmt: skip
TOOL_CALL = {
    "event": "tool_call", "ts": 1.0, "run_id": "bench", "agent": "main", "ns": "", "turn": 5,
    "tool": "google_search", "server": "tool-google-search", "latency_ms": 412.0,
    "outcome": "ok", "args": '{"q": "marrowford flood 1868 houses destroyed"}',
    "result": '{"organic": [{"title": "The Great Flood of 1868", "link": "https://...", '
    '"snippet": "212 houses were destroyed"}]} ' * 2, "chars": 8000,
}  # fmt: skip
REPLY = AIMessage(
    "I should search for the census first. " * 40,
    tool_calls=[{"id": "c1", "name": "google_search", "args": {"q": "census 1861 houses"}}],
)


def per_call_us(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean time of ``n`` calls, in microseconds."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


async def pause_check_us(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store(f"sqlite:///{tmp}/runs.db") as store:
            store.registry.create(RunRecord("bench", "q", "f", {}, "running"))
            return per_call_us(lambda: store.registry.pause_request("bench"), n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLog(Path(tmp) / "events.jsonl")
        control = RunControl(on_event=log)  # emit scrubs, then the log renders and writes
        control.begin("bench")
        model = {k: v for k, v in MODEL_CALL.items() if k not in ("event", "ts", "run_id")}
        tool = {k: v for k, v in TOOL_CALL.items() if k not in ("event", "ts", "run_id")}
        model_event = per_call_us(lambda: control.emit("model_call", **model), args.n)
        tool_event = per_call_us(lambda: control.emit("tool_call", **tool), args.n)
        log.close()
    check = asyncio.run(pause_check_us(args.n))
    redact = per_call_us(lambda: redact_reply(REPLY), args.n)
    turn = model_event + tool_event + 2 * check + redact
    print("| cost | µs |")
    print("|---|---|")
    print(f"| model_call event (emit: scrub, structlog JSON, write) | {model_event:.1f} |")
    print(f"| tool_call event | {tool_event:.1f} |")
    print(f"| pause check (one SQLite read of the run's row) | {check:.1f} |")
    print(f"| reply redaction before storing | {redact:.1f} |")
    print(f"| per turn: 2 events + 2 checks + 1 redaction | {turn:.1f} |")
    print(f"| share of a 3 ms engine turn (long_run.py p50) | {turn / 3000:.1%} |")


if __name__ == "__main__":
    main()
