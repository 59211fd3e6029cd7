"""Malformed-response faults: 200s that break the protocol, plain and streamed, on the wire."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from support.loop_kit import servers

from mirograph.agents.sim.scripting import MALFORMED_MODES, Fault
from mirograph.agents.sim.server import SimServer

serve = pytest.fixture(servers)


def _post(srv: SimServer, mode: str, *, stream: bool) -> httpx.Response:
    body = {
        "model": "mirothinker",
        "messages": [{"role": "user", "content": mode}],
        "stream": stream,
    }
    return httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=10)


def _events(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an event stream, in order."""
    return [
        line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")
    ]


@pytest.fixture
def srv(serve: Callable[..., SimServer]) -> SimServer:
    return serve(lambda body: Fault(malformed=body["messages"][-1]["content"], message="cut here"))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("mode", ["invalid_json", "garbage_sse", "empty_stream", "no_done"])
def test_plain_bodies_that_are_not_json(srv: SimServer, mode: str) -> None:
    response = _post(srv, mode, stream=False)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert not _is_json(response.text)


def test_plain_bodies_with_a_broken_shape(srv: SimServer) -> None:
    assert _post(srv, "no_choices", stream=False).json()["choices"] == []
    [choice] = _post(srv, "no_message", stream=False).json()["choices"]
    assert "message" not in choice
    [choice] = _post(srv, "null_content", stream=False).json()["choices"]
    assert choice["message"]["content"] is None and "tool_calls" not in choice["message"]


def test_streams_that_break_the_protocol(srv: SimServer) -> None:
    garbage = _post(srv, "garbage_sse", stream=True)
    assert garbage.headers["content-type"].startswith("text/event-stream")
    assert "this line is not an event" in garbage.text
    assert not all(_is_json(e) for e in _events(garbage)[:-1])
    assert not _is_json(_events(_post(srv, "invalid_json", stream=True))[1])
    assert _events(_post(srv, "empty_stream", stream=True)) == ["[DONE]"]
    no_choices = _events(_post(srv, "no_choices", stream=True))
    assert [json.loads(e)["choices"] for e in no_choices[:-1]] == [[]]
    [no_delta, _] = _events(_post(srv, "no_message", stream=True))
    assert "delta" not in json.loads(no_delta)["choices"][0]
    null = [json.loads(e) for e in _events(_post(srv, "null_content", stream=True))[:-1]]
    assert [c["choices"][0]["delta"].get("content") for c in null] == [None, None]


def test_a_stream_without_done_ends_cleanly_before_its_finish(srv: SimServer) -> None:
    response = _post(srv, "no_done", stream=True)  # a clean end: httpx reads it whole
    chunks = [json.loads(e) for e in _events(response)]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "cut here"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


def test_every_mode_is_a_200_for_both_kinds_of_request(srv: SimServer) -> None:
    for mode in MALFORMED_MODES:
        assert _post(srv, mode, stream=False).status_code == 200
        assert _post(srv, mode, stream=True).status_code == 200


def test_an_unknown_mode_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown malformed mode 'bogus'; use one of invalid_json"):
        Fault(malformed="bogus")


def test_malformed_wins_over_status(serve: Callable[..., SimServer]) -> None:
    srv = serve(lambda body: Fault(status=503, malformed="no_choices"))
    response = _post(srv, "x", stream=False)
    assert (response.status_code, response.json()["choices"]) == (200, [])
