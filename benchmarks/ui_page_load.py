"""The web view (``mirograph ui``) on a 600-turn, 3-agent run, timed in a real browser.

Workload: a planner hands one sub-task each to two sub-agents, ``browsing`` (300
turns) and ``coding`` (298), called together so they run in parallel; with the
planner's 2 turns the run has 600. Each tool result is a distinct ~8 KB text
(``bench_tools:distinct_text``). The model is a ``sim-model`` server over real HTTP
with ``--enable-prompt-tokens-details`` (cached tokens reported); the store is SQLite.

Then ``mirograph ui --port 0`` serves that store and Debian's chromium, driven by
Playwright, opens it. Every browser figure is taken in a fresh browser context
(cold cache), from ``page.goto`` to "usable": the agent tree, the token chart and
the first page of turns drawn. It so includes the browser fetching the page, its
script and styles, and every API answer they ask for.

- **run page, server's first summary:** a server just started (it has answered
  only ``GET /``), so the page's ``/api/runs/<id>`` reads the run from the store;
- **run page, warm server:** the same in a new context, the server's view kept;
- **warm reload:** ``page.reload()`` in that context;
- **open browsing:** a click on ``browsing#1`` until its 300-turn chart and its
  turns are drawn; then paging to its first page of turns, and back to its last;
- **runs page:** ``#/`` until the runs table has a row;
- over plain HTTP, on another fresh server: the first and a warm
  ``GET /api/runs/<id>``, and the sizes of the summary and a page of turns;
- baseline: ``mirograph show <id>`` (the CLI's view of the same run) in a fresh
  process, its wall time.

With ``--screenshots``, ``docs/ui/runs.png``, ``run-600.png`` and
``run-600-browsing.png`` are written (a 1400x1000 viewport).

    python -m benchmarks.ui_page_load [--repeat 5] [--screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import sim
from benchmarks.long_run import ROOT, p50

RUN_ID = "ui600"
TURNS = {"planner": 2, "browsing": 300, "coding": 298}
POLICY = f"benchmarks.ui_policy:team?browsing={TURNS['browsing']}&coding={TURNS['coding']}"
#: The page is "usable" within this (issue: "the page is usable in ≤ 1 s").
TARGET_MS = 1000.0
#: Turns in a page of the web view (``flows/ui/run_view.PAGE_TURNS``).
PAGE = 50
VIEWPORT = {"width": 1400, "height": 1000}
#: Seconds any one wait of the browser may take before the benchmark fails.
WAIT_S = 60
USABLE = (
    "[data-test=tree] [data-call]",
    "[data-test=tokens] svg",
    "[data-test=turns] [data-turn]",
)


# -- the run ------------------------------------------------------------------------


def flow_spec(base_url: str) -> dict[str, Any]:
    model = {"base_url": base_url, "max_tokens": 512}
    tools = ["benchmarks.bench_tools:distinct_text"]
    agents = {
        "planner": {
            "model": "m",
            "role": "main",
            "max_turns": 10,
            "sub_agents": ["browsing", "coding"],
        },
        "browsing": {"model": "m", "max_turns": TURNS["browsing"] + 10, "tools": tools},
        "coding": {"model": "m", "max_turns": TURNS["coding"] + 10, "tools": tools},
    }
    return {"name": "ui-600", "models": {"m": model}, "agents": agents, "entry": "planner"}


def build_run(workdir: Path) -> tuple[str, dict[str, Any], float]:
    """The store's URL, the run's report and the run's wall time."""
    from mirograph.flows.loader import validate_flow
    from mirograph.flows.runner import run_report, start_run

    proc, base_url = sim.start_sim_model(POLICY, "--enable-prompt-tokens-details")
    store = f"sqlite:///{workdir / 'runs.db'}"
    try:
        flow = validate_flow(flow_spec(base_url))
        start = time.perf_counter()
        outcome = asyncio.run(
            start_run("Read the whole archive.", flow, run_id=RUN_ID, store_url=store)
        )
        wall = time.perf_counter() - start
        report = asyncio.run(run_report(RUN_ID, store_url=store))
    finally:
        proc.terminate()
        proc.wait()
    assert outcome.status == "completed", outcome
    turns = {name: agent["turns"] for name, agent in report["agents"].items()}
    assert sum(turns.values()) >= 600, turns
    assert set(turns) == set(TURNS), turns
    assert report["usage"]["cached_tokens"] > 0, report["usage"]
    return store, report, wall


