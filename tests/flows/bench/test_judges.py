"""What judges decide without a model server: GAIA's exact rules, reading an LLM judge's
verdict, its pinned prompt words, and ``make_judge``'s choice of judge."""

from __future__ import annotations

import hashlib

import pytest

from mirograph.agents.config import ModelConfig
from mirograph.errors import UserInputError
from mirograph.flows.bench.judges import Verdict
from mirograph.flows.bench.judges.exact import ExactJudge, gaia_match, unwrap_answer
from mirograph.flows.bench.judges.llm import (
    EQUIVALENCE,
    MATCH,
    PROMPT,
    REMINDER,
    SINGLE_ANSWER,
    LlmJudge,
    parse_verdict,
)
from mirograph.flows.bench.judges.make import make_judge
from mirograph.flows.bench.tasks import BenchTask

GAIA_CASES = [
    # numbers: $ % , dropped from the answer, compared as floats
    ("1000", "1000", True),
    ("$1,000", "1000", True),
    ("1,000.0", "1000", True),
    ("1e3", "1000", True),
    ("12%", "12", True),
    ("12.5", "12.50", True),
    ("1001", "1000", False),
    ("one thousand", "1000", False),
    ("", "0", False),
    # lists: split on , and ; same length, item by item
    ("a; b; c", "a, b, c", True),
    ("A,B,C", "a, b, c", True),
    ("a, b", "a, b, c", False),
    ("a, c, b", "a, b, c", False),
    ("1, $2, 3", "1, 2, 3", True),
    ("1, 2.0, 3", "1, 2, 3", True),
    ("1, 2, 4", "1, 2, 3", False),
    ("St. Louis, Paris", "St. Louis, Paris", True),
    ("St Louis, Paris", "St. Louis, Paris", False),  # list items keep their punctuation
    # the official quirk: a ground truth written with a thousands comma is a list
    ("1000", "1,000", False),
    ("1,000", "1,000", True),
    # strings: no whitespace, punctuation or case
    ("Right Whale", "right whale", True),
    ("right-whale.", "Right Whale", True),
    ("  RightWhale ", "right whale", True),
    ("left whale", "right whale", False),
]


@pytest.mark.parametrize(("answer", "truth", "expected"), GAIA_CASES)
def test_gaia_rules(answer: str, truth: str, expected: bool) -> None:
    assert gaia_match(answer, truth) is expected


@pytest.mark.parametrize(
    ("answer", "unwrapped"),
    [
        ("\\boxed{42}", "42"),
        ("The answer is \\boxed{ 42 }.", "42"),
        ("\\boxed{\\text{right whale}}", "right whale"),
        ("\\boxed{a} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed {x}", "x"),
        ("\\boxed{unclosed", "\\boxed{unclosed"),
        ("\\text{Paris}, \\text{Rome}", "Paris, Rome"),
        ("plain", "plain"),
    ],
)
def test_unwrap_answer(answer: str, unwrapped: str) -> None:
    assert unwrap_answer(answer) == unwrapped


def _task(truth: str) -> BenchTask:
    return BenchTask(task_id="t1", question="How many?", ground_truth=truth)


async def test_exact_judge_verdicts() -> None:
    judge = ExactJudge()
    assert judge.name == "exact"
    assert await judge.judge(_task("1000"), "\\boxed{$1,000}", "gaia") == Verdict(
        "correct", method="exact"
    )
    wrong = await judge.judge(_task("1000"), "999", "gaia")
    assert (wrong.verdict, wrong.correct, wrong.detail) == ("incorrect", False, None)
    none = await judge.judge(_task("1000"), None, "gaia")
    assert none.as_record() == {
        "verdict": "incorrect",
        "method": "exact",
        "model": None,
        "prompt_version": None,
        "detail": "no answer",
    }
    await judge.aclose()


MODELS = {
    "main": ModelConfig(base_url="http://127.0.0.1:1/v1"),
    "helper": ModelConfig(protocol="native", base_url="http://127.0.0.1:2/v1", model="m"),
}


