"""Host-side isolation of a sandbox: bubblewrap's arguments, the environment, the uid.

With bubblewrap: a new pid, ipc, uts, cgroup (and, unless ``network``, net)
namespace; an empty root holding read-only binds of ``/usr``, ``/etc``, the
``/bin``-style links and the interpreter's prefixes, a fresh ``/proc`` and
``/dev``, a private ``/tmp`` tmpfs (sized like the memory limit), and the
sandbox directory as the only writable host path; ``--die-with-parent``,
``--new-session``; the environment is rebuilt from nothing (PATH, HOME = the
sandbox directory, LANG, ...) and bwrap itself is started with that same
scrubbed environment, so no host variable exists in any process of the
sandbox, ``/proc/1/environ`` included. Without bubblewrap (``isolation:
rlimits``, or ``auto`` when bwrap cannot run) the same interpreter runs as a
plain process with the same limits and environment, and says so loudly: no
filesystem or network isolation.

Processes as root. The kernel never applies RLIMIT_NPROC to uid 0, and a
sandbox running as host root could read root-only files. So when the engine
runs as root, the server drops to a per-sandbox unprivileged uid
(``sandbox_uid``: derived from the sandbox path, in ``[UID_BASE, UID_BASE +
UID_SPAN)``), with ``no_new_privs``, before any sandboxed code runs:
RLIMIT_NPROC then bounds the processes of that sandbox. Bubblewrap is run
privileged in that case (no user namespace; its mount points' parents are
made world-traversable), and before each call the files of the sandbox
directory that the host wrote (owned by root) are handed to that uid, without
following links (``adopt``). A plain-process sandbox as root needs an
interpreter that uid can run: the engine's, else its real path, else
``python3`` from /usr/local/bin or /usr/bin (which may lack the engine's
packages). Without root, bubblewrap adds a user namespace, in which
RLIMIT_NPROC counts only the sandbox's own processes; a plain-process sandbox
then gets "the user's current tasks + max_processes" (RLIMIT_NPROC is per
user there) and, sharing the engine's uid, could read the engine's
``/proc/<pid>/environ``: one more reason that fallback is loud.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Literal

from mirograph.agents.tools.sandbox.limits import Limits

Isolation = Literal["auto", "bubblewrap", "rlimits"]
Backend = Literal["bubblewrap", "rlimits"]

#: Per-sandbox unprivileged uids (and gids) used when the engine runs as root.
UID_BASE = 1_600_000_000
UID_SPAN = 100_000_000
#: The most files and folders handed over to a sandbox's uid per call.
MAX_ADOPT_ENTRIES = 200_000
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
            argv = [*bwrap_args(exe, Path(folder), Limits(memory_mb=16)), "--", true]
            try:
                done = subprocess.run(
                    argv, env=child_env(Path(folder)), capture_output=True, timeout=30
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


def bwrap_args(exe: str, folder: Path, limits: Limits) -> list[str]:
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
    for key, value in child_env(folder).items():
        args += ["--setenv", key, value]
    return args


def child_env(home: Path, python: str | None = None) -> dict[str, str]:
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


def sandbox_uid(folder: Path) -> int:
    """The unprivileged uid (and gid) of the sandbox on ``folder`` when the engine is root."""
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
                    env=child_env(Path("/"), candidate),
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


def adopt(folder: Path, uid: int, skip: frozenset[str]) -> None:
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
