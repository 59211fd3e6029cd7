"""Sandboxed Python interpreters and shell commands, for the ``python`` tool set.

A sandbox is a directory plus, while it is in use, ONE long-lived Python
interpreter whose state (variables, imports) persists across calls. The
default sandbox's directory is the run workspace itself, so files written by
code are the files the ``files`` tools see; ``create_sandbox`` makes more
under ``<workspace>.sandboxes/<id>``, beside the workspace and never inside
any folder a sandbox can write (code in the default sandbox could otherwise
swap that folder for a link and steer the host's later file operations).
Sandbox ids are those directories, so they survive a resume; the default
sandbox leaves a marker, ``<workspace>.sandboxes/.default``, once it has had
an interpreter. A sandbox
that existed before this process (a resume) gets a new interpreter whose
first result says the Python state was reset; files are kept.

Protocol. The child is ``python -I -B -c STUB``. Both directions carry frames:
an ASCII decimal byte count, a newline, then that many bytes of UTF-8 JSON.
The host sends the server's source and settings first (the stub execs it),
the server answers ``{"ready": ...}`` once its limits are in place, then each
request (``{"code": ...}`` or ``{"command": ...}``) gets one reply
(``{"output", "stopped", "exit_code"}``). Requests arrive on the child's
stdin and replies leave on its stdout, both moved to private descriptors at
start; during a call, file descriptors 1 and 2 of the interpreter (and of
everything it starts) point at a fresh memfd, so ``print``, tracebacks and a
subprocess's output come back in order. When a call ends, every process it
left behind is killed (the server is a child subreaper, so none escapes by
double-forking), and the output is cut to ``max_output_chars`` (head and
tail, with a marker).

Isolation. With bubblewrap: a new pid, ipc, uts, cgroup (and, unless
``network``, net) namespace; an empty root holding read-only binds of
``/usr``, ``/etc``, the ``/bin``-style links and the interpreter's prefixes,
a fresh ``/proc`` and ``/dev``, a private ``/tmp`` tmpfs (sized like the
memory limit), and the sandbox directory as the only writable host path;
``--die-with-parent``, ``--new-session``; the environment is rebuilt from
nothing (PATH, HOME = the sandbox directory, LANG, ...) and bwrap itself is
started with that same scrubbed environment, so no host variable exists in
any process of the sandbox, ``/proc/1/environ`` included. Without bubblewrap
(``isolation: rlimits``, or ``auto`` when bwrap cannot run) the same
interpreter runs as a plain process with the same limits and environment,
and says so loudly: no filesystem or network isolation.

Limits, set by the server on itself before any sandboxed code runs:
RLIMIT_AS (memory), RLIMIT_FSIZE, RLIMIT_CORE = 0, RLIMIT_NPROC, and
RLIMIT_CPU (its soft limit is moved to "used so far + cpu_s" before each
call, so it is a per-call budget; the hard limit stays open for that, so code
could lift its own CPU limit, never the wall time); plus a wall-time limit
per call, enforced by the host: the interpreter's whole process tree is
killed and the next call starts a fresh one, saying so. Disk use inside the
sandbox folder is bounded per file (RLIMIT_FSIZE), not in total.

Processes as root. The kernel never applies RLIMIT_NPROC to uid 0, and a
sandbox running as host root could read root-only files. So when the engine
runs as root, the server drops to a per-sandbox unprivileged uid (derived
from the sandbox path, in ``[UID_BASE, UID_BASE + UID_SPAN)``), with
``no_new_privs``, before any sandboxed code runs: RLIMIT_NPROC then bounds
the processes of that sandbox. Bubblewrap is run privileged in that case
(no user namespace; its mount points' parents are made world-traversable),
and before each call the files of the sandbox directory that the host wrote
(owned by root) are handed to that uid, without following links. A
plain-process sandbox as root needs an interpreter that uid can run: the
engine's, else its real path, else ``python3`` from /usr/local/bin or /usr/bin
(which may lack the engine's packages). Without
root, bubblewrap adds a user namespace, in which RLIMIT_NPROC counts only the
sandbox's own processes; a plain-process sandbox then gets "the user's
current tasks + max_processes" (RLIMIT_NPROC is per user there) and, sharing
the engine's uid, could read the engine's ``/proc/<pid>/environ``: one more
reason that fallback is loud.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("mirograph.sandbox")

Isolation = Literal["auto", "bubblewrap", "rlimits"]
Backend = Literal["bubblewrap", "rlimits"]

DEFAULT_ID = "default"
SANDBOXES_DIR = "sandboxes"
DEFAULT_MARKER = ".default"
#: Per-sandbox unprivileged uids (and gids) used when the engine runs as root.
UID_BASE = 1_600_000_000
UID_SPAN = 100_000_000
#: The most files and folders handed over to a sandbox's uid per call.
MAX_ADOPT_ENTRIES = 200_000
START_TIMEOUT_S = 30.0
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

NOTE_FALLBACK = (
    "[sandbox: bubblewrap unavailable; running with resource limits only,"
    " no filesystem or network isolation]"
)
NOTE_RESET = (
    "[sandbox: new Python interpreter for an existing sandbox (the run was resumed);"
    " the Python state was reset (variables and imports are gone), files were kept]"
)
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SandboxError(Exception):
    """A one-line reason a sandbox call failed (the tool layer shows it to the model)."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 60.0
    cpu_s: int = 60
    memory_mb: int = 1024
    max_processes: int = 64
    max_file_mb: int = 100
    max_output_chars: int = 20_000
    network: bool = False


