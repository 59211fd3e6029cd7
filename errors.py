"""Every error mirograph raises for a person to act on: one tree, each node with its exit code.

    MirographError                 1  the base; never raised itself
    ├── UserInputError             2  a flow file, run id, store URL, option or path to fix
    │   ├── FlowError                 a flow file, ``--set`` or custom graph that cannot run
    │   ├── FlowBuildError            a valid flow this version cannot build
    │   ├── ToolRefError              a tool reference that does not resolve here
    │   ├── StoreURLError             a store URL that cannot be opened
    │   ├── EventLogError             a run's event log that cannot be written
    │   ├── PolicySpecError           a ``sim-model --policy`` that does not load
    │   ├── BrokerURLError            a broker URL workers cannot use (not ``redis://``)
    │   └── DatasetError              a benchmark dataset row or file that cannot be read
    ├── RunStateError              2  the run is not there, or another process holds it
    │   ├── RunNotFoundError          no run with that id in the store
    │   └── RunBusyError              another live runner holds the run
    │       └── LeaseLostError        this runner's lease was taken over
    ├── StoreUnavailableError      3  the run store went away: the run stopped at its last
    │                                 checkpoint, resume it once the store is back
    ├── BrokerUnavailableError     3  the workers' broker (Redis) cannot be reached: start it
    ├── ModelServerError           3  the model server failed: the run pauses, resume it later
    │   └── ModelCallError            a model call failed after the client's retries
    │       ├── ModelUnavailableError     unreachable or failing: the run pauses
    │       │   ├── MalformedResponseError    it answered outside the protocol
    │       │   └── RetryLaterError           it asked for a longer wait than is slept
    │       └── ContextOverflowError      the prompt is longer than the model's context
    ├── ToolError                  1  a tool could not be set up or run at all
    ├── RunFailedError             1  the run failed; it stays resumable
    │   └── TaskFailedError           an agent's task cannot be done
    └── InternalError              1  a bug of ours: one line and a crash report, never exit 2
        └── MissingBlobError          the history names a blob the store does not hold

The command line turns an error of this tree into its one-line message and its
``exit_code``; anything else (an ``InternalError`` included) is a bug and gets a
crash report (exit 1). Private control-flow signals that never leave their
module are not part of the tree. This module imports nothing of mirograph and
nothing heavy: the command line classifies with it before any engine is loaded.
"""

from __future__ import annotations

import math
from typing import ClassVar
from urllib.parse import urlsplit

#: The port a hint names when the base URL gives none we can read.
DEFAULT_PORT = 8000


class MirographError(Exception):
    """The base of every error mirograph raises for a person to act on."""

    exit_code: ClassVar[int] = 1


# -- the nodes ---------------------------------------------------------------------


class UserInputError(MirographError):
    """Something the user gave is wrong: the message names it and the fix."""

    exit_code = 2


class RunStateError(MirographError):
    """The run cannot be acted on as asked: it does not exist, or another process holds it."""

    exit_code = 2


class StoreUnavailableError(MirographError):
    """The run store (a PostgreSQL server) could not be reached mid-run: the run stopped
    at its last checkpoint and resumes once the store is back."""

    exit_code = 3


class BrokerUnavailableError(MirographError):
    """The broker that carries runs to workers (Redis) could not be reached: nothing
    was queued; start it (or name a running one) and try again."""

    exit_code = 3


class ModelServerError(MirographError):
    """The model server failed after the client's retries: the run pauses, resumable."""

    exit_code = 3


class ToolError(MirographError):
    """A tool set could not be set up or run at all (a failed call is a tool result instead)."""


class RunFailedError(MirographError):
    """The run stopped on an unexpected error; it is stored and stays resumable."""


class InternalError(MirographError):
    """A bug of ours, or a store in a state we never write: report it with the crash report."""


# -- user input --------------------------------------------------------------------


class FlowError(UserInputError):
    """A flow that cannot run; the message names the file, key path and fix."""


class FlowBuildError(UserInputError):
    """A valid flow this version cannot build."""


class ToolRefError(UserInputError):
    """A tool reference that cannot be resolved or used here; the message names the fix."""


