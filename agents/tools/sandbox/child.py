"""The server that runs INSIDE a sandbox, and the helpers the host shares with it.

The host sends this module's whole source into the child (the sandbox cannot
import mirograph), so it is self-contained: standard library only, nothing of
mirograph, and valid on any Python 3.8+ (a plain-process sandbox as root may run
the system's ``python3``). The host imports the shared helpers from here, so
each rule exists once.

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

Limits, set by the server on itself before any sandboxed code runs:
RLIMIT_AS (memory), RLIMIT_FSIZE, RLIMIT_CORE = 0, RLIMIT_NPROC, and
RLIMIT_CPU (its soft limit is moved to "used so far + cpu_s" before each
call, so it is a per-call budget; the hard limit stays open for that, so code
could lift its own CPU limit, never the wall time, which the host enforces).
When the engine runs as root, the server also drops to the sandbox's own uid,
with ``no_new_privs``.
"""

# Host-side twins of what runs here (the host modules are in this package):
# - frames: ``encode_frame`` is used on both sides. Reading stays apart: the
#   child reads blocking (``serve``), the STUB reads the first frame inline (it
#   must be one line), the host reads asynchronously with a size bound
#   (``processes.ChildProcess.receive``).
# - the process tree: ``proc_table`` and ``descendants`` are used on both sides
#   (host: ``processes.process_tree``).
# - stopping processes stays apart: the child, a subreaper and their parent,
#   kills its leftovers and reaps them with waitpid (``stop_leftovers``); the
#   host cannot reap what is not its child, so it freezes the tree's root
#   first (``processes.kill_tree``).
# - output truncation: ``head_tail`` and ``truncated`` are used on both sides;
#   the child cuts the bytes of its capture memfd without reading them all
#   (``read_output``), the host cuts the text it got (``limits.truncate``).
# - limits: the child sets its rlimits and drops its uid itself; the host only
#   computes them (``isolation.sandbox_uid``, the manager's config).

from __future__ import annotations

import json
import os
from typing import Any

#: The child's whole command-line program: read one frame (the server's source and
#: settings) from stdin and exec it.
STUB = (
    "import json,sys;r=sys.stdin.buffer;m=json.loads(r.read(int(r.readline())));"
    "exec(compile(m['source'],'<mirograph-sandbox>','exec'),"
    "{'__name__':'__mirograph_sandbox__','CONFIG':m['config']})"
)


def encode_frame(message: dict[str, Any]) -> bytes:
    """One protocol frame: the JSON body's byte count in ASCII decimal, a newline, the body."""
    data = json.dumps(message).encode()
    return b"%d\n" % len(data) + data


def proc_table() -> dict[int, tuple[int, bytes]]:
    """Every process now: pid -> (parent pid, state letter), read from ``/proc``."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(name)] = (int(fields[1]), fields[0])
    return table


def descendants(root: int, table: dict[int, tuple[int, bytes]]) -> list[int]:
    """The pids under ``root`` in ``table`` (``root`` itself not included)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def head_tail(max_chars: int) -> tuple[int, int]:
    """How much of a cut output is kept from its start and from its end."""
    tail = max_chars // 4
    return max_chars - tail, tail


def truncated(head: str, tail: str, omitted: int, unit: str) -> str:
    """The kept ``head`` and ``tail`` of an output, around a marker saying what is gone."""
    return f"{head}\n[... output truncated: {omitted} {unit} omitted ...]\n{tail}"


def serve(config: dict[str, Any]) -> None:  # pragma: no cover - runs in the child
    """Set the limits, then answer requests until stdin closes (the host's STUB runs this)."""
    import ast
    import builtins
    import contextlib
    import ctypes
    import io
    import linecache
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
        buf = encode_frame(message)
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

    def stop_leftovers() -> int:
        """Kill every process the call left behind; the number that were still running."""
        stopped = set()
        for _ in range(10_000):
            table = proc_table()
            pids = descendants(me, table)
            if not pids:
                break
            stopped.update(p for p in pids if table[p][1] != b"Z")
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
        head_chars, tail_chars = head_tail(max_chars)
        head = os.pread(fd, 4 * head_chars, 0).decode("utf-8", "replace")[:head_chars]
        start = max(0, size - 4 * tail_chars)
        tail = os.pread(fd, 4 * tail_chars, start).decode("utf-8", "replace")
        tail = tail[-tail_chars:] if tail_chars else ""
        omitted = size - len(head.encode()) - len(tail.encode())
        return truncated(head, tail, omitted, "bytes")

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
