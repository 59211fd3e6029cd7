"""An LLM judge: a chat model reads the question, the reference answer and the response,
and grades the response with the benchmark's own criteria.

Three sets of criteria, written in our own words after the benchmarks' published graders:

- ``equivalence``: the answer means the same as the reference (format, wording and
  units may differ): GAIA, FRAMES, WebWalker, SEAL-0, xbench-DeepSearch and any
  benchmark not named below;
- ``browsecomp``: one final answer, no hedging among candidates, numbers to the
  reference's precision: BrowseComp and BrowseComp-ZH (built as BrowseComp's Chinese
  counterpart and graded with its rules);
- ``hle``: does the final answer match (for multiple choice, the option chosen).

The judge ends its reply with ``VERDICT: CORRECT`` or ``VERDICT: INCORRECT``. A reply
without that line is asked again (the model sees its reply and a reminder), a failed
call is tried again after a backoff; past the retries the verdict is ``judge_error``,
never an exception. ``Criteria.version`` names the words: change it with them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from mirograph.flows.bench.judges import Verdict, VerdictKind
from mirograph.flows.bench.tasks import BenchTask
from mirograph.text import clip, describe

#: How much of the judge's reply a verdict keeps as its ``detail``.
DETAIL_CHARS = 1500


@dataclass(frozen=True)
class Criteria:
    """How one family of benchmarks is graded; ``version`` changes whenever the words do."""

    version: str
    rules: str


EQUIVALENCE = Criteria(
    "equivalence-v1",
    "The response is correct when its final answer means the same as the reference"
    " answer. Differences of wording, capitalisation, formatting, number formatting"
    ' ("1,000" and "1000") or the way a unit is written ("5 km" and "5000 m") do not'
    " matter as long as the value and the meaning are the same. The response is"
    " incorrect when its final answer names something else, contradicts the reference,"
    " is vaguer than the reference, leaves out part of it, or hedges between answers.",
)

SINGLE_ANSWER = Criteria(
    "browsecomp-v1",
    "The response must commit to ONE final answer. It is correct only when that answer"
    " is equivalent to the reference answer. Several candidate answers, a list of"
    " possibilities, or a hedge between alternatives is incorrect, even when one of them"
    " is the reference. A number must agree with the reference to the precision the"
    " reference gives (a reference of 3.14 is not matched by 3.1 or by 3); a more"
    " precise number is fine when it rounds to the reference. Wording and formatting may"
    " differ when the answer is the same.",
)

MATCH = Criteria(
    "hle-v1",
    "Does the final answer in the response match the reference answer? For a"
    " multiple-choice question, the letter or option the response chooses must be the"
    " reference's. For any other question, only equivalent forms match (the same value"
    " or expression, written differently); any meaningful difference, a missing final"
    " answer or an ambiguous one is incorrect. Do not grade the reasoning, only the final"
    " answer.",
)

#: The criteria each benchmark is graded by; any other name gets :data:`EQUIVALENCE`.
CRITERIA_BY_BENCHMARK: dict[str, Criteria] = {
    "browsecomp": SINGLE_ANSWER,
    "browsecomp-zh": SINGLE_ANSWER,
    "hle": MATCH,
    "gaia": EQUIVALENCE,
    "frames": EQUIVALENCE,
    "webwalker": EQUIVALENCE,
    "seal-0": EQUIVALENCE,
    "seal": EQUIVALENCE,
    "xbench-deepsearch": EQUIVALENCE,
}

PROMPT = """\
You are grading a response to a benchmark question against the reference answer.

[Question]
{question}

[Reference answer]
{ground_truth}

[Response]
{answer}

[How to grade]
{rules}