class StoreURLError(UserInputError):
    """A store URL this build cannot open."""


class EventLogError(UserInputError):
    """The event log cannot be written (a read-only or file-valued ``MIROGRAPH_HOME``,
    a folder where the file should be); the message says which path and the fix."""


class PolicySpecError(UserInputError):
    """A simulated model's ``module:function`` policy that cannot be loaded."""


class BrokerURLError(UserInputError):
    """A broker URL the workers cannot use (they need ``redis://HOST:PORT/DB``)."""


class DatasetError(UserInputError):
    """A benchmark dataset that cannot be read: the message names ``file:line``, the
    field and the fix, and is raised before any task runs."""


# -- run state ---------------------------------------------------------------------


class RunNotFoundError(RunStateError):
    """No run with that id in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r} in this store; `mirograph ls` lists run ids")


class RunBusyError(RunStateError):
    """Another live runner holds the run: a run has exactly one runner."""


class LeaseLostError(RunBusyError):
    """This runner's lease was taken over: its writes are refused (fencing)."""


# -- model server ------------------------------------------------------------------


class ModelCallError(ModelServerError):
    """A model call failed after the client's own retries."""


class ModelUnavailableError(ModelCallError):
    """The server could not be reached or kept failing: the run pauses, resumable."""

    def __init__(
        self,
        base_url: str,
        detail: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        self.base_url = base_url
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(self.describe())

    def describe(self) -> str:
        """The one line a user reads when the run pauses on this error."""
        return (
            f"model server at {self.base_url} is unavailable ({self.detail});"
            f" {start_hint(self.base_url)}"
        )


class MalformedResponseError(ModelUnavailableError):
    """The server answered, but not in the protocol: retried like any server fault,
    then the run pauses with what was wrong (no hint to start a server that is up)."""

    def __init__(self, base_url: str, what: str) -> None:
        super().__init__(base_url, f"malformed response: {what}")

    def describe(self) -> str:
        return f"model server at {self.base_url} sent a {self.detail}; check its logs, then resume"


class RetryLaterError(ModelUnavailableError):
    """The server asked for a longer wait than is worth sleeping through in-process:
    the run pauses instead, with the wait it asked for, and is resumed later."""

    def __init__(self, base_url: str, detail: str, wait_s: float) -> None:
        super().__init__(base_url, detail, retryable=False, retry_after=wait_s)

    def describe(self) -> str:
        wait = (
            "an unbounded time" if math.isinf(self.retry_after or 0) else f"{self.retry_after:g} s"
        )
        return (
            f"model server at {self.base_url} asked to retry after {wait} ({self.detail});"
            " resume later"
        )


class ContextOverflowError(ModelCallError):
    """The server rejected the prompt as longer than the model's context."""


def start_hint(base_url: str) -> str:
    """How to start a server where ``base_url`` points: a real model, or the simulated one."""
    port = server_port(base_url)
    return (
        "start one with `vllm serve miromind-ai/MiroThinker-v1.0-8B --served-model-name"
        f" mirothinker --max-model-len 262144 --enable-prompt-tokens-details --port {port}`"
        " or, to try the engine,"
        f" `mirograph sim-model --policy mirograph.agents.sim.policies:tool_loop --port {port}`"
    )


def server_port(base_url: str) -> int:
    """The port ``base_url`` names (its scheme's default when it names none)."""
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return DEFAULT_PORT
    if port is not None:
        return port
    return {"http": 80, "https": 443}.get(parts.scheme, DEFAULT_PORT)


# -- failed runs -------------------------------------------------------------------


class TaskFailedError(RunFailedError):
    """An agent's task itself cannot be done: not the engine, the store or a server failing.

    Raised inside a sub-agent, it becomes a report of the failure to the
    parent, whose investigation goes on; every other exception stops the run.
    Raised in the entry agent, it fails the run like any failure: hence a
    ``RunFailedError`` (exit 1, resumable), not a tool's or the server's error.
    """


# -- internal ----------------------------------------------------------------------


class MissingBlobError(InternalError):
    """A message refers to a blob the store does not hold.

    We never write such a history: the store was changed under us or we have
    a bug, so it is an ``InternalError`` (a crash report), not the user's input.
    """
