"""The shipped flows behind ``langgraph dev``, driven through ``langgraph-sdk``.

The server runs as a subprocess with every call home turned off (CLI
analytics, the PyPI version check, LangSmith tracing; no browser, no license
key so no beacon), so the test passes with no network. It runs in a scratch
folder with ``--config`` pointing at the repository's ``langgraph.json``: the
in-memory server keeps its state in ``./.langgraph_api`` and that must not
land in the checkout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from support.testkit import free_port

from mirograph.flows import langgraph_app
from mirograph.flows.loader import FlowError, load_flow, shipped_flows

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "langgraph.json"
NOTES = "mirograph.agents.sim.policies:notes"
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
START_TIMEOUT_S = 60.0


def test_langgraph_json_serves_every_shipped_flow() -> None:
    graphs = json.loads(CONFIG.read_text(encoding="utf-8"))["graphs"]
    expected = {
        name: f"mirograph.flows.langgraph_app:{langgraph_app.attribute_name(name)}"
        for name in shipped_flows()
    }
    assert graphs == expected, f"langgraph.json 'graphs' should be exactly {expected}"
    for name in shipped_flows():
        assert callable(getattr(langgraph_app, langgraph_app.attribute_name(name)))


def test_odd_thread_ids_stay_inside_the_server_folder(home: Path) -> None:
    assert langgraph_app.server_workspace("abc-1") == home / "server" / "abc-1" / "workspace"
    escaped = langgraph_app.server_workspace("../../etc")
    assert escaped.parent.parent == home / "server" and ".." not in escaped.parts


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``GET /ok`` until it answers, the server dies, or the deadline passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"langgraph dev not ready in {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def langgraph_server(
    home: Path, sim_model: Callable[..., str], tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """``langgraph dev`` on a free port, its model the ``notes`` sim; yields URL and log."""
    workdir = tmp_path / "server-cwd"
    workdir.mkdir()
    log = tmp_path / "langgraph-dev.log"
    port = free_port()
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "MIROGRAPH_BASE_URL": sim_model(NOTES),
        "MIROGRAPH_HOME": str(home),
    }
    argv = [sys.executable, "-m", "langgraph_cli", "dev", "--config", str(CONFIG)]
    argv += ["--port", str(port), "--no-browser", "--no-reload"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, log)
        yield url, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.timeout(120)
async def test_single_agent_runs_on_langgraph_dev(
    langgraph_server: tuple[str, Path], home: Path
) -> None:
    url, log = langgraph_server
    client = get_client(url=url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]

    result = await client.runs.wait(
        thread_id,
        "single-agent",
        input={"question": "How many steps does the plan have?"},
        raise_error=True,
    )
    assert isinstance(result, dict), result
    assert result.get("answer") == "plan has 2 steps", log.read_text()[-4000:]

    state = await client.threads.get_state(thread_id)
    values = state["values"]
    assert values["answer"] == "plan has 2 steps"
    assert values["stats"]["turns"] == 4
    assert values["stats"]["tool_calls"] == 3
    tool_results = [m for m in values["messages"] if m["type"] == "tool"]
    assert len(tool_results) == 3
    # The files tools wrote into this thread's own workspace under MIROGRAPH_HOME.
    plan = home / "server" / thread_id / "workspace" / "notes" / "plan.md"
    assert plan.read_text(encoding="utf-8").startswith("1. Read the question.")


async def test_deep_research_is_described_without_a_search_key(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``get_graph``/``get_schemas`` (Studio, ``langgraph dev``) need no API key; a run does."""
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    langgraph_app._flow.cache_clear()
    try:
        async with langgraph_app.deep_research({"configurable": {}}) as graph:
            drawn = graph.get_graph(xray=True)
    finally:
        langgraph_app._flow.cache_clear()
    assert {"model", "tools", "agent_browsing:model"} <= set(drawn.nodes)
    with pytest.raises(FlowError, match=r"needs TAVILY_API_KEY") as refused:
        load_flow("deep-research")
    assert "\n" not in str(refused.value)
