"""Real Redis and PostgreSQL servers that a test starts, stops, kills and restarts.

Each server is a child process of the test, on a free port of 127.0.0.1, with its
files in a folder of its own, so a test can SIGKILL it and start it again on the same
port and data, and see what a crashed store or broker does to mirograph against the
real thing. The servers that a machine may already run (PostgreSQL on 5432, Redis on
6379) are never used: a test that kills its server must not kill anyone else's.

Binaries are looked up on ``PATH``, then in ``/usr/lib/postgresql/<N>/bin`` (highest
``N`` first), where Debian puts PostgreSQL's server programs, off ``PATH``. A missing
one raises :class:`ServerUnavailable` with one line naming the Debian package, which
``.ci/install-system-deps`` installs: the fixtures turn it into a failure, never a skip.

Readiness is a real request, polled up to a deadline, that only this server can answer
so (Redis's ``INFO`` gives its process id, PostgreSQL's ``SHOW data_directory`` its
folder: a server whose port another one holds must not look ready). A server that
exits or misses the deadline raises :class:`ServerUnavailable` naming its log file.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self, TypeVar

import psycopg
import pytest
import redis

from support.testkit import free_port

#: Where Debian installs each PostgreSQL major version's server programs.
POSTGRESQL_LIB = Path("/usr/lib/postgresql")
#: The script that installs the system packages the test suite needs.
INSTALL = ".ci/install-system-deps"
#: How long a server may take to accept connections, or to be gone once signalled.
READY_TIMEOUT = 30.0
#: PostgreSQL refuses to run as root: tests run by root run it as this user, which
#: Debian's ``postgresql`` package creates (and owns PostgreSQL's files with).
POSTGRES_USER = "postgres"


class ServerUnavailable(RuntimeError):
    """A server's program is missing, or the server did not come up; one-line message."""


def default_search_path() -> str:
    """``PATH``, then each ``/usr/lib/postgresql/<N>/bin``, the highest version first."""

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))

    versioned = sorted(POSTGRESQL_LIB.glob("*/bin"), key=version, reverse=True)
    parts = [os.environ.get("PATH", os.defpath), *map(str, versioned)]
    return os.pathsep.join(parts)


def locate(program: str, package: str, search_path: str | None = None) -> Path:
    """The path of ``program`` on ``search_path`` (default: :func:`default_search_path`).

    Raises :class:`ServerUnavailable` naming the Debian ``package`` that has it."""
    path = default_search_path() if search_path is None else search_path
    found = shutil.which(program, path=path)
    if found is None:
        where = f"PATH or {POSTGRESQL_LIB}/*/bin" if search_path is None else search_path
        raise ServerUnavailable(
            f"{program} not found on {where}: install the Debian package {package}"
            f" ({INSTALL} installs it)"
        )
    return Path(found)


