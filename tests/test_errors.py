"""One error tree, each node with its exit code, and the command line that exits by it.

An error of the tree exits with its node's code and one line; anything else
(a bare ``ValueError`` included) is a bug: exit 1, a crash report, never 2.
"""

from __future__ import annotations

import importlib
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from support.testkit import Cli

from mirograph import errors
from mirograph.errors import (
    BrokerUnavailableError,
    BrokerURLError,
    ContextOverflowError,
    DatasetError,
    EventLogError,
    FlowBuildError,
    FlowError,
    InternalError,
    LeaseLostError,
    MalformedResponseError,
    MirographError,
    MissingBlobError,
    ModelCallError,
    ModelServerError,
    ModelUnavailableError,
    PolicySpecError,
    RetryLaterError,
    RunBusyError,
    RunFailedError,
    RunNotFoundError,
    RunStateError,
    StoreUnavailableError,
    StoreURLError,
    TaskFailedError,
    ToolError,
    ToolRefError,
    UserInputError,
)
from mirograph.state.registry import RunRecord, SqliteRunRegistry

NODES = {
    UserInputError: 2,
    RunStateError: 2,
    StoreUnavailableError: 3,
    BrokerUnavailableError: 3,
    ModelServerError: 3,
    ToolError: 1,
    RunFailedError: 1,
    InternalError: 1,
}

LEAVES = {
    FlowError: UserInputError,
    FlowBuildError: UserInputError,
    ToolRefError: UserInputError,
    StoreURLError: UserInputError,
    EventLogError: UserInputError,
    PolicySpecError: UserInputError,
    BrokerURLError: UserInputError,
    DatasetError: UserInputError,
    RunNotFoundError: RunStateError,
    RunBusyError: RunStateError,
    LeaseLostError: RunBusyError,
    ModelCallError: ModelServerError,
    ModelUnavailableError: ModelCallError,
    MalformedResponseError: ModelUnavailableError,
    RetryLaterError: ModelUnavailableError,
    ContextOverflowError: ModelCallError,
    TaskFailedError: RunFailedError,
    MissingBlobError: InternalError,
}

#: Where each class was defined before the tree: still importable there, one class.
OLD_HOMES = {
    "mirograph.flows.loader": "FlowError",
    "mirograph.graphs.builder": "FlowBuildError",
    "mirograph.agents.tools.tool_refs": "ToolRefError",
    "mirograph.state.store": "StoreURLError",
    "mirograph.state.events": "EventLogError",
    "mirograph.state.leases": "RunBusyError",
    "mirograph.state.blobs": "MissingBlobError",
    "mirograph.flows.runner": "RunFailedError",
}


@pytest.mark.parametrize(("node", "code"), NODES.items(), ids=lambda v: getattr(v, "__name__", v))
def test_each_node_is_a_mirograph_error_with_its_exit_code(
    node: type[MirographError], code: int
) -> None:
    assert node.__bases__ == (MirographError,)
    assert node.exit_code == code


@pytest.mark.parametrize(("leaf", "parent"), LEAVES.items(), ids=lambda v: v.__name__)
def test_each_public_error_sits_under_its_node(
    leaf: type[MirographError], parent: type[MirographError]
) -> None:
    assert leaf.__bases__ == (parent,)
    node = next(n for n in NODES if issubclass(leaf, n))
    assert leaf.exit_code == NODES[node]


def test_every_class_in_the_module_is_in_the_tree_and_none_is_a_builtin_kind() -> None:
    classes = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    assert classes == {MirographError, *NODES, *LEAVES}
    for cls in classes:  # an ``except ValueError`` must never mistake one for bad input
        assert not issubclass(cls, (ValueError, LookupError, RuntimeError, OSError)), cls


