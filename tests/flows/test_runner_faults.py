"""A model server that keeps failing pauses the run; resume continues it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import resume_run, run_report, start_run


def flow(base_url: str) -> Any:
    return validate_flow(
        {
            "name": "faults",
            "models": {"m": {"base_url": base_url, "max_retries": 2, "retry_base_s": 0.001}},
            "agents": {"main": {"model": "m", "max_turns": 3}},
            "entry": "main",
        }
    )


async def test_failing_server_pauses_with_the_reason_and_resume_finishes(
    home: Path, tmp_path: Path
) -> None:
    healthy = {"on": False}

    def policy(body: dict[str, Any]) -> Any:
        return "Known.</think>\n\n\\boxed{7}" if healthy["on"] else Fault(503, "overloaded")

    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(policy) as srv:
        outcome = await start_run("What is 3+4?", flow(srv.base_url), run_id="f", store_url=store)
        assert outcome.status == "paused"
        assert "HTTP 503" in (outcome.reason or "") and srv.base_url in (outcome.reason or "")
        assert len(srv.requests) == 3  # one call and two retries, then the pause
        report = await run_report("f", store_url=store)
        assert report["status"] == "paused" and report["reason"] == outcome.reason

        healthy["on"] = True
        resumed = await resume_run("f", store_url=store)
    assert (resumed.status, resumed.answer) == ("completed", "7")
    final = await run_report("f", store_url=store)
    assert final["status"] == "completed"
    assert final["agents"]["main"]["turns"] == 1
