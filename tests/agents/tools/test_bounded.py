"""``run_bounded``: CPU-bound work in a worker process, killed when its time is up."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from langchain_core.tools import ToolException

from mirograph.agents.tools import bounded
from mirograph.agents.tools.bounded import run_bounded


def spin() -> None:
    """Pure computation that never ends (holds the GIL, as a regex engine would)."""
    while True:
        pass


def tell_then_spin(path: Path) -> None:
    path.write_text(str(os.getpid()))
    spin()


def worker_pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


async def test_a_result_comes_back_from_another_process() -> None:
    assert await run_bounded(sum, [1, 2, 3], limit_s=60, what="adding") == 6
    assert await run_bounded(worker_pid, limit_s=60, what="asking") != os.getpid()


async def test_an_exception_is_raised_in_the_caller() -> None:
    with pytest.raises(ValueError, match="bad input"):
        await run_bounded(fail, "bad input", limit_s=60, what="failing")


async def test_work_past_its_limit_is_killed_and_the_loop_keeps_running() -> None:
    await run_bounded(worker_pid, limit_s=60, what="warming up")  # a warm worker waits
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    with pytest.raises(ToolException) as info:
        await run_bounded(spin, limit_s=0.5, what="spinning")
    elapsed = time.monotonic() - started
    ticking.cancel()
    assert str(info.value) == "spinning took longer than 0.5 s and was stopped"
    assert 0.5 <= elapsed < 10
    assert ticks >= 10
    assert all(worker.alive() for worker in bounded._idle)  # the killed one is not reused


async def test_cancelling_the_caller_kills_the_worker(tmp_path: Path) -> None:
    said = tmp_path / "pid"
    task = asyncio.create_task(run_bounded(tell_then_spin, said, limit_s=600, what="spinning"))
    deadline = time.monotonic() + 60
    while not said.exists() or not said.read_text():  # the worker has begun the job
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.01)
    pid = int(said.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cancelled = time.monotonic()
    while not _dead(pid):  # killed at once, not when the 600 s limit is up
        assert time.monotonic() - cancelled < 10
        await asyncio.sleep(0.01)


def _dead(pid: int) -> bool:
    """Gone, or a zombie its parent has yet to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


ORPHAN_SCRIPT = """
import asyncio, sys
from pathlib import Path
from mirograph.agents.tools.bounded import run_bounded
from tests_bounded_jobs import tell_then_hold_the_gil

asyncio.run(run_bounded(tell_then_hold_the_gil, Path(sys.argv[1]), limit_s=600, what="regex"))
"""

JOBS = """
import os, re

def tell_then_hold_the_gil(path):
    path.write_text(str(os.getpid()))
    re.match(r"(a+)+$", "a" * 60 + "b")  # backtracks for ages without releasing the GIL
"""


def test_a_worker_dies_with_its_parent_even_while_its_job_holds_the_gil(
    tmp_path: Path,
) -> None:
    """Its watching thread needed the GIL: a parent killed -9 left it computing for hours."""
    (tmp_path / "tests_bounded_jobs.py").write_text(JOBS)
    said = tmp_path / "pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(said)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not said.exists() or not said.read_text():  # the job has begun
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.01)  # polled, with a deadline
        worker = int(said.read_text())
    finally:
        parent.kill()
        parent.wait()
    killed = time.monotonic()
    try:
        while not _dead(worker):
            assert time.monotonic() - killed < 10, "the worker outlived its parent"
            time.sleep(0.01)  # polled, with a deadline
    finally:
        if not _dead(worker):
            os.kill(worker, signal.SIGKILL)


async def test_a_worker_outlives_the_thread_that_started_it() -> None:
    """The kernel's parent-death signal follows the starting *thread*: not a job's."""
    first = await run_bounded(worker_pid, limit_s=60, what="asking")
    deadline = time.monotonic() + 30
    while any(t.name == "mirograph-run" for t in threading.enumerate()):  # the job's thread
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert not _dead(first)
    assert await run_bounded(worker_pid, limit_s=60, what="asking") == first
