"""``sandbox.isolation``: bubblewrap's arguments, a real bwrap run, the uid, file hand-over.

bubblewrap is installed where these tests run (``bubblewrap_problem`` is None).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from mirograph.agents.tools.sandbox.isolation import (
    UID_BASE,
    UID_SPAN,
    adopt,
    bubblewrap_problem,
    bwrap_args,
    bwrap_executable,
    child_env,
    sandbox_uid,
)
from mirograph.agents.tools.sandbox.limits import Limits

ROOT = os.geteuid() == 0


def bwrap() -> str:
    exe = bwrap_executable()
    assert exe is not None and bubblewrap_problem() is None
    return exe


def operands(args: list[str], option: str, count: int) -> list[tuple[str, ...]]:
    """The ``count`` arguments after each ``option`` in ``args``."""
    return [tuple(args[i + 1 : i + 1 + count]) for i, a in enumerate(args) if a == option]


def test_the_arguments_isolate_everything_but_the_sandbox_folder(tmp_path: Path) -> None:
    folder = tmp_path / "box"
    args = bwrap_args(bwrap(), folder, Limits(memory_mb=256))
    assert args[0] == bwrap_executable()
    for namespace in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"):
        assert namespace in args
    assert "--die-with-parent" in args and "--new-session" in args
    # As root bwrap runs privileged (the server drops to the sandbox's uid itself);
    # otherwise a user namespace.
    assert ("--unshare-user" in args) is not ROOT
    read_only = operands(args, "--ro-bind", 2)
    assert ("/usr", "/usr") in read_only and ("/etc", "/etc") in read_only
    assert operands(args, "--bind", 2) == [(str(folder), str(folder))]  # the one writable path
    assert operands(args, "--chdir", 1) == [(str(folder),)]
    assert operands(args, "--size", 1) == [(str(256 * 2**20),)]  # the private /tmp
    assert operands(args, "--tmpfs", 1) == [("/tmp",)]
    # The environment is rebuilt from nothing.
    assert args.index("--clearenv") < args.index("--setenv")
    assert dict(operands(args, "--setenv", 2)) == child_env(folder)


def test_network_on_keeps_the_host_network(tmp_path: Path) -> None:
    args = bwrap_args(bwrap(), tmp_path, Limits(network=True))
    assert "--unshare-net" not in args


def test_the_environment_holds_no_host_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "sk-test-secret")
    env = child_env(tmp_path, "/opt/python/bin/python3")
    assert env["HOME"] == str(tmp_path)
    assert env["PATH"].split(":")[0] == "/opt/python/bin"  # the sandbox's interpreter first
    assert "TAVILY_API_KEY" not in env and "sk-test-secret" not in env.values()
    assert set(env) >= {"PATH", "HOME", "LANG", "TMPDIR", "PYTHONUNBUFFERED"}


def test_a_real_bwrap_run_sees_a_read_only_system_and_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "sk-test-secret")
    folder = tmp_path / "box"
    folder.mkdir()
    private = f"mirograph-test-{uuid.uuid4().hex}"
    script = (
        "touch /usr/mirograph-probe 2>/dev/null && echo usr-writable || echo usr-read-only\n"
        "echo written > written.txt\n"
        f"echo private > /tmp/{private}\n"
        "echo home=$HOME\n"
        "env | grep -c TAVILY || true\n"
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '\n"
    )
    argv = [*bwrap_args(bwrap(), folder, Limits()), "--", "/bin/sh", "-c", script]
    done = subprocess.run(
        argv, env=child_env(folder), capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.splitlines() == ["usr-read-only", f"home={folder}", "0", "lo"]
    assert (folder / "written.txt").read_text() == "written\n"  # the sandbox folder is shared
    assert not Path("/tmp", private).exists()  # /tmp is the sandbox's own


def test_each_sandbox_folder_has_its_own_stable_uid(tmp_path: Path) -> None:
    uid = sandbox_uid(tmp_path / "a")
    assert UID_BASE <= uid < UID_BASE + UID_SPAN
    assert sandbox_uid(tmp_path / "a") == uid
    assert sandbox_uid(tmp_path / "b") != uid


def test_adopt_hands_the_hosts_files_to_the_sandbox_uid(tmp_path: Path) -> None:
    """As root (the engine's case for adopt): root's files and other sandboxes' files go
    to the sandbox's uid; links are never followed, hard-linked files and other users'
    files are left alone. Without root nothing here belongs to root, so nothing changes."""
    folder, outside = tmp_path / "box", tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    (folder / "skipped").mkdir()
    outside.mkdir()
    for path in (folder / "host.txt", folder / "sub" / "inner.txt", outside / "target.txt"):
        path.write_text("x")
    (folder / "link").symlink_to(outside / "target.txt")
    os.link(outside / "target.txt", folder / "hardlink.txt")
    me = os.geteuid()
    other_box, stranger = UID_BASE + 1, 4321
    if ROOT:
        (folder / "other_box.txt").write_text("x")
        os.chown(folder / "other_box.txt", other_box, other_box)
        (folder / "stranger.txt").write_text("x")
        os.chown(folder / "stranger.txt", stranger, stranger)
    uid = sandbox_uid(folder)

    adopt(folder, uid, frozenset({"skipped"}))

    def owner(path: Path) -> int:
        return path.lstat().st_uid

    handed = uid if ROOT else me
    assert owner(folder) == handed
    assert owner(folder / "sub") == handed
    assert owner(folder / "host.txt") == handed
    assert owner(folder / "sub" / "inner.txt") == handed
    assert owner(folder / "skipped") == me  # named in skip, at the top
    assert owner(folder / "link") == me and owner(outside / "target.txt") == me
    assert owner(folder / "hardlink.txt") == me
    if ROOT:
        assert owner(folder / "other_box.txt") == uid
        assert owner(folder / "stranger.txt") == stranger