Grade only the response's final answer against the reference answer: do not answer the \
question yourself and give no credit for effort. Explain your grade in a few sentences, \
then end your reply with a line that is exactly one of:
VERDICT: CORRECT
VERDICT: INCORRECT"""

REMINDER = """\
Your reply did not end with a verdict line. Reply again, ending with a line that is \
exactly one of:
VERDICT: CORRECT
VERDICT: INCORRECT"""

_VERDICT = re.compile(r"verdict\s*[:：]\s*(correct|incorrect)\b", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#]")
_THINK_END = "</think>"
_THINK_START = "<think>"


def criteria_for(benchmark: str) -> Criteria:
    """The criteria ``benchmark`` is graded by (:data:`EQUIVALENCE` for unnamed ones)."""
    return CRITERIA_BY_BENCHMARK.get(benchmark.strip().lower(), EQUIVALENCE)


def render_prompt(criteria: Criteria, task: BenchTask, answer: str) -> str:
    return PROMPT.format(
        question=task.question.strip(),
        ground_truth=task.ground_truth.strip(),
        answer=answer.strip(),
        rules=criteria.rules,
    )


def parse_verdict(reply: str) -> bool | None:
    """True/False from the reply's last verdict line; None when it has none.

    Thinking is ignored (see :func:`visible_reply`), as are case and markdown emphasis.
    """
    found = _VERDICT.findall(_MARKUP.sub("", visible_reply(reply)))
    if not found:
        return None
    return found[-1].lower() == "correct"


def visible_reply(reply: str) -> str:
    """``reply`` without its thinking: ``<think>...</think>``, or everything before a lone
    ``</think>``; an unclosed ``<think>`` (a reply cut while thinking) hides the rest."""
    lowered = reply.lower()
    end = lowered.rfind(_THINK_END)
    if end != -1:
        reply, lowered = reply[end + len(_THINK_END) :], lowered[end + len(_THINK_END) :]
    start = lowered.find(_THINK_START)
    return (reply[:start] if start != -1 else reply).strip()


class LlmJudge:
    """Grades answers with ``model``, a chat model the caller built and names ``name``."""

    def __init__(
        self,
        model: BaseChatModel,
        name: str,
        *,
        retries: int = 2,
        retry_delay_s: float = 1.0,
        secrets: Sequence[str] = (),
    ) -> None:
        """``retries``: tries after the first (for an unparseable reply or a failed call);
        ``retry_delay_s``: the first wait after a failed call, doubled per failure;
        ``secrets``: strings (the API key) blanked out of any ``detail``."""
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        self.model = model
        self.name = name
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self._secrets = tuple(s for s in secrets if s)

    async def judge(self, task: BenchTask, answer: str | None, benchmark: str) -> Verdict:
        criteria = criteria_for(benchmark)
        if answer is None:
            return self._verdict("incorrect", criteria, "no answer")
        messages: list[BaseMessage] = [HumanMessage(render_prompt(criteria, task, answer))]
        problems: list[str] = []
        delay = self.retry_delay_s
        for attempt in range(1, self.retries + 2):
            try:
                reply = _reply_text(await self.model.ainvoke(messages))
            except Exception as exc:  # any failure of the call is a judge_error, not a crash
                problems.append(f"try {attempt}: the model call failed: {describe(exc, 300)}")
                if attempt <= self.retries and delay > 0:
                    await asyncio.sleep(delay)
                    delay *= 2
                continue
            correct = parse_verdict(reply)
            if correct is not None:
                kind: VerdictKind = "correct" if correct else "incorrect"
                return self._verdict(kind, criteria, visible_reply(reply))
            problems.append(f"try {attempt}: no verdict line in the reply: {clip(reply, 200)}")
            messages = [*messages, AIMessage(reply), HumanMessage(REMINDER)]
        tries = self.retries + 1
        why = f"no verdict after {tries} {'try' if tries == 1 else 'tries'}: " + "; ".join(problems)
        return self._verdict("judge_error", criteria, why)

    async def aclose(self) -> None:
        """Close the model's connections where it owns them (a model with ``aclose``).

        A LangChain ``ChatOpenAI`` shares one pooled HTTP client per endpoint across the
        process; closing it would break every other model on that endpoint, so it is
        left to the process.
        """
        close = getattr(self.model, "aclose", None)
        if close is not None:
            await close()

    def _verdict(self, kind: VerdictKind, criteria: Criteria, detail: str) -> Verdict:
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return Verdict(
            kind,
            method="llm",
            model=self.name,
            prompt_version=criteria.version,
            detail=clip(detail, DETAIL_CHARS),
        )


def _reply_text(message: BaseMessage) -> str:
    """The reply's text, whether the content is a string or a list of blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = [
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in content
        if isinstance(block, str) or block.get("type") == "text"
    ]
    return "".join(parts)
