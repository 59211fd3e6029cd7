"""``mirograph demo``: the whole engine, offline, in one command.

A first look at mirograph should not need a GPU, keys or a network. The demo
starts the simulated model server in-process with a bundled scripted policy
(``mirograph.agents.sim.demo_policy``), runs the shipped ``deep-research`` flow
with browsing pointed at a bundled corpus (``flows/demo_corpus``, the ``local``
tool set) instead of web search, pauses the run once the first sub-agent has
reported, and resumes it from its checkpoint, so that every part a real run
uses (planner, sub-agents, tools, the sandbox, the store, pause and resume)
runs for real. Only the model is simulated, and the notice says so.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import load_flow
from mirograph.flows.runner import resume_run, start_run
from mirograph.graphs.run_control import RunControl

__all__ = [
    "DEMO_CORPUS",
    "DEMO_NOTICE",
    "DEMO_PAUSE_REASON",
    "DEMO_POLICY",
    "DEMO_QUESTION",
    "DemoResult",
    "demo_overrides",
    "run_demo",
]

#: The bundled corpus: documents about Marrowford, an invented river town.
DEMO_CORPUS = Path(__file__).parent / "demo_corpus"
DEMO_POLICY = "mirograph.agents.sim.demo_policy:demo"
DEMO_PAUSE_REASON = "demo: paused half-way, to show resume"

DEMO_QUESTION = (
    "What percentage of Marrowford's houses did the Great Flood of 1868 destroy? Take the"
    " number destroyed from the account of the flood and the number of houses from the"
    " 1861 census returns (the last census before the flood), compute the share, and give"
    " it as a percentage rounded to one decimal place, like 12.5%."
)

DEMO_NOTICE = """\
mirograph demo: the whole engine, offline.

The model is SIMULATED. A scripted policy (mirograph.agents.sim.demo_policy) answers
from a local OpenAI-compatible server, in MiroThinker's reply format. It is not the
MiroThinker weights and it does not think: it shows what the engine does around a model.

What happens: the deep-research flow runs. Its planner hands one sub-task to the
browsing agent, which searches and reads a small bundled corpus about an invented town
(local BM25 search, no web), and one to the coding agent, which computes the result in
the sandboxed Python tool. The run is paused half-way, once the first sub-agent has
reported, and resumed from its checkpoint: same store, same run id.
Nothing leaves this machine.

For real research, serve MiroThinker with vLLM, then:
  MIROGRAPH_BASE_URL=http://localhost:8000/v1 mirograph run "..." --flow deep-research
Other flows: mirothinker-v1.0 (the default), mirothinker-v1.5, mirothinker-v1.7 (one
agent with each release's turn budget); deep-research takes --set version=v1.7.
"""


@dataclass
class DemoResult:
    run_id: str
    status: str
    answer: str | None
    #: Why the run stopped, when it did not complete.
    reason: str | None
    #: The half-way pause that the demo resumed from, or None if it never paused there.
    paused_reason: str | None


def demo_overrides(base_url: str) -> list[str]:
    """``--set`` overrides that make deep-research run offline against ``base_url``."""
    browsing_tools = json.dumps([{"local": {"path": str(DEMO_CORPUS.resolve())}}])
    overrides = [f"agents.browsing.tools={browsing_tools}"]
    for model in ("thinker", "reasoner"):  # the reasoner too: env vars may point it elsewhere
        overrides += [
            f"models.{model}.base_url={base_url}",
            f"models.{model}.protocol=mirothinker",
            f"models.{model}.model=mirothinker",
        ]
    budgets = {"planner": 6, "browsing": 8, "coding": 4, "reasoning": 2}
    overrides += [f"agents.{agent}.max_turns={turns}" for agent, turns in budgets.items()]
    return overrides


class _PauseHalfWay:
    """Event sink: asks for a pause when the first sub-agent call has finished."""

    def __init__(self, control: RunControl) -> None:
        self.control = control
        self.fired = False

    def __call__(self, event: dict[str, Any]) -> None:
        if self.fired or event.get("event") != "agent_finished" or not event.get("ns"):
            return
        self.fired = True
        self.control.request_pause(DEMO_PAUSE_REASON)


async def run_demo(control: RunControl, *, store_url: str | None = None) -> DemoResult:
    """Run the demo investigation: start, pause half-way, resume, until it ends.

    The run goes to ``store_url`` (default: ``$MIROGRAPH_HOME/runs.db``), so
    ``mirograph show/ls/export`` find it afterwards. A run stopped any other way
    (Ctrl-C through ``control``, a failure) is returned, or raised, as it is.
    """
    server = SimServer(DEMO_POLICY, enable_prompt_tokens_details=True)  # as the README's vLLM
    # Threaded, not on this loop: uvicorn on the main thread would take over Ctrl-C.
    await asyncio.to_thread(server.start)
    half_way = _PauseHalfWay(control)
    control.add_sink(half_way)
    try:
        flow = load_flow("deep-research", demo_overrides(server.base_url))
        outcome = await start_run(DEMO_QUESTION, flow, control=control, store_url=store_url)
        paused = None
        if outcome.status == "paused" and outcome.reason == DEMO_PAUSE_REASON:
            paused = outcome.reason
            outcome = await resume_run(outcome.id, control=control, store_url=store_url)
        return DemoResult(outcome.id, outcome.status, outcome.answer, outcome.reason, paused)
    finally:
        control.remove_sink(half_way)
        await asyncio.to_thread(server.close)
