"""A run started from the web view is the CLI's run, in a process of its own: it
goes on when ``mirograph ui`` is stopped with Ctrl-C (sent, as a terminal sends it,
to the server's whole process group), and it never sees the view's token."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import yaml
from support.testkit import Cli, release, wait_for_fifo
from support.ui_kit import wait_until

from mirograph.flows.export import export_run
from mirograph.flows.runner import run_report

TOKEN = "a-token-of-the-web-view-0123456789"
OPENED = re.compile(r"mirograph ui: open (http://\S+)")


def test_a_run_started_from_the_page_outlives_the_server_and_never_sees_its_token(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    fifo, go = tmp_path / "held.fifo", tmp_path / "go.fifo"
    os.mkfifo(fifo)
    os.mkfifo(go)
    flow = tmp_path / "held.yaml"
    spec = {
        "name": "held",
        "models": {"m": {"base_url": sim_model("support.held_tool:reply"), "max_tokens": 256}},
        "agents": {"main": {"model": "m", "tools": ["support.held_tool:wait_here"]}},
        "entry": "main",
    }
    flow.write_text(yaml.safe_dump(spec), encoding="utf-8")
    env = {"MIROGRAPH_UI_TOKEN": TOKEN, "HELD_FIFO": str(fifo), "HELD_GO": str(go)}
    ui = subprocess.Popen(  # a session of its own: Ctrl-C at its terminal is sent to its group
        cli.argv("ui", "--port", "0", "--store", cli.store),
        env=cli.environ(env),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert ui.stdout is not None
        match = OPENED.search(ui.stdout.readline())
        assert match, "mirograph ui did not start"
        started = httpx.post(
            match.group(1).split("?")[0] + "api/runs",  # the address less its ?token=
            json={"question": "Wait, then answer.", "flow": str(flow)},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        assert wait_for_fifo(fifo, ui) == "holding first\n"
    finally:
        os.killpg(ui.pid, signal.SIGINT)  # Ctrl-C where the server runs, its run mid-tool-call
        ui.wait(timeout=30)
    release(go)

    log = cli.home / "ui" / f"{run_id}.log"  # what the run's own process printed
    wait_until("the run to finish without its server", lambda: "done" in log.read_text(), 120)
    report = asyncio.run(run_report(run_id, store_url=cli.store))
    assert (report["status"], report["answer"]) == ("completed", "done")
    exported = asyncio.run(export_run(run_id, "jsonl", store_url=cli.store))
    results = [json.loads(line) for line in exported.splitlines()]
    tool = next(r for r in results if r.get("role") == "tool")
    assert json.loads(tool["content"]) == {"token_seen": False}
    assert TOKEN not in log.read_text()
