"""``sandbox.processes``: the host's view of a real process tree, and stopping it.

Processes are waited for with pidfds (readable once a process has ended), never
with sleeps.
"""

from __future__ import annotations

import ast
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from mirograph.agents.tools.sandbox.processes import (
    alive,
    kill_tree,
    process_tree,
    server_source,
    tasks_of,
)

#: A root that forks a child that forks a grandchild; child and grandchild print their
#: pids, and all three wait forever.
TREE = """
import os, signal
if os.fork() == 0:
    if os.fork() == 0:
        print(os.getpid(), flush=True)
    else:
        print(os.getpid(), flush=True)
        os.wait()
    signal.pause()
else:
    os.wait()
"""


def ended(pid_fd: int) -> bool:
    """Whether the process behind ``pid_fd`` ends within 10 s."""
    ready, _, _ = select.select([pid_fd], [], [], 10)
    return bool(ready)


@pytest.fixture
def tree() -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """A real three-process tree: (root, [child, grandchild]); killed afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", TREE], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    below = [int(proc.stdout.readline()) for _ in range(2)]
    yield proc, below
    if proc.poll() is None:  # never signal a pid that may have been reused
        kill_tree(proc.pid)
        proc.wait()


def test_process_tree_finds_every_descendant(
    tree: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, below = tree
    found = process_tree(proc.pid)
    assert found[0] == proc.pid
    assert sorted(found) == sorted([proc.pid, *below])
    assert all(alive(pid) for pid in found)


def test_kill_tree_stops_the_root_and_everything_under_it(
    tree: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, below = tree
    pid_fds = [os.pidfd_open(pid) for pid in (proc.pid, *below)]
    try:
        signalled = kill_tree(proc.pid)
        assert signalled[0] == proc.pid and sorted(signalled) == sorted([proc.pid, *below])
        assert all(ended(fd) for fd in pid_fds)
    finally:
        for fd in pid_fds:
            os.close(fd)
    assert not any(alive(pid) for pid in (proc.pid, *below))
    proc.wait()
    assert process_tree(proc.pid) == []


def test_a_zombie_is_in_the_tree_but_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-I", "-c", "pass"])
    pid_fd = os.pidfd_open(proc.pid)
    try:
        assert ended(pid_fd)  # exited, not yet reaped: a zombie
    finally:
        os.close(pid_fd)
    assert proc.pid in process_tree(os.getpid())
    assert not alive(proc.pid)
    proc.wait()
    assert proc.pid not in process_tree(os.getpid())
    assert not alive(proc.pid)


def test_tasks_of_counts_threads() -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        # Other processes of this uid may come and go; these three threads are counted.
        assert tasks_of(os.getuid()) >= threading.active_count()
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_the_server_source_is_the_child_module_then_its_call() -> None:
    source = server_source()
    assert source.rstrip().endswith("\nserve(CONFIG)")
    tree = ast.parse(source, feature_version=(3, 8))  # a system python3 may be old
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
