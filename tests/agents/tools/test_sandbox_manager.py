"""``sandbox.manager``: sandbox ids and folders, and its errors' place in the error tree.

What a call does through the manager is tested through the python tool
(``test_python.py``); these are the parts that start no interpreter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mirograph.agents.tools.sandbox import Limits, SandboxError, SandboxManager
from mirograph.errors import MirographError, ToolError


def test_a_sandbox_error_is_a_tool_error() -> None:
    assert issubclass(SandboxError, ToolError) and issubclass(SandboxError, MirographError)
    assert SandboxError.exit_code == 1


async def test_ids_are_folders_beside_the_workspace(tmp_path: Path) -> None:
    manager = SandboxManager(tmp_path / "ws", Limits())
    assert manager.root == tmp_path / "ws.sandboxes"  # out of every sandbox's reach
    default, note = manager.lookup(None)
    assert (default.id, default.path, note) == ("default", tmp_path / "ws", None)
    assert manager.lookup("default") == (default, None)

    created = await manager.create()
    assert created.startswith("sbx-") and (manager.root / created).is_dir()
    box, note = manager.lookup(created)
    assert (box.path, box.inherited, note) == (manager.root / created, False, None)
    await manager.aclose()


def test_a_folder_from_before_a_resume_is_found_again(tmp_path: Path) -> None:
    manager = SandboxManager(tmp_path / "ws", Limits())
    (manager.root / "sbx-0001").mkdir(parents=True)
    box, note = manager.lookup("sbx-0001")
    assert (box.path, box.inherited, note) == (manager.root / "sbx-0001", True, None)


@pytest.mark.parametrize("sandbox_id", ["sbx-missing", "../ws", ".default"])
def test_an_unknown_id_falls_back_to_the_default_with_a_note(
    tmp_path: Path, sandbox_id: str
) -> None:
    manager = SandboxManager(tmp_path / "ws", Limits())
    (manager.root / ".default").mkdir(parents=True)
    box, note = manager.lookup(sandbox_id)
    assert box.id == "default"
    assert note == f"[sandbox: there is no sandbox {sandbox_id!r}; used the default sandbox]"


async def test_a_closed_manager_refuses_calls(tmp_path: Path) -> None:
    manager = SandboxManager(tmp_path / "ws", Limits())
    await manager.aclose()
    with pytest.raises(SandboxError, match=r"^the run's sandboxes are closed$"):
        await manager.run_python("1", None)
