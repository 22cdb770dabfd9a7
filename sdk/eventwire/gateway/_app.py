"""The gateway's ASGI application (Starlette): routes, lifespan and error mapping."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from eventwire.bus import EventBus
from eventwire.contracts import render_html
from eventwire.deadletter import DeadLetter
from eventwire.errors import UnsupportedOperationError
from eventwire.flow import build_graph, participant_from_asyncapi, to_svg
from eventwire.gateway import _console
from eventwire.gateway._auth import check_token
from eventwire.gateway._body import read_body
from eventwire.gateway._catalog import Catalog, load_catalog
from eventwire.gateway._cloudevents import parse_request
from eventwire.gateway._deadletters import LetterFilter, details, letter_id, summary
from eventwire.gateway._ingress import publish_event
from eventwire.gateway._link import BrokerLink
from eventwire.gateway._openapi import MAX_OFFSET, OPENAPI_PATH, build_openapi
from eventwire.gateway._problems import Problem, problem_response
from eventwire.gateway._settings import GatewaySettings
from eventwire.idempotency import IdempotencyStore, MemoryIdempotencyStore

__all__ = ["create_app"]

log = logging.getLogger("eventwire.gateway")
_INT = re.compile(r"^[0-9]{1,40}$")
_LETTER = re.compile(r"^[0-9a-f]{20}$")
_FILTERS = frozenset({"reason", "error_type", "group", "since", "until"})
_PAGE = frozenset({"offset", "limit"})


@dataclasses.dataclass
class _Gateway:
    catalog: Catalog
    settings: GatewaySettings
    link: BrokerLink
    store: IdempotencyStore
    openapi: dict[str, Any]
    flow_svg: str
    html_dir: Path

    # -- helpers ----------------------------------------------------------------------------

    def guard(self, request: Request) -> None:
        assert self.settings.token is not None  # mutating routes exist only with a token
        check_token(request, self.settings.token)

    def channel(self, request: Request) -> str:
        name = str(request.path_params["channel"])
        if name not in self.catalog.channels:
            raise Problem(
                404,
                "unknown-channel",
                f"no channel {name!r} in the served contracts (channels: "
                f"{', '.join(self.catalog.channels) or 'none'})",
            )
        return name

    async def letters(self, channel: str) -> list[DeadLetter]:
        return await self.link.bus.dead_letters(channel, self.settings.scan_limit)

    async def find(self, channel: str, wanted: str) -> DeadLetter:
        if _LETTER.match(wanted):
            for letter in await self.letters(channel):
                if letter_id(letter) == wanted:
                    return letter
        raise _no_letter(channel, wanted)

    @property
    def binding(self) -> str:
        return self.link.template.backend.binding

    # -- API --------------------------------------------------------------------------------

    async def ingress(self, request: Request) -> Response:
        name = str(request.path_params["type"])
        message = self.catalog.messages.get(name)
        if message is None:
            known = ", ".join(sorted(self.catalog.messages)) or "none"
            raise Problem(
                404,
                "unknown-event-type",
                f"the contracts send no message {name!r}; this gateway accepts: {known}",
            )
        self.guard(request)
        body = await read_body(request, self.settings.max_body_bytes)
        incoming = parse_request(request.headers.get("content-type"), request.headers, body)
        envelope, duplicate = await publish_event(
            self.link, self.store, message, incoming, self.settings.source
        )
        return JSONResponse(
            {
                "id": envelope.id,
                "type": envelope.type,
                "channel": message.channel,
                "source": envelope.source,
                "duplicate": duplicate,
            },
            status_code=202,
        )

    async def channels(self, request: Request) -> Response:
        return JSONResponse({"channels": await self._counts()})

    async def _counts(self) -> list[dict[str, Any]]:
        out = []
        for channel in self.catalog.channels:
            count = len(await self.letters(channel))
            out.append(
                {"channel": channel, "count": count, "truncated": count >= self.settings.scan_limit}
            )
        return out

    async def _page(self, query: Mapping[str, str], channel: str) -> dict[str, Any]:
        numbers = {}
        for name, default, low, top in (("offset", 0, 0, MAX_OFFSET), ("limit", 50, 1, 500)):
            text = query.get(name)
            if text is None:
                numbers[name] = default
            elif _INT.match(text) and low <= int(text) <= top:
                numbers[name] = int(text)
            else:
                raise Problem(
                    400,
                    "invalid-parameter",
                    f"{name} must be an integer from {low} to {top}, got {text[:40]!r}",
                )
        where = LetterFilter.from_query(query)
        letters = await self.letters(channel)
        matched = [letter for letter in letters if where(letter)]
        offset, limit = numbers["offset"], numbers["limit"]
        return {
            "channel": channel,
            "total": len(matched),
            "offset": offset,
            "limit": limit,
            "truncated": len(letters) >= self.settings.scan_limit,
            "items": [summary(m, self.binding) for m in matched[offset : offset + limit]],
        }

    async def list_letters(self, request: Request) -> Response:
        channel = self.channel(request)
        return JSONResponse(await self._page(request.query_params, channel))

    async def get_letter(self, request: Request) -> Response:
        channel = self.channel(request)
        letter = await self.find(channel, str(request.path_params["letter"]))
        return JSONResponse(details(letter, self.binding))

    async def replay_one(self, request: Request) -> Response:
        channel = self.channel(request)
        self.guard(request)
        wanted = str(request.path_params["letter"])
        count = 0
        if _LETTER.match(wanted):
            count = await self.link.bus.replay_dead_letters(
                channel,
                where=lambda letter: letter_id(letter) == wanted,
                limit=self.settings.scan_limit,
            )
        if count == 0:
            raise _no_letter(channel, wanted)
        log.info("eventwire gateway: replayed letter %s of %s", wanted, channel)
        return JSONResponse({"replayed": count})

    async def replay_many(self, request: Request) -> Response:
        channel = self.channel(request)
        self.guard(request)
        where = LetterFilter.from_query(request.query_params)
        count = await self.link.bus.replay_dead_letters(
            channel, where=where, limit=self.settings.scan_limit
        )
        log.info("eventwire gateway: replayed %d letter(s) of %s", count, channel)
        return JSONResponse({"replayed": count})

    async def purge(self, request: Request) -> Response:
        channel = self.channel(request)
        self.guard(request)
        try:
            count = await self.link.bus.purge_dead_letters(channel)
        except UnsupportedOperationError as exc:
            raise Problem(501, "purge-unsupported", str(exc)) from None
        log.info("eventwire gateway: purged %d letter(s) of %s", count, channel)
        return JSONResponse({"purged": count})

    async def refuse(self, request: Request) -> Response:
        raise Problem(
            403,
            "read-only",
            "this gateway runs --read-only: it neither publishes, replays nor purges",
        )

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/console")

    async def live(self, request: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(self, request: Request) -> Response:
        if not self.link.ready:
            raise Problem(
                503,
                "not-ready",
                f"not connected to the broker at {self.link.template.url} yet",
                headers={"Retry-After": str(self.link.retry_after)},
            )
        return JSONResponse({"status": "ready", "broker": self.link.template.url})

    async def openapi_json(self, request: Request) -> Response:
        return JSONResponse(self.openapi)

    async def flow(self, request: Request) -> Response:
        return Response(self.flow_svg, media_type="image/svg+xml")

    async def asyncapi_index(self, request: Request) -> Response:
        items = "".join(
            f'<li><a href="/asyncapi/{i}/index.html">{path.name}</a></li>'
            for i, (path, _) in enumerate(self.catalog.contracts)
        )
        return HTMLResponse(
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            "<title>Contracts</title></head><body><h1>Served contracts</h1>"
            f"<ul>{items}</ul></body></html>"
        )

    # -- console ----------------------------------------------------------------------------

    async def console_channels(self, request: Request) -> Response:
        counts = await self._counts()
        return HTMLResponse(_console.channels_page(counts, read_only=self.settings.read_only))

    async def console_letters(self, request: Request) -> Response:
        channel = self.channel(request)
        query = {k: v for k, v in request.query_params.items() if v}  # the form's empty fields
        page = await self._page(query, channel)
        return HTMLResponse(
            _console.letters_page(channel, page, query, read_only=self.settings.read_only)
        )

    async def console_letter(self, request: Request) -> Response:
        channel = self.channel(request)
        letter = await self.find(channel, str(request.path_params["letter"]))
        return HTMLResponse(
            _console.letter_page(
                channel, details(letter, self.binding), read_only=self.settings.read_only
            )
        )


Endpoint = Callable[[Request], Awaitable[Response]]


def _no_letter(channel: str, wanted: str) -> Problem:
    return Problem(
        404,
        "unknown-letter",
        f"no dead letter {wanted[:40]!r} in {channel}.dlq (it may have been removed by the "
        f"broker's retention); list them with GET /dead-letters/{channel}",
    )


class _LetterId(Convertor[str]):
    """A letter id in a path: so that ``/dead-letters/<channel>/replay`` is never one."""

    regex = "[0-9a-f]{20}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("eventwire_letter", _LetterId())


def _routes(gateway: _Gateway) -> list[BaseRoute]:
    static = resources.files("eventwire.gateway").joinpath("static")
    get = ["GET"]

    def route(
        path: str, endpoint: Endpoint, methods: list[str], query: frozenset[str] | None = None
    ) -> Route:
        """`query`: the parameters an API endpoint takes (others are refused); ``None``: a
        page, which ignores what it does not know."""
        handler = _handle(endpoint, html=path.startswith("/console"), query=query)
        return Route(path, handler, methods=methods)

    none: frozenset[str] = frozenset()

    routes: list[BaseRoute] = [
        route("/", gateway.home, get),
        route(OPENAPI_PATH, gateway.openapi_json, get, none),
        route("/health/live", gateway.live, get, none),
        route("/health/ready", gateway.ready, get, none),
        route("/flow.svg", gateway.flow, get),
        route("/asyncapi/", gateway.asyncapi_index, get),
        Mount("/asyncapi", StaticFiles(directory=gateway.html_dir)),
        route("/dead-letters", gateway.channels, get, none),
        route("/dead-letters/{channel}", gateway.list_letters, get, _FILTERS | _PAGE),
        route("/console", gateway.console_channels, get),
        Mount("/console/static", StaticFiles(directory=str(static))),
        route("/console/{channel}", gateway.console_letters, get),
        route("/console/{channel}/{letter}", gateway.console_letter, get),
    ]
    read_only = gateway.settings.read_only
    routes += [
        route("/events/{type}", gateway.refuse if read_only else gateway.ingress, ["POST"], none),
        route(
            "/dead-letters/{channel}/replay",
            gateway.refuse if read_only else gateway.replay_many,
            ["POST"],
            _FILTERS,
        ),
        route(
            "/dead-letters/{channel}/purge",
            gateway.refuse if read_only else gateway.purge,
            ["POST"],
            none,
        ),
        route(
            "/dead-letters/{channel}/{letter:eventwire_letter}/replay",
            gateway.refuse if read_only else gateway.replay_one,
            ["POST"],
            none,
        ),
    ]
    routes.append(
        route("/dead-letters/{channel}/{letter:eventwire_letter}", gateway.get_letter, get, none)
    )
    return routes


def _check_query(request: Request, allowed: frozenset[str]) -> None:
    """An unknown or repeated parameter is refused: a misspelt filter must not widen a replay."""
    names = [name for name, _ in request.query_params.multi_items()]
    unknown = sorted({n for n in names if n not in allowed})
    repeated = sorted({n for n in names if names.count(n) > 1} - set(unknown))
    if unknown or repeated:
        what = (
            f"unknown query parameter(s) {', '.join(map(repr, unknown))[:200]}"
            if unknown
            else f"repeated query parameter(s) {', '.join(map(repr, repeated))}"
        )
        accepted = ", ".join(sorted(allowed)) or "none"
        raise Problem(400, "invalid-parameter", f"{what}; this endpoint takes: {accepted}")


def _handle(endpoint: Endpoint, *, html: bool, query: frozenset[str] | None) -> Endpoint:
    async def handler(request: Request) -> Response:
        try:
            if query is not None:
                _check_query(request, query)
            return await endpoint(request)
        except Problem as problem:
            if html:
                return HTMLResponse(
                    _console.error_page(problem.status, problem.detail),
                    status_code=problem.status,
                    headers=problem.headers,
                )
            return problem_response(problem, request.url.path)

    return handler


def create_app(
    url: str,
    contracts: Sequence[str | os.PathLike[str]],
    settings: GatewaySettings,
    *,
    backend_options: dict[str, Any] | None = None,
    idempotency_store: IdempotencyStore | None = None,
) -> Starlette:
    """The gateway for the broker at `url`, serving `contracts` (AsyncAPI 3.0 files).

    The bus connects when the application starts (its ASGI lifespan) and closes when it
    stops. `ContractError` / `ConfigurationError` for a bad contract or URL.
    """
    catalog = load_catalog(contracts)
    link = BrokerLink(
        lambda: EventBus(url, source=settings.source, backend_options=backend_options),
        retry_after=settings.retry_after,
    )
    html_dir = Path(tempfile.mkdtemp(prefix="eventwire-gateway-"))
    for i, (path, _) in enumerate(catalog.contracts):
        render_html(path, html_dir / str(i))
    graph = build_graph(
        [participant_from_asyncapi(doc, str(path)) for path, doc in catalog.contracts]
    )
    gateway = _Gateway(
        catalog=catalog,
        settings=settings,
        link=link,
        store=idempotency_store if idempotency_store is not None else MemoryIdempotencyStore(),
        openapi=build_openapi(catalog, read_only=settings.read_only),
        flow_svg=to_svg(graph, "Event flow of the served contracts"),
        html_dir=html_dir,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await link.start()
        try:
            yield
        finally:
            await link.close()

    routes = _routes(gateway)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        problem = Problem(exc.status_code, kind, str(exc.detail), headers=exc.headers)
        return problem_response(problem, request.url.path)

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.state.gateway = gateway
    weakref.finalize(app, shutil.rmtree, html_dir, ignore_errors=True)  # also if never started
    return app