# --------------------------------------------------------------------------
# The server, run INSIDE the sandbox. Its source is sent to the child, so it
# must be self-contained (stdlib only, imports inside) and run on any Python 3.8+.
# --------------------------------------------------------------------------


def _sandbox_server(config: dict[str, Any]) -> None:  # pragma: no cover - runs in the child
    import ast
    import builtins
    import contextlib
    import ctypes
    import io
    import json
    import linecache
    import os
    import resource
    import signal
    import subprocess
    import sys
    import traceback
    import types

    # Protocol descriptors first; then 0, 1 and 2 point at /dev/null between calls.
    reader = os.fdopen(os.dup(0), "rb")
    reply_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)

    def send(message: dict) -> None:
        data = json.dumps(message).encode()
        buf = b"%d\n" % len(data) + data
        while buf:
            buf = buf[os.write(reply_fd, buf) :]

    def receive():
        line = reader.readline()
        if not line:
            return None
        return json.loads(reader.read(int(line)))

    def set_limit(which: int, soft: int, hard=None) -> None:
        _, current = resource.getrlimit(which)
        hard = soft if hard is None else hard
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))

    mb = 1024 * 1024
    set_limit(resource.RLIMIT_AS, config["memory_mb"] * mb)
    set_limit(resource.RLIMIT_FSIZE, config["max_file_mb"] * mb)
    set_limit(resource.RLIMIT_CORE, 0)
    set_limit(resource.RLIMIT_NPROC, config["nproc"])
    set_limit(resource.RLIMIT_CPU, config["cpu_s"], resource.RLIM_INFINITY)
    if config.get("uid") is not None:  # the engine is root: become the sandbox's own uid
        uid = config["uid"]
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise SystemExit("could not drop privileges")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: no setuid binary can regain anything
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans stay ours, to be stopped
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over max_file_mb: an error, not death

    me = os.getpid()
    max_chars = config["max_chars"]
    out = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        write_through=True,
    )
    err = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        write_through=True,
    )
    sys.stdout, sys.stderr = out, err
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.argv = [""]
    sys.path.insert(0, "")  # modules in the sandbox directory import like a script's
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    namespace = main.__dict__

    def descendants():
        parents = {}
        states = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parents.setdefault(int(fields[1]), []).append(int(name))
            states[int(name)] = fields[0]
        found, todo = [], [me]
        while todo:
            for child in parents.get(todo.pop(), ()):
                found.append(child)
                todo.append(child)
        return found, states

    def stop_leftovers() -> int:
        """Kill every process the call left behind; the number that were still running."""
        stopped = set()
        for _ in range(10_000):
            pids, states = descendants()
            if not pids:
                break
            stopped.update(p for p in pids if states.get(p) != b"Z")
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(-1, 0)
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                pass
        return len(stopped)

    def read_output(fd: int) -> str:
        size = os.fstat(fd).st_size
        if size <= 4 * max_chars:
            text = os.pread(fd, size, 0).decode("utf-8", "replace")
            if len(text) <= max_chars:
                return text
        tail_chars = max_chars // 4
        head_chars = max_chars - tail_chars
        head = os.pread(fd, 4 * head_chars, 0).decode("utf-8", "replace")[:head_chars]
        start = max(0, size - 4 * tail_chars)
        tail = os.pread(fd, 4 * tail_chars, start).decode("utf-8", "replace")
        tail = tail[-tail_chars:] if tail_chars else ""
        omitted = size - len(head.encode()) - len(tail.encode())
        return f"{head}\n[... output truncated: {omitted} bytes omitted ...]\n{tail}"

    def run_cell(code: str, number: int) -> None:
        name = f"<cell {number}>"
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        try:
            tree = ast.parse(code, name, "exec")
        except (SyntaxError, ValueError) as exc:
            err.write("".join(traceback.format_exception_only(type(exc), exc)))
            return
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        try:
            exec(compile(tree, name, "exec", dont_inherit=True), namespace)
            if last is not None:
                value = eval(compile(last, name, "eval", dont_inherit=True), namespace)
                if value is not None:
                    namespace["_"] = value
                    out.write(repr(value) + "\n")
        except BaseException as exc:  # the model sees every exception, SystemExit included
            if os.getpid() != me:  # a forked child of the cell: never back into the server
                os._exit(1)
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != name:
                tb = tb.tb_next
            err.write("".join(traceback.format_exception(type(exc), exc, tb)))
        finally:
            if os.getpid() != me:
                os._exit(0)

    def run_shell(command: str) -> int:
        return subprocess.call(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL)

    send({"ready": True, "pid": me, "python": sys.version.split()[0]})
    number = 0
    while True:
        request = receive()
        if request is None:
            os._exit(0)
        number += 1
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = int(usage.ru_utime + usage.ru_stime)
        set_limit(resource.RLIMIT_CPU, used + config["cpu_s"], resource.RLIM_INFINITY)
        capture = os.memfd_create("output", os.MFD_CLOEXEC)
        os.dup2(capture, 1)
        os.dup2(capture, 2)
        exit_code = None
        try:
            if "code" in request:
                run_cell(request["code"], number)
            else:
                exit_code = run_shell(request["command"])
        finally:
            sys.stdout, sys.stderr = out, err
            for stream in (out, err):
                with contextlib.suppress(Exception):
                    stream.flush()
            stopped = stop_leftovers()
            os.dup2(null, 1)
            os.dup2(null, 2)
        output = read_output(capture)
        os.close(capture)
        send({"output": output, "stopped": stopped, "exit_code": exit_code})
        if config["mode"] == "command":
            os._exit(0)


