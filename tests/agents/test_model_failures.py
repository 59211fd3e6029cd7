"""The "server unavailable" hint names the failing server's own port."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.testkit import free_port

from mirograph.errors import ModelUnavailableError, server_port
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run


@pytest.mark.parametrize(
    ("base_url", "port"),
    [
        ("http://127.0.0.1:8123/v1", 8123),
        ("http://localhost:9000", 9000),
        ("http://gpu-box/v1", 80),
        ("https://models.example.org/v1", 443),
        ("http://host:99999/v1", 8000),  # out of range: the default, not a crash
        ("not a url", 8000),
        ("", 8000),
    ],
)
def test_the_port_is_read_from_the_base_url(base_url: str, port: int) -> None:
    assert server_port(base_url) == port


def test_the_hint_names_both_servers_on_the_failing_port() -> None:
    error = ModelUnavailableError("http://127.0.0.1:8123/v1", "connection refused or dropped")
    text = str(error)
    assert text.startswith(
        "model server at http://127.0.0.1:8123/v1 is unavailable (connection refused or dropped);"
    )
    assert "`vllm serve miromind-ai/MiroThinker-v1.0-8B" in text
    assert "`mirograph sim-model --policy mirograph.agents.sim.policies:tool_loop" in text
    assert text.count("--port 8123`") == 2 and "8000" not in text


async def test_a_run_with_no_server_pauses_naming_the_flows_port(
    home: Path, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    flow = validate_flow(
        {
            "name": "one",
            "models": {"m": {"base_url": f"http://127.0.0.1:{port}/v1", "max_retries": 0}},
            "agents": {"main": {"model": "m"}},
            "entry": "main",
        }
    )
    outcome = await start_run("What is it?", flow, store_url=f"sqlite:///{tmp_path / 'r.db'}")
    assert outcome.status == "paused"
    assert (outcome.reason or "").count(f"--port {port}`") == 2
