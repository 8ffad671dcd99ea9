"""The HTTP API: a thin FastAPI layer over one ``Gateway`` (SPEC section 5).

Endpoints only translate JSON to ``Gateway`` calls and ``Result`` back to JSON. Every failure
becomes a response in ``error_response`` and nowhere else, with the body
``{"error": {"code": ..., "message": ..., ...details}}``: user errors are 4xx with their
stable code, model endpoint failures 502/504, and anything unexpected a 500 whose traceback
goes to the log.

The one exception is a failure in the middle of a streamed answer (a JOIN's rows are written
as they arrive): the status line is gone by then, so the error is written at the end of the
body instead - see ``run_sql``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byom.errors import GatewayError, ModelNotFound
from catalog.records import TokenRecord
from gateway.api_bodies import PredictorSpec, PredictRequest, SqlRequest, TokenSpec, token_dict
from gateway.auth_middleware import AuthMiddleware, check_exposure
from gateway.console import mount_console
from gateway.error_responses import (
    InternalErrorMiddleware,
    JSONBody,
    error_response,
    handle,
    internal_error,
)
from gateway.http_limits import RequestLimits
from gateway.limits import InFlightLimiter
from gateway.parser import ParseLimits, ScriptStatement
from gateway.progress import QueryProgress
from gateway.result import Result, StreamResult
from gateway.scripts import parse_off_loop
from gateway.session import HEADER as SESSION_HEADER
from gateway.session import ID_PATTERN as SESSION_ID_PATTERN
from gateway.session import Session, Sessions, SessionStore
from gateway.settings import Settings
from gateway.sql_answers import ScriptAnswer, stream_response

logger = logging.getLogger(__name__)
REPLICA_HEADER = "X-Byom-Replica"
# How long DELETE /api/queries/{id} waits for the statement to reach its next batch.
CANCEL_WAIT_S = 5.0


@runtime_checkable
class GatewayAPI(Protocol):
    """What the routes below call on a gateway: exactly these methods of
    ``gateway.core.Gateway``, with its signatures.

    The routes are typed with this rather than ``Gateway`` so the API layer (and its tests,
    which serve a fake) need not import the executor, the adapters and the catalog.
    tests/gateway/test_server.py checks that this lists what the routes call and that
    ``Gateway`` and the fake both match it; a route that needs more of the gateway adds the
    method here first.
    """

    #: This gateway's id in the shared catalog (the owner of the jobs it runs); every
    #: answer names it in the ``X-Byom-Replica`` header.
    owner: str

    async def sql_stream(
        self, text: str, query_id: str | None = None, session: Session | None = None
    ) -> Result | StreamResult: ...

    # An async generator in Gateway; a Protocol declares that as a plain ``def``.
    def run_script(
        self,
        script: str | list[ScriptStatement],
        query_id: str | None = None,
        session: Session | None = None,
    ) -> AsyncIterator[tuple[ScriptStatement, Result | StreamResult]]: ...

    def queries(self) -> list[QueryProgress]: ...

    def query_progress(self, query_id: str) -> QueryProgress: ...

    def cancel_query(self, query_id: str) -> QueryProgress: ...

    async def register_predictor(self, spec: dict[str, Any]) -> Result: ...

    async def list_predictors(self) -> Result: ...

    async def describe_predictor(self, name: str) -> Result: ...

    async def drop_predictor(self, name: str) -> Result: ...

    async def predict(self, name: str, rows: list[dict[str, Any]]) -> Result: ...

    def health(self) -> dict[str, Any]: ...

    def create_token(self, name: str, role: str) -> tuple[TokenRecord, str]: ...

    def list_tokens(self) -> list[TokenRecord]: ...

    def revoke_token(self, name: str) -> TokenRecord: ...

    def status_report(self) -> dict[str, Any]: ...


class _ReplicaHeader:
    """Adds ``X-Byom-Replica: <owner>`` to every answer: which replica behind a load
    balancer (Ray Serve's proxy) answered, for logs, ``byom status`` and tests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_replica(message: Message) -> None:
            gateway = scope["app"].state.gateway
            if message["type"] == "http.response.start" and gateway is not None:
                message.setdefault("headers", []).append(
                    (REPLICA_HEADER.lower().encode(), gateway.owner.encode())
                )
            await send(message)

        await self.app(scope, receive, send_with_replica)


# --- streamed answers ---------------------------------------------------------------------


def _stream_error(exc: Exception) -> dict[str, Any]:
    """The ``{"code", "message", ...}`` of a failure after the answer started streaming."""
    if isinstance(exc, GatewayError):
        return exc.to_dict()["error"]
    logger.error("statement failed while its answer streamed", exc_info=exc)
    return internal_error(exc)["error"]


async def _several_statements(text: str, limits: ParseLimits) -> list[ScriptStatement] | None:
    """The statements of ``text`` when it holds more than one, else None (parse errors
    raise; a long text is parsed in a worker thread). Text with no ';' before its end -
    nearly every request - is not parsed here."""
    if ";" not in text.rstrip(" \t\r\n;"):
        return None
    script = await parse_off_loop(text, limits)
    return script if len(script) > 1 else None


# --- the app --------------------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("byom-gateway")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def get_gateway(request: Request) -> GatewayAPI:
    """The app's gateway (a FastAPI dependency)."""
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None:
        raise GatewayError(
            "the gateway is not started: serve the app with its lifespan enabled",
            code="GATEWAY_NOT_STARTED",
        )
    return gateway


GatewayDep = Annotated[GatewayAPI, Depends(get_gateway)]

SessionHeader = Annotated[
    str | None,
    Header(
        alias=SESSION_HEADER,
        pattern=SESSION_ID_PATTERN,
        description="names the client's session, so that USE holds across its requests "
        "(1-128 of A-Z a-z 0-9 _ . -); without it each request is a session of its own",
    ),
]


def _session(request: Request, session_id: str | None) -> Session:
    """The session a request names (read from the app's store), or a fresh one for this
    request."""
    if session_id is None:
        return Session()
    store: Sessions = request.app.state.sessions
    return store.get(session_id)


def _session_store(gateway: GatewayAPI | None) -> Sessions:
    """USE's defaults per X-Byom-Session id: a gateway's own store (in its catalog, shared
    by its replicas; idle sessions expire after an hour), else this process's memory
    (``SessionStore``: a gateway without a catalog, like the tests' fake)."""
    store: Sessions | None = getattr(gateway, "session_store", None)
    return store if store is not None else SessionStore()


def _keep_session(request: Request, session: Session, response: Response) -> None:
    """Save the request's session now, and again once a streamed answer is sent: the later
    statements of a streamed script run (and may ``USE``) while it streams."""
    if session.id is None:
        return
    store: Sessions = request.app.state.sessions
    store.save(session)
    if isinstance(response, StreamingResponse):
        response.background = BackgroundTask(store.save, session)


def _one_record(result: Result, name: str) -> dict[str, Any]:
    records = result.records()
    if not records:
        raise ModelNotFound(f"model {name!r} does not exist; SHOW MODELS lists them", model=name)
    return records[0]


def create_app(
    gateway: GatewayAPI | None = None,
    *,
    home: Path | None = None,
    catalog_url: str | None = None,
    settings: Settings | None = None,
    host: str = "127.0.0.1",
    insecure: bool = False,
    mysql_port: int | None = None,
) -> FastAPI:
    """The FastAPI app. Without ``gateway`` it starts one (``home``, ``catalog_url``,
    ``settings``) in its lifespan and closes it at shutdown; a given ``gateway`` stays the
    caller's to close. ``settings`` (default: the environment) also sets the request limits.
    ``mysql_port`` (default: ``settings.mysql_port``, off; 0: a free port, kept in
    ``app.state.mysql_port``) also serves the MySQL protocol on ``host`` over the same
    gateway, for the lifespan (``gateway.mysql_server``).
    """

    @asynccontextmanager
    async def mysql_protocol(app: FastAPI, served: Any) -> AsyncIterator[None]:
        port = mysql_port if mysql_port is not None else limits.mysql_port
        if port is None:
            yield
            return
        from gateway.mysql_server import serving

        # the HTTP routes' in-flight limiter: a token's statements count once over both
        async with serving(served, host, port, limiter=app.state.limiter) as bound:
            app.state.mysql_port = bound
            yield

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if gateway is not None:
            async with mysql_protocol(app, gateway):
                yield
            return
        # Imported here, not at the top: the API layer (and its tests with a fake gateway)
        # should not pull in the executor, the adapters and the catalog just to be imported.
        from gateway.core import Gateway

        started = await Gateway.start(home, catalog_url, settings=settings)
        try:  # bound beyond loopback: only with tokens, or when told --insecure
            check_exposure(started, host, insecure)
        except GatewayError:
            await started.close()
            raise
        app.state.gateway = started
        app.state.sessions = _session_store(started)
        try:
            async with mysql_protocol(app, started):  # closed before the gateway is
                yield
        finally:
            app.state.gateway = None
            await started.close()

    app = FastAPI(
        title="byom-gateway",
        summary="Register models behind HTTP and predict with SQL.",
        version=_version(),
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    app.state.gateway = gateway
    app.state.sessions = _session_store(gateway)
    app.add_middleware(InternalErrorMiddleware)
    # Body size, statements in flight, cancel on disconnect (gateway.http_limits).
    limits = settings if settings is not None else Settings.load()
    parse_limits = ParseLimits(limits.max_statement_bytes, limits.max_statements)
    app.state.limiter = InFlightLimiter(limits.max_in_flight, limits.max_in_flight_per_client)
    app.add_middleware(RequestLimits, max_body_bytes=limits.max_body_bytes,
                       limiter=app.state.limiter, respond=error_response)  # fmt: skip
    app.add_middleware(AuthMiddleware)  # outside the request limits: they key on the token
    app.add_middleware(_ReplicaHeader)
    for exc_type in (GatewayError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(exc_type, handle)
    mount_console(app)  # the web console at / (gateway.console)

    @app.post("/api/sql", tags=["sql"])
    async def run_sql(
        body: SqlRequest, gw: GatewayDep, request: Request, session_id: SessionHeader = None
    ) -> Response:
        """Run SQL; answers ``{"columns": [...], "rows": [[...]]}`` (plus ``message``).

        A prediction JOIN's rows are written as they are predicted, so the gateway holds
        one batch at a time whatever the row count. Errors found before the first byte is
        sent (parsing, planning, the first batch) are ordinary error answers. An error after
        that cannot change the status (200, already sent): the document then ends with
        ``], "error": {"code": ..., "message": ...}}`` instead of ``]}``, so a client must
        check the body for an ``error`` key.

        ``"format": "ndjson"`` answers ``application/x-ndjson`` lines: ``{"columns": [...]}``
        (plus ``message``), one ``{"rows": [[...], ...]}`` per batch, and a last line
        ``{"done": true, "rows": N}`` or ``{"error": {...}}``. A body without either last
        line was cut off. ``query_id`` names the progress entry of ``GET /api/queries/{id}``.

        A script of several statements runs them in order and answers each:
        ``{"results": [{"statement": 1, "sql": "...", "columns": [...], "rows": [...]}, ...]}``
        (ndjson: a ``{"statement", "sql", "columns"}`` line before each statement's rows, and
        a last line ``{"done": true, "statements": n, "rows": N}``). The whole script is
        parsed first: a syntax error anywhere runs nothing. When statement k fails, the error
        carries ``"statement": k`` and ``"done"`` (the statements that took effect), as an
        ordinary error answer if nothing was sent yet, else as the answer's last member.

        The header ``X-Byom-Session: <id>`` makes the request part of session ``<id>``: a
        ``USE`` in one request holds for the session's later requests (the answer carries
        the header back). Without it the request is a session of its own: ``USE`` holds for
        the rest of its script.
        """
        session = _session(request, session_id)
        script = await _several_statements(body.query, parse_limits)
        ndjson = body.format == "ndjson"
        response: Response
        if script is not None:
            results = gw.run_script(script, query_id=body.query_id, session=session)
            answer = ScriptAnswer(results, _stream_error)
            await answer.start()
            if answer.streams or ndjson:
                response = answer.response(ndjson, body.query_id)
            else:
                response = JSONBody(answer.document())
        else:
            result = await gw.sql_stream(body.query, query_id=body.query_id, session=session)
            if ndjson or isinstance(result, StreamResult):
                response = stream_response(result, ndjson, _stream_error)
            else:
                response = JSONBody(result.to_dict())
        if session_id is not None:
            response.headers[SESSION_HEADER] = session_id
            _keep_session(request, session, response)
        return response

    @app.get("/api/queries", tags=["sql"])
    async def list_queries(gw: GatewayDep) -> JSONBody:
        """Running and recently finished streaming statements (JOINs, write-backs) with
        ``rows_done``, ``rows_total`` (null when the source cannot count) and ``status``."""
        return JSONBody([entry.to_dict() for entry in gw.queries()])

    @app.get("/api/queries/{query_id}", tags=["sql"])
    async def query_progress(query_id: str, gw: GatewayDep) -> JSONBody:
        """One statement's progress; 404 ``QUERY_NOT_FOUND`` when unknown or long finished."""
        return JSONBody(gw.query_progress(query_id).to_dict())

    @app.delete("/api/queries/{query_id}", tags=["sql"])
    async def cancel_query(query_id: str, gw: GatewayDep) -> JSONBody:
        """Cancel a running JOIN or write-back of this replica: it stops at its next batch
        (its client gets ``QUERY_CANCELLED``; a write-back's written batches stay). Answers
        its progress, ``status`` ``cancelled`` (``cancelling`` when it had not reached a
        batch within 5 s: a client that stopped reading its answer). 404 when unknown, 409
        when finished or running on another replica; a reader may cancel only its own."""
        entry = gw.cancel_query(query_id)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while entry.status == "running" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        body = entry.to_dict()
        if body["status"] == "running":
            body["status"] = "cancelling"
        return JSONBody(body)

    @app.post("/api/predictors", status_code=201, tags=["predictors"])
    async def register_predictor(spec: PredictorSpec, gw: GatewayDep) -> JSONBody:
        """Register an external model by URL; answers the new predictor's row as an object."""
        result = await gw.register_predictor(spec.to_spec())
        return JSONBody(_one_record(result, spec.name), status_code=201)

    @app.get("/api/predictors", tags=["predictors"])
    async def list_predictors(gw: GatewayDep) -> JSONBody:
        """All predictors, one object each."""
        result = await gw.list_predictors()
        return JSONBody(result.records())

    @app.get("/api/predictors/{name}", tags=["predictors"])
    async def describe_predictor(name: str, gw: GatewayDep) -> JSONBody:
        """One predictor (as ``DESCRIBE name``)."""
        result = await gw.describe_predictor(name)
        return JSONBody(_one_record(result, name))

    @app.delete("/api/predictors/{name}", tags=["predictors"])
    async def drop_predictor(name: str, gw: GatewayDep) -> JSONBody:
        """Drop a predictor; answers ``{"dropped": name}``."""
        await gw.drop_predictor(name)
        return JSONBody({"dropped": name})

    @app.post("/api/predictors/{name}/predict", tags=["predictors"])
    async def predict(name: str, body: PredictRequest, gw: GatewayDep) -> JSONBody:
        """Predict JSON rows; answers input columns plus the prediction, one row each."""
        result = await gw.predict(name, body.rows)
        return JSONBody(result.to_dict())

    @app.post("/api/tokens", tags=["tokens"])
    async def create_token(spec: TokenSpec, gw: GatewayDep) -> JSONBody:
        """Create an API token (admin only; the first one turns authentication on). Answers
        ``{"name", "role", "token"}``: the token is shown only in this answer."""
        record, secret = await run_in_threadpool(gw.create_token, spec.name, spec.role)
        return JSONBody({"name": record.name, "role": record.role, "token": secret})

    @app.get("/api/tokens", tags=["tokens"])
    async def list_tokens(gw: GatewayDep) -> JSONBody:
        """Every API token, revoked ones too (admin only); never their secrets."""
        tokens = await run_in_threadpool(gw.list_tokens)
        return JSONBody({"tokens": [token_dict(t) for t in tokens]})

    @app.delete("/api/tokens/{name}", tags=["tokens"])
    async def revoke_token(name: str, gw: GatewayDep) -> JSONBody:
        """Revoke an API token (admin only)."""
        return JSONBody(token_dict(await run_in_threadpool(gw.revoke_token, name)))

    @app.get("/healthz", tags=["ops"])
    async def healthz(gw: GatewayDep) -> JSONBody:
        """Liveness and a short status; 503 when the gateway reports it is not ok."""
        health = gw.health()
        ok = health.get("status", "ok") == "ok"
        return JSONBody(health, status_code=200 if ok else 503)

    @app.get("/api/status", tags=["ops"])
    async def status(gw: GatewayDep) -> JSONBody:
        """``byom status``: the answering replica, the Ray cluster and Serve's applications
        (null when the gateway is not on Ray) and the catalog's running training jobs."""
        return JSONBody(await run_in_threadpool(gw.status_report))

    return app
