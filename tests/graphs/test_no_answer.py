"""An agent that ends without an answer says why in its stop reason.

Whatever closed it, the closing request is still sent (MiroThinker's
behaviour); when no answer comes of it, ``stop_reason`` names the cause so
the runner can give the run its ``no_answer`` status with that reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.loop_kit import is_closing, make_loop, run_loop, servers

from mirograph.agents.sim.scripting import Fault, SimReply
from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run

server = pytest.fixture(servers)

MALFORMED = "Let me call it.</think>\n\n<use_mcp_tool><server_name>lab"
CUT = SimReply("I am still weighing the evidence and", finish_reason="length")
OVERFLOW = Fault(400, "This model's maximum context length is 64 tokens; reduce the length.")


def answering(work: Any, closing: Any) -> Any:
    """Every working request gets ``work``; the closing request gets ``closing``."""
    return lambda body: closing if is_closing(body) else work


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        (answering("", ""), "empty_reply"),
        (answering("Nothing to look up.", "I could not pin it down."), "no_boxed_answer"),
        (answering("Nothing to look up.", "Thinking it over.</think>\n\n  "), "empty_reply"),
        (answering(CUT, CUT), "reply_cut"),
        (answering(MALFORMED, "No answer."), "too_many_rollbacks"),
        (answering("Nothing to look up.", OVERFLOW), "context_overflow"),
    ],
    ids=["empty", "unboxed", "only-thinking", "cut", "malformed", "closing-overflow"],
)
async def test_no_answer_names_its_reason_after_the_closing_request(
    server: Any, tmp_path: Path, policy: Any, reason: str
) -> None:
    srv = server(policy)
    values = await run_loop(make_loop(srv, [], max_rollbacks=2, max_length_retries=1), tmp_path)
    assert values["answer"] is None or not values["answer"].strip()
    assert values["stop_reason"] == reason
    assert sum(is_closing(r) for r in srv.requests) == 1  # the closing request still happened


async def test_a_run_whose_replies_are_all_empty_ends_no_answer_saying_why(
    home: Path, tmp_path: Path
) -> None:
    with SimServer(answering("", "")) as srv:
        flow = validate_flow(
            {
                "name": "one",
                "models": {"m": {"base_url": srv.base_url, "max_tokens": 64}},
                "agents": {"main": {"model": "m"}},
                "entry": "main",
            }
        )
        outcome = await start_run("What is it?", flow, store_url=f"sqlite:///{tmp_path / 'r.db'}")
    assert outcome.status == "no_answer"
    assert (
        outcome.reason == "the main agent ended without a boxed answer (stop reason: empty_reply)"
    )