# -- the server ---------------------------------------------------------------------


@contextmanager
def ui_server(store: str, bench_dir: Path) -> Iterator[tuple[str, float]]:
    """A fresh ``mirograph ui`` process; its address and ms from spawn to its first
    answer (``GET /``: uvicorn accepts only once the store is open)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mirograph",
            "ui",
            "--port",
            "0",
            "--store",
            store,
            "--bench",
            str(bench_dir),
            # no token: the page is timed as a person who opened the printed address once
            # uses it (the token then rides in a cookie; its check costs one digest)
            "--no-token",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"open (http://\S+/)", line)
        if not match:
            raise SystemExit(f"mirograph ui did not start: {line!r}")
        url = match.group(1)
        get(url)
        yield url, (time.perf_counter() - start) * 1000
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def get(url: str) -> tuple[float, bytes, dict[str, str]]:
    """ms to the whole answer, its body and headers."""
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=WAIT_S) as answer:
        body = answer.read()
        headers = dict(answer.headers)
    return (time.perf_counter() - start) * 1000, body, headers


def api_figures(store: str, bench_dir: Path) -> dict[str, float]:
    """Over plain HTTP, on a server just started: the first summary, a warm one, the
    sizes of the summary and of a page of the browsing agent's turns."""
    with ui_server(store, bench_dir) as (url, ready_ms):
        cold_ms, summary, headers = get(f"{url}api/runs/{RUN_ID}")
        warm_ms, _, _ = get(f"{url}api/runs/{RUN_ID}")
        page_ms, turns, _ = get(
            f"{url}api/runs/{RUN_ID}/calls/browsing%231/turns?offset=0&limit={PAGE}"
        )
    data = json.loads(summary)
    # the view counts every stored reply, the closing one too: one more than ``show``
    shown = len(data["tokens"]["browsing#1"])
    assert shown >= TURNS["browsing"], data["calls"]
    assert len(json.loads(turns)["turns"]) == PAGE
    return {
        "browsing_turns": shown,
        "server_ready_ms": ready_ms,
        "summary_cold_ms": cold_ms,
        "summary_warm_ms": warm_ms,
        "turn_page_ms": page_ms,
        "summary_kb": len(summary) / 1024,
        "turn_page_kb": len(turns) / 1024,
        "gzip": float("gzip" in headers.get("content-encoding", "")),
    }


