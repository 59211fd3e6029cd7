"""The web view's Starlette app: the page, its assets, the JSON API, the guard.

``create_app`` opens the run store once for the server's life (the registry and
the events are read through it on every request) and closes it, with the
steering's bookkeeping, when the server stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mirograph.flows.ui.api import Api, api_routes
from mirograph.flows.ui.guard import Access, GuardMiddleware
from mirograph.flows.ui.run_view import RunViews
from mirograph.flows.ui.steering import Steering
from mirograph.state.redact import scrub
from mirograph.state.store import open_store


@dataclass
class Settings:
    """What one ``mirograph ui`` serves and to whom."""

    store_url: str | None = None
    #: Asked of every request but the static assets; None: none asked (a loopback bind).
    token: str | None = None
    #: Bound to a loopback address: requests must name a loopback host.
    loopback: bool = True
    #: Runs started or resumed here are queued for the workers of this broker.
    broker: str | None = None
    #: Where live events come from (default ``$MIROGRAPH_REDIS``; none: the store polled).
    redis_url: str | None = None
    #: Folders holding ``mirograph bench`` outputs.
    bench_roots: list[Path] = field(default_factory=lambda: [Path("bench")])


def static_dir() -> Path:
    """The page's HTML, script and styles, shipped in the package."""
    return Path(str(resources.files("mirograph.flows.ui") / "static"))


async def http_error(request: Request, exc: Exception) -> Response:
    """A path or method no route has: under ``/api/`` one JSON line like every other
    API error (the page shows ``error``), elsewhere Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    if request.url.path != "/api" and not request.url.path.startswith("/api/"):
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    what = f"{request.method} {request.url.path}"[:200]
    return JSONResponse(
        {"error": scrub(f"{exc.detail.lower()}: {what} is not in the API")},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def create_app(settings: Settings) -> Starlette:
    """The app; the store opens when the server starts and closes when it stops."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_store(settings.store_url) as store:
            steering = Steering(store, settings.store_url, settings.broker)
            views = RunViews(store, settings.store_url)
            app.state.api = Api(views, steering, settings.bench_roots, settings.redis_url)
            app.state.is_outage = store.is_outage
            try:
                yield
            finally:
                await steering.aclose()

    index = (static_dir() / "index.html").read_text()

    async def page(request: Request) -> Response:
        return HTMLResponse(index, headers={"Cache-Control": "no-store"})

    return Starlette(
        exception_handlers={HTTPException: http_error},
        routes=[
            Route("/", page),
            *api_routes(),
            Mount("/static", StaticFiles(directory=static_dir()), name="static"),
        ],
        middleware=[
            Middleware(GuardMiddleware, access=Access(settings.token, settings.loopback)),
            # a page of 50 turns is ~100 KB of JSON: ~8 times less over a remote link
            # (server-sent events are never compressed: they must flow as they come)
            Middleware(GZipMiddleware, minimum_size=2048),
        ],
        lifespan=lifespan,
    )