class _Server:
    """A server process in a process group of its own, on a fixed port once chosen."""

    name = "server"

    def __init__(self, log: Path, port: int) -> None:
        self.port = port
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None

    #: What :meth:`stop` sends: each server's clean, quick shutdown.
    stop_signal = signal.SIGTERM

    # What each server defines.
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_options(self) -> dict[str, object]:
        return {}

    def _answers(self) -> bool:
        """Whether this server (not just any on its port) answers a real request now."""
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's process id (its process group's too), None when not started."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the server (again: same port, same data) and wait until it answers."""
        if self.running:
            raise RuntimeError(f"{self.name} on port {self.port} is already running")
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
                **self._popen_options(),  # type: ignore[arg-type]
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._answers():
            code = self._proc.poll()
            if code is not None:
                raise ServerUnavailable(
                    f"{self.name} on port {self.port} exited with {code} before it accepted"
                    f" connections; its log: {self.log}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ServerUnavailable(
                    f"{self.name} on port {self.port} did not accept connections within"
                    f" {READY_TIMEOUT:.0f} s; its log: {self.log}"
                )
            time.sleep(0.02)  # between polls of the real signal above, never instead of it
        return self

    def stop(self) -> None:
        """Shut the server down cleanly and wait until it is gone."""
        if self.running:
            assert self._proc is not None
            self._proc.send_signal(self.stop_signal)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server and every process it started, as a crash would, and wait
        until all are gone (so that a restart finds no survivor holding its files)."""
        if self.running:
            assert self._proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout=READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=READY_TIMEOUT)
        deadline = time.monotonic() + READY_TIMEOUT
        while _group_alive(self._proc.pid):
            if time.monotonic() > deadline:
                raise ServerUnavailable(
                    f"processes of {self.name} (group {self._proc.pid}) outlived it"
                    f" for {READY_TIMEOUT:.0f} s; its log: {self.log}"
                )
            time.sleep(0.01)
        self._proc = None


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies, gone but for their
    exit status, do not count: nothing may reap the orphans of a killed server)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state not in "ZX":
            return True
    return False


class RedisServer(_Server):
    """``redis-server`` on a free port, its data in ``tmp_dir/redis-PORT``.

    Persistent (the default): the append-only file with ``appendfsync always`` and no
    RDB snapshots (``--save ""``), so every write Redis acknowledged is on disk before
    the reply, and survives a SIGKILL and restart, as a broker set up not to lose
    queued tasks keeps them. RDB snapshots are off because they keep only what the
    last snapshot saw, which would make what survives a kill depend on timing.
    ``persistent=False`` keeps nothing on disk: a restarted server is empty, as a
    broker that lost its memory is (the machine's own Redis runs so).
    """

    name = "redis-server"

    def __init__(
        self, tmp_dir: Path, *, persistent: bool = True, search_path: str | None = None
    ) -> None:
        self.binary = locate("redis-server", "redis-server", search_path)
        port = free_port()
        super().__init__(Path(tmp_dir) / f"redis-{port}.log", port)
        self.persistent = persistent
        self.dir = Path(tmp_dir) / f"redis-{port}"
        self.dir.mkdir(parents=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def _command(self) -> list[str]:
        persistence = ["--appendonly", "no"]
        if self.persistent:
            persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        return [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--save", "", *persistence,
            "--daemonize", "no", "--logfile", "", "--databases", "16",
        ]  # fmt: skip

    def _answers(self) -> bool:
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        try:
            # This server, not another one on the port (which would make ours exit).
            return probe.info("server")["process_id"] == self.pid
        except redis.exceptions.ConnectionError:  # refused, or still loading its file
            return False
        finally:
            probe.close()

    def close(self) -> None:
        """Stop the server if it runs (its files stay with the test's ``tmp_dir``)."""
        self.kill()


class PostgresServer(_Server):
    """A PostgreSQL cluster of its own (trust auth, UTF8, superuser ``postgres``) on a
    free port of 127.0.0.1, its Unix socket in its own folder.

    The cluster's folder is a fresh ``mirograph-pg-*`` under the system temp dir, not
    ``tmp_dir``: when the tests run as root, PostgreSQL runs as the ``postgres`` user
    (it refuses root), who cannot enter pytest's temp dirs (``0700``, root's); and a
    Unix socket's path must stay under 108 bytes. The log, written through a file the
    test opened, is ``tmp_dir/postgres-PORT.log``, kept with the test's other files.
    :meth:`close` removes the folder.

    ``initdb`` runs once per test process; each server copies that cluster (tens of
    milliseconds, where ``initdb`` takes about a second).

    :meth:`stop` is a fast shutdown (``SIGINT``); :meth:`kill` SIGKILLs the postmaster
    and all its backends, and a restart then recovers from the write-ahead log, so every
    committed transaction is there again (``fsync`` stays on).
    """

    name = "postgres"
    stop_signal = signal.SIGINT

    def __init__(self, tmp_dir: Path, *, search_path: str | None = None) -> None:
        initdb = locate("initdb", "postgresql", search_path).resolve()
        self.binary = initdb.with_name("postgres")
        if not self.binary.exists():
            raise ServerUnavailable(
                f"{self.binary} is missing beside {initdb}: install the Debian package"
                f" postgresql ({INSTALL} installs it)"
            )
        self.user = _server_user()
        port = free_port()
        super().__init__(Path(tmp_dir) / f"postgres-{port}.log", port)
        self.home = Path(tempfile.mkdtemp(prefix="mirograph-pg-"))
        self.data = self.home / "data"
        try:
            _chown(self.home, self.user)
            template = _template_cluster(initdb, self.user)
            shutil.copytree(template, self.data, symlinks=True)
            _chown(self.data, self.user, recursive=True)
        except BaseException:
            shutil.rmtree(self.home, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def connect(self, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(self.url, connect_timeout=10, **kwargs)  # type: ignore[arg-type]

    def _command(self) -> list[str]:
        return [
            str(self.binary), "-D", str(self.data), "-p", str(self.port),
            "-k", str(self.home), "-c", "listen_addresses=127.0.0.1",
        ]  # fmt: skip

    def _popen_options(self) -> dict[str, object]:
        return _as_user(self.user, self.home)

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=1) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
        except psycopg.OperationalError:  # refused, or starting up / recovering
            return False
        # This cluster, not another one on the port (which would make ours exit).
        return row is not None and Path(row[0]).resolve() == self.data.resolve()

    def close(self) -> None:
        """Shut the server down if it runs and remove its cluster."""
        if self.running:
            self.stop()
        else:
            _drop_orphaned_segment(self.data)
        shutil.rmtree(self.home, ignore_errors=True)


def _server_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: the ``postgres`` user when the tests run as root, else the
    tests' own user (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        raise ServerUnavailable(
            f"PostgreSQL refuses to run as root and there is no {POSTGRES_USER!r} user to"
            f" run it as: install the Debian package postgresql ({INSTALL} installs it)"
        ) from None


def _as_user(user: pwd.struct_passwd | None, cwd: Path) -> dict[str, object]:
    """``Popen`` options that run a program as ``user`` (None: as the tests' user)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if user is None:
        return {"cwd": cwd, "env": env}
    env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    return {"cwd": cwd, "env": env, "user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _chown(path: Path, user: pwd.struct_passwd | None, *, recursive: bool = False) -> None:
    if user is None:
        return
    os.chown(path, user.pw_uid, user.pw_gid)
    if recursive:
        for folder, dirs, files in os.walk(path):
            for name in dirs + files:
                target = os.path.join(folder, name)
                os.chown(target, user.pw_uid, user.pw_gid, follow_symlinks=False)


@functools.cache
def _template_cluster(initdb: Path, user: pwd.struct_passwd | None) -> Path:
    """A cluster made by ``initdb`` once per test process, for servers to copy; it is
    removed when the process exits."""
    home = Path(tempfile.mkdtemp(prefix="mirograph-pg-template-"))
    _chown(home, user)
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    data, log = home / "data", home / "initdb.log"
    with log.open("wb") as out:
        done = subprocess.run(
            [
                str(initdb), "-D", str(data), "--auth=trust", "--encoding=UTF8",
                "--locale=C", "--username=postgres", "--no-sync",
            ],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=120,
            **_as_user(user, home),  # type: ignore[arg-type]
        )  # fmt: skip
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        raise ServerUnavailable(f"initdb exited with {done.returncode}: {' '.join(tail)}")
    return data


def _drop_orphaned_segment(data: Path) -> None:
    """Remove the small System V shared memory segment that a SIGKILLed postmaster
    leaves behind (a restart would have removed it; a cluster deleted after a kill
    would leak it until reboot). Its id is on line 7 of ``postmaster.pid``."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        shmid = int(lines[6].split()[1])
    except (OSError, IndexError, ValueError):
        return
    subprocess.run(["ipcrm", "-m", str(shmid)], capture_output=True, timeout=30)


S = TypeVar("S", RedisServer, PostgresServer)


@contextmanager
def serving(make: Callable[[], S]) -> Iterator[S]:
    """Make and start a server, and close it at the end whatever happened; a server
    that is missing or does not come up fails the test with its one-line reason
    (``pytest.fail``, never a skip: a suite that skipped them would pass untested)."""
    try:
        server = make()
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        try:
            server.start()
        except ServerUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        server.close()
