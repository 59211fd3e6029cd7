"""The date in the system prompts is the run's first day, kept across resumes.

A sub-agent first started after a resume on a later day (or on another machine)
is told the date its run began, like the agents before it: the date comes from
the run's record, not from the clock of the session that builds the graph.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from support.team_policy import team

from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import get_run, resume_run, run_date, start_run
from mirograph.graphs.run_control import RunControl
from mirograph.state.store import open_store

TODAY = re.compile(r"Today is: (\d{4}-\d{2}-\d{2})")
FIRST_DAY = datetime(2020, 1, 2, 12, 0)


def team_flow(base_url: str) -> Any:
    return validate_flow(
        {
            "name": "team",
            "models": {"m": {"base_url": base_url, "max_tokens": 512}},
            "agents": {
                "planner": {"model": "m", "role": "main", "sub_agents": ["browsing"]},
                "browsing": {"model": "m", "max_turns": 2, "tools": ["support.team_tools:lookup"]},
            },
            "entry": "planner",
        }
    )


async def test_a_sub_agent_started_after_a_resume_is_told_the_runs_first_day(
    home: Path, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(lambda body: team(body, browsing=2)) as srv:
        flow = team_flow(srv.base_url)
        control = RunControl()
        control.request_pause("stop before the first model call")
        paused = await start_run(
            "Compare alpha.", flow, run_id="dated", store_url=store, control=control
        )
        assert paused.status == "paused"
        assert not srv.requests  # the planner rendered its prompt, nobody was asked yet
        # As if the run had begun on FIRST_DAY and were resumed today.
        with sqlite3.connect(tmp_path / "runs.db") as db:
            db.execute("UPDATE mirograph_runs SET run_date = '2020-01-02' WHERE id = 'dated'")
        done = await resume_run("dated", store_url=store)
        assert done.status == "completed", done.reason
        browsing = [
            b for b in srv.requests if "You are a browsing agent" in b["messages"][0]["content"]
        ]
    assert browsing, "the planner delegated"
    assert {TODAY.search(b["messages"][0]["content"])[1] for b in browsing} == {"2020-01-02"}


async def test_a_run_is_stored_with_the_day_it_was_created_and_an_older_one_uses_its_time(
    home: Path, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(lambda body: team(body, browsing=1)) as srv:
        control = RunControl()
        control.request_pause("stop at once")
        await start_run(
            "Compare.", team_flow(srv.base_url), run_id="new", store_url=store, control=control
        )
    with sqlite3.connect(tmp_path / "runs.db") as db:
        [(stored,)] = db.execute("SELECT run_date FROM mirograph_runs WHERE id = 'new'")
        assert stored == datetime.now().date().isoformat()
        # A run stored before the column: its creation time's date.
        db.execute(
            "UPDATE mirograph_runs SET run_date = NULL, created_at = ? WHERE id = 'new'",
            (FIRST_DAY.timestamp(),),
        )
    async with open_store(store) as opened:
        assert run_date(get_run(opened, "new")) == "2020-01-02"
