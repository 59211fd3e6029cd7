"""The shipped ``deep-research`` flow, end to end through the CLI.

The planner, the three sub-agents and their tools all run for real: the model
is ``sim-model`` (over HTTP), web search goes through ``tavily-python`` to a
local Tavily-shaped server, the browsing agent reads a page from it, and the
coding agent computes in the bubblewrap sandbox.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from support.http_server import HttpServer
from support.testkit import Cli, show

PAGE = (
    "<html><head><title>Alpha</title></head><body><nav>Home | About</nav>"
    "<article><h1>Alpha, a town</h1><p>Alpha has 1234 residents, counted in the last"
    " census of the valley.</p><p>It lies on the river and has a market every week,"
    " where the farmers of the valley sell what they grow.</p></article></body></html>"
)


@pytest.fixture
def web() -> HttpServer:
    """Tavily's /search and the page it finds, on one local server."""

    async def search(request: Request) -> Response:
        query = (await request.json())["query"]
        return JSONResponse(
            {
                "query": query,
                "results": [
                    {
                        "title": "Alpha, a town",
                        "url": server.url("/alpha.html"),
                        "content": "Alpha is a small town.",
                        "score": 0.9,
                    }
                ],
            }
        )

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    server = HttpServer(
        [Route("/search", search, methods=["POST"]), Route("/alpha.html", page)]
    ).start()
    yield server
    server.close()


def test_deep_research_runs_planner_and_three_sub_agents(
    cli: Cli, sim_model, web: HttpServer, tmp_path: Path
) -> None:
    env = {
        "MIROGRAPH_BASE_URL": sim_model("support.deep_policy:deep"),
        "TAVILY_API_KEY": "tvly-test-key",
        "TAVILY_API_BASE_URL": web.root_url,
        "MIROGRAPH_ALLOW_PRIVATE_URLS": "1",  # the page is served on 127.0.0.1
    }
    result = cli(
        "run", "How many people live in alpha, and what is 6*7?", "--flow", "deep-research",
        "--id", "deep", "--store", cli.store, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Alpha has 1234 residents; 42"

    report = show(cli, "deep")
    agents = report["agents"]
    assert list(agents) == ["planner", "browsing", "coding", "reasoning"]
    assert (agents["planner"]["turns"], agents["planner"]["tool_calls"]) == (2, 3)
    assert (agents["browsing"]["turns"], agents["browsing"]["tool_calls"]) == (3, 2)
    assert (agents["coding"]["turns"], agents["coding"]["tool_calls"]) == (3, 2)
    assert (agents["reasoning"]["turns"], agents["reasoning"]["tool_calls"]) == (1, 0)
    assert [(r["agent"], r["status"]) for r in report["invocations"]] == [
        ("browsing", "completed"),
        ("coding", "completed"),
        ("reasoning", "completed"),
    ]
    assert (cli.home / "runs" / "deep" / "workspace" / "calc.txt").read_text() == "6*7=42"


def test_deep_research_without_a_search_key_is_rejected_before_running(cli: Cli) -> None:
    result = cli("run", "q", "--flow", "deep-research", "--store", cli.store,
                 env={"TAVILY_API_KEY": ""})  # fmt: skip
    assert result.returncode == 2
    assert "agents.browsing.tools[0]" in result.stderr and "TAVILY_API_KEY" in result.stderr
    assert not (cli.home / "runs").exists()
