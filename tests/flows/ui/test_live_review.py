"""The web view's live side under a hostile review: what a person watching a real,
long investigation does to it (many viewers on a run whose events keep coming, a run
that restarted after a rolled-back turn), each probe a test that failed before its fix.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from starlette.testclient import TestClient
from support.gated_team import GatedTeam
from support.team_policy import team
from support.testkit import Cli, free_port, write_team_flow
from support.transcript_kit import killed_team_run
from support.ui_kit import ui_client, wait_until
from support.ui_live_kit import (
    HeldAfterRead,
    RollbackThenRestart,
    chromium,
    endless_flow,
    held_flow,
    restart_flow,
    start_ui,
    stop,
)

from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run
from mirograph.flows.ui.run_view import REFRESH_S

#: Milliseconds the page may take to show what the server says.
SHOWN_MS = 15_000


@pytest.fixture
def client(cli: Cli) -> Iterator[TestClient]:
    with ui_client(cli.store) as client:
        yield client


def test_viewers_of_a_live_run_share_readings_instead_of_queueing_for_one_each(
    client: TestClient, cli: Cli, tmp_path: Path
) -> None:
    """Ten pages on one run whose events never stop: each asks for the summary at
    once. A reading made after a request came answers it; before the fix each queued
    request waited ``REFRESH_S`` for a reading of its own (the tenth ~4 s, and a page
    refreshing on every event fell further behind for as long as the run ran)."""
    flow, policy = endless_flow(tmp_path / "endless.yaml", "")
    with SimServer(policy) as srv:
        flow, _ = endless_flow(tmp_path / "endless.yaml", srv.base_url)
        runner = cli.popen("run", "Read on.", "--flow", str(flow), "--id", "busy",
                           "--store", cli.store)  # fmt: skip
        try:
            wait_until(
                "the run to have turns",
                lambda: (
                    client.get("/api/runs/busy").json()["calls"][0]["turns"] >= 5
                    if client.get("/api/runs?q=busy").json()["runs"]
                    else False
                ),
            )

            def timed(_: int) -> float:
                began = time.monotonic()
                answer = client.get("/api/runs/busy")
                assert answer.status_code == 200, answer.text
                assert answer.json()["run"]["status"] == "running"
                return time.monotonic() - began

            with ThreadPoolExecutor(10) as pool:
                waits = list(pool.map(timed, range(10)))
        finally:
            runner.kill()
            runner.wait(timeout=30)
    # at most: the wait for the next reading, that reading, and one more
    assert max(waits) < 4 * REFRESH_S + 1.0, sorted(round(w, 2) for w in waits)


def test_a_rolled_back_turn_is_noted_in_its_own_attempt_only(client: TestClient, cli: Cli) -> None:
    """Events number a turn within its attempt; attempt 1's rolled-back turn 2 must
    not be noted on attempt 2's turn 2 (nothing was rolled back there)."""

    async def made() -> None:
        with SimServer(RollbackThenRestart()) as srv:
            flow = validate_flow(restart_flow(srv.base_url))
            outcome = await start_run("Which is older?", flow, run_id="again", store_url=cli.store)
        assert outcome.status == "completed", outcome.reason

    asyncio.run(made())
    page = client.get("/api/runs/again/calls/main/turns?limit=50").json()
    noted = [(t["attempt"], t["in_attempt"], t["notes"]) for t in page["turns"]]
    rolled = [(a, n) for a, n, notes in noted if any("rolled back" in x for x in notes)]
    assert rolled == [(1, 2)], noted


