"""Offline research: an agent searches and reads the bundled demo corpus, end to end.

The model is sim-model over real HTTP; the corpus is ``flows/demo_corpus`` (the
demo's, shipped as package data) indexed with bm25s by the ``local`` tool set, as a
flow file names it.
"""

from __future__ import annotations

from pathlib import Path

from support.corpus_policy import houses

from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import run_report, start_run

CORPUS = Path(__file__).resolve().parents[2] / "flows" / "demo_corpus"


async def test_an_agent_answers_from_the_local_corpus(home: Path, tmp_path: Path) -> None:
    with SimServer(houses) as srv:
        flow = validate_flow(
            {
                "name": "offline",
                "models": {"m": {"base_url": srv.base_url, "max_tokens": 512}},
                "agents": {
                    "main": {
                        "model": "m",
                        "max_turns": 5,
                        "tools": [{"local": {"path": str(CORPUS)}}],
                    }
                },
                "entry": "main",
            }
        )
        store = f"sqlite:///{tmp_path / 'runs.db'}"
        outcome = await start_run("How many houses did the flood destroy?", flow, store_url=store)
        report = await run_report(outcome.id, store_url=store)
    assert (outcome.status, outcome.answer) == ("completed", "212")
    system = srv.requests[0]["messages"][0]["content"]
    assert "## Server name: tool-local-corpus" in system
    assert "### Tool name: local_search" in system and "### Tool name: read_document" in system
    read = srv.requests[2]["messages"][-1]["content"]
    assert "great-flood-1868.txt" in read and "212 were destroyed" in read
    assert report["agents"]["main"]["tool_calls"] == 2
