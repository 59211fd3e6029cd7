"""How soon a live run's new turn appears in the web view, timed in a real browser.

Workload: one agent reads pages (``bench_tools:distinct_text``, ~8 KB each), run by
``mirograph run`` in a process of its own against a simulated model over real HTTP
whose reply for each measured turn is held. ``mirograph ui --no-token`` serves the
store (SQLite), and Debian's chromium, driven by Playwright, shows the run's turns
(its last page, following). For each measured turn: the page shows the turns
before it; the held reply is let go; the time until the page has drawn the new
turn is the latency. It spans the whole way a person sees: the reply, the tool
call, the step's checkpoint and its event, the event stream (the store polled:
no Redis), the page's debounce and its reads of the summary and the turns, and
the drawing. The issue asks for a new turn "within a second". ``--gap-ms`` is
the time from one turn shown to the next reply let go (default 1000: a fast
model's reply); with 0, turns come back to back and the server reads a live run
at most every 0.4 s (``run_view.REFRESH_S``), which the figure then shows.

    python -m benchmarks.ui_live_latency [--turns 10] [--gap-ms 1000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

from benchmarks.long_run import ROOT, p50
from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request
from mirograph.agents.sim.server import SimServer

HOLD_S = 120.0
WAIT_MS = 30_000
#: Notes, on the page's own clock, when it starts waiting and when the page holds
#: the ``want``-th turn: a DOM observer sees it as it is drawn (Playwright's own
#: waits poll ever more slowly, every 500 ms after the first 300, and would time
#: their polling, not the page).
WATCH = """want => {
  window.__drawnAt = null;
  const count = () => document.querySelectorAll("[data-test=turns] [data-turn]").length;
  const seen = new MutationObserver(() => {
    if (window.__drawnAt === null && count() >= want) {
      window.__drawnAt = performance.now();
      seen.disconnect();
    }
  });
  seen.observe(document.body, { childList: true, subtree: true });
  window.__asked = performance.now();
}"""


class HeldReplies:
    """Reads page after page; the reply that makes turn ``n`` waits for ``go(n)``."""

    def __init__(self, turns: int) -> None:
        self.turns = turns
        self.reached = {n: threading.Event() for n in range(1, turns + 2)}
        self.released = {n: threading.Event() for n in range(1, turns + 2)}

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        done = sum(1 for m in messages if m["role"] == "assistant")
        turn = done + 1
        if turn in self.reached and turn > 1:
            self.reached[turn].set()
            assert self.released[turn].wait(HOLD_S), f"turn {turn} was never let go"
        if is_closing_request(messages[-1]["content"]) or done >= self.turns:
            return f"All read.</think>\n\nDone. \\boxed{{{done}}}"
        call = render_call("bench_tools", "distinct_text", {"index": turn})
        return f"Page {turn} next.</think>\n\nReading page {turn}.\n\n{call}"


def spawn(*args: str, home: Path) -> subprocess.Popen[str]:
    env = {"MIROGRAPH_HOME": str(home), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(
        [sys.executable, "-m", "mirograph", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )


def measure(turns: int, gap_ms: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    from benchmarks.ui_page_load import chromium

    policy = HeldReplies(turns)
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, SimServer(policy) as sim:
        home, store = Path(tmp) / "home", f"sqlite:///{tmp}/runs.db"
        flow = Path(tmp) / "reader.yaml"
        spec = {
            "name": "reader",
            "models": {"m": {"base_url": sim.base_url, "max_tokens": 256}},
            "agents": {
                "main": {
                    "model": "m",
                    "max_turns": turns + 5,
                    "tools": ["benchmarks.bench_tools:distinct_text"],
                }
            },
            "entry": "main",
        }
        flow.write_text(yaml.safe_dump(spec), encoding="utf-8")
        ui = spawn("ui", "--port", "0", "--store", store, "--no-token", home=home)
        assert ui.stdout is not None
        url = re.search(r"open (http://\S+/)", ui.stdout.readline())
        argv = ["run", "Read the pages.", "--flow", str(flow), "--id", "live", "--store", store]
        run = spawn(*argv, home=home)
        try:
            assert url, "mirograph ui did not start"
            assert policy.reached[2].wait(60), "the run did not start"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium(), args=["--no-sandbox"]
                )
                # bypass_csp: the page's policy (rightly) forbids evaluating strings,
                # which Playwright's wait_for_function does to watch the page
                page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
                page.goto(url.group(1) + "#/run/live?call=main")
                shown = page.locator("[data-test=turns] [data-turn]")
                for turn in range(2, turns + 1):
                    policy.reached[turn].wait(HOLD_S)
                    shown.nth(turn - 2).wait_for(timeout=WAIT_MS)  # the turns before it
                    page.wait_for_timeout(gap_ms)  # the model thinking
                    page.evaluate(WATCH, turn)  # the page's clock starts here
                    policy.released[turn].set()
                    page.wait_for_function("window.__drawnAt !== null", timeout=WAIT_MS)
                    latencies.append(page.evaluate("window.__drawnAt - window.__asked"))
                policy.released[turns + 1].set()
                browser.close()
        finally:
            for event in policy.released.values():
                event.set()
            run.wait(timeout=120)
            ui.terminate()
            ui.wait(timeout=30)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=10, help="turns measured (+1 unmeasured)")
    parser.add_argument(
        "--gap-ms", type=int, default=1000, help="from a turn shown to the next reply let go"
    )
    args = parser.parse_args()
    latencies = measure(args.turns + 1, args.gap_ms)
    print(
        f"\nA live run's new turn in the web view: {len(latencies)} turns,"
        f" {args.gap_ms} ms from one turn shown to the next reply, store polled\n"
    )
    print("| figure | ms | target ms |")
    print("|---|---|---|")
    print(f"| median | {p50(latencies):.0f} | ≤ 1000 |")
    print(f"| max | {max(latencies):.0f} | ≤ 1000 |")
    print(f"| min | {min(latencies):.0f} | |")
    if len(latencies) > 1:
        print(f"| stdev | {statistics.stdev(latencies):.0f} | |")
    print("raw ms: " + ", ".join(f"{v:.0f}" for v in latencies))


if __name__ == "__main__":
    main()
