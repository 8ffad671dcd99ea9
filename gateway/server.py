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

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError, ModelNotFound
from gateway.formatting import dumps_json
from gateway.result import Result, StreamResult

if TYPE_CHECKING:
    # Imported lazily at startup instead: the API layer (and its tests with a fake gateway)
    # should not pull in the executor, the adapters and the catalog just to be imported.
    from gateway.core import Gateway

logger = logging.getLogger(__name__)


class JSONBody(Response):
    """JSON encoded with orjson: datetimes, numpy scalars and NaN (as null) are fine."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps_json(content)


# --- request bodies -------------------------------------------------------------------


class SqlRequest(BaseModel):
    """``POST /api/sql``: one statement or a script of several (the last one answers)."""

    query: str = Field(description="SQL statement(s)", examples=["SHOW MODELS"])
    query_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        description="names the statement's progress entry (GET /api/queries/{query_id}) "
        "so a client can poll it while the answer streams",
    )
    format: Literal["json", "ndjson"] = Field(
        default="json",
        description="json: one document {columns, rows}; ndjson: a columns line, one line "
        "per batch of rows, then a done (or error) line",
    )


class PredictorURLs(BaseModel):
    """The nested form ``"url": {"predict": ..., "train": ...}`` (as in ``url.predict=``)."""

    model_config = ConfigDict(extra="forbid")

    predict: str | None = None
    train: str | None = None


class PredictorSpec(BaseModel):
    """The JSON twin of ``CREATE PREDICTOR ... USING url.predict=..., format=...``."""

    # Unknown keys are rejected: a misspelt "dtypes" silently ignored would surface much
    # later as a confusing prediction error.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, examples=["byom"])
    format: str = Field(description="ray_serve (alias ray_server) or mlflow", examples=["mlflow"])
    url_predict: str | None = Field(default=None, examples=["http://127.0.0.1:5000/invocations"])
    url_train: str | None = None
    url: PredictorURLs | None = Field(default=None, description="alternative to url_predict/train")
    dtype_dict: dict[str, str] | None = Field(
        default=None,
        validation_alias=AliasChoices("dtype_dict", "data_dtype"),
        description="column -> dtype (integer, float, categorical, binary, text, date, ...)",
    )
    target: str | None = Field(default=None, description="the predicted column")
    datasource: str | None = Field(default=None, description="where training rows come from")
    query: str | None = Field(default=None, description="SELECT giving the training rows")
    namespace: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="other USING options")

    @model_validator(mode="after")
    def _merge_urls(self) -> PredictorSpec:
        if self.url is None:
            return self
        for kind in ("predict", "train"):
            nested = getattr(self.url, kind)
            flat = getattr(self, f"url_{kind}")
            if nested is not None and flat is not None and nested != flat:
                raise ValueError(f"url_{kind} and url.{kind} disagree; give the URL once")
            if nested is not None:
                setattr(self, f"url_{kind}", nested)
        return self

    def to_spec(self) -> dict[str, Any]:
        """The dict ``Gateway.register_predictor`` takes (``url`` folded into url_*)."""
        return self.model_dump(exclude={"url"})


class PredictRequest(BaseModel):
    """``POST /api/predictors/{name}/predict``: ``{"rows": [...]}`` or a bare list of rows."""

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Any]] = Field(examples=[[{"initial_price": 3000, "rental_price": 3000}]])

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_list(cls, data: Any) -> Any:
        return {"rows": data} if isinstance(data, list) else data


# --- errors: the one place that turns exceptions into responses -----------------------


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "rows", 0, "x")`` -> ``rows[0].x``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path"):
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _validation_message(exc: RequestValidationError) -> str:
    problems: list[str] = []
    for error in exc.errors():
        kind = error.get("type", "")
        loc = tuple(error.get("loc", ()))
        if kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "malformed JSON")
            position = loc[1] if len(loc) > 1 else "?"
            return f"the request body is not valid JSON: {reason} (at character {position})"
        if loc == ("body",) and kind == "missing":
            return "a JSON request body is required; see /docs"
        if isinstance(error.get("input"), bytes):
            # FastAPI parses the body as JSON only when the Content-Type says so.
            return "the request body must be JSON sent with 'Content-Type: application/json'"
        where = _location(loc)
        problems.append(f"{where or 'body'}: {error.get('msg')}")
    return "invalid request: " + "; ".join(problems)


def _internal_error(exc: Exception) -> dict[str, Any]:
    message = f"internal gateway error: {type(exc).__name__}: {exc}; see the gateway log"
    return {"error": {"code": "INTERNAL_ERROR", "message": message}}


def error_response(exc: Exception) -> JSONBody:
    """The response for any exception raised while serving a request."""
    if isinstance(exc, GatewayError):
        return JSONBody(exc.to_dict(), status_code=exc.status)
    if isinstance(exc, RequestValidationError):
        body = {"error": {"code": "INVALID_REQUEST", "message": _validation_message(exc)}}
        return JSONBody(body, status_code=400)
    if isinstance(exc, StarletteHTTPException):  # unknown route, wrong method, body too large
        try:
            code = HTTPStatus(exc.status_code).name
        except ValueError:
            code = f"HTTP_{exc.status_code}"
        message = str(exc.detail)
        if exc.status_code == 404:
            message = "no such endpoint; see /docs for the API"
        elif exc.status_code == 405 and exc.headers and "allow" in exc.headers:
            message = f"method not allowed here; this endpoint accepts {exc.headers['allow']}"
        body = {"error": {"code": code, "message": message}}
        return JSONBody(body, status_code=exc.status_code, headers=exc.headers)
    return JSONBody(_internal_error(exc), status_code=500)


async def _handle(request: Request, exc: Exception) -> Response:
    return error_response(exc)


class _InternalErrorMiddleware:
    """Answers unexpected exceptions with the 500 JSON body and logs their traceback once.

    Starlette's own handler for ``Exception`` sends the response and then re-raises, so the
    server logs the error a second time and test clients raise instead of returning the 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:  # too late for an error body; let the server drop the connection
                raise
            await error_response(exc)(scope, receive, send)


