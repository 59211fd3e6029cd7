"""``mirograph ui`` as a process: a port in use or a short token is one line and exit 2;
bound to every address it prints an address with a generated token, asks for it, and
never writes it to its logs."""

from __future__ import annotations

import re
import select
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from support.testkit import Cli
from support.ui_kit import ui_client

from mirograph.flows.ui.server import TOKEN_ENV, choose_token

OPEN = re.compile(r"^mirograph ui: open (http://(\S+?):(\d+)/)(\?token=(\S+))?$")


def first_line(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"mirograph ui printed nothing; exit={proc.poll()}"
    return proc.stdout.readline().rstrip("\n")


def test_a_port_in_use_is_one_line_and_exit_2(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli("ui", "--port", str(port), "--store", cli.store, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert lines[0].endswith("choose another --port (0 picks a free one)")


def test_a_short_token_is_one_line_and_exit_2(cli: Cli) -> None:
    result = cli(
        "ui", "--port", "0", "--host", "0.0.0.0", "--store", cli.store,
        env={"MIROGRAPH_UI_TOKEN": "short-token"}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: MIROGRAPH_UI_TOKEN is shorter than 16 characters; set a longer one"
        " (or unset it: one is generated)"
    ]


def test_on_every_address_a_generated_token_is_asked_and_never_logged(cli: Cli, home: Path) -> None:
    proc = cli.popen("ui", "--host", "0.0.0.0", "--port", "0", "--store", cli.store)
    try:
        line = first_line(proc)
        match = OPEN.match(line)
        assert match and match.group(5), line
        token, port = match.group(5), int(match.group(3))
        assert len(token) >= 16
        assert proc.stdout is not None  # printed with the first: read from the buffer
        assert proc.stdout.readline().rstrip("\n") == (
            "(a token was generated for this server; set MIROGRAPH_UI_TOKEN to choose one)"
        )
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/api/runs").status_code == 401
            assert (
                http.get("/api/runs", headers={"Authorization": "Bearer " + "x" * 32}).status_code
                == 403
            )
            auth = {"Authorization": f"Bearer {token}"}
            assert http.get("/api/runs", headers=auth).json() == {"runs": []}
            # an answer that would quote the token masks it (it is in the server's env)
            missing = http.get(f"/api/runs/{token}", headers=auth)
            assert missing.status_code == 404 and token not in missing.text
            assert "***" in missing.json()["error"]
            # another Host is fine here: no loopback bind, the token guards
            other = http.get("/api/runs", headers={**auth, "Host": "mirograph.lan"})
            assert other.status_code == 200
            entry = http.get(f"/?token={token}", follow_redirects=False)
            assert entry.status_code == 303 and entry.headers["location"] == "/"
            assert http.get("/api/runs").status_code == 200  # the cookie now
            http.get(f"/api/nothing?token={token}", headers=auth)
            http.post(
                "/api/runs", content=b"{", headers={**auth, "Content-Type": "application/json"}
            )
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130, -signal.SIGINT), err
    assert token not in err and token not in out  # the rest of stdout, and stderr
    for path in home.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_on_loopback_a_token_is_asked_unless_no_token_and_hosts_are_checked(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every user of a machine reaches 127.0.0.1, and a run started through the API runs
    code as the server's user: a token is asked there too, unless ``--no-token``."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    for extra in ((), ("--no-token",)):
        proc = cli.popen("ui", "--port", "0", "--store", cli.store, *extra)
        try:
            match = OPEN.match(first_line(proc))
            assert match and match.group(2) == "127.0.0.1"
            base = f"http://127.0.0.1:{match.group(3)}"
            with httpx.Client(base_url=base, timeout=30) as http:
                listed = http.get("/api/runs")
                if extra:
                    assert match.group(4) is None and listed.json() == {"runs": []}
                else:
                    assert match.group(5) and listed.status_code == 401
                    auth = {"Authorization": f"Bearer {match.group(5)}"}
                    assert http.get("/api/runs", headers=auth).json() == {"runs": []}
                rebound = http.get("/api/runs", headers={"Host": f"evil.example:{match.group(3)}"})
                assert rebound.status_code == 403
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
    refused = cli("ui", "--host", "0.0.0.0", "--no-token", "--port", "0", "--store", cli.store)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: --no-token serves 0.0.0.0 to anyone who can reach it; drop --no-token"
        " (a token is generated) or serve on 127.0.0.1"
    ]


def test_a_token_set_with_spaces_around_it_is_masked_as_it_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIROGRAPH_HOME", str(tmp_path / "home"))
    token = "spaced-token-0123456789abcdef"
    monkeypatch.setenv(TOKEN_ENV, f"  {token}\n")
    assert choose_token("0.0.0.0") == (token, False)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with ui_client(store, base_url="http://mirograph.lan", token=token, loopback=False) as http:
        missing = http.get(f"/api/runs/{token}", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404
    assert token not in missing.text and "***" in missing.json()["error"]
