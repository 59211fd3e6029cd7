"""Who may use the web view: loopback hosts only on a loopback bind; a token (header or
cookie, never the address past the first visit) elsewhere; JSON from the page's own
origin for every change; the security headers on every answer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.testclient import TestClient
from support.ui_kit import ui_client

from mirograph.flows.ui.guard import cookie_name

TOKEN = "a-token-for-the-guard-tests-0123"
REMOTE = "http://mirograph.lan:8765"


@pytest.fixture
def remote(store: str) -> Iterator[TestClient]:
    """Bound to every address: the token is asked."""
    with ui_client(store, base_url=REMOTE, token=TOKEN, loopback=False) as client:
        yield client


@pytest.mark.parametrize(
    "host", ["evil.example:8765", "evil.example", "127.0.0.1.evil.example", "[::2]:8765", ""]
)
def test_a_loopback_bind_refuses_a_host_that_is_not_loopback(local: TestClient, host: str) -> None:
    for path in ("/", "/api/runs", "/static/app.js"):
        answer = local.get(path, headers={"Host": host})
        assert answer.status_code == 403, (host, path)
        assert "127.0.0.1 or localhost" in answer.json()["error"]
    post = local.post("/api/runs", json={"question": "q"}, headers={"Host": host})
    assert post.status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.2"])
def test_a_loopback_bind_answers_loopback_hosts(local: TestClient, host: str) -> None:
    answer = local.get("/api/runs", headers={"Host": host})
    assert answer.status_code == 200 and answer.json() == {"runs": []}


def test_without_a_token_401_with_a_wrong_one_403(remote: TestClient) -> None:
    for method, path in (("GET", "/api/runs"), ("POST", "/api/runs/x/pause")):
        bare = remote.request(method, path, json={} if method == "POST" else None)
        assert bare.status_code == 401, (method, path)
        assert "a token is required" in bare.json()["error"]
        wrong = remote.request(method, path, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 403, (method, path)
        assert wrong.json() == {"error": "wrong token: use the one `mirograph ui` printed"}
        remote.cookies.set(cookie_name(TOKEN), "not-the-token")
        assert remote.request(method, path).status_code == 403
        remote.cookies.clear()
    # the token in another address than "/" is no credential (it would stay in histories)
    assert remote.get(f"/api/runs?token={TOKEN}").status_code == 401


def test_a_bearer_token_works(remote: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert remote.get("/api/runs", headers=auth).json() == {"runs": []}
    paused = remote.post("/api/runs/nope/pause", json={}, headers=auth)
    assert paused.status_code == 404  # past the guard: the run is not there
    lower = remote.get("/api/runs", headers={"Authorization": f"bearer {TOKEN}"})
    assert lower.status_code == 200


def test_the_token_in_the_address_becomes_a_strict_httponly_cookie(remote: TestClient) -> None:
    answer = remote.get(f"/?token={TOKEN}", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"  # the address is cleaned of the token
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{cookie_name(TOKEN)}={TOKEN};")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert remote.get("/").status_code == 200  # the client keeps the cookie
    assert remote.get("/api/runs").json() == {"runs": []}
    remote.cookies.clear()
    assert remote.get("/api/runs").status_code == 401
    wrong = remote.get("/?token=not-the-token", follow_redirects=False)
    assert wrong.status_code == 403 and "set-cookie" not in wrong.headers


def test_the_cookie_works_beside_another_authorization_scheme(remote: TestClient) -> None:
    """A proxy's Basic credentials are not a token: the cookie still counts, and the
    Basic value is never taken for the token."""
    remote.cookies.set(cookie_name(TOKEN), TOKEN)
    answer = remote.get("/api/runs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert answer.status_code == 200, answer.text
    remote.cookies.clear()
    sneaky = remote.get("/api/runs", headers={"Authorization": f"Basic {TOKEN}"})
    assert sneaky.status_code == 401


def test_a_token_on_a_loopback_bind_still_checks_the_host(store: str) -> None:
    """``MIROGRAPH_UI_TOKEN`` on a loopback bind: the Host rule holds for every path,
    the token-taking address too."""
    with ui_client(store, token=TOKEN, loopback=True) as client:
        evil = {"Host": "evil.example:8765"}
        answer = client.get(f"/?token={TOKEN}", headers=evil, follow_redirects=False)
        assert answer.status_code == 403 and "set-cookie" not in answer.headers
        assert client.get("/api/runs", headers=evil).status_code == 403
        assert client.get("/api/runs").status_code == 401
        assert client.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303


def test_static_assets_are_served_without_a_token(remote: TestClient) -> None:
    script = remote.get("/static/app.js")
    assert script.status_code == 200 and len(script.text) > 1000
    assert remote.get("/static/app.css").status_code == 200
    assert remote.get("/static/../api/runs").status_code == 401  # normalised: not an asset
    assert remote.get("/static/%2e%2e/api/runs").status_code in (401, 404)


def test_a_change_must_be_json_from_the_pages_own_origin(local: TestClient) -> None:
    form = local.post("/api/runs/x/pause", data={"a": "b"})
    assert form.status_code == 415
    plain = local.post("/api/runs/x/pause", content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null"):
        answer = local.post("/api/runs/x/pause", json={}, headers={"Origin": origin})
        assert answer.status_code == 403, origin
        assert "another site" in answer.json()["error"]
    same = local.post("/api/runs/x/pause", json={}, headers={"Origin": "http://127.0.0.1:8765"})
    assert same.status_code == 404  # past the guard
    assert local.post("/api/runs/x/pause", json={}).status_code == 404  # a script: no Origin


@pytest.mark.parametrize(
    "path", ["/", "/api/runs", "/api/runs/nope", "/static/app.js", "/api/nothing", "/nothing"]
)
def test_every_answer_carries_the_security_headers(
    remote: TestClient, local: TestClient, path: str
) -> None:
    answers: list[httpx.Response] = [
        local.get(path),
        local.get(path, headers={"Host": "evil.example"}),
        remote.get(path),
        remote.get(path, headers={"Authorization": f"Bearer {TOKEN}"}),
    ]
    for answer in answers:
        csp = answer.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "script-src 'self'" in csp, answer.status_code
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
