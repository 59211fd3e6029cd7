"""The Redis and PostgreSQL servers that tests start for themselves (``support.servers``,
the ``redis_server`` and ``postgres_server`` fixtures) do what the crash tests of the
store and the workers will rely on: each runs on a port of its own, comes back after a
SIGKILL on the same port with what its persistence promises, and a missing program
fails with one line that says what to install.

These tests sit at the top of ``tests/``, beside ``test_setup.py`` and
``test_packaging.py``: like them they check the project's test and set-up machinery,
which belongs to no package folder for ``tests/`` to mirror, and ``tests/support/``
holds helpers only (nothing in it is collected).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest
import redis
from support.servers import (
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    serving,
)


def test_redis_keeps_every_acknowledged_write_across_a_kill(redis_server: RedisServer) -> None:
    client = redis_server.client()
    for i in range(100):
        client.rpush("queue", f"task-{i}")
    client.close()

    redis_server.kill()
    assert not redis_server.running
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(redis_server.url, socket_connect_timeout=1).ping()

    port = redis_server.port
    redis_server.start()
    assert redis_server.port == port
    assert redis_server.url == f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(redis_server.url)
    assert client.lrange("queue", 0, -1) == [f"task-{i}".encode() for i in range(100)]
    client.close()


def test_redis_without_persistence_comes_back_empty(tmp_path: Path) -> None:
    with serving(lambda: RedisServer(tmp_path, persistent=False)) as server:
        server.client().set("key", "value")
        server.kill()
        server.start()
        assert server.client().dbsize() == 0


def test_postgres_keeps_committed_rows_across_a_kill_and_drops_the_rest(
    postgres_server: PostgresServer,
) -> None:
    with postgres_server.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (id text PRIMARY KEY)")
        conn.execute("INSERT INTO runs VALUES ('committed')")
    pending = postgres_server.connect()
    pending.execute("INSERT INTO runs VALUES ('in flight')")  # never committed

    port = postgres_server.port
    postgres_server.kill()
    assert not postgres_server.running
    with pytest.raises(psycopg.OperationalError):
        pending.execute("SELECT 1")
    pending.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_server.url, connect_timeout=1)

    postgres_server.start()
    assert postgres_server.port == port
    with postgres_server.connect() as conn:
        assert conn.execute("SELECT id FROM runs").fetchall() == [("committed",)]
        user = conn.execute("SELECT current_user").fetchone()
    assert user == ("postgres",)
    assert postgres_server.url == f"postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest.mark.parametrize("fixture", ["redis_server", "postgres_server"])
def test_a_stopped_server_starts_again_with_its_data(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(fixture)
    _write(server, "kept")
    server.stop()
    assert not server.running
    server.start()
    assert _read(server) == "kept"


def test_servers_started_at_once_each_get_their_own_port_and_data(
    redis_server: RedisServer, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    with (
        serving(lambda: RedisServer(tmp_path)) as other_redis,
        serving(lambda: PostgresServer(tmp_path)) as other_postgres,
    ):
        servers = [redis_server, other_redis, postgres_server, other_postgres]
        assert len({server.port for server in servers}) == 4
        for server in servers:
            _write(server, str(server.port))
        for server in servers:
            assert _read(server) == str(server.port)
        assert other_postgres.data != postgres_server.data
        assert other_redis.dir != redis_server.dir


@pytest.mark.parametrize(
    ("server", "package"),
    [(RedisServer, "redis-server"), (PostgresServer, "postgresql")],
)
def test_a_missing_program_fails_with_one_line_naming_its_package(
    server: type[RedisServer | PostgresServer], package: str, tmp_path: Path
) -> None:
    """The locator searches only the given path here: an empty folder, as on a
    machine where the package is not installed."""
    empty = tmp_path / "bin"
    empty.mkdir()
    with (
        pytest.raises(pytest.fail.Exception) as failed,  # a failure, not a skip
        serving(lambda: server(tmp_path, search_path=str(empty))),
    ):
        raise AssertionError("the server started without its program")
    message = failed.value.msg
    assert message is not None
    assert "\n" not in message
    assert f"install the Debian package {package} (.ci/install-system-deps installs it)" in (
        message
    )
    assert not failed.value.pytrace


@pytest.mark.parametrize(
    ("fixture", "server", "why"),
    [
        ("redis_server", RedisServer, "Address already in use"),
        ("postgres_server", PostgresServer, "could not bind"),
    ],
)
def test_a_server_that_cannot_start_says_so_in_one_line_naming_its_log(
    fixture: str,
    server: type[RedisServer | PostgresServer],
    why: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """A second server on a port the first one holds exits at once, although the port
    answers: readiness asks for this server, not for any server on its port."""
    first = request.getfixturevalue(fixture)
    clash = server(tmp_path)
    clash.port = first.port
    try:
        with pytest.raises(ServerUnavailable) as failed:
            clash.start()
    finally:
        clash.close()
    message = str(failed.value)
    assert "\n" not in message
    assert f"{clash.name} on port {first.port} exited with" in message
    assert message.endswith(f"its log: {clash.log}")
    assert why in clash.log.read_text()
    assert first.running


def test_a_failing_test_still_stops_its_servers_and_removes_the_cluster(
    tmp_path: Path,
) -> None:
    started: list[RedisServer | PostgresServer] = []
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        serving(lambda: RedisServer(tmp_path)) as redis_srv,
        serving(lambda: PostgresServer(tmp_path)) as postgres_srv,
    ):
        started += [redis_srv, postgres_srv]
        pids = [server.pid for server in started]
        postgres_srv.kill()  # a killed server is cleaned up too
        raise RuntimeError("the test failed")
    assert len(pids) == 2
    for server in started:
        assert not server.running
    assert not postgres_srv.home.exists()
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def test_a_server_starts_and_restarts_within_seconds(tmp_path: Path) -> None:
    """The suite's time must not grow much with every test that needs a server: here
    each takes well under a second (PostgreSQL about a second more for the process's
    one ``initdb``); the bound leaves room for a loaded CI machine."""
    for make in (lambda: RedisServer(tmp_path), lambda: PostgresServer(tmp_path)):
        began = time.monotonic()
        with serving(make) as server:
            server.kill()
            server.start()
        assert time.monotonic() - began < 10, f"{server.name} took too long"


def _write(server: RedisServer | PostgresServer, value: str) -> None:
    if isinstance(server, RedisServer):
        client = server.client()
        client.set("value", value)
        client.close()
        return
    with server.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kv (value text)")
        conn.execute("INSERT INTO kv VALUES (%s)", (value,))


def _read(server: RedisServer | PostgresServer) -> str:
    if isinstance(server, RedisServer):
        client = server.client()
        value = client.get("value")
        client.close()
        assert value is not None
        return value.decode()
    with server.connect() as conn:
        row = conn.execute("SELECT value FROM kv").fetchone()
    assert row is not None
    return str(row[0])
