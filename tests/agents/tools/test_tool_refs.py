"""Tool references: built-in sets and ``package.module:attribute`` import paths."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from langchain_core.tools import BaseTool

from mirograph.agents.tools.base import ToolContext, server_of
from mirograph.agents.tools.tool_refs import BUILTIN_SETS, ToolRefError, check_ref, resolve_tools

HELPER = '''
from langchain_core.tools import tool


@tool
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


@tool
def whisper(text: str) -> str:
    """Lower-case the text."""
    return text.lower()


@tool
def pinned(text: str) -> str:
    """A tool that names its own server."""
    return text


pinned.metadata = {"mcp_server": "my-server"}

PAIR = [shout, whisper]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def undocumented(a: int) -> int:
    return a


NUMBER = 42
MIXED = [shout, 42]


@tool
def read_file(path: str) -> str:
    """Clashes with the built-in files tool of the same name."""
    return path
'''


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ToolContext(run_id="r1", workspace=ws)


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package ``mg_helpers`` with module ``mg_helpers.texttools`` on sys.path."""
    root = tmp_path / "site"
    package = root / "mg_helpers"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "texttools.py").write_text(textwrap.dedent(HELPER))
    monkeypatch.syspath_prepend(str(root))
    return "mg_helpers.texttools"


def _names(tools: list[BaseTool]) -> list[str]:
    return [t.name for t in tools]


def test_builtin_files(ctx: ToolContext) -> None:
    assert "files" in BUILTIN_SETS
    check_ref("files")
    tools = resolve_tools(["files"], ctx)
    assert sorted(_names(tools)) == ["download_file", "list_files", "read_file", "write_file"]
    assert {server_of(t) for t in tools} == {"tool-files"}


def test_import_path_to_one_tool(ctx: ToolContext, helper: str) -> None:
    check_ref(f"{helper}:shout")
    [tool] = resolve_tools([f"{helper}:shout"], ctx)
    assert tool.name == "shout"
    assert tool.metadata is not None
    assert tool.metadata["mcp_server"] == "texttools"
    assert tool.invoke({"text": "hi"}) == "HI"


def test_resolving_does_not_change_the_module_tool(ctx: ToolContext, helper: str) -> None:
    import importlib

    resolve_tools([f"{helper}:shout"], ctx)
    original = importlib.import_module(helper).shout
    assert not (original.metadata or {}).get("mcp_server")


def test_import_path_to_a_list_of_tools(ctx: ToolContext, helper: str) -> None:
    tools = resolve_tools([f"{helper}:PAIR"], ctx)
    assert _names(tools) == ["shout", "whisper"]
    assert [server_of(t) for t in tools] == ["texttools", "texttools"]


def test_import_path_to_a_plain_function(ctx: ToolContext, helper: str) -> None:
    check_ref(f"{helper}:add")
    [tool] = resolve_tools([f"{helper}:add"], ctx)
    assert isinstance(tool, BaseTool)
    assert tool.name == "add"
    assert "Add two integers" in tool.description
    assert server_of(tool) == "texttools"
    assert tool.invoke({"a": 2, "b": 3}) == 5


def test_tool_that_names_its_server_keeps_it(ctx: ToolContext, helper: str) -> None:
    [tool] = resolve_tools([f"{helper}:pinned"], ctx)
    assert server_of(tool) == "my-server"


def test_several_refs_in_order(ctx: ToolContext, helper: str) -> None:
    tools = resolve_tools(["files", f"{helper}:add", f"{helper}:PAIR"], ctx)
    assert _names(tools)[4:] == ["add", "shout", "whisper"]
    assert [server_of(t) for t in tools] == ["tool-files"] * 4 + ["texttools"] * 3


def test_top_level_module_server_name(
    ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    (root / "mg_flat_tools.py").write_text(textwrap.dedent(HELPER))
    monkeypatch.syspath_prepend(str(root))
    [tool] = resolve_tools(["mg_flat_tools:whisper"], ctx)
    assert server_of(tool) == "mg_flat_tools"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("nonexistent.mod:x", r"cannot import module 'nonexistent\.mod'"),
        ("os:nothing", r"module 'os' has no attribute 'nothing'"),
        (
            "no_colon",
            r"unknown tool 'no_colon'.*built-in set \(files, .*, search\)"
            r".*package\.module:attribute",
        ),
        (":x", r"unknown tool ':x'"),
        ("os:", r"unknown tool 'os:'"),
        ("os:sep", r"'os:sep' is a str, not a tool, list of tools or function"),
    ],
)
def test_bad_refs(ctx: ToolContext, ref: str, expected: str) -> None:
    with pytest.raises(ToolRefError, match=expected) as info:
        check_ref(ref)
    assert "\n" not in str(info.value)
    with pytest.raises(ToolRefError, match=expected):
        resolve_tools([ref], ctx)


