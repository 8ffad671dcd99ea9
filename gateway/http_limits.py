"""The HTTP server's limits, as one ASGI middleware (``RequestLimits``).

* Request bodies over ``BYOM_MAX_BODY_BYTES`` are refused with 413 ``REQUEST_TOO_LARGE``:
  by their ``Content-Length`` before anything is read, else while they are read, so no
  route ever buffers more than the limit.
* The statement routes (``/api/sql``, ``/api/predictors...``) take a slot of the
  ``InFlightLimiter`` for as long as their answer is written (a JOIN's streamed rows
  included): 429 ``TOO_MANY_REQUESTS`` / 503 ``GATEWAY_BUSY`` with ``Retry-After`` over it.
  The client is the authenticated token's name (``scope["state"]["byom_token"]``, set by
  the auth middleware outside this one), else the client's IP address. ``/healthz``,
  ``/api/status`` and progress polls are never limited.
* A statement route whose client disconnects before its answer is complete is cancelled,
  so the statement stops (uvicorn only tells a route that reads ``receive``; a JSON answer
  computed in one piece never does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byom.errors import GatewayError, TooLarge
from gateway.limits import InFlightLimiter

logger = logging.getLogger("gateway.server")

#: Paths (and their sub-paths) whose requests run statements.
STATEMENT_PATHS = ("/api/sql", "/api/predictors")


def client_key(scope: Scope) -> str:
    """Who a request counts against: its token's name, else its IP address."""
    token = (scope.get("state") or {}).get("byom_token")
    if token:
        return f"token:{token}"
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


def _is_statement(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in STATEMENT_PATHS)


def request_too_large(limit: int, size: int | None) -> TooLarge:
    got = f"of {size} bytes " if size is not None else ""
    return TooLarge(
        f"The request body {got}is over the gateway's limit of {limit} bytes "
        "(BYOM_MAX_BODY_BYTES): send less per request, or load large data into a "
        "datasource table.",
        code="REQUEST_TOO_LARGE",
        limit=limit,
    )


class RequestLimits:
    """Body size limit, in-flight limits and cancel-on-disconnect (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        limiter: InFlightLimiter,
        respond: Callable[[Exception], Response],
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            too_large = request_too_large(self.max_body_bytes, declared)
            await self.respond(too_large)(scope, receive, send)
            return
        if not _is_statement(scope.get("path", "")):
            await self._run(scope, receive, send, watch_disconnect=False)
            return
        client = client_key(scope)
        try:
            self.limiter.acquire(client)
        except GatewayError as exc:
            await self.respond(exc)(scope, receive, send)
            return
        try:
            await self._run(scope, receive, send, watch_disconnect=True)
        finally:
            self.limiter.release(client)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, *, watch_disconnect: bool
    ) -> None:
        """Run the app with its body counted; ``watch_disconnect``: cancel it when the
        client goes away before its answer is complete."""
        received = 0
        exceeded = False
        body_done = asyncio.Event()
        started = response_done = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    # What the route sees: the client went away. Its own answer is dropped
                    # below and the 413 sent instead.
                    return {"type": "http.disconnect"}
                if not message.get("more_body", False):
                    body_done.set()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started, response_done
            if exceeded and not started:
                return  # the route's answer to a cut-off body; the 413 replaces it
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                response_done = True
            await send(message)

        async def watch(cancel: anyio.CancelScope) -> None:
            # Once the body is read, wait for the client to go away. The server reports a
            # disconnect after a complete answer too: the route may still be running its
            # background work then (saving the session), which must not be cancelled.
            await body_done.wait()
            while (await receive())["type"] != "http.disconnect":
                pass
            if not response_done:
                cancel.cancel()

        with anyio.CancelScope() as cancel:
            watcher = asyncio.ensure_future(watch(cancel)) if watch_disconnect else None
            try:
                await self.app(scope, counting_receive, tracking_send)
            except Exception:
                if not exceeded or started:
                    raise
            finally:
                if watcher is not None:
                    watcher.cancel()
        if cancel.cancelled_caught:
            logger.info("client disconnected; statement cancelled: %s", scope.get("path"))
        if exceeded and not started:
            too_large = request_too_large(self.max_body_bytes, None)
            await self.respond(too_large)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
