"""Bad input is one line and exit 2; an internal error is one line, exit 1 and a crash report.

Each case runs the real CLI in a subprocess and checks the exit code, that
stderr is a single line naming the problem and the fix, and that no Python
traceback reaches the user.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest
import yaml
from support.testkit import Cli, free_port, show

GRAPHS = """
from langgraph.graph import END, START, StateGraph
from mirograph.state.schema import RunState


def raises(ctx):
    raise RuntimeError("no model is configured for the verifier")


def compiled(ctx):
    graph = StateGraph(RunState)
    graph.add_node("answer", lambda state: {"answer": "x"})
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def nothing(ctx):
    pass


def no_entry(ctx):
    graph = StateGraph(RunState)
    graph.add_node("answer", lambda state: {"answer": "x"})
    return graph


def dangling(ctx):
    graph = StateGraph(RunState)
    graph.add_node("answer", lambda state: {"answer": "x"})
    graph.add_edge(START, "answer")
    graph.add_edge("answer", "nowhere")
    return graph
"""


def one_line(result, code: int) -> str:
    """The single stderr line of a command that must exit with ``code``."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def paused_run(cli: Cli, tmp_path: Path) -> str:
    """A stored run, paused because its model server is not there (no server needed)."""
    flow = {
        "name": "offline",
        "models": {"m": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "max_retries": 0}},
        "agents": {"main": {"model": "m", "max_turns": 3}},
        "entry": "main",
    }
    path = tmp_path / "offline.yaml"
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    result = cli("run", "Is anyone there?", "--flow", str(path), "--id", "held", "--store",
                 cli.store)  # fmt: skip
    assert result.returncode == 3, result.stderr
    return "held"


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("raises", "raises(ctx) raised RuntimeError: no model is configured for the verifier"
                   " (at graphs.py:7); fix the function"),
        ("compiled", "compiled(ctx) returned CompiledStateGraph, not a graph; return the"
                     " StateGraph itself"),
        ("nothing", "nothing(ctx) returned NoneType, not a graph"),
        ("no_entry", "no_entry(ctx) returned a graph that cannot run: ValueError: Graph must"
                     " have an entrypoint"),
        ("dangling", "dangling(ctx) returned a graph that cannot run: ValueError: Found edge"
                     " ending at unknown node `nowhere`"),
    ],
)  # fmt: skip
def test_a_broken_build_graph_is_one_line_and_nothing_is_stored(
    cli: Cli, tmp_path: Path, function: str, expected: str
) -> None:
    graphs = tmp_path / "graphs.py"
    graphs.write_text(GRAPHS, encoding="utf-8")
    result = cli("run", "q", "--flow", f"{graphs}:{function}", "--store", cli.store)
    line = one_line(result, 2)
    assert line.startswith(f"error: graph '{graphs}:{function}': ") and expected in line
    assert json.loads(cli("ls", "--store", cli.store, "--json").stdout) == []


def test_a_bad_export_path_is_one_line(cli: Cli, paused_run: str, tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    cases = {
        tmp_path: "it is a folder",
        tmp_path / "missing" / "out.jsonl": f"{tmp_path / 'missing'} does not exist",
        afile / "out.jsonl": f"{afile} is not a folder",
    }
    for output, problem in cases.items():
        result = cli("export", paused_run, "-o", str(output), "--store", cli.store)
        line = one_line(result, 2)
        assert line == (
            f"error: cannot write {output}: {problem};"
            " give -o a file path in an existing, writable folder"
        )
    good = cli("export", paused_run, "-o", str(tmp_path / "out.jsonl"), "--store", cli.store)
    assert good.returncode == 0 and (tmp_path / "out.jsonl").read_text().startswith("{")


def test_sim_model_on_a_bad_port_is_one_line(cli: Cli) -> None:
    policy = "mirograph.agents.sim.demo_policy:demo"
    for port in ("99999", "-1"):
        line = one_line(cli("sim-model", "--policy", policy, "--port", port), 2)
        assert line == (
            f"error: --port {port} is out of range 0-65535;"
            " choose another --port (0 picks a free one)"
        )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(cli("sim-model", "--policy", policy, "--port", str(port)), 2)
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert line.endswith("; choose another --port (0 picks a free one)")


def test_an_event_log_that_cannot_be_written_is_one_line_and_the_run_stays_resumable(
    cli: Cli, paused_run: str
) -> None:
    events = cli.home / "runs" / paused_run / "events.jsonl"
    events.unlink()
    events.mkdir()  # a folder where the log should be
    line = one_line(cli("resume", paused_run, "--store", cli.store), 2)
    assert line.startswith(f"error: cannot write the run's event log {events}: ")
    assert "set MIROGRAPH_HOME to a writable folder" in line
    assert show(cli, paused_run)["status"] == "paused"


def test_a_file_valued_mirograph_home_is_one_line_before_anything_is_stored(
    cli: Cli, tmp_path: Path
) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    for env, what in (({}, "is a file"), ({"MIROGRAPH_HOME": str(home / "sub")}, "is under")):
        env = {"MIROGRAPH_HOME": str(home), **env}
        line = one_line(cli("run", "q", "--store", store, env=env), 2)
        assert line.startswith(f"error: MIROGRAPH_HOME {env['MIROGRAPH_HOME']} {what}")
        assert line.endswith("; set MIROGRAPH_HOME to a writable folder")
    assert not (tmp_path / "runs.db").exists()


def test_an_internal_error_is_one_line_exit_1_with_a_crash_report(
    cli: Cli, paused_run: str
) -> None:
    with sqlite3.connect(cli.home / "runs.db") as db:  # a row no release ever wrote
        db.execute("UPDATE mirograph_runs SET usage = ?", (json.dumps({"main": 5}),))
    line = one_line(cli("ls", "--store", cli.store), 1)
    assert line.startswith("error: internal error (AttributeError: ")
    assert line.endswith("; please report it with that file")
    report = Path(line.split("details in ")[1].split(";")[0])
    assert report.parent == cli.home and report.name.startswith("crash-")
    text = report.read_text()
    assert "Traceback (most recent call last)" in text and "AttributeError" in text
    assert "command: " in text and " ls --store " in text


def test_an_argument_that_is_not_utf8_is_one_line(cli: Cli) -> None:
    """Bytes the locale cannot decode reach Python as lone surrogates, which no store,
    log or report can encode: refused before anything runs."""
    line = one_line(cli("run", "a\udcffb", "--store", cli.store), 2)
    assert line == (
        "error: argument 2 (a\\udcffb) is not valid UTF-8 text;"
        " pass questions, ids and values as UTF-8"
    )
    assert json.loads(cli("ls", "--store", cli.store, "--json").stdout) == []