_STUB = (
    "import json,sys;r=sys.stdin.buffer;m=json.loads(r.read(int(r.readline())));"
    "exec(compile(m['source'],'<mirograph-sandbox>','exec'),"
    "{'__name__':'__mirograph_sandbox__','CONFIG':m['config']})"
)


@functools.cache
def _server_source() -> str:
    source = inspect.getsource(_sandbox_server)
    return f"from __future__ import annotations\n{source}\n_sandbox_server(CONFIG)\n"


# --------------------------------------------------------------------------
# Host side: which backend, how to start a child, how to stop one.
# --------------------------------------------------------------------------


def bwrap_executable() -> str | None:
    """The ``bwrap`` to use, or None (tests replace this to simulate its absence)."""
    return shutil.which("bwrap")


_probes: dict[tuple[str, int], str | None] = {}
_unprivileged_pythons: dict[int, str | None] = {}


def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot isolate a sandbox here, or None; checked once per process.

    Runs ``true`` in a sandbox built exactly like a real one. Blocking.
    """
    exe = bwrap_executable()
    if exe is None:
        return "bwrap is not installed"
    key = (exe, os.geteuid())
    if key not in _probes:
        with tempfile.TemporaryDirectory(prefix="mirograph-bwrap-probe-") as folder:
            true = shutil.which("true", path="/usr/bin:/bin") or "/bin/true"
            argv = [*_bwrap_args(exe, Path(folder), Limits(memory_mb=16)), "--", true]
            try:
                done = subprocess.run(
                    argv, env=_child_env(Path(folder)), capture_output=True, timeout=30
                )
            except (OSError, subprocess.SubprocessError) as exc:
                problem: str | None = f"{exe} could not run: {exc}"
            else:
                lines = done.stderr.decode(errors="replace").strip().splitlines()
                detail = lines[-1] if lines else f"exit status {done.returncode}"
                problem = None if done.returncode == 0 else f"{exe} failed: {detail}"
        _probes[key] = problem
    return _probes[key]


def _python_roots() -> list[Path]:
    """The folders the interpreter needs (its prefixes), as written and as resolved."""
    exe = Path(sys.executable)
    found: list[Path] = []
    for raw in (
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        str(exe.parent.parent),
        str(exe.resolve().parent.parent),
    ):
        for path in (Path(os.path.abspath(raw)), Path(raw).resolve()):
            if path.is_dir() and path not in found:
                found.append(path)
    return found


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _bwrap_args(exe: str, folder: Path, limits: Limits) -> list[str]:
    """bwrap's options for a sandbox on ``folder`` (everything before ``--``)."""
    args = [exe, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--hostname", "sandbox", "--die-with-parent", "--new-session"]
    if os.geteuid() != 0:
        args.append("--unshare-user")
    if not limits.network:
        args.append("--unshare-net")
    system = [Path("/usr"), Path("/etc")]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
            system.append(path)
    args += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]
    tmp_bytes = max(16, limits.memory_mb) * 1024 * 1024
    args += ["--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    mounts: list[tuple[str, Path]] = [
        ("--ro-bind", root)
        for root in _python_roots()
        if not any(_within(root, base) for base in system)
    ]
    if limits.network and Path("/run/systemd/resolve").is_dir():
        mounts.append(("--ro-bind", Path("/run/systemd/resolve")))  # resolv.conf may link here
    mounts.append(("--bind", folder))
    made = {Path("/"), Path("/tmp"), *system}
    bound: list[Path] = []
    for kind, path in sorted(mounts, key=lambda m: len(m[1].parts)):
        if kind == "--ro-bind" and any(_within(path, b) for b in bound):
            continue  # already visible through an earlier bind
        for parent in reversed(path.parents):  # world-traversable parents (bwrap makes 0700)
            if parent not in made and not any(_within(parent, b) for b in (*bound, *system)):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += [kind, str(path), str(path)]
        bound.append(path)
    args += ["--chdir", str(folder), "--clearenv"]
    for key, value in _child_env(folder).items():
        args += ["--setenv", key, value]
    return args