def show_ms(store: str) -> float:
    """``mirograph show`` of the run in a fresh process: wall time, output checked."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "mirograph", "show", RUN_ID, "--store", store],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "140"},
    ).stdout
    ms = (time.perf_counter() - start) * 1000
    assert "browsing" in out and "coding" in out, out[:2000]
    return ms


def server_side(store: str) -> dict[str, float]:
    """Where the server's first summary goes, timed in a fresh process (as a server's
    first request finds it): ``load_transcripts`` through one open store, results left
    as previews (as ``RunViews`` reads), then again warm; ``run_report`` alone (its own
    store and graph); the view and its summary's JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ui_page_load", "--server-side", store],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode:
        raise SystemExit(f"--server-side failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_server_side(store: str) -> None:
    """What ``--server-side`` prints: one JSON line of ms."""
    from mirograph.flows.runner import run_report
    from mirograph.flows.transcript import load_transcripts
    from mirograph.flows.ui.run_view import RunView
    from mirograph.state.store import open_store

    async def main() -> dict[str, float]:
        ms: dict[str, float] = {}
        async with open_store(store) as opened:  # as the server reads: its store open
            start = time.perf_counter()
            transcript = await load_transcripts(RUN_ID, store=opened, hydrate=False)
            ms["load_transcripts_first"] = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            transcript = await load_transcripts(RUN_ID, store=opened, hydrate=False)
            ms["load_transcripts_again"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        await run_report(RUN_ID, store_url=store)
        ms["run_report_again"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        view = RunView(transcript, [], 0, ("completed", 0.0))
        ms["view_turns_of"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        json.dumps(view.summary())
        ms["summary_json"] = (time.perf_counter() - start) * 1000
        return ms

    print(json.dumps(asyncio.run(main())))


# -- the browser ----------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        raise SystemExit("no chromium: apt-get install chromium")
    return found


def usable(page: Any) -> float:
    """Waits until the run page is usable; ``performance.now()`` at that moment
    (ms since the navigation started)."""
    checks = " && ".join(f"document.querySelector({s!r})" for s in USABLE)
    handle = page.wait_for_function(
        f"() => ({checks}) ? performance.now() : null", polling="raf", timeout=WAIT_S * 1000
    )
    return float(handle.json_value())


def resources(page: Any) -> dict[str, dict[str, float]]:
    """The page's own account of each request: start and end, ms since navigation."""
    entries = page.evaluate(
        """() => [...performance.getEntriesByType('navigation'),
                  ...performance.getEntriesByType('resource')].map(e => ({
            name: e.name, start: e.startTime, ttfb: e.responseStart, end: e.responseEnd,
            kb: (e.encodedBodySize || 0) / 1024}))"""
    )
    named: dict[str, dict[str, float]] = {}
    for entry in entries:
        path = re.sub(r"^https?://[^/]+", "", entry["name"])
        key = (
            "page (/)"
            if path in ("/", "") or path.startswith("/#")
            else "summary"
            if path.startswith(f"/api/runs/{RUN_ID}") and "/calls/" not in path
            else "turns"
            if "/turns" in path
            else path
        )
        named.setdefault(key, entry)  # the first of each: the ones the first drawing waited for
    return named


def open_run(context: Any, url: str) -> tuple[Any, float, float, dict[str, dict[str, float]]]:
    """A new page on the run: the page, ms to usable (goto to usable, measured here),
    the page's own ms to usable, and its requests."""
    page = context.new_page()
    start = time.perf_counter()
    page.goto(f"{url}#/run/{RUN_ID}", wait_until="commit")
    in_page = usable(page)
    wall = (time.perf_counter() - start) * 1000
    return page, wall, in_page, resources(page)


def wait_text(page: Any, selector: str, pattern: str) -> None:
    page.wait_for_function(
        f"() => {{ const e = document.querySelector({selector!r});"
        f" return e && new RegExp({pattern!r}).test(e.textContent); }}",
        polling="raf",
        timeout=WAIT_S * 1000,
    )


def open_browsing(page: Any, n: int) -> float:
    """ms from the click on ``browsing#1`` to its chart of ``n`` turns and its turns drawn."""
    start = time.perf_counter()
    page.click('[data-call="browsing#1"]')
    page.wait_for_selector(f'[data-test=tokens] svg[data-turns="{n}"]', timeout=WAIT_S * 1000)
    wait_text(page, "[data-test=turns-title]", "browsing#1$")
    wait_text(page, "[data-test=page]", f"of {n}$")
    page.wait_for_selector("[data-test=turns] [data-turn]", timeout=WAIT_S * 1000)
    return (time.perf_counter() - start) * 1000


def page_to(page: Any, button: str, first: int, n: int) -> float:
    """ms from a click on the pager's ``button`` to the page starting at turn ``first``
    (of ``n``)."""
    start = time.perf_counter()
    page.click(f"[data-test=turns] .pager button:text-is('{button}')")
    wait_text(page, "[data-test=page]", f"^turns {first}–\\d+ of {n}$")
    page.wait_for_selector(f'[data-test=turns] [data-turn="{first}"]', timeout=WAIT_S * 1000)
    return (time.perf_counter() - start) * 1000


def runs_page(context: Any, url: str) -> tuple[Any, float]:
    page = context.new_page()
    start = time.perf_counter()
    page.goto(f"{url}#/", wait_until="commit")
    page.wait_for_selector(f'[data-test=runs] tbody tr[data-run="{RUN_ID}"]', timeout=WAIT_S * 1000)
    return page, (time.perf_counter() - start) * 1000


def browser_figures(browser: Any, store: str, bench_dir: Path, n: int) -> dict[str, Any]:
    """One repeat in the browser, on a server just started (``n``: browsing's turns)."""
    figures: dict[str, Any] = {}
    with ui_server(store, bench_dir) as (url, _):
        context = browser.new_context(viewport=VIEWPORT)
        page, wall, in_page, requests = open_run(context, url)
        figures |= {"first_load_ms": wall, "first_load_in_page_ms": in_page}
        figures["first_requests"] = requests
        context.close()

        context = browser.new_context(viewport=VIEWPORT)
        page, wall, in_page, requests = open_run(context, url)
        figures |= {"warm_load_ms": wall, "warm_load_in_page_ms": in_page}
        figures["warm_requests"] = requests
        start = time.perf_counter()
        page.reload(wait_until="commit")
        usable(page)
        figures["reload_ms"] = (time.perf_counter() - start) * 1000
        figures["open_browsing_ms"] = open_browsing(page, n)
        figures["first_page_ms"] = page_to(page, "first", 1, n)
        last = (n - 1) // PAGE * PAGE + 1
        figures["last_page_ms"] = page_to(page, "last", last, n)
        figures["previous_page_ms"] = page_to(page, "previous", max(1, last - PAGE), n)
        context.close()

        context = browser.new_context(viewport=VIEWPORT)
        _, figures["runs_page_ms"] = runs_page(context, url)
        context.close()
    return figures


def screenshots(browser: Any, store: str, bench_dir: Path, folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with ui_server(store, bench_dir) as (url, _):
        context = browser.new_context(viewport=VIEWPORT)
        page, _ = runs_page(context, url)
        page.screenshot(path=folder / "runs.png")
        written.append(folder / "runs.png")
        page, *_ = open_run(context, url)
        assert page.get_attribute('[data-call="planner"]', "class") == "on"
        page.screenshot(path=folder / "run-600.png")
        written.append(folder / "run-600.png")
        open_browsing(page, n)
        # it opens on its last page, which may hold only the closing reply: one back
        last = (n - 1) // PAGE * PAGE + 1
        if last > 1:
            page_to(page, "previous", max(1, last - PAGE), n)
        page.screenshot(path=folder / "run-600-browsing.png")
        written.append(folder / "run-600-browsing.png")
        context.close()
    return written


# -- report ---------------------------------------------------------------------------


def fmt_raw(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--screenshots", action="store_true", help="also write docs/ui/*.png (1400x1000)"
    )
    parser.add_argument("--server-side", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server_side:
        return time_server_side(args.server_side)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["MIROGRAPH_HOME"] = str(workdir / "home")
        bench_dir = workdir / "bench"
        bench_dir.mkdir()
        load_before = os.getloadavg()[0]
        store, report, build_s = build_run(workdir)
        turns = {name: agent["turns"] for name, agent in report["agents"].items()}
        print(f"run {RUN_ID}: {sum(turns.values())} turns {turns}, built in {build_s:.1f} s")

        api_runs: list[dict[str, float]] = []
        browser_runs: list[dict[str, Any]] = []
        shows: list[float] = []
        sides: list[dict[str, float]] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            for _ in range(args.repeat):  # interleaved, so drift hits every figure alike
                api_runs.append(api_figures(store, bench_dir))
                n = int(api_runs[-1]["browsing_turns"])
                browser_runs.append(browser_figures(browser, store, bench_dir, n))
                shows.append(show_ms(store))
                sides.append(server_side(store))
            if args.screenshots:
                n = int(api_figures(store, bench_dir)["browsing_turns"])
                for path in screenshots(browser, store, bench_dir, ROOT / "docs" / "ui", n):
                    print(f"wrote {path.relative_to(ROOT)}")
            browser.close()
    if args.repeat:
        print_report(api_runs, browser_runs, shows, sides, args.repeat)
    # the machine is shared: a busy one slows the server and the browser alike
    print(
        f"{os.cpu_count()} CPUs; 1-min load average {load_before:.2f} at the start,"
        f" {os.getloadavg()[0]:.2f} at the end"
    )


def print_report(
    api_runs: list[dict[str, float]],
    browser_runs: list[dict[str, Any]],
    shows: list[float],
    sides: list[dict[str, float]],
    repeat: int,
) -> None:
    def col(runs: list[dict[str, Any]], key: str) -> list[float]:
        return [r[key] for r in runs]

    n = int(api_runs[0]["browsing_turns"])
    last = (n - 1) // PAGE * PAGE + 1

    rows: list[tuple[str, list[float], str]] = [
        (
            "run page usable, server's first summary (goto → usable)",
            col(browser_runs, "first_load_ms"),
            "≤ 1000",
        ),
        (
            "  the same, the page's own clock (navigation start → usable)",
            col(browser_runs, "first_load_in_page_ms"),
            "≤ 1000",
        ),
        (
            "run page usable, warm server, cold browser cache",
            col(browser_runs, "warm_load_ms"),
            "≤ 1000",
        ),
        ("run page, warm reload", col(browser_runs, "reload_ms"), "≤ 1000"),
        (
            f"open browsing#1 (its {n}-turn chart + its last page of turns)",
            col(browser_runs, "open_browsing_ms"),
            "≤ 1000",
        ),
        (
            f"browsing#1: pager 'first' (turns 1–{PAGE})",
            col(browser_runs, "first_page_ms"),
            "≤ 1000",
        ),
        (
            f"browsing#1: pager 'last' (turns {last}–{n})",
            col(browser_runs, "last_page_ms"),
            "≤ 1000",
        ),
        (
            f"browsing#1: pager 'previous' (turns {max(1, last - PAGE)}–{last - 1})",
            col(browser_runs, "previous_page_ms"),
            "≤ 1000",
        ),
        ("runs page usable (cold browser cache)", col(browser_runs, "runs_page_ms"), "≤ 1000"),
        ("GET /api/runs/<id>, first after server start", col(api_runs, "summary_cold_ms"), "-"),
        ("GET /api/runs/<id>, warm", col(api_runs, "summary_warm_ms"), "-"),
        ("GET a page of 50 turns (browsing#1), warm", col(api_runs, "turn_page_ms"), "-"),
        ("server spawn → first answer (GET /)", col(api_runs, "server_ready_ms"), "-"),
        ("baseline: `mirograph show <id>`, fresh process", shows, "-"),
    ]
    print(
        f"\n600-turn run (planner 2, browsing 300, coding 298), ~8 KB results, SQLite;"
        f" chromium {VIEWPORT['width']}x{VIEWPORT['height']}, fresh context each;"
        f" median of {repeat}\n"
    )
    print("| figure | median ms | target ms | raw ms |")
    print("|---|---|---|---|")
    for label, values, target in rows:
        print(f"| {label} | {p50(values):.0f} | {target} | {fmt_raw(values)} |")
    kb = api_runs[0]
    print(
        f"\nJSON answers: summary {kb['summary_kb']:.1f} KB, a page of 50 turns"
        f" {kb['turn_page_kb']:.1f} KB (gzip: {'yes' if kb['gzip'] else 'no'})"
    )

    for which in ("first_requests", "warm_requests"):
        print(
            f"\nWhere the page's time goes ({which.split('_')[0]} load), median ms since"
            " navigation start:\n"
        )
        print("| request | start | first byte | end | KB |")
        print("|---|---|---|---|---|")
        names = list(browser_runs[0][which])
        for name in names:
            entries = [r[which][name] for r in browser_runs if name in r[which]]
            cells = [p50([e[k] for e in entries]) for k in ("start", "ttfb", "end", "kb")]
            print(f"| {name} | {cells[0]:.0f} | {cells[1]:.0f} | {cells[2]:.0f} | {cells[3]:.1f} |")
        key = "first_load_in_page_ms" if which == "first_requests" else "warm_load_in_page_ms"
        last_end = [
            max(e["end"] for name, e in r[which].items() if name != "/favicon.ico")
            for r in browser_runs
        ]
        drawn = [r[key] - end for r, end in zip(browser_runs, last_end, strict=True)]
        print(f"| usable (drawn) | | | {p50(col(browser_runs, key)):.0f} | |")
        print(f"\ndrawing after the last answer: median {p50(drawn):.0f} ms")
    print("\nThe server's first summary, its parts in a fresh process (median ms):\n")
    print("| part | ms | raw |")
    print("|---|---|---|")
    for key in sides[0]:
        values = col(sides, key)
        print(f"| {key} | {p50(values):.0f} | {fmt_raw(values)} |")
    medians = {
        **{k: p50(col(api_runs, k)) for k in api_runs[0]},
        **{k: p50(col(browser_runs, k)) for k in browser_runs[0] if k.endswith("_ms")},
        "show_ms": p50(shows),
        "stdev_first_load_ms": statistics.pstdev(col(browser_runs, "first_load_ms")),
    }
    print(json.dumps({k: round(v, 1) for k, v in medians.items()}))


if __name__ == "__main__":
    main()
