"""A hostile review of the web view's guard and API: each test is an attack that once
worked (or a promise worth keeping guarded), made as a hostile client or web page would.

- A Host header that only contains a loopback name (``evil.example@127.0.0.1``) or a
  request naming two hosts was read for its local-looking part on a loopback bind.
- A page on another site (which a browser marks ``Sec-Fetch-Site: cross-site``) could
  make the API work for it: list 2,000 runs, open event streams, time answers.
- A runs list returned every question whole: 200 runs of 200,000 characters were
  40 MB on each of the page's 2 s refreshes.
- A POST body of JSON nested a megabyte deep was a crash (500 and a traceback).
- A bench plot that is a link to a file elsewhere was served.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support.testkit import Cli
from support.ui_kit import ui_client

from mirograph.flows.ui.api import LIST_QUESTION_CHARS
from mirograph.state.registry import RunRecord
from mirograph.state.store import open_store

TOKEN = "a-token-for-the-security-review"
REMOTE = "http://mirograph.lan:8765"


# -- hosts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example@127.0.0.1",
        "evil.example@127.0.0.1:8765",
        "[::1]evil.example",
        "127.0.0.1/evil.example",
        "127.0.0.1:8765:evil.example",
        "localhost:port",
    ],
)
def test_a_host_that_only_contains_a_loopback_one_is_refused(local: TestClient, host: str) -> None:
    answer = local.get("/api/runs", headers={"Host": host})
    assert answer.status_code == 403, answer.text
    assert "127.0.0.1 or localhost" in answer.json()["error"]


def test_a_request_naming_two_hosts_is_refused(local: TestClient) -> None:
    for hosts in (["127.0.0.1:8765", "evil.example"], ["evil.example", "127.0.0.1:8765"]):
        answer = local.get("/api/runs", headers=[("Host", h) for h in hosts])
        assert answer.status_code == 403, hosts
    assert local.get("/api/runs", headers={"Host": "127.0.0.1:8765"}).status_code == 200


# -- other sites' pages -------------------------------------------------------------------


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
def test_a_page_on_another_site_reaches_nothing_but_the_page(store: str, site: str) -> None:
    """Another site's page cannot read the answers (no CORS), but it could make the
    server answer: a browser says where a request comes from, so the API refuses it.
    ``same-site`` is another port of this very host, another server's page."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with (
        ui_client(store) as local,
        ui_client(store, base_url=REMOTE, token=TOKEN, loopback=False) as remote,
    ):
        for client, extra in ((local, {}), (remote, auth)):
            sent = {**extra, "Sec-Fetch-Site": site}
            for path in ("/api/runs?limit=2000", "/api/bench", "/api/runs/x/events"):
                answer = client.get(path, headers=sent)
                assert answer.status_code == 403, (path, answer.text)
                assert "another site" in answer.json()["error"]
            pause = client.post("/api/runs/x/pause", json={}, headers=sent)
            assert pause.status_code == 403
            # the page and its assets: a link from anywhere may open the web view
            assert client.get("/", headers=sent).status_code == 200
            assert client.get("/static/app.js", headers=sent).status_code == 200
            for own in ("same-origin", "none"):  # the page itself; an address typed
                mine = client.get("/api/runs", headers={**extra, "Sec-Fetch-Site": own})
                assert mine.status_code == 200 and mine.json() == {"runs": []}, own


def test_no_answer_lets_another_origin_read_it(local: TestClient) -> None:
    """No CORS header anywhere: an EventSource or fetch from another origin cannot read
    a run's events or list (a CORS middleware added later would break this)."""
    evil = {"Origin": "http://evil.example"}
    preflight = local.options(
        "/api/runs", headers={**evil, "Access-Control-Request-Method": "POST"}
    )
    answers = [preflight, local.get("/api/runs", headers=evil), local.get("/", headers=evil)]
    answers.append(local.get("/api/runs/x/events", headers=evil))
    for answer in answers:
        cors = [k for k in answer.headers if k.lower().startswith("access-control-")]
        assert cors == [], (answer.request.url, cors)


# -- sizes ----------------------------------------------------------------------------------


async def _long_questions(store: str, count: int, chars: int) -> None:
    async with open_store(store) as opened:
        for i in range(count):
            question = f"run {i}: " + "x" * chars + f" needle{i}"
            record = RunRecord(
                id=f"long-{i}", question=question, flow="single-agent", flow_spec={},
                status="completed",
            )  # fmt: skip
            opened.registry.create(record)


