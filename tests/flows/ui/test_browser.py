"""The web view in a real browser: Debian's chromium, driven by Playwright.

Each test starts ``mirograph ui`` as a process of its own on a free port, over a
store the engine fills through the simulated model over HTTP, and looks at the
page as a person would: runs listed and filtered, a sub-agent run started from
the page and watched live (a held model call let go makes exactly one new turn
appear, without a reload), paused and resumed with the page's buttons (the store
says so too), markup from a model and a tool shown as text and run nowhere, and a
server bound beyond loopback refusing whoever lacks its token. Screenshots land in
``$MIROGRAPH_TEST_ARTIFACTS/ui`` (default ``test-artifacts/ui`` in the checkout).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright
from support.gated_team import GatedTeam
from support.markup_text import FILLER, IMG, SCRIPT, SVG
from support.testkit import TESTS, Cli, show, stop, write_team_flow
from support.ui_live_kit import chromium

from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import load_flow
from mirograph.flows.runner import start_run

ARTIFACTS = Path(os.environ.get("MIROGRAPH_TEST_ARTIFACTS") or TESTS.parent / "test-artifacts")
SHOTS = ARTIFACTS / "ui"
OPENED = re.compile(r"mirograph ui: open (http://\S+)")
#: Milliseconds the page may take to show what the store holds (a live turn, a status).
SHOWN_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (no cookies); fails the test on any script error in it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert not errors, f"script errors in the page: {errors}"


@dataclass
class Ui:
    url: str
    proc: subprocess.Popen[str]

    @property
    def base(self) -> str:
        """The server's address without the token (as ``http://127.0.0.1:PORT``)."""
        return "http://127.0.0.1:" + self.url.split(":")[2].split("/")[0]