@pytest.mark.parametrize(("module", "name"), OLD_HOMES.items())
def test_a_module_that_raises_an_error_gives_the_one_definition(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_the_messages_are_kept() -> None:
    assert str(RunNotFoundError("r1")) == "no run 'r1' in this store; `mirograph ls` lists run ids"
    assert RunNotFoundError("r1").run_id == "r1"
    later = RetryLaterError("http://h:9/v1", "HTTP 429", float("inf"))
    assert str(later) == (
        "model server at http://h:9/v1 asked to retry after an unbounded time (HTTP 429);"
        " resume later"
    )
    assert later.retry_after == float("inf") and not later.retryable
    assert str(MalformedResponseError("http://h:9/v1", "no choices")) == (
        "model server at http://h:9/v1 sent a malformed response: no choices;"
        " check its logs, then resume"
    )


def run_python(cli: Cli, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=cli.environ(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_errors_and_the_light_commands_load_no_engine(cli: Cli) -> None:
    """``--help``, ``ls`` and ``pause`` answer at once: classifying a failure by the
    tree must not import LangGraph, LangChain or the OpenAI client."""
    code = """
import sys
import mirograph.errors
ours = sorted(m for m in sys.modules if m.startswith("mirograph"))
assert ours == ["mirograph", "mirograph.errors"], ours
from mirograph.flows.cli import app
for args in (["--help"], ["ls"], ["pause", "nope"]):
    try:
        app(args, prog_name="mirograph")
    except SystemExit:
        pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("langgraph", "langchain",
               "langchain_core", "openai"))
print(heavy)
"""
    done = run_python(cli, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


#: ``mirograph ls`` with its store raising the named exception.
LS_RAISING = """
import builtins, sys
from mirograph import errors
import mirograph.flows.runs as runs
from mirograph.flows.cli import app

async def list_runs(**_):
    raise {**vars(builtins), **vars(errors)}[sys.argv[1]]("the store says no")

runs.list_runs = list_runs
app(["ls"], prog_name="mirograph")
"""


@pytest.mark.parametrize(
    "node", [n for n in NODES if n is not InternalError], ids=lambda n: n.__name__
)
def test_an_error_of_the_tree_exits_with_its_code_and_one_line(
    cli: Cli, node: type[MirographError]
) -> None:
    done = run_python(cli, LS_RAISING, node.__name__)
    assert done.returncode == node.exit_code
    assert done.stderr == "error: the store says no\n"
    assert not list(cli.home.glob("crash-*"))


@pytest.mark.parametrize("name", ["InternalError", "ValueError", "LookupError"])
def test_anything_else_is_a_bug_exit_1_with_a_crash_report(cli: Cli, name: str) -> None:
    done = run_python(cli, LS_RAISING, name)
    assert done.returncode == 1
    report = crash_report(done.stderr, f"{name}: the store says no")
    assert f"{name}: the store says no" in report.read_text()


def test_a_value_error_from_a_broken_store_row_is_a_bug_not_bad_input(cli: Cli) -> None:
    """Before the tree, any ``ValueError`` exited 2 as bad input: here a JSON column
    that no release writes (``JSONDecodeError`` is a ``ValueError``)."""
    path = cli.home / "runs.db"
    cli.home.mkdir(parents=True, exist_ok=True)
    registry = SqliteRunRegistry(path)
    try:
        registry.create(RunRecord("r1", "q", "single-agent", {}, "paused"))
    finally:
        registry.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE mirograph_runs SET usage = 'not json'")
    done = cli("ls", "--store", cli.store)
    assert done.returncode == 1
    crash_report(done.stderr, "JSONDecodeError: Expecting value")


def test_a_policy_spec_that_does_not_load_is_bad_input(cli: Cli) -> None:
    done = cli("sim-model", "--policy", "nonsense")
    assert done.returncode == 2
    assert done.stderr == (
        "error: invalid policy spec 'nonsense': expected 'module:function' optionally"
        " followed by '?key=value&...'\n"
    )


def crash_report(stderr: str, what: str) -> Path:
    """The crash report named by the one line of a bug."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: internal error ({what}")
    assert lines[0].endswith("; please report it with that file")
    report = Path(lines[0].split("details in ")[1].split(";")[0])
    assert "Traceback (most recent call last)" in report.read_text()
    return report