def test_the_runs_list_cuts_long_questions_and_still_searches_all_of_them(store: str) -> None:
    asyncio.run(_long_questions(store, 3, 200_000))
    with ui_client(store) as client:
        answer = client.get("/api/runs", headers={"Accept-Encoding": "identity"})
        assert answer.status_code == 200
        assert len(answer.content) < 3 * (LIST_QUESTION_CHARS + 400), len(answer.content)
        for row in answer.json()["runs"]:
            assert len(row["question"]) == LIST_QUESTION_CHARS
            assert row["question"].startswith(f"run {row['id'][5:]}: xxx")
            assert row["question"].endswith("…")
        # the filter reads the whole question: its end is found
        found = client.get("/api/runs?q=needle1").json()["runs"]
        assert [row["id"] for row in found] == ["long-1"]


def test_json_nested_too_deep_is_one_line_not_a_crash(local: TestClient) -> None:
    deep = b'{"question": ' + b"[" * 200_000
    answer = local.post("/api/runs", content=deep, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "the request body is JSON nested too deep"}
    closed = b'{"question": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    again = local.post("/api/runs", content=closed, headers={"Content-Type": "application/json"})
    assert again.status_code == 400


# -- files ------------------------------------------------------------------------------------


def test_a_plot_linked_out_of_its_folder_is_neither_listed_nor_served(
    tmp_path: Path, store: str
) -> None:
    secret = tmp_path / "elsewhere" / "id_key"
    secret.parent.mkdir()
    secret.write_bytes(b"PRIVATE KEY MATERIAL")
    folder = tmp_path / "bench" / "one"
    folder.mkdir(parents=True)
    (folder / "bench.json").write_text(json.dumps({"benchmark": "b"}))
    (folder / "summary.json").write_text(json.dumps({"tasks": 1}))
    (folder / "turns.png").write_bytes(b"\x89PNG own plot")
    (folder / "scaling.png").symlink_to(secret)
    with ui_client(store, bench_roots=[tmp_path / "bench"]) as client:
        (row,) = client.get("/api/bench").json()["benches"]
        assert row["plots"] == ["turns.png"]
        linked = client.get(f"/api/bench/{row['index']}/scaling.png")
        assert linked.status_code == 404 and b"PRIVATE" not in linked.content
        own = client.get(f"/api/bench/{row['index']}/turns.png")
        assert own.status_code == 200 and own.content == b"\x89PNG own plot"


# -- over a real socket --------------------------------------------------------------------


def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    """Sends ``request`` as it is (no client tidies it) and reads the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_over_a_socket_odd_requests_reach_nothing(cli: Cli) -> None:
    """What no HTTP client library sends but a raw socket can: two Host headers, none
    (HTTP/1.0), an absolute-form target naming this host with another Host, dot
    segments and encoded slashes under /static/."""
    proc = cli.popen("ui", "--port", "0", "--store", cli.store, "--no-token")  # hosts alone
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, f"mirograph ui printed nothing; exit={proc.poll()}"
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
        assert match
        port = int(match.group(1))
        here = f"127.0.0.1:{port}".encode()
        close = b"Connection: close\r\n\r\n"

        def get(target: bytes, *headers: bytes) -> tuple[int, bytes]:
            lines = b"".join(h + b"\r\n" for h in headers)
            return _raw(port, b"GET " + target + b" HTTP/1.1\r\n" + lines + close)

        assert get(b"/api/runs", b"Host: " + here) == (200, b'{"runs":[]}')
        assert get(b"/api/runs", b"Host: " + here, b"Host: evil.example")[0] == 403
        assert get(b"/api/runs", b"Host: evil.example", b"Host: " + here)[0] == 403
        assert _raw(port, b"GET /api/runs HTTP/1.0\r\n\r\n")[0] == 403
        assert get(b"http://" + here + b"/api/runs", b"Host: evil.example")[0] == 403
        for target in (b"/static/../api/runs", b"/static/..%2f..%2f..%2fetc%2fpasswd"):
            status, body = get(target, b"Host: " + here)
            assert status == 404 and b"runs" not in body and b"root:" not in body, target
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