@contextmanager
def ui_server(cli: Cli, *args: str, env: dict[str, str] | None = None) -> Iterator[Ui]:
    proc = cli.popen("ui", "--port", "0", "--store", cli.store, *args, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = OPENED.search(line)
        assert match, f"mirograph ui did not start: {line!r} {proc.stderr and proc.stderr.read()}"
        yield Ui(match.group(1), proc)
    finally:
        stop(proc)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def status_of(page: Page):
    return page.locator("[data-test=run-status] [data-status]")


def finished_run(cli: Cli, question: str, flow: Path, run_id: str) -> None:
    """A run of ``flow`` in the test's store, run here to its end (no process to start;
    on a thread of its own: Playwright's loop holds this one)."""
    run = start_run(question, load_flow(str(flow)), run_id=run_id, store_url=cli.store)
    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(asyncio.run, run).result(timeout=120)
    assert outcome.status == "completed", outcome


def stored_status(cli: Cli, run_id: str) -> str:
    listed = cli("ls", "--json", "--store", cli.store)
    assert listed.returncode == 0, listed.stderr
    return next(row["status"] for row in json.loads(listed.stdout) if row["id"] == run_id)


def test_a_sub_agent_run_started_watched_paused_and_resumed_from_the_page(
    cli: Cli, page: Page, tmp_path: Path
) -> None:
    policy = GatedTeam(hold={"browsing": (2, 3)}, browsing=4)
    with SimServer(policy) as sim, ui_server(cli) as ui:
        flow = write_team_flow(tmp_path / "team.yaml", sim.base_url, coding=None)
        page.goto(ui.url + "#/new")
        page.fill("[data-test=question]", "Compare alpha and beta.")
        page.fill("[data-test=flow]", str(flow))
        page.click("[data-test=start]")
        page.wait_for_url(re.compile(r"#/run/"))
        run_id = unquote(page.url.split("#/run/")[1].split("?")[0])
        policy.wait("browsing", 2)  # browsing has made one turn; its second is held

        expect(status_of(page)).to_have_attribute("data-status", "running", timeout=SHOWN_MS)
        page.click('[data-call="browsing#1"]')
        expect(page.locator("[data-test=turns-title]")).to_contain_text("browsing#1")
        turns = page.locator("[data-test=turns] [data-turn]")
        expect(turns).to_have_count(1, timeout=SHOWN_MS)
        page.evaluate("window.__same_page = true")
        turns.first.locator("details.thinking summary").click()  # a person reads turn 1

        policy.go[("browsing", 2)].set()
        policy.wait("browsing", 3)  # the second turn is stored; the third is held
        expect(turns).to_have_count(2, timeout=SHOWN_MS)
        expect(turns.nth(1)).to_contain_text("lookup")
        assert page.evaluate("window.__same_page") is True, "the page was reloaded"
        expect(turns.first.locator("details.thinking")).to_have_attribute("open", "")
        expect(page.locator('[data-test=tree] [data-call="browsing#1"]')).to_contain_text("2 turns")
        shot(page, "live-sub-agent-run.png")

        page.click("[data-test=pause]")
        expect(page.locator("#notice")).to_contain_text("pause asked", timeout=SHOWN_MS)
        page.goto(ui.url + "#/")  # the runs page, while the run is still running
        row = page.locator(f'[data-run="{run_id}"] [data-status]')
        expect(row).to_have_attribute("data-status", "running", timeout=SHOWN_MS)
        policy.go[("browsing", 3)].set()  # the run reaches its next step and pauses
        expect(row).to_have_attribute("data-status", "paused", timeout=SHOWN_MS)
        assert stored_status(cli, run_id) == "paused"
        shot(page, "runs.png")

        page.click(f'[data-run="{run_id}"] a')
        expect(status_of(page)).to_have_attribute("data-status", "paused", timeout=SHOWN_MS)
        page.click("[data-test=resume]")
        expect(status_of(page)).to_have_attribute("data-status", "completed", timeout=60_000)
        expect(page.locator("[data-test=answer]")).to_contain_text("REPORT[browsing:4]")
        report = show(cli, run_id)
        assert report["status"] == "completed"
        assert report["answer"] == "REPORT[browsing:4]"
        page.click('[data-call="browsing#1"]')
        expect(turns).to_have_count(report["agents"]["browsing"]["turns"] + 1)  # + its report
        shot(page, "completed-sub-agent-run.png")


def test_the_runs_page_filters_by_status_and_text(
    cli: Cli, page: Page, sim_model, tmp_path: Path
) -> None:
    flow = write_team_flow(tmp_path / "team.yaml", sim_model("support.team_policy:team"))
    finished_run(cli, "Who wrote alpha?", flow, "alpha-run")
    finished_run(cli, "Who wrote beta?", flow, "beta-run")
    with ui_server(cli) as ui:
        page.goto(ui.url)
        rows = page.locator("[data-test=runs] tbody tr")
        expect(rows).to_have_count(2, timeout=SHOWN_MS)
        page.fill("[data-test=text-filter]", "ALPHA")
        expect(rows).to_have_count(1, timeout=SHOWN_MS)
        expect(rows.first).to_have_attribute("data-run", "alpha-run")
        page.fill("[data-test=text-filter]", "")
        page.select_option("[data-test=status-filter]", "paused")
        expect(rows).to_have_count(0, timeout=SHOWN_MS)
        page.select_option("[data-test=status-filter]", "completed")
        expect(rows).to_have_count(2, timeout=SHOWN_MS)

        page.click('[data-run="beta-run"] a')
        expect(page.locator("[data-test=question]")).to_have_text("Who wrote beta?")
        tree = page.locator("[data-test=tree] [data-call]")
        expect(tree).to_have_count(3)  # planner, browsing#1, coding#1
        # one session: the planner's one bar, and one bar for each sub-agent call
        expect(page.locator("[data-test=timeline] [data-span]")).to_have_count(3)
        expect(page.locator("[data-test=tokens] svg")).to_have_attribute("data-turns", "3")


def test_markup_from_the_model_and_a_tool_is_shown_as_text_and_runs_nothing(
    cli: Cli, page: Page, sim_model, tmp_path: Path
) -> None:
    flow = tmp_path / "markup.yaml"
    base_url = sim_model("support.markup_text:reply")
    spec = {
        "name": "markup",
        "models": {"m": {"base_url": base_url, "max_tokens": 512}},
        "agents": {"main": {"model": "m", "tools": ["support.markup_text:page"]}},
        "entry": "main",
    }
    flow.write_text(yaml.safe_dump(spec), encoding="utf-8")
    question = f"What does this page say? {IMG}"
    finished_run(cli, question, flow, "markup")
    with ui_server(cli) as ui:
        page.goto(ui.url + "#/run/markup")
        expect(page.locator("[data-test=answer]")).to_contain_text(f"forty-two {SCRIPT}")
        expect(page.locator("[data-test=question]")).to_have_text(question)
        page.goto(ui.url + "#/")
        expect(page.locator('[data-run="markup"] td.q')).to_have_text(question)
        page.goto(ui.url + "#/run/markup")
        first = page.locator("[data-test=turns] [data-turn]").first
        expect(first).to_contain_text(f"Reading {IMG}.", timeout=SHOWN_MS)
        first.locator("details.thinking summary").click()
        expect(first.locator("details.thinking pre")).to_have_text(f"I will read {SCRIPT}.")
        result = first.locator("[data-test=result]")
        expect(result).to_contain_text(f"HEAD {IMG}")
        first.locator("[data-test=full-result]").click()
        expect(result).to_contain_text(f"TAIL {SCRIPT}{SVG}")
        assert FILLER.strip()[:40] in result.inner_text()
        shot(page, "markup-as-text.png")
        inserted = page.evaluate(
            "document.querySelectorAll('main img, main script, main [onerror], main [onload]')"
            ".length"
        )
        assert inserted == 0, "markup from the run became elements of the page"
        assert page.evaluate("window.__xss") is None


def test_a_server_bound_beyond_loopback_refuses_requests_without_its_token(
    cli: Cli, page: Page, sim_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = write_team_flow(tmp_path / "team.yaml", sim_model("support.team_policy:team"))
    finished_run(cli, "Who wrote alpha?", flow, "kept")
    monkeypatch.delenv("MIROGRAPH_UI_TOKEN", raising=False)  # one is generated, printed once
    with ui_server(cli, "--host", "0.0.0.0") as ui:
        token = ui.url.split("?token=")[1]
        assert len(token) >= 16
        api = ui.base + "/api/runs"
        with httpx.Client(timeout=10) as http:
            assert http.get(api).status_code == 401
            pause = http.post(api + "/kept/pause", json={})
            assert pause.status_code == 401, pause.text
            assert "token" in pause.json()["error"]
            wrong = {"Authorization": "Bearer " + "x" * len(token)}
            assert http.get(api, headers=wrong).status_code == 403
            assert http.post(api + "/kept/pause", json={}, headers=wrong).status_code == 403
            listed = http.get(api, headers={"Authorization": f"Bearer {token}"})
            assert listed.status_code == 200
            assert [row["id"] for row in listed.json()["runs"]] == ["kept"]

        page.goto(ui.base + "/#/run/kept")  # no token: the page loads, its data does not
        expect(page.locator("#notice")).to_contain_text("token is required", timeout=SHOWN_MS)
        expect(page.locator("[data-test=tree] [data-call]")).to_have_count(0)
        shot(page, "refused-without-token.png")

        page.goto(ui.url)  # the printed address: the token becomes the page's cookie
        assert "token=" not in page.url
        expect(page.locator('[data-run="kept"]')).to_have_count(1, timeout=SHOWN_MS)
        page.click('[data-run="kept"] a')
        expect(status_of(page)).to_have_attribute("data-status", "completed")


def test_the_benchmarks_page_compares_bench_folders_and_shows_their_plots(
    cli: Cli, page: Page, tmp_path: Path
) -> None:
    folder = tmp_path / "bench" / "gaia-sim"
    folder.mkdir(parents=True)
    settings = {"bench_id": "bench-gaia-abc123", "benchmark": "gaia", "flow": "sim", "runs": 2}
    (folder / "bench.json").write_text(json.dumps(settings), encoding="utf-8")
    summary = {
        "benchmark": "gaia",
        "flow": "sim",
        "tasks": 4,
        "runs": 2,
        "attempts_done": 8,
        "attempts_expected": 8,
        "avg_at_k": 0.75,
        "pass_at_k": 0.75,
        "stderr": 0.125,
        "judge": "exact",
        "complete": True,
        "by_group": {"1": {"tasks": 2, "avg_at_k": 1.0, "pass_at_k": 1.0}},
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    shutil.copy(TESTS.parent / "docs" / "bench" / "gaia-scaling.png", folder / "scaling.png")
    with ui_server(cli, "--bench", str(tmp_path / "bench")) as ui:
        page.goto(ui.url + "#/bench")
        rows = page.locator("[data-test=benches] tbody tr")
        expect(rows).to_have_count(1, timeout=SHOWN_MS)
        expect(rows.first).to_contain_text("gaia · sim")
        expect(rows.first).to_contain_text("8 of 8")
        expect(rows.first).to_contain_text("75.0 %")
        section = page.locator('[data-bench="0"]')
        expect(section).to_contain_text("group 1")
        page.wait_for_function(
            "document.querySelector('[data-bench=\"0\"] img').naturalWidth > 0"
        )  # the plot itself arrived, not a broken image
        shot(page, "benchmarks.png")
        section.locator("a", has_text="its runs").click()
        expect(page.locator("[data-test=text-filter]")).to_have_value("bench-gaia-abc123")
