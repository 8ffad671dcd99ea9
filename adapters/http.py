"""HTTP for the adapters: one pooled client, deadlines, retries, limits, circuit breakers.

Everything an adapter needs between "here is a request body" and "here is the parsed JSON
answer" lives here; turning rows into bodies and checking predicted values is
``adapters.wire``'s job, wording failures ``adapters.http_errors``'s.

* ``make_client`` builds the one shared ``httpx.AsyncClient`` (pooled, redirects never
  followed, every connection checked by ``adapters.guard``; tests pass an
  ``httpx.MockTransport``);
* ``post_json`` sends a body (JSON or a binary payload) and returns the parsed JSON answer.
  One call has one deadline (its timeout) that all its attempts share; idempotent calls are
  retried within it on connect errors, timeouts, dropped connections and HTTP 429/502/503/504
  (honouring ``Retry-After``); the answer is read as a stream and refused past
  ``max_response_bytes``; an endpoint's circuit breaker (``adapters.breaker``) fails calls
  fast while it keeps failing. Cancelling the calling task stops everything at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Self

import httpx
import orjson

from adapters.base import AdapterContext
from adapters.breaker import Admission, Breakers
from adapters.guard import AddressRefused, GuardedTransport
from adapters.http_errors import CallContext, is_fault, retry_after_seconds
from adapters.urls import endpoint_key
from byom.errors import EndpointError

__all__ = [
    "DEFAULT_SETTINGS",
    "HttpAdapter",
    "HttpSettings",
    "make_client",
    "post_json",
]

# Statuses worth retrying: the request never reached the model (502), the model said "busy"
# (503) or "too many requests" (429), or a proxy gave up (504). Other 4xx never change.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
USER_AGENT = "byom-gateway/0.1"
ERROR_BODY_BYTES = 64 * 1024  # read of a 3xx/4xx/5xx answer: enough for its excerpt
_sleep = asyncio.sleep  # module attributes so tests can record waits on a fake clock
_clock = time.monotonic


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts (seconds), retry policy, limits and breakers for calls to model endpoints.

    Built by ``gateway.settings.Settings.http()`` from the global knobs.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 60.0  # one predict call, all its attempts together
    train_timeout: float = 3600.0  # one train call; training endpoints answer when done
    retries: int = 2  # extra attempts for idempotent calls (predict), never for train
    backoff: float = 0.2  # first retry waits this long, then doubles
    max_connections: int = 64
    max_response_bytes: int = 64 * 2**20  # an endpoint's answer, decoded
    breaker_failures: int = 5  # consecutive failed calls that open a breaker (0: never)
    breaker_cooldown: float = 30.0  # seconds an open breaker fails calls fast


DEFAULT_SETTINGS = HttpSettings()


class HttpAdapter:
    """Base of the adapters that reach their model over HTTP with the shared client."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: HttpSettings = DEFAULT_SETTINGS,
        breakers: Breakers | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        if breakers is None:  # an adapter of its own (tests): breakers of its own
            breakers = Breakers(settings.breaker_failures, settings.breaker_cooldown)
        self.breakers = breakers

    @classmethod
    def from_context(cls, context: AdapterContext) -> Self:
        """The adapter over the gateway's shared client, settings and breakers."""
        return cls(context.http, context.settings, context.breakers)