def test_a_step_written_just_after_its_event_is_shown_without_another_event(
    client: TestClient, cli: Cli, tmp_path: Path
) -> None:
    """A tool call's event is stored a moment before the step's checkpoint. Here the
    checkpoint is held back (the test holds the SQLite store's write lock) while the
    page reads the run: it sees the event, not the result. Then the run waits for
    its model (no event for minutes, as in a long call): the page's next reading
    must show the result; before the fix the view was kept until the next event."""
    gate = tmp_path / "gate"
    gate.mkdir()
    policy = HeldAfterRead()
    with SimServer(policy) as srv:
        flow = held_flow(tmp_path / "held.yaml", srv.base_url)
        runner = cli.popen("run", "Which is older?", "--flow", str(flow), "--id", "late",
                           "--store", cli.store, env={"UI_GATE": str(gate)})  # fmt: skip
        try:
            wait_until("the tool call to be held", (gate / "holding").exists)
            before = client.get("/api/runs/late").json()["seq"]
            lock = sqlite3.connect(cli.store.removeprefix("sqlite:///"), isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")  # the run's next checkpoint waits for it
            try:
                (gate / "go").write_text("go\n")
                seen = wait_until(
                    "the tool call's event",
                    lambda: (s := client.get("/api/runs/late").json())["seq"] > before and s,
                )
                turn = turns_of(client, "late")[0]
                assert turn["calls"][0]["result"] is None, turn  # the checkpoint waits
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            assert policy.second.wait(60), "the run never asked for turn 2"
            summary = client.get("/api/runs/late").json()
            assert summary["seq"] == seen["seq"]  # no event since
            turn = turns_of(client, "late")[0]
            assert turn["calls"][0]["result"] is not None, turn
            assert "alpha is older" in turn["calls"][0]["result"]["preview"]
        finally:
            policy.go.set()
            runner.kill()
            runner.wait(timeout=30)


def turns_of(client: TestClient, run_id: str) -> list[dict]:
    answer = client.get(f"/api/runs/{run_id}/calls/main/turns")
    assert answer.status_code == 200, answer.text
    return answer.json()["turns"]


def test_a_killed_session_ends_at_its_last_event_not_when_the_next_began(
    client: TestClient, cli: Cli, tmp_path: Path
) -> None:
    """SIGKILL writes no end. Killed, the run's session and the sub-agent call in
    flight end at their last event (before the fix the page drew them on to now,
    growing for as long as the run lay dead); resumed, the killed session still ends
    there, not when the next one began (a resume the next day drew a day of work)."""
    with SimServer(partial(team, browsing=6, coding=2)) as srv:
        killed_team_run(cli, srv.base_url, tmp_path, "killed")
        killed_at = time.time()
        dead = wait_until(
            "the run to show paused",
            lambda: (s := client.get("/api/runs/killed").json())["run"]["status"] == "paused" and s,
        )
        (session,) = dead["timeline"]["sessions"]
        assert session["start"] < session["last"] <= killed_at
        spans = dead["timeline"]["spans"]
        assert spans["planner"] == [[session["start"], session["last"]]]
        assert spans["browsing#1"][-1][1] == session["last"]  # in flight when killed
        resumed = cli("resume", "killed", "--store", cli.store)
        assert resumed.returncode == 0, resumed.stderr
    done = client.get("/api/runs/killed").json()
    assert done["run"]["status"] == "completed"
    first, second = done["timeline"]["sessions"]
    assert (first["ended"], first["end"]) == ("stopped", session["last"])
    assert first["end"] <= killed_at < second["start"]
    browsing = done["timeline"]["spans"]["browsing#1"]
    assert browsing[0][1] == first["end"] and browsing[-1][0] >= second["start"]


def test_a_page_whose_server_came_back_with_a_new_token_says_so(cli: Cli, tmp_path: Path) -> None:
    """``mirograph ui`` killed and started again on its port generates a new token: the
    page's live stream is refused (401), which a browser does not retry. Before the
    fix nothing looked again: the page showed the run running for ever (its notice at
    most "Failed to fetch"); it must say that a token is needed, and keep looking, so
    a server with the same token (``MIROGRAPH_UI_TOKEN``) takes it back."""
    policy = GatedTeam(hold={"browsing": (2,)}, browsing=3)
    port = free_port()
    with SimServer(policy) as sim, sync_playwright() as playwright:
        flow = write_team_flow(tmp_path / "team.yaml", sim.base_url, coding=None)
        ui, url = start_ui(cli, port)
        runner = cli.popen("run", "Compare.", "--flow", str(flow), "--id", "watched",
                           "--store", cli.store)  # fmt: skip
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            policy.wait("browsing", 2)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url.split("#")[0] + "#/run/watched")
            status = page.locator("[data-test=run-status] [data-status]")
            expect(status).to_have_attribute("data-status", "running", timeout=SHOWN_MS)
            stop(ui)
            ui, _ = start_ui(cli, port)
            expect(page.locator("#notice")).to_contain_text("a token is required", timeout=SHOWN_MS)
            assert not errors, errors
        finally:
            policy.release_all()
            browser.close()
            stop(ui)
            stop(runner)
