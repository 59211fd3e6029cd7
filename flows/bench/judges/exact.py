"""GAIA's exact-match rules, with no model: the scorer GAIA's leaderboard uses.

The rules, as the official ``question_scorer`` applies them (written here anew):

- a ground truth that reads as a number is compared as a float, after ``$``, ``%``
  and ``,`` are dropped from the answer (so ``$1,000`` matches ``1000``);
- otherwise one holding ``,`` or ``;`` is a list: both sides are split on either,
  must have as many items, and each item is compared as a number (when the truth's
  item is one) or as a string with whitespace removed and case ignored;
- otherwise both are strings compared without whitespace, punctuation or case.

The official quirk stays on purpose so that scores match the leaderboard's: a
ground truth written ``1,000`` is a list of ``1`` and ``000``, not a number.
An answer still wrapped as ``\\boxed{...}`` or holding ``\\text{...}`` is unwrapped
first: the agent's prompt asks for a boxed answer and one may slip through whole.
"""

from __future__ import annotations

import re
import string

from mirograph.flows.bench.judges import Verdict
from mirograph.flows.bench.tasks import BenchTask

_LIST_SEPARATORS = re.compile(r"[,;]")
_NUMBER_NOISE = str.maketrans("", "", "$%,")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WHITESPACE = re.compile(r"\s")
_BOXED = "\\boxed"
_TEXT = re.compile(r"\\text\s*\{([^{}]*)\}")


class ExactJudge:
    """Judges with GAIA's normalisation rules (``method`` ``exact``)."""

    name = "exact"

    async def judge(self, task: BenchTask, answer: str | None, benchmark: str) -> Verdict:
        if answer is None:
            return Verdict("incorrect", method="exact", detail="no answer")
        matched = gaia_match(unwrap_answer(answer), task.ground_truth)
        return Verdict("correct" if matched else "incorrect", method="exact")

    async def aclose(self) -> None:
        """Nothing to close: no model."""


def gaia_match(answer: str, ground_truth: str) -> bool:
    """True when ``answer`` matches ``ground_truth`` under GAIA's rules (module docstring)."""
    if _is_number(ground_truth):
        return _as_number(answer) == float(ground_truth)
    if _LIST_SEPARATORS.search(ground_truth):
        truths = _LIST_SEPARATORS.split(ground_truth)
        answers = _LIST_SEPARATORS.split(answer)
        return len(truths) == len(answers) and all(
            _item_matches(got, want) for got, want in zip(answers, truths, strict=True)
        )
    return _normalised(answer, drop_punctuation=True) == _normalised(
        ground_truth, drop_punctuation=True
    )


def unwrap_answer(answer: str) -> str:
    """The answer inside the last ``\\boxed{...}`` (if any), with ``\\text{x}`` made ``x``."""
    boxed = _last_boxed(answer)
    text = boxed if boxed is not None else answer
    while (plain := _TEXT.sub(r"\1", text)) != text:
        text = plain
    return text.strip()


def _last_boxed(text: str) -> str | None:
    """The content of the last balanced ``\\boxed{...}`` in ``text``; None when there is none."""
    start = text.rfind(_BOXED)
    while start != -1:
        brace = start + len(_BOXED)
        while brace < len(text) and text[brace].isspace():
            brace += 1
        if brace < len(text) and text[brace] == "{":
            depth = 0
            for end in range(brace, len(text)):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                if depth == 0:
                    return text[brace + 1 : end]
        start = text.rfind(_BOXED, 0, start)
    return None


def _item_matches(answer: str, truth: str) -> bool:
    """One list item: a number when the truth's item is one, else a string kept punctuated."""
    if _is_number(truth):
        return _as_number(answer) == float(truth)
    return _normalised(answer, drop_punctuation=False) == _normalised(truth, drop_punctuation=False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_number(text: str) -> float:
    """``text`` as a float without ``$``, ``%`` and ``,``; infinity (matches nothing finite)
    when it is not a number."""
    try:
        return float(text.translate(_NUMBER_NOISE))
    except ValueError:
        return float("inf")


def _normalised(text: str, *, drop_punctuation: bool) -> str:
    text = _WHITESPACE.sub("", text)
    if drop_punctuation:
        text = text.translate(_PUNCTUATION)
    return text.lower()