def make_client(
    settings: HttpSettings = DEFAULT_SETTINGS,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The shared pooled client. Without ``transport`` it talks to the network through
    ``GuardedTransport`` (the connection-time egress check); a given ``transport`` (a test's
    ``httpx.MockTransport``, possibly wrapped in ``GuardedTransport``) is used as it is."""
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
    )
    if transport is None:
        transport = GuardedTransport(httpx.AsyncHTTPTransport(limits=limits))
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        limits=limits,
        transport=transport,
        # Never: a redirect could send the body (and the gateway) to an address the egress
        # rules were never asked about. A 3xx is an error telling the user the final URL.
        follow_redirects=False,
        headers={"user-agent": USER_AGENT, "accept": "application/json"},
    )


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    model: str,
    settings: HttpSettings,
    retry: bool,
    timeout: float | None = None,
    url_option: str = "url.predict",
    content_type: str = "application/json",
    client_error_hint: str | None = None,
    breakers: Breakers | None = None,
) -> Any:
    """POST ``body`` (bytes of type ``content_type``) to ``url``; return the parsed JSON answer.

    ``timeout`` (default ``settings.read_timeout``) is the whole budget of the call, retries
    and their waits included. ``retry`` is True only for idempotent calls. ``url_option``
    names the ``USING`` option that holds ``url``, for the hint in error messages;
    ``client_error_hint`` is appended to the message of an HTTP 4xx answer. ``breakers``:
    the endpoints' circuit breakers (none: no breaker).
    """
    ctx = CallContext(
        model=model,
        url=url,
        url_option=url_option,
        budget=settings.read_timeout if timeout is None else timeout,
        connect_timeout=settings.connect_timeout,
        limit=settings.max_response_bytes,
        client_error_hint=client_error_hint,
    )
    if breakers is None:
        return await _attempts(client, ctx, body, content_type, settings, retry)
    key = endpoint_key(url)
    admission = breakers.admit(key)
    if admission.refused is not None:
        raise ctx.circuit_open(key, admission.refused)
    attempts = _attempts(client, ctx, body, content_type, settings, retry)
    return await _with_breaker(breakers, key, admission, attempts)


async def _with_breaker(
    breakers: Breakers, key: str, admission: Admission, attempts: Awaitable[Any]
) -> Any:
    """``await attempts`` (a call admitted by ``key``'s breaker) and tell the breaker how
    it went: an endpoint fault counts against it, a success closes it."""
    verdict: bool | None = None  # stays None when cancelled: a probe slot is freed
    try:
        answer = await attempts
        verdict = True
        return answer
    except EndpointError as exc:
        verdict = False if is_fault(exc) else None
        raise
    finally:
        breakers.done(key, admission, verdict)


async def _attempts(
    client: httpx.AsyncClient,
    ctx: CallContext,
    body: bytes,
    content_type: str,
    settings: HttpSettings,
    retry: bool,
) -> Any:
    """The attempts of one call, all inside ``ctx.budget``; each gets the time left."""
    attempts = 1 + (max(settings.retries, 0) if retry else 0)
    deadline = _clock() + ctx.budget
    attempt = 0
    while True:
        attempt += 1
        # The first attempt gets the budget as given; later ones what is left of it.
        left = ctx.budget if attempt == 1 else deadline - _clock()
        wait = settings.backoff * 2 ** (attempt - 1)
        try:
            response, raw = await _exchange(client, ctx, body, content_type, left)
        except (AddressRefused, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise ctx.exception(exc, attempt) from exc  # retrying cannot change them
        except (httpx.HTTPError, TimeoutError) as exc:
            error: EndpointError = ctx.exception(exc, attempt)
            if not _retryable_exception(exc) or attempt >= attempts:
                raise error from exc
            cause: BaseException | None = exc
        else:
            status = response.status_code
            if status < 300:
                return _parse(response, raw, ctx)
            if retry and status in RETRY_AFTER_STATUSES:
                asked = retry_after_seconds(response.headers.get("retry-after"))
                if asked is not None:
                    time_left = deadline - _clock()
                    if asked > time_left:  # waiting would outlive the call: fail now
                        note = _asked_note(asked, ctx, time_left)
                        raise ctx.http_error(response, raw, attempt, note)
                    wait = asked
            error = ctx.http_error(response, raw, attempt)
            if not retry or status not in RETRY_STATUSES or attempt >= attempts:
                raise error
            cause = None
        if wait >= deadline - _clock():  # no time left for another attempt
            raise error from cause
        await _sleep(wait)  # CancelledError here ends the call: nothing catches it


def _asked_note(asked: float, ctx: CallContext, left: float) -> str:
    return (f"the endpoint asked to retry after {asked:.0f}s, more than the {max(left, 0):.1f}s "
            f"left of this call's {ctx.budget:g}s timeout")  # fmt: skip


async def _exchange(
    client: httpx.AsyncClient, ctx: CallContext, body: bytes, content_type: str, left: float
) -> tuple[httpx.Response, bytes]:
    """One attempt: send, then read the answer as a stream, capped, within ``left`` s."""
    timeout = httpx.Timeout(left, connect=min(ctx.connect_timeout, left))
    request = client.build_request(
        "POST", ctx.url, content=body, headers={"content-type": content_type}, timeout=timeout
    )
    # httpx's read timeout is per socket read; this bounds the whole exchange, slow drip
    # included. It raises TimeoutError only for its own expiry, never for a cancellation.
    async with asyncio.timeout(left):
        response = await client.send(request, stream=True)
        try:
            if response.status_code < 300:
                raw = await _read_capped(response, ctx)
            else:
                raw = await _read_capped(response, ctx, limit=ERROR_BODY_BYTES, strict=False)
        finally:
            await response.aclose()
    return response, raw


async def _read_capped(
    response: httpx.Response, ctx: CallContext, limit: int | None = None, strict: bool = True
) -> bytes:
    """The (decoded) body, at most ``limit`` bytes: past it, ``strict`` refuses the answer
    (EndpointBadResponse), else the body is cut there."""
    limit = ctx.limit if limit is None else limit
    length = response.headers.get("content-length", "")
    if strict and length.isdigit() and int(length) > limit:
        raise ctx.too_large(int(length))  # refused before a byte of it is read
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            if strict:
                raise ctx.too_large(None)
            chunks.append(chunk[: len(chunk) - (size - limit)])
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _retryable_exception(exc: Exception) -> bool:
    # NetworkError covers refused connections and connections the server dropped (stale
    # keep-alive); RemoteProtocolError is "server disconnected without sending a response".
    # A TimeoutError is the call's own deadline: nothing is left to retry with.
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def _parse(response: httpx.Response, raw: bytes, ctx: CallContext) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    # Python's json module writes NaN/Infinity for float nan/inf (orjson refuses them); a model
    # that predicts NaN is not a broken endpoint, so accept what json.loads accepts.
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        pass
    raise ctx.not_json(response, raw)