# --- streamed answers ---------------------------------------------------------------------


def _stream_error(exc: Exception) -> dict[str, Any]:
    """The ``{"code", "message", ...}`` of a failure after the answer started streaming."""
    if isinstance(exc, GatewayError):
        return exc.to_dict()["error"]
    logger.error("statement failed while its answer streamed", exc_info=exc)
    return _internal_error(exc)["error"]


async def _json_document(stream: StreamResult) -> AsyncIterator[bytes]:
    """The same document as ``Result.to_dict()``, written one batch at a time.

    A failure after the first bytes closes the document with an ``"error"`` member instead.
    """
    yield b'{"columns":' + dumps_json(stream.columns) + b',"rows":['
    separator = b""
    try:
        async for batch in stream.batches:
            if batch:
                # One orjson call per batch; its outer brackets are the document's.
                yield separator + dumps_json(batch)[1:-1]
                separator = b","
    except Exception as exc:
        yield b'],"error":' + dumps_json(_stream_error(exc)) + b"}"
        return
    yield b"]}"


def _line(value: Any) -> bytes:
    return dumps_json(value) + b"\n"


async def _ndjson_lines(stream: StreamResult | Result) -> AsyncIterator[bytes]:
    """``{"columns"}``, then ``{"rows": [...]}`` per batch, then ``{"done", "rows"}``
    or ``{"error"}``. A plain ``Result`` is written the same way (one batch)."""
    head: dict[str, Any] = {"columns": stream.columns}
    if isinstance(stream, Result):
        if stream.message:
            head["message"] = stream.message
        yield _line(head)
        if stream.rows:
            yield _line({"rows": stream.rows})
        yield _line({"done": True, "rows": len(stream.rows)})
        return
    yield _line(head)
    count = 0
    try:
        async for batch in stream.batches:
            if batch:
                count += len(batch)
                yield _line({"rows": batch})
    except Exception as exc:
        yield _line({"error": _stream_error(exc)})
        return
    yield _line({"done": True, "rows": count})


