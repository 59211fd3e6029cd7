"""The web view's JSON API under ``/api/``: what the page calls, and scripts may too.

Reading: ``GET /api/runs`` (``?status=running,paused&q=text&limit=N``),
``/api/runs/{id}`` (the run's summary: agent tree, timeline, tokens per turn),
``/api/runs/{id}/calls/{label}/turns?offset=&limit=`` (a page of an agent call's
turns), ``/api/runs/{id}/calls/{label}/turns/{n}/results/{i}`` (a tool result in
full), ``/api/runs/{id}/events?after=SEQ`` (server-sent events, live),
``/api/bench`` and ``/api/bench/{index}/{plot}``. Steering: ``POST /api/runs``
(``{"question", "flow", "set": [...]}``), ``POST /api/runs/{id}/pause``,
``POST /api/runs/{id}/resume``. Every error is ``{"error": "one line"}`` with
400 (bad input), 404 (no such run, call or result), 409 (the run's state does not
allow it) or 503 (the store is away). docs/reference.md "Web view" has each.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mirograph.errors import MirographError, RunNotFoundError, RunStateError, UserInputError
from mirograph.flows.list_view import list_row
from mirograph.flows.ui.bench_view import bench_rows, plot_path
from mirograph.flows.ui.run_view import PAGE_TURNS, NoSuchCall, RunViews
from mirograph.flows.ui.steering import Steering, SteeringError
from mirograph.flows.ui.stream import event_stream
from mirograph.state.redact import scrub
from mirograph.state.registry import RUN_STATUSES

#: Runs a list returns at most.
MAX_LIST = 2000
#: Event streams open at once (browsers open at most 6 per server; scripts may open more).
MAX_STREAMS = 64
#: Bytes a POST body may have.
MAX_BODY = 1_000_000
#: Characters of a question a runs list shows (the run's own page has all of it): 200
#: runs of 200,000-character questions were 40 MB, 1.5 s, on every 2 s refresh.
LIST_QUESTION_CHARS = 500


@dataclass
class Api:
    """What the handlers share: the store's views, steering, where benches are."""

    views: RunViews
    steering: Steering
    bench_roots: list[Path]
    redis_url: str | None = None
    #: Event streams open now.
    streams: int = 0

    # -- reading ------------------------------------------------------------------

    async def runs(self, request: Request) -> Response:
        params = request.query_params
        statuses = [s for s in params.get("status", "").split(",") if s]
        unknown = [s for s in statuses if s not in RUN_STATUSES]
        if unknown:
            raise UserInputError(
                f"unknown status {unknown[0]!r}; use one of {', '.join(RUN_STATUSES)}"
            )
        limit = _int(params.get("limit"), "limit", 200, 1, MAX_LIST)
        text = params.get("q", "").strip().lower()
        # the registry filters by effective status (a killed "running" run is paused)
        records = self.views.store.registry.list(MAX_LIST if text else limit, statuses)
        rows = []
        for record in records:
            row = list_row(record)
            if text and not any(text in str(row[k]).lower() for k in ("id", "question", "flow")):
                continue
            if len(row["question"]) > LIST_QUESTION_CHARS:
                row["question"] = row["question"][: LIST_QUESTION_CHARS - 1] + "…"
            rows.append(row)
            if len(rows) >= limit:
                break
        return JSONResponse(scrub({"runs": rows}))

    async def run(self, request: Request) -> Response:
        view = await self.views.get(request.path_params["run_id"])
        return JSONResponse(view.summary())

    async def turns(self, request: Request) -> Response:
        params = request.query_params
        seen = _int(params.get("seq"), "seq", -1, -1, 10**12)
        view = await self.views.get(request.path_params["run_id"], None if seen < 0 else seen)
        offset = _int(params.get("offset"), "offset", 0, 0, 10**9)
        limit = _int(params.get("limit"), "limit", PAGE_TURNS, 1, PAGE_TURNS * 4)
        label = request.path_params["label"]
        page = await view.turn_page(label, offset, limit, self.views.store.blobs)
        return JSONResponse(page)

    async def result(self, request: Request) -> Response:
        view = await self.views.get(request.path_params["run_id"])
        p = request.path_params
        text = await view.result_text(p["label"], p["number"], p["index"], self.views.store.blobs)
        return JSONResponse({"text": text})

    async def events(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        self.views.record(run_id)  # a run not in the store: 404, not an empty stream
        last = request.headers.get("last-event-id") or request.query_params.get("after")
        after = _int(last, "after", 0, 0, 10**12)
        if self.streams >= MAX_STREAMS:  # each follows the store (a connection of its own)
            return _error(503, f"{MAX_STREAMS} event streams are open; try again when one ends")
        return StreamingResponse(
            self._counted(event_stream(run_id, after, self.views.store_url, self.redis_url)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _counted(self, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        self.streams += 1
        try:
            async for text in stream:
                yield text
        finally:
            self.streams -= 1

    async def bench(self, request: Request) -> Response:
        return JSONResponse({"benches": bench_rows(self.bench_roots)})

    async def plot(self, request: Request) -> Response:
        p = request.path_params
        path = plot_path(self.bench_roots, p["index"], p["plot"])
        if path is None:
            return _error(404, f"no plot {p['plot']!r} in bench {p['index']}")
        return FileResponse(path, media_type="image/png")

    # -- steering -------------------------------------------------------------------

    async def start(self, request: Request) -> Response:
        body = await _body(request)
        question = body.get("question")
        flow = body.get("flow")
        overrides = body.get("set") or []
        if not isinstance(question, str):
            raise UserInputError('send the question as text: {"question": "..."}')
        if flow is not None and not isinstance(flow, str):
            raise UserInputError('send the flow as its name or path: {"flow": "deep-research"}')
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise UserInputError('send overrides as a list of KEY=VALUE: {"set": ["a.b=1"]}')
        run_id = await self.steering.start(question, flow, overrides)
        return JSONResponse({"id": run_id}, status_code=201)

    async def pause(self, request: Request) -> Response:
        record = self.steering.pause(request.path_params["run_id"])
        return JSONResponse({"id": record.id, "pause_requested": True}, status_code=202)

    async def resume(self, request: Request) -> Response:
        record = await self.steering.resume(request.path_params["run_id"])
        return JSONResponse({"id": record.id, "status": record.effective_status}, status_code=202)


#: Every route of the API: path, method, and the ``Api`` method that answers it.
ROUTES = (
    ("/api/runs", "GET", "runs"),
    ("/api/runs", "POST", "start"),
    ("/api/runs/{run_id}", "GET", "run"),
    ("/api/runs/{run_id}/events", "GET", "events"),
    ("/api/runs/{run_id}/pause", "POST", "pause"),
    ("/api/runs/{run_id}/resume", "POST", "resume"),
    ("/api/runs/{run_id}/calls/{label}/turns", "GET", "turns"),
    ("/api/runs/{run_id}/calls/{label}/turns/{number:int}/results/{index:int}", "GET", "result"),
    ("/api/bench", "GET", "bench"),
    ("/api/bench/{index:int}/{plot}", "GET", "plot"),
)


def api_routes() -> list[Route]:
    """The API's routes; each answers with the app's ``Api`` (``app.state.api``, set
    once the store is open)."""
    routes = []
    for path, method, name in ROUTES:

        async def handler(request: Request, name: str = name) -> Response:
            api: Api = request.app.state.api
            return await _answered(getattr(api, name), request)

        routes.append(Route(path, handler, methods=[method], name=f"{name}_{method.lower()}"))
    return routes


Handler = Callable[[Request], Awaitable[Response]]


async def _answered(handler: Handler, request: Request) -> Response:
    """The handler's answer, the engine's errors turned into the API's one-line ones."""
    try:
        return await handler(request)
    except (RunNotFoundError, NoSuchCall) as exc:
        return _error(404, str(exc))
    except SteeringError as exc:
        return _error(exc.status, str(exc))
    except RunStateError as exc:
        return _error(409, str(exc))
    except UserInputError as exc:
        return _error(400, str(exc))
    except MirographError as exc:
        if exc.exit_code == 3:  # the store, model server or broker is away
            return _error(503, str(exc))
        raise
    except Exception as exc:
        is_outage = getattr(request.app.state, "is_outage", None)
        if is_outage is not None and is_outage(exc):
            return _error(503, "the run store is not reachable; try again when it is back")
        raise


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": scrub(message)}, status_code=status)


def _int(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserInputError(f"{name} must be a whole number, not {raw[:40]!r}") from None
    if not low <= value <= high:
        raise UserInputError(f"{name} must be between {low} and {high}, not {value}")
    return value


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise UserInputError(f"the request body is over {MAX_BODY:,} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise UserInputError("the request body is not JSON") from None
    except RecursionError:  # [[[[... a megabyte deep: one line, not a crash report
        raise UserInputError("the request body is JSON nested too deep") from None
    if not isinstance(body, dict):
        raise UserInputError("send a JSON object")
    return body
