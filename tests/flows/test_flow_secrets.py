"""A ``${VAR}`` secret in a flow is stored as the reference and resolved in each process.

The documented pattern for an MCP server's key, ``env: {TOKEN: ${MY_TOKEN}}``,
used to put the key in plain text in the run registry (``flow_spec``). Here a
run is started with the secret, killed with SIGKILL while a tool (a module
beside the flow file, found without ``PYTHONPATH``) is in flight, refused on
resume while the variable is unset (one line naming it), and resumed with it:
the MCP server of each process received the secret, and no byte of it is in
the store files.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from support.testkit import SUPPORT, Cli, wait_for_fifo
from support.vault_mcp_server import digest

from mirograph.flows.loader import FlowError, validate_flow

SECRET = "s3cr3t-planted-7f2c9a-token"
BESIDE_TOOLS = '''
import os
import threading


def block() -> str:
    """Wait here in the first process, so the test can kill it mid-call."""
    fifo = os.environ.get("SECRET_FIFO")
    if fifo:
        with open(fifo, "w", encoding="utf-8") as out:
            out.write("blocked\\n")
        threading.Event().wait()
    return "unblocked"
'''


def write_flow(folder: Path, base_url: str) -> Path:
    folder.mkdir()
    (folder / "beside_tools.py").write_text(textwrap.dedent(BESIDE_TOOLS), encoding="utf-8")
    vault = {
        "name": "vault",
        "command": [sys.executable, str(SUPPORT / "vault_mcp_server.py")],
        "env": {"TOKEN": "${MG_SECRET_TOKEN}"},
    }
    flow = {
        "name": "secrets",
        "models": {"thinker": {"base_url": base_url, "max_tokens": 512, "max_retries": 1}},
        "agents": {
            "main": {
                "model": "thinker",
                # Turn 4's result is not shown to the closing request (it follows
                # the last call): the closing sees the digests of turns 1 and 3.
                "max_turns": 4,
                "tools": [{"mcp": vault}, "beside_tools:block"],
            }
        },
        "entry": "main",
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


def store_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("runs.db*") if p.is_file())


def test_secret_is_stored_as_a_reference_and_resolved_on_resume(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    flow = write_flow(tmp_path / "project", sim_model("support.secret_policy:vault"))
    fifo = tmp_path / "blocked.fifo"
    os.mkfifo(fifo)
    with_secret = {"MG_SECRET_TOKEN": SECRET}

    runner = cli.popen(
        "run", "Check the vault.", "--flow", str(flow), "--id", "vault-1", "--store", cli.store,
        env={**with_secret, "SECRET_FIFO": str(fifo)},
    )  # fmt: skip
    assert wait_for_fifo(fifo, runner) == "blocked\n"
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    stored = store_bytes(cli.home)
    assert b"${MG_SECRET_TOKEN}" in stored
    assert SECRET.encode() not in stored

    refused = cli("resume", "vault-1", "--store", cli.store)
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert "MG_SECRET_TOKEN is not set" in line

    resumed = cli("resume", "vault-1", "--store", cli.store, "--json", env=with_secret)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)  # what ``show --json`` prints
    assert report["status"] == "completed"
    # One digest from the first process's MCP server, one from the resumed one's.
    assert report["answer"] == f"{digest(SECRET)} {digest(SECRET)}"
    assert SECRET.encode() not in store_bytes(cli.home)


def test_dump_keeps_references_and_validation_resolves_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a run stores (``model_dump``) holds ``${VAR}``; the flow itself holds values."""
    monkeypatch.setenv("MG_SECRET_TOKEN", SECRET)
    monkeypatch.setenv("MG_HOST", "gpu-box")
    vault = {"name": "vault", "command": ["server"], "env": {"TOKEN": "${MG_SECRET_TOKEN}"}}
    spec = {
        "name": "secrets",
        "models": {"m": {"base_url": "http://${MG_HOST}:8000/v1"}},
        "agents": {"main": {"model": "m", "tools": [{"mcp": vault}]}},
        "entry": "main",
    }
    flow = validate_flow(spec)
    assert flow.agents["main"].tools[0]["mcp"]["env"]["TOKEN"] == SECRET
    assert flow.models["m"].base_url == "http://gpu-box:8000/v1"
    stored = flow.model_dump(mode="json")
    assert SECRET not in str(stored) and SECRET not in flow.model_dump_json()
    assert stored["agents"]["main"]["tools"][0]["mcp"]["env"]["TOKEN"] == "${MG_SECRET_TOKEN}"
    assert stored["models"]["m"]["base_url"] == "http://${MG_HOST}:8000/v1"

    monkeypatch.setenv("MG_SECRET_TOKEN", "rotated")
    again = validate_flow(stored)  # as resume does, in another process
    assert again.agents["main"].tools[0]["mcp"]["env"]["TOKEN"] == "rotated"
    assert again.model_dump(mode="json") == stored

    monkeypatch.delenv("MG_SECRET_TOKEN")
    with pytest.raises(FlowError) as missing:
        validate_flow(stored, source="run r1")
    assert str(missing.value) == (
        "run r1: environment variable MG_SECRET_TOKEN is not set;"
        " set it or write ${MG_SECRET_TOKEN:-default}"
    )
    shown = validate_flow(stored, import_tools=False)  # show/export need no secret
    assert shown.agents["main"].tools[0]["mcp"]["env"]["TOKEN"] == "${MG_SECRET_TOKEN}"