def test_make_judge_exact() -> None:
    assert isinstance(make_judge(" exact ", MODELS), ExactJudge)


def test_make_judge_flow_model_as_plain_chat_model() -> None:
    judge = make_judge("main", MODELS)
    assert isinstance(judge, LlmJudge)
    assert judge.name == "main"
    model = judge.model
    # a mirothinker endpoint is asked as an OpenAI-compatible chat model, at temperature 0
    assert type(model).__name__ == "ChatOpenAI"
    assert (model.temperature, model.model_name) == (0.0, "mirothinker")  # type: ignore[attr-defined]
    assert str(model.openai_api_base) == "http://127.0.0.1:1/v1"  # type: ignore[attr-defined]
    assert not model.extra_body  # type: ignore[attr-defined]  # no repetition_penalty


def test_make_judge_model_at_url_reads_the_judge_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("MIROGRAPH_JUDGE_API_KEY", "sk-judge")
    judge = make_judge("gpt-x@https://judge.example/v1", MODELS)
    assert isinstance(judge, LlmJudge)
    assert judge.name == "gpt-x@https://judge.example/v1"
    model = judge.model
    assert model.model_name == "gpt-x"  # type: ignore[attr-defined]
    assert model.openai_api_key.get_secret_value() == "sk-judge"  # type: ignore[attr-defined]
    monkeypatch.delenv("MIROGRAPH_JUDGE_API_KEY")
    fallback = make_judge("gpt-x@https://judge.example/v1", MODELS)
    assert fallback.model.openai_api_key.get_secret_value() == "sk-openai"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("gpt-4", "unknown judge 'gpt-4'"),
        ("", "unknown judge ''"),
        ("gpt-x@judge.example/v1", "is not MODEL@URL with an http(s) URL"),
        ("@https://judge.example/v1", "is not MODEL@URL with an http(s) URL"),
        ("gpt-x@ftp://judge.example", "is not MODEL@URL with an http(s) URL"),
    ],
)
def test_make_judge_rejects_with_one_line(spec: str, says: str) -> None:
    with pytest.raises(UserInputError) as caught:
        make_judge(spec, MODELS)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message
    assert "helper, main" in message  # the flow's model keys
    assert "'exact'" in message and "MODEL@URL" in message


def test_make_judge_error_for_a_flow_without_models() -> None:
    with pytest.raises(UserInputError, match=r"its models: none"):
        make_judge("main", {})


#: The words of each criteria's prompt, pinned: a change of words needs a new version.
PINNED = {
    "equivalence-v1": "11ccf3170040",
    "browsecomp-v1": "db8cfc251cae",
    "hle-v1": "9de445a729d2",
}


def test_prompt_words_are_pinned_to_their_version() -> None:
    """Changing a prompt's words without a new ``Criteria.version`` fails here."""
    seen = {
        criteria.version: hashlib.sha256((PROMPT + REMINDER + criteria.rules).encode()).hexdigest()[
            :12
        ]
        for criteria in (EQUIVALENCE, SINGLE_ANSWER, MATCH)
    }
    assert seen == PINNED


@pytest.mark.parametrize(
    ("reply", "correct"),
    [
        ("Same thing.\nVERDICT: CORRECT", True),
        ("Differs.\nverdict: incorrect", False),
        ("**VERDICT:** **CORRECT**", True),
        ("`VERDICT: INCORRECT`.", False),
        ("<think>VERDICT: CORRECT?</think>\nVERDICT: INCORRECT", False),
        ("thinking without an opening tag</think>VERDICT: CORRECT", True),
        ("VERDICT: INCORRECT at first, but VERDICT: CORRECT", True),
        ("VERDICT：CORRECT", True),
        ("<think>VERDICT: CORRECT, cut short", None),
        ("I think it is correct.", None),
        ("VERDICT: NOT CORRECT", None),
        ("", None),
    ],
)
def test_parse_verdict(reply: str, correct: bool | None) -> None:
    assert parse_verdict(reply) is correct