def _child_env(home: Path, python: str | None = None) -> dict[str, str]:
    """The whole environment of a sandbox: built from nothing, no host variable."""
    bin_dir = str(Path(python or sys.executable).parent)
    threads = str(min(4, os.cpu_count() or 1))
    return {
        "PATH": ":".join(dict.fromkeys([bin_dir, *SYSTEM_PATH.split(":")])),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "SHELL": "/bin/sh",
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }


def _sandbox_uid(folder: Path) -> int:
    return UID_BASE + zlib.crc32(str(folder).encode()) % UID_SPAN


def unprivileged_python() -> str | None:
    """An interpreter an unprivileged uid can run (for plain-process sandboxes as root)."""
    if UID_BASE not in _unprivileged_pythons:
        candidates = [sys.executable, os.path.realpath(sys.executable)]
        candidates += [shutil.which(n, path="/usr/local/bin:/usr/bin") or "" for n in ("python3",)]
        chosen = None
        for candidate in dict.fromkeys(c for c in candidates if c):
            try:
                done = subprocess.run(
                    [candidate, "-I", "-c", "import ctypes, json, resource"],
                    user=UID_BASE,
                    group=UID_BASE,
                    extra_groups=[],
                    cwd="/",
                    env=_child_env(Path("/"), candidate),
                    capture_output=True,
                    timeout=30,
                )
            except (OSError, subprocess.SubprocessError):
                continue
            if done.returncode == 0:
                chosen = candidate
                break
        _unprivileged_pythons[UID_BASE] = chosen
    return _unprivileged_pythons[UID_BASE]