def test_non_callable_attribute_of_helper(ctx: ToolContext, helper: str) -> None:
    with pytest.raises(ToolRefError, match="is a int, not a tool"):
        check_ref(f"{helper}:NUMBER")
    with pytest.raises(ToolRefError, match="is a int, not a tool"):
        resolve_tools([f"{helper}:MIXED"], ctx)


def test_plain_function_without_docstring(ctx: ToolContext, helper: str) -> None:
    ref = f"{helper}:undocumented"
    with pytest.raises(ToolRefError, match=r"undocumented.*docstring") as info:
        check_ref(ref)
    assert "\n" not in str(info.value)
    with pytest.raises(ToolRefError, match="docstring"):
        resolve_tools([ref], ctx)


def test_duplicate_tool_names(ctx: ToolContext, helper: str) -> None:
    with pytest.raises(ToolRefError, match="'shout'") as info:
        resolve_tools([f"{helper}:shout", f"{helper}:PAIR"], ctx)
    message = str(info.value)
    assert f"{helper}:shout" in message
    assert f"{helper}:PAIR" in message


def test_duplicate_with_a_builtin(ctx: ToolContext, helper: str) -> None:
    with pytest.raises(ToolRefError, match="'read_file'") as info:
        resolve_tools(["files", f"{helper}:read_file"], ctx)
    assert "files" in str(info.value)


def test_same_ref_twice(ctx: ToolContext) -> None:
    with pytest.raises(ToolRefError, match="defined twice"):
        resolve_tools(["files", "files"], ctx)


# -- tool modules that break on import, and modules beside the flow file ---------------


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        (
            "mg_broken_syntax",
            "def f(:\n    pass\n",
            r"syntax error at .*mg_broken_syntax\.py:1: .*fix the module",
        ),
        (
            "mg_broken_raises",
            "X = 1\nraise RuntimeError('no config\\nsecond line')\n",
            r"importing tool module 'mg_broken_raises' failed at .*mg_broken_raises\.py:2:"
            r" RuntimeError: no config; fix the module",
        ),
        (
            "mg_broken_dependency",
            "import mg_missing_dependency_xyz\n",
            r"no module 'mg_missing_dependency_xyz'.*PYTHONPATH",
        ),
        (  # would end `mirograph run` silently with exit 0
            "mg_broken_exits",
            "import sys\nsys.exit(0)\n",
            r"'mg_broken_exits' failed at .*mg_broken_exits\.py:2: SystemExit: 0; fix the module",
        ),
        (
            "mg_broken_interrupts",
            "raise KeyboardInterrupt\n",
            r"'mg_broken_interrupts' failed at .*: KeyboardInterrupt: \(no message\)",
        ),
    ],
)
def test_a_broken_tool_module_is_one_line(
    ctx: ToolContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    source: str,
    expected: str,
) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    (root / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ToolRefError, match=expected) as info:
        check_ref(f"{name}:f")
    assert "\n" not in str(info.value)
    with pytest.raises(ToolRefError, match=expected):
        resolve_tools([f"{name}:f"], ctx)


def test_a_module_beside_the_flow_is_found_without_pythonpath(
    ctx: ToolContext, tmp_path: Path
) -> None:
    folder = tmp_path / "flowdir"
    folder.mkdir()
    (folder / "mg_beside_tools.py").write_text(textwrap.dedent(HELPER))
    with pytest.raises(ToolRefError, match="cannot import module 'mg_beside_tools'"):
        check_ref("mg_beside_tools:shout")
    check_ref("mg_beside_tools:shout", search_dir=folder)
    [tool] = resolve_tools(["mg_beside_tools:shout"], ctx, search_dir=str(folder))
    assert tool.name == "shout"
    assert str(folder) not in sys.path  # on the path for the import only
