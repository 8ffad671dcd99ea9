"""The one place where exceptions become HTTP answers (Datasette's pattern).

``error_response`` turns any exception into the JSON body ``{"error": {"code", "message",
...details}}`` with the status of the ``byom.errors`` class (4xx for the request's mistakes,
502/504 for model endpoints, 500 for the gateway's own faults, with ``Retry-After`` where the
error has one). The app's exception handlers, ``InternalErrorMiddleware`` and the auth and
limit middlewares all answer through it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byom.errors import GatewayError
from gateway.formatting import dumps_json

logger = logging.getLogger("gateway.server")


class JSONBody(Response):
    """JSON encoded with orjson: datetimes, numpy scalars and NaN (as null) are fine."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps_json(content)


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


def internal_error(exc: Exception) -> dict[str, Any]:
    """The body of a 500: the exception named, its traceback left to the log."""
    message = f"internal gateway error: {type(exc).__name__}: {exc}; see the gateway log"
    return {"error": {"code": "INTERNAL_ERROR", "message": message}}


def error_response(exc: Exception) -> JSONBody:
    """The response for any exception raised while serving a request."""
    if isinstance(exc, GatewayError):
        return JSONBody(exc.to_dict(), status_code=exc.status, headers=exc.headers() or None)
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
    return JSONBody(internal_error(exc), status_code=500)


async def handle(request: Request, exc: Exception) -> Response:
    """The app's exception handler."""
    return error_response(exc)


class InternalErrorMiddleware:
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