def _proc_table() -> dict[int, tuple[int, bytes]]:
    """Every process: pid -> (parent pid, state)."""
    table: dict[int, tuple[int, bytes]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            table[int(name)] = (int(fields[1]), fields[0])
    return table


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants that exist now (zombies included)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found = [root] if root in table else []
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that can still run (not gone, not a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in (b"Z", b"X")


def _kill_tree(root: int) -> list[int]:
    """SIGKILL ``root`` and everything under it; the pids signalled. Blocking but quick.

    ``root`` is frozen first: it is a subreaper (or a namespace's parent), so
    its descendants' orphans stay under it until all are dead.
    """
    signalled: list[int] = []
    with contextlib.suppress(OSError):
        os.kill(root, signal.SIGSTOP)
    for _ in range(1000):
        victims = [p for p in process_tree(root) if p != root and alive(p)]
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        signalled += victims
    with contextlib.suppress(OSError):
        os.kill(root, signal.SIGKILL)
    return [root, *signalled]


def _adopt(folder: Path, uid: int, skip: frozenset[str]) -> None:
    """Give the files under ``folder`` that the host wrote (root-owned) to ``uid``.

    Descriptor-relative and never following a link; a file with several hard
    links is left alone (it could be a link planted to a file outside).
    """

    def wants(st: os.stat_result) -> bool:
        foreign = UID_BASE <= st.st_uid < UID_BASE + UID_SPAN and st.st_uid != uid
        return st.st_uid == 0 or foreign

    dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    file_flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    budget = [MAX_ADOPT_ENTRIES]

    def walk(dir_fd: int, depth: int, top: bool) -> None:
        with os.scandir(dir_fd) as entries:
            names = [
                (e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False))
                for e in entries
            ]
        for name, is_dir, is_file in names:
            if (top and name in skip) or budget[0] <= 0 or not (is_dir or is_file):
                continue
            budget[0] -= 1
            try:
                fd = os.open(name, dir_flags if is_dir else file_flags, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if stat.S_ISDIR(st.st_mode):
                    if wants(st):
                        os.fchown(fd, uid, uid)
                    if depth < 64:
                        walk(fd, depth + 1, False)
                elif stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and wants(st):
                    os.fchown(fd, uid, uid)
            except OSError:
                pass
            finally:
                os.close(fd)

    top_fd = os.open(folder, dir_flags)
    try:
        if wants(os.fstat(top_fd)):
            os.fchown(top_fd, uid, uid)
        walk(top_fd, 0, True)
    finally:
        os.close(top_fd)


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    tail = max_chars // 4
    head = max_chars - tail
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[... output truncated: {omitted} characters omitted ...]\n" + (
        text[-tail:] if tail else ""
    )


def _exit_reason(code: int | None, limits: Limits) -> str:
    """Why a child ended, in words (bwrap reports a signal as 128 + its number)."""
    if code is None:
        return "stopped unexpectedly"
    number = -code if code < 0 else code - 128 if 128 < code < 160 else 0
    if number == signal.SIGXCPU:
        return f"ran past the CPU time limit of {limits.cpu_s} s and was stopped"
    if number == signal.SIGKILL:
        return "was killed (often the memory or process limit)"
    if number:
        name = signal.Signals(number).name if number in signal.valid_signals() else number
        return f"was killed by signal {name}"
    return f"exited with status {code}"


class _Child:
    """One sandbox process speaking the frame protocol."""

    def __init__(self, proc: asyncio.subprocess.Process, limits: Limits) -> None:
        self.proc = proc
        self.limits = limits
        self.pid = proc.pid  # host pid of bwrap, or of the interpreter itself

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        data = json.dumps(message).encode()
        self.proc.stdin.write(b"%d\n" % len(data) + data)
        await self.proc.stdin.drain()

    async def receive(self) -> dict[str, Any] | None:
        """The next frame, or None when the child has gone."""
        assert self.proc.stdout is not None
        try:
            line = await self.proc.stdout.readline()
            if not line:
                return None
            size = int(line)
            if not 0 <= size <= 8 * self.limits.max_output_chars + 65_536:
                raise ValueError(size)
            message = json.loads(await self.proc.stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            return None
        return message if isinstance(message, dict) else None

    async def call(self, request: dict[str, Any]) -> dict[str, Any] | None:
        try:
            await self.send(request)
        except (ConnectionError, RuntimeError):
            return None
        return await self.receive()

    async def death(self) -> str:
        """Why the child ended (after ``receive`` saw it go)."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.kill()
            code = await self.proc.wait()
        stderr = b""
        if self.proc.stderr is not None:
            with contextlib.suppress(TimeoutError):
                stderr = await asyncio.wait_for(self.proc.stderr.read(4096), 1)
        lines = stderr.decode(errors="replace").strip().splitlines()
        reason = _exit_reason(code, self.limits)
        return f"{reason} ({lines[-1][:300]})" if lines and code not in (0, None) else reason

    def kill(self) -> list[int]:
        """Stop the whole process tree now; the pids signalled."""
        return _kill_tree(self.pid)

    async def close(self) -> None:
        pids = self.kill()
        with contextlib.suppress(ProcessLookupError):
            await self.proc.wait()
        for _ in range(500):  # the tree's processes are gone within moments of SIGKILL
            if not any(alive(p) for p in pids):
                break
            await asyncio.sleep(0.01)


@dataclass
class _Sandbox:
    id: str
    path: Path
    #: It existed before this process touched it (a resume): its first interpreter says so.
    inherited: bool
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    interpreter: _Child | None = None
    #: Why the last interpreter was stopped; the next one's first result says it.
    lost: str | None = None
    started: bool = False


class SandboxManager:
    """The sandboxes of one run: ids, interpreters, isolation, cleanup."""

    def __init__(
        self,
        workspace: Path,
        limits: Limits,
        isolation: Isolation = "auto",
        on_first_start: Callable[[], None] | None = None,
    ) -> None:
        self.workspace = Path(os.path.abspath(workspace))
        self.limits = limits
        self.isolation = isolation
        self._on_first_start = on_first_start
        self._sandboxes: dict[str, _Sandbox] = {}
        self._backend: Backend | None = None
        self._noted_fallback = False
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- ids ---------------------------------------------------------------

    @property
    def root(self) -> Path:
        """Where sandbox folders live: beside the workspace, out of every sandbox's reach."""
        return self.workspace.parent / f"{self.workspace.name}.{SANDBOXES_DIR}"

    def _default(self) -> _Sandbox:
        box = self._sandboxes.get(DEFAULT_ID)
        if box is None:
            inherited = (self.root / DEFAULT_MARKER).exists()
            box = self._sandboxes[DEFAULT_ID] = _Sandbox(DEFAULT_ID, self.workspace, inherited)
        return box

    def lookup(self, sandbox_id: str | None) -> tuple[_Sandbox, str | None]:
        """The sandbox for ``sandbox_id`` and a note when an unknown id fell back to default.

        ``None``/placeholders mean the default sandbox; ids are folders, so one
        made before a resume is found again.
        """
        if sandbox_id is None or sandbox_id == DEFAULT_ID:
            return self._default(), None
        box = self._sandboxes.get(sandbox_id)
        if box is not None:
            return box, None
        path = self.root / sandbox_id
        if ID_PATTERN.fullmatch(sandbox_id) and path.is_dir() and not path.is_symlink():
            box = self._sandboxes[sandbox_id] = _Sandbox(sandbox_id, path, inherited=True)
            return box, None
        note = f"[sandbox: there is no sandbox {sandbox_id!r}; used the default sandbox]"
        return self._default(), note

    async def create(self) -> str:
        """A new sandbox's id (its folder exists; its interpreter starts on first use)."""
        await self._notes(None)
        while True:
            sandbox_id = f"sbx-{secrets.token_hex(4)}"
            path = self.root / sandbox_id
            try:
                await asyncio.to_thread(self._make_root)
                await asyncio.to_thread(path.mkdir)
            except FileExistsError:
                continue
            except OSError as exc:
                raise SandboxError(f"cannot create {path}: {exc.strerror or exc}") from None
            self._sandboxes[sandbox_id] = _Sandbox(sandbox_id, path, inherited=False)
            return sandbox_id

    def _make_root(self) -> None:
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)

    # -- backend -----------------------------------------------------------

    @property
    def backend(self) -> Backend | None:
        """The isolation in use, once decided (on first use)."""
        return self._backend

    async def _ensure_backend(self) -> Backend:
        if self._backend is None:
            if self.isolation == "rlimits":
                self._backend = "rlimits"
            else:
                problem = await asyncio.to_thread(bubblewrap_problem)
                if problem is None:
                    self._backend = "bubblewrap"
                elif self.isolation == "bubblewrap":
                    raise SandboxError(
                        f"isolation 'bubblewrap' was asked for, but bubblewrap cannot run here:"
                        f" {problem}"
                    )
                else:
                    self._backend = "rlimits"
                    log.warning(
                        "python sandbox: bubblewrap unavailable (%s); running with resource"
                        " limits only, no filesystem or network isolation",
                        problem,
                    )
            if self._backend == "rlimits" and self.isolation == "rlimits":
                log.warning(
                    "python sandbox: isolation 'rlimits': resource limits only,"
                    " no filesystem or network isolation"
                )
            log.info(
                "python sandbox isolation: %s (network %s)",
                self._backend,
                "on" if self.limits.network else "off",
            )
        return self._backend

    def _fallback_note(self) -> list[str]:
        if self._backend == "rlimits" and not self._noted_fallback:
            self._noted_fallback = True
            return [NOTE_FALLBACK]
        return []

    async def notes_for_first_result(self) -> list[str]:
        """The one-time isolation note, for a result that starts no process."""
        await self._ensure_backend()
        return self._fallback_note()

    # -- processes ---------------------------------------------------------

    async def _spawn(self, box: _Sandbox, mode: str) -> _Child:
        backend = await self._ensure_backend()
        folder = box.path
        await self._prepared(box)
        root = os.geteuid() == 0
        python = sys.executable
        if backend == "rlimits" and root:
            python = await asyncio.to_thread(unprivileged_python) or ""
            if not python:
                raise SandboxError(
                    "no Python interpreter here can run as an unprivileged user;"
                    " install Python system-wide or use bubblewrap"
                )
        if backend == "bubblewrap":
            exe = bwrap_executable()
            if exe is None:
                raise SandboxError("bubblewrap is no longer installed")
            argv = [*_bwrap_args(exe, folder, self.limits), "--"]
            nproc = self.limits.max_processes + (0 if root else 1)  # + bwrap's own init
        else:
            argv = []
            nproc = self.limits.max_processes
            if not root:  # RLIMIT_NPROC counts all of the user's tasks here
                nproc += await asyncio.to_thread(_tasks_of, os.getuid())
        argv += [python, "-I", "-B", "-c", _STUB]
        config = {
            "mode": mode,
            "cpu_s": self.limits.cpu_s,
            "memory_mb": self.limits.memory_mb,
            "max_file_mb": self.limits.max_file_mb,
            "nproc": nproc,
            "uid": _sandbox_uid(folder) if root else None,
            "max_chars": self.limits.max_output_chars,
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=_child_env(folder, python),
                cwd=folder,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"could not start the sandbox: {exc}") from None
        child = _Child(proc, self.limits)
        if self._on_first_start is not None:
            callback, self._on_first_start = self._on_first_start, None
            callback()
        try:
            await child.send({"source": _server_source(), "config": config})
            ready = await asyncio.wait_for(
                child.receive(), max(START_TIMEOUT_S, self.limits.timeout_s)
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            ready = None
        except BaseException:  # cancelled while starting: leave nothing behind
            self._retire(child)
            raise
        if not ready or not ready.get("ready"):
            if proc.returncode is None and ready is not None:
                child.kill()
            reason = await child.death()
            await child.close()
            raise SandboxError(f"the sandbox could not start: it {reason}")
        return child

    async def _prepared(self, box: _Sandbox) -> None:
        try:
            await asyncio.to_thread(self._prepare, box)
        except OSError as exc:
            raise SandboxError(
                f"cannot prepare the sandbox folder {box.path}: {exc.strerror or exc}"
            ) from None

    def _prepare(self, box: _Sandbox) -> None:
        """Create the sandbox folder; as root, hand the host's files in it to its uid."""
        self._make_root()
        box.path.mkdir(parents=True, exist_ok=True)
        if box.id == DEFAULT_ID:
            marker = self.root / DEFAULT_MARKER
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
            os.close(os.open(marker, flags, 0o600))
        if os.geteuid() == 0:
            _adopt(box.path, _sandbox_uid(box.path), frozenset())

    async def _interpreter(self, box: _Sandbox, notes: list[str]) -> _Child:
        if box.interpreter is not None and box.interpreter.proc.returncode is None:
            await self._prepared(box)
            return box.interpreter
        if box.interpreter is not None:  # died between calls (e.g. a CPU limit in a thread)
            reason = await box.interpreter.death()
            await box.interpreter.close()
            box.interpreter = None
            box.lost = box.lost or f"it {reason} between calls"
        child = await self._spawn(box, "interpreter")
        if box.lost:
            notes.append(
                f"[sandbox: the Python interpreter was restarted because {box.lost};"
                " variables and imports were lost, files were kept]"
            )
        elif box.inherited and not box.started:
            notes.append(NOTE_RESET)
        box.interpreter, box.lost, box.started = child, None, True
        return child

    def _discard(self, box: _Sandbox, why: str) -> None:
        """Kill the interpreter now (no await: safe while being cancelled)."""
        child, box.interpreter = box.interpreter, None
        box.lost = why
        if child is not None:
            self._retire(child)

    async def run_python(self, code: str, sandbox_id: str | None) -> str:
        box, note = self.lookup(sandbox_id)
        async with box.lock:
            notes = await self._notes(note)
            child = await self._interpreter(box, notes)
            limit = self.limits.timeout_s
            try:
                reply = await asyncio.wait_for(child.call({"code": code}), limit)
            except TimeoutError:
                self._discard(box, f"the previous call ran past the {limit:g} s time limit")
                raise SandboxError(
                    f"the code ran past the {limit:g} s time limit and was stopped; the Python"
                    " interpreter restarts on the next call (variables are lost, files are kept)"
                ) from None
            except asyncio.CancelledError:
                self._discard(box, "the previous call was cancelled")
                raise
            if reply is None:
                reason = await child.death()
                self._discard(box, f"the previous call's interpreter {reason}")
                raise SandboxError(
                    f"the Python interpreter {reason}; it restarts on the next call"
                    " (variables are lost, files are kept)"
                )
            return self._result(notes, reply)

    async def run_command(self, command: str, sandbox_id: str | None) -> str:
        box, note = self.lookup(sandbox_id)
        async with box.lock:
            notes = await self._notes(note)
            child = await self._spawn(box, "command")
            limit = self.limits.timeout_s
            try:
                reply = await asyncio.wait_for(child.call({"command": command}), limit)
            except TimeoutError:
                self._retire(child)
                raise SandboxError(
                    f"the command ran past the {limit:g} s time limit and was stopped"
                ) from None
            except asyncio.CancelledError:
                self._retire(child)
                raise
            if reply is None:
                reason = await child.death()
                self._retire(child)
                raise SandboxError(f"the command's sandbox {reason}")
            self._retire(child)
            result = self._result(notes, reply)
            code = reply.get("exit_code")
            if code:
                result = f"{result.rstrip()}\n[exit code: {code}]".lstrip("\n")
            return result

    async def _notes(self, note: str | None) -> list[str]:
        if self._closed:
            raise SandboxError("the run's sandboxes are closed")
        await self._ensure_backend()
        return [*self._fallback_note(), *([note] if note else [])]

    def _retire(self, child: _Child) -> None:
        """Stop ``child``'s tree now and reap it in the background (awaited by aclose)."""
        child.kill()
        task = asyncio.get_running_loop().create_task(child.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _result(self, notes: list[str], reply: dict[str, Any]) -> str:
        output = _truncate(str(reply.get("output", "")), self.limits.max_output_chars)
        stopped = reply.get("stopped") or 0
        if stopped:
            output = (
                f"{output.rstrip()}\n[sandbox: stopped {stopped} process(es) the code left"
                " running; processes do not outlive a call]"
            ).lstrip("\n")
        return "\n".join([*notes, output]) if notes else output

    def host_pids(self) -> list[int]:
        """Host pids of the live interpreters' process trees (for checks and tests)."""
        pids: list[int] = []
        for box in self._sandboxes.values():
            if box.interpreter is not None:
                pids += process_tree(box.interpreter.pid)
        return pids

    async def aclose(self) -> None:
        """Stop every interpreter and wait until their processes are gone."""
        self._closed = True
        children = [b.interpreter for b in self._sandboxes.values() if b.interpreter]
        for box in self._sandboxes.values():
            box.interpreter = None
        await asyncio.gather(*(c.close() for c in children), *self._closing)


def _tasks_of(uid: int) -> int:
    """How many tasks (threads) ``uid`` runs now: what RLIMIT_NPROC counts."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total
