"""Judges: was an attempt's answer right?

``exact`` applies GAIA's official normalisation (numbers, comma/semicolon lists,
strings) with no model; an LLM judge asks a model with the benchmark's own
criteria (``llm``). Both return a :class:`Verdict`, stored with the attempt. A
verdict an LLM judge gives that cannot be parsed is asked again, then recorded
as ``judge_error``, which never counts as correct.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from mirograph.flows.bench.tasks import BenchTask

VerdictKind = Literal["correct", "incorrect", "judge_error"]


@dataclass(frozen=True)
class Verdict:
    """One judged answer; ``as_record()`` is what ``results.jsonl`` stores as ``judge``."""

    verdict: VerdictKind
    #: ``exact`` or ``llm``.
    method: str
    #: The judge model (``name@url`` or the flow's model key); None for ``exact``.
    model: str | None = None
    #: The version of the judge's prompt and criteria (changes whenever their words do).
    prompt_version: str | None = None
    #: The judge's reply (clipped), or why there is no verdict; None for ``exact``.
    detail: str | None = None

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


class Judge(Protocol):
    """Judges answers to one benchmark's tasks."""

    #: How the judge is named in ``summary.json`` (``exact``, or the model).
    name: str

    async def judge(self, task: BenchTask, answer: str | None, benchmark: str) -> Verdict:
        """The verdict on ``answer`` (None: the run gave no answer, which is incorrect)."""
        ...

    async def aclose(self) -> None:
        """Close the judge's model connections (nothing for ``exact``)."""
        ...
