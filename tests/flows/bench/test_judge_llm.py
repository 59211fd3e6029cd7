"""The LLM judge over real HTTP, against ``mirograph sim-model`` playing the judge
(``support.judge_policy``): verdicts, retries, failures, and the criteria it is sent."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.testkit import LISTENING, Cli

from mirograph.agents.config import ModelConfig
from mirograph.agents.models import build_native_model
from mirograph.agents.sim.policies import content_text
from mirograph.flows.bench.judges.llm import (
    EQUIVALENCE,
    MATCH,
    REMINDER,
    SINGLE_ANSWER,
    Criteria,
    LlmJudge,
    criteria_for,
)
from mirograph.flows.bench.judges.make import judge_config, make_judge
from mirograph.flows.bench.tasks import BenchTask

KEY = "sk-judge-secret-123"


#: One judge server for the module (a start costs a second); each test's requests are
#: told apart by its own question, and its event loop is the module's, since the OpenAI
#: client pools connections per endpoint for the whole process.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``mirograph sim-model`` playing the judge: its base URL and its request log."""
    home = tmp_path_factory.mktemp("judge")
    log = home / "requests.jsonl"
    policy = f"support.judge_policy:grade?log={log}&secret={KEY}"
    proc = Cli(home).popen("sim-model", "--policy", policy, "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        listening = LISTENING.search(line)
        assert listening, f"sim-model did not start: {line!r}"
        yield listening.group(1), log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Judging:
    """The judge server, a task of this test's own, and what the server was asked for it."""

    def __init__(self, url: str, log: Path, test_name: str) -> None:
        self.url, self.log = url, log
        self.task = BenchTask(
            task_id="t1", question=f"Which whale is it? ({test_name})", ground_truth="right whale"
        )

    def requests(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        bodies = [json.loads(line) for line in lines]
        return [b for b in bodies if self.task.question in b["messages"][0]["content"]]

    def judge(self, **options: Any) -> LlmJudge:
        """A judge on this server, built as ``make_judge`` builds one, without backoff."""
        config = judge_config(ModelConfig(base_url=self.url, api_key_env="JUDGE_TEST_KEY"))
        return LlmJudge(build_native_model(config), "judge", retry_delay_s=0, **options)


@pytest.fixture
def judging(
    judge_server: tuple[str, Path], request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Judging:
    monkeypatch.setenv("JUDGE_TEST_KEY", KEY)
    return Judging(*judge_server, request.node.name)


async def test_correct_and_incorrect_through_make_judge(judging: Judging) -> None:
    judge = make_judge("grader", {"grader": ModelConfig(base_url=judging.url)})
    right = await judge.judge(judging.task, "Right Whale", "gaia")
    wrong = await judge.judge(judging.task, "blue whale", "gaia")
    await judge.aclose()
    assert (right.verdict, right.method, right.model) == ("correct", "llm", "grader")
    assert right.prompt_version == "equivalence-v1"
    # the detail is the reply past its thinking (which named the other verdict)
    assert right.detail == "The response matches the reference. **VERDICT: CORRECT**"
    assert wrong.verdict == "incorrect" and not wrong.correct
    sent = judging.requests()
    assert len(sent) == 2
    assert sent[0]["temperature"] == 0 and sent[0]["model"] == "mirothinker"
    assert "tools" not in sent[0] and "repetition_penalty" not in sent[0]
    prompt = content_text(sent[0]["messages"][0]["content"])
    assert "[Response]\nRight Whale\n" in prompt and "[Reference answer]\nright whale\n" in prompt


async def test_model_at_url_spec_judges(judging: Judging, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIROGRAPH_JUDGE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    judge = make_judge(f"mirothinker@{judging.url}", {})
    verdict = await judge.judge(judging.task, "right whale", "frames")
    assert (verdict.verdict, verdict.model) == ("correct", f"mirothinker@{judging.url}")


async def test_unparseable_reply_is_asked_again_then_judge_error(judging: Judging) -> None:
    verdict = await judging.judge().judge(judging.task, "UNPARSEABLE right whale", "gaia")
    assert verdict.verdict == "judge_error" and not verdict.correct
    assert verdict.detail is not None
    assert verdict.detail.startswith("no verdict after 3 tries: try 1: no verdict line")
    assert "try 3: no verdict line" in verdict.detail
    sent = judging.requests()
    assert len(sent) == 3
    # each retry shows the model its unparseable reply and asks for the verdict line
    assert [m["role"] for m in sent[2]["messages"]] == ["user", "assistant", "user"] * 1 + [
        "assistant",
        "user",
    ]
    assert content_text(sent[1]["messages"][-1]["content"]) == REMINDER


async def test_retries_are_configurable(judging: Judging) -> None:
    verdict = await judging.judge(retries=0).judge(judging.task, "UNPARSEABLE", "gaia")
    assert verdict.verdict == "judge_error"
    assert verdict.detail is not None and verdict.detail.startswith("no verdict after 1 try:")
    assert len(judging.requests()) == 1


async def test_a_verdict_on_the_retry_counts(judging: Judging) -> None:
    verdict = await judging.judge().judge(judging.task, "LATE-VERDICT right whale", "gaia")
    assert verdict.verdict == "correct"
    assert len(judging.requests()) == 2


async def test_failing_server_is_judge_error_without_the_key(judging: Judging) -> None:
    verdict = await judging.judge(secrets=(KEY,)).judge(judging.task, "SERVER-ERROR", "gaia")
    assert verdict.verdict == "judge_error"
    assert verdict.detail is not None
    assert "try 3: the model call failed: OpenAIAPIError: Error code: 500" in verdict.detail
    assert "upstream failed (key ***)" in verdict.detail and KEY not in verdict.detail
    assert len(judging.requests()) == 3


DOWN_TASK = BenchTask(task_id="t1", question="Which whale is it?", ground_truth="right whale")


async def test_server_down_is_judge_error_not_an_exception() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = judge_config(ModelConfig(base_url=f"http://127.0.0.1:{port}/v1"))
    judge = LlmJudge(build_native_model(config), "down", retries=1, retry_delay_s=0)
    verdict = await judge.judge(DOWN_TASK, "right whale", "gaia")
    assert verdict.verdict == "judge_error"
    assert verdict.detail is not None
    assert verdict.detail.startswith("no verdict after 2 tries: try 1: the model call failed:")
    assert "OpenAIConnectionError: Connection error." in verdict.detail


async def test_cancellation_is_not_swallowed(judging: Judging) -> None:
    """A judge cancelled mid-call (here by a timeout) stops: it is not a failed call."""
    judge = judging.judge()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(judge.judge(judging.task, "SLOW right whale", "gaia"), 0.5)
    assert len(judging.requests()) == 1


async def test_no_answer_is_incorrect_without_asking(judging: Judging) -> None:
    verdict = await judging.judge().judge(judging.task, None, "hle")
    assert (verdict.verdict, verdict.detail, verdict.prompt_version) == (
        "incorrect",
        "no answer",
        "hle-v1",
    )
    assert judging.requests() == []


@pytest.mark.parametrize(
    ("benchmark", "criteria"),
    [
        ("gaia", EQUIVALENCE),
        ("browsecomp", SINGLE_ANSWER),
        ("BrowseComp-ZH", SINGLE_ANSWER),
        ("hle", MATCH),
        ("xbench-deepsearch", EQUIVALENCE),
        ("my-own-set", EQUIVALENCE),
    ],
)
async def test_each_benchmark_criteria_reach_the_prompt(
    judging: Judging, benchmark: str, criteria: Criteria
) -> None:
    verdict = await judging.judge().judge(judging.task, "right whale", benchmark)
    assert (verdict.verdict, verdict.prompt_version) == ("correct", criteria.version)
    [sent] = judging.requests()
    assert criteria.rules in content_text(sent["messages"][0]["content"])
    assert criteria_for(benchmark) is criteria