class _ResultStreamResponse(StreamingResponse):
    """Streams a ``StreamResult`` and always closes it, whether the body was written to the
    end, the statement failed, or the client went away (which cancels the writing task)."""

    def __init__(
        self, body: AsyncIterator[bytes], result: StreamResult | Result, media_type: str
    ) -> None:
        headers = {"X-Query-Id": result.query_id} if getattr(result, "query_id", None) else None
        super().__init__(body, media_type=media_type, headers=headers)
        self._result = result

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:  # ASGI 2.4 servers report a gone client this way
            logger.info("client disconnected; statement cancelled")
        finally:
            # Shielded: after a disconnect the surrounding scope is cancelled, and closing
            # must still get to run the statement's own cleanup (its datasource connection).
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
                if isinstance(self._result, StreamResult):
                    await self._result.aclose()


# --- the app --------------------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("byom-gateway")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def get_gateway(request: Request) -> Gateway:
    """The app's Gateway (a FastAPI dependency)."""
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None:
        raise GatewayError(
            "the gateway is not started: serve the app with its lifespan enabled",
            code="GATEWAY_NOT_STARTED",
        )
    return gateway


GatewayDep = Annotated["Gateway", Depends(get_gateway)]


def _one_record(result: Result, name: str) -> dict[str, Any]:
    records = result.records()
    if not records:
        raise ModelNotFound(f"model {name!r} does not exist; SHOW MODELS lists them", model=name)
    return records[0]


def create_app(
    gateway: Gateway | None = None,
    *,
    home: Path | None = None,
    catalog_url: str | None = None,
) -> FastAPI:
    """The FastAPI app. Without ``gateway`` it starts one (``home``, ``catalog_url``) in
    its lifespan and closes it at shutdown; a given ``gateway`` stays the caller's to close.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if gateway is not None:
            yield
            return
        from gateway.core import Gateway

        started = await Gateway.start(home, catalog_url)
        app.state.gateway = started
        try:
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
    app.add_middleware(_InternalErrorMiddleware)
    for exc_type in (GatewayError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(exc_type, _handle)

    @app.post("/api/sql", tags=["sql"])
    async def run_sql(body: SqlRequest, gw: GatewayDep) -> Response:
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
        """
        result = await gw.sql_stream(body.query, query_id=body.query_id)
        if body.format == "ndjson":
            return _ResultStreamResponse(
                _ndjson_lines(result), result, media_type="application/x-ndjson"
            )
        if isinstance(result, StreamResult):
            return _ResultStreamResponse(
                _json_document(result), result, media_type="application/json"
            )
        return JSONBody(result.to_dict())

    @app.get("/api/queries", tags=["sql"])
    async def list_queries(gw: GatewayDep) -> JSONBody:
        """Running and recently finished streaming statements (JOINs, write-backs) with
        ``rows_done``, ``rows_total`` (null when the source cannot count) and ``status``."""
        return JSONBody([entry.to_dict() for entry in gw.queries()])

    @app.get("/api/queries/{query_id}", tags=["sql"])
    async def query_progress(query_id: str, gw: GatewayDep) -> JSONBody:
        """One statement's progress; 404 ``QUERY_NOT_FOUND`` when unknown or long finished."""
        return JSONBody(gw.query_progress(query_id).to_dict())

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

    @app.get("/healthz", tags=["ops"])
    async def healthz(gw: GatewayDep) -> JSONBody:
        """Liveness and a short status; 503 when the gateway reports it is not ok."""
        health = gw.health()
        ok = health.get("status", "ok") == "ok"
        return JSONBody(health, status_code=200 if ok else 503)

    return app
