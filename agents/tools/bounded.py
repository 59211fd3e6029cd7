"""CPU-bound work of a tool, off the event loop, with a hard time limit.

Turning a hostile web page or PDF into text, or indexing a corpus, can take
minutes of pure computation. On the event loop that freezes every run of the
process (and the tool's own timeout cannot fire); in a thread it cannot be
stopped. So the work runs in a worker process that is killed when its time is
up. A worker is a fresh interpreter (``python -m`` this module) that imports
the tool modules before it reports ready, so their import time does not count
against a job's limit; it is kept for reuse while it behaves and replaced when
one is killed. It is not a ``multiprocessing`` child: those re-run the
parent's ``__main__`` (a CLI, a notebook, stdin) and fork a threaded process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import functools
import importlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from langchain_core.tools import ToolException

__all__ = ["Exited", "in_daemon_thread", "run_bounded", "run_bounded_sync"]

T = TypeVar("T")

#: Modules a worker imports before it reports ready.
PRELOAD = ("mirograph.agents.tools.scrape", "mirograph.agents.tools.local")
#: Idle workers kept for reuse; more are started when more work runs at once.
MAX_IDLE = max(2, os.cpu_count() or 2)
#: Seconds a new worker may take to start and import ``PRELOAD``.
START_S = 120.0
#: ``prctl`` option: the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1
_idle: list[_Worker] = []
_idle_lock = threading.Lock()


class Exited(Exception):
    """Work that raised ``SystemExit``, ``KeyboardInterrupt`` or another non-``Exception``.

    Handed to a coroutine as is, such an exception passes every ``except
    Exception`` and asyncio re-raises it out of the loop: one tool calling
    ``sys.exit(3)`` would end the process (exit code 3 means "paused"). As an
    ordinary exception it is a failure of that work only.
    """

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        code = f" {exc.code}" if isinstance(exc, SystemExit) and exc.code is not None else ""
        super().__init__(f"the tool exited ({type(exc).__name__}{code})")


async def run_bounded(fn: Callable[..., T], *args: Any, limit_s: float, what: str) -> T:
    """``fn(*args)`` in a worker process, stopped after ``limit_s`` seconds.

    ``fn`` must be importable by name (a module-level function) and its
    arguments and result picklable. An exception it raises is raised here; a
    worker killed for time, or one that died, is a one-line ``ToolException``
    naming ``what``. Cancelling the caller kills the worker at once.
    """
    job = _Job(fn, args, limit_s)
    try:
        outcome = await in_daemon_thread(job.run)
    except asyncio.CancelledError:
        job.cancel()
        raise
    return _result(outcome, limit_s, what)


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a daemon thread (reused: ``_DaemonThreads``), awaited without
    holding the loop.

    Unlike an executor's threads, a daemon thread is neither waited for by
    ``asyncio.run`` nor joined at interpreter exit, so work that never ends
    (a sync tool past its timeout) cannot keep the process from exiting, and
    it takes no thread from the loop's default executor. A ``BaseException``
    that is not an ``Exception`` (``sys.exit()`` in the work) comes back as
    ``Exited``, so that it cannot end the loop.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # the caller may have been cancelled meanwhile
            outcome()

    def target() -> None:
        try:
            result = fn(*args)
        except Exception as exc:  # handed to the awaiting coroutine
            report = functools.partial(settle, functools.partial(future.set_exception, exc))
        except BaseException as exc:  # SystemExit in a thread must not stop the loop
            exited = Exited(exc).with_traceback(exc.__traceback__)
            report = functools.partial(settle, functools.partial(future.set_exception, exited))
        else:
            report = functools.partial(settle, functools.partial(future.set_result, result))
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(report)

    _DAEMONS.submit(target)
    return await future


class _DaemonThreads:
    """Daemon threads kept for reuse. Starting a thread makes the caller wait until
    the new thread has run, and a new thread goes straight on to its work, holding
    the GIL: the loop stood still for most of a sync tool's call (~1 ms a turn).
    An idle thread takes the next job at once; one stuck in a job never comes back,
    so a new thread is started whenever none is idle."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # that thread is now spoken for
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._serve, daemon=True, name="mirograph-sync-tool").start()

    def _serve(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


_DAEMONS = _DaemonThreads()


def run_bounded_sync(fn: Callable[..., T], *args: Any, limit_s: float, what: str) -> T:
    """``run_bounded`` for code already in a thread: blocks it (never the loop) until done."""
    return _result(_Job(fn, args, limit_s).run(), limit_s, what)


def _result(outcome: tuple[str, Any], limit_s: float, what: str) -> Any:
    kind, value = outcome
    if kind == "ok":
        return value
    if kind == "error":
        raise value
    if kind == "timeout":
        raise ToolException(f"{what} took longer than {limit_s:g} s and was stopped")
    raise ToolException(f"{what} failed: its worker process died ({value})")


class _Job:
    """One call: takes a worker, waits at most ``limit_s`` for its answer."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], limit_s: float) -> None:
        self.fn, self.args, self.limit_s = fn, args, limit_s
        self.worker: _Worker | None = None
        self.cancelled = threading.Event()

    def run(self) -> tuple[str, Any]:
        if self.cancelled.is_set():
            return "cancelled", "cancelled before it started"
        try:
            worker = self.worker = _take()
        except (EOFError, OSError) as exc:
            return "died", f"it did not start: {exc}"
        if self.cancelled.is_set():  # cancelled while the worker started
            worker.kill()
            return "cancelled", "cancelled before it started"
        try:
            worker.conn.send((self.fn, self.args))
        except (EOFError, OSError):
            worker.kill()
            return "died", f"exit code {worker.exitcode}"
        except Exception as exc:  # the job does not pickle; the worker is untouched
            _give(worker)
            return "error", exc
        try:
            if not worker.conn.poll(self.limit_s):
                worker.kill()
                return "timeout", None
            outcome, value = worker.conn.recv()
        except (EOFError, OSError):
            worker.kill()
            return "died", f"exit code {worker.exitcode}"
        _give(worker)
        return outcome, value

    def cancel(self) -> None:
        """Called from the loop: only signal the worker; the waiting thread cleans up."""
        self.cancelled.set()
        if self.worker is not None:
            self.worker.signal_kill()


class _Worker:
    """A child interpreter that runs jobs sent down its socket, one at a time."""

    def __init__(self) -> None:
        self.conn, child = Pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(child.fileno()), str(os.getpid()), *PRELOAD],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        child.close()
        if not self.conn.poll(START_S) or self.conn.recv() != "ready":
            self.kill()
            raise EOFError("the worker did not start")

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_kill(self) -> None:
        """SIGKILL (the work may be stuck in C code); safe from any thread."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def kill(self) -> None:
        """Stop the worker and release it; only the thread that holds the worker calls it."""
        self.signal_kill()
        self.process.wait()
        self.conn.close()


def _take() -> _Worker:
    with _idle_lock:
        while _idle:
            worker = _idle.pop()
            if worker.alive():
                return worker
            worker.kill()
    return _spawn()


_spawns: queue.SimpleQueue[concurrent.futures.Future[_Worker]] = queue.SimpleQueue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawn() -> _Worker:
    """A new worker, started by one thread that lives as long as the process.

    A worker asks the kernel to kill it when its parent dies, and Linux takes
    the parent to be the *thread* that started it: one started by a job's
    short-lived thread would be killed as soon as that job ended.
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_spawn_forever, daemon=True, name="mirograph-spawn")
            _spawner.start()
    made: concurrent.futures.Future[_Worker] = concurrent.futures.Future()
    _spawns.put(made)
    return made.result()


def _spawn_forever() -> None:
    while True:
        made = _spawns.get()
        try:
            made.set_result(_Worker())
        except BaseException as exc:
            made.set_exception(exc)


def _give(worker: _Worker) -> None:
    with _idle_lock:
        if len(_idle) < MAX_IDLE:
            _idle.append(worker)
            return
    worker.kill()


def _serve(conn: Connection) -> None:
    """The worker's loop: run each job sent, send back ("ok", result) or ("error", exc)."""
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except Exception as exc:
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result or exception
            conn.send(("error", ToolException(f"{type(exc).__name__}: {exc}")))


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL the worker when its parent dies (killed -9 mid-job, say).

    A watching thread would need the GIL, which a job in C code (a regex) can
    hold for hours. Where ``prctl`` is missing (not Linux), a thread watches.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # it died before the request was made
                os._exit(1)
            return
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        threading.Event().wait(1.0)
    os._exit(1)


def main(argv: list[str]) -> None:
    conn = Connection(int(argv[0]))
    _die_with_parent(int(argv[1]))
    for module in argv[2:]:
        importlib.import_module(module)
    conn.send("ready")
    _serve(conn)


if __name__ == "__main__":
    main(sys.argv[1:])
