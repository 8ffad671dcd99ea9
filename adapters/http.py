"""HTTP for the adapters: one pooled client, timeouts, retries, error mapping.

Everything an adapter needs between "here is a request body" and "here is the parsed JSON
answer" lives here; turning rows into bodies and checking predicted values is
``adapters.wire``'s job.

* ``make_client`` builds the one shared ``httpx.AsyncClient`` (pooled; tests pass an
  ``httpx.MockTransport``);
* ``post_json`` sends a body (JSON or a binary payload) and maps every httpx failure to a
  ``byom.errors.EndpointError`` whose message names the model and the URL, retrying
  idempotent calls with backoff; the answer is always parsed as JSON.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any, Self

import httpx
import orjson

from adapters.base import AdapterContext
from adapters.wire import snippet
from byom.errors import (
    EndpointBadResponse,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "HttpAdapter",
    "HttpSettings",
    "make_client",
    "post_json",
]

# Only gateway-side overload statuses are worth retrying: the request never reached the
# model (502), the model said "busy" (503) or a proxy gave up (504). 4xx never changes on retry.
RETRY_STATUSES = frozenset({502, 503, 504})
USER_AGENT = "byom-gateway/0.1"
_sleep = asyncio.sleep  # module attribute so tests can record the backoff delays


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts (seconds), retry policy and pool size for calls to model endpoints.

    Built by ``gateway.settings.Settings.http()`` from the global knobs.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 60.0  # one predict batch
    train_timeout: float = 3600.0  # one train call; training endpoints answer when done
    retries: int = 2  # extra attempts for idempotent calls (predict), never for train
    backoff: float = 0.2  # first retry waits this long, then doubles
    max_connections: int = 64


DEFAULT_SETTINGS = HttpSettings()


class HttpAdapter:
    """Base of the adapters that reach their model over HTTP with the shared client."""

    def __init__(
        self, client: httpx.AsyncClient, settings: HttpSettings = DEFAULT_SETTINGS
    ) -> None:
        self.client = client
        self.settings = settings

    @classmethod
    def from_context(cls, context: AdapterContext) -> Self:
        """The adapter over the gateway's shared client and settings."""
        return cls(context.http, context.settings)


def make_client(
    settings: HttpSettings = DEFAULT_SETTINGS,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The shared pooled client; ``transport`` is the seam for ``httpx.MockTransport``."""
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
    )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        limits=limits,
        transport=transport,
        # A FastAPI endpoint registered as ".../predict/" answers 307 to ".../predict";
        # 307/308 keep method and body, so following them is safe for POST.
        follow_redirects=True,
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
) -> Any:
    """POST ``body`` (bytes of type ``content_type``) to ``url``; return the parsed JSON answer.

    ``retry`` is True only for idempotent calls: they are retried with exponential backoff on
    connect errors, timeouts, dropped connections and HTTP 502/503/504, never on other
    statuses. ``timeout`` overrides ``settings.read_timeout``; ``url_option`` names the
    ``USING`` option that holds ``url``, for the hint in error messages;
    ``client_error_hint`` is appended to the message of an HTTP 4xx answer.
    """
    read_timeout = settings.read_timeout if timeout is None else timeout
    request_timeout = httpx.Timeout(read_timeout, connect=settings.connect_timeout)
    attempts = 1 + (max(settings.retries, 0) if retry else 0)
    headers = {"content-type": content_type}
    ctx = _Context(
        model=model,
        url=url,
        url_option=url_option,
        read_timeout=read_timeout,
        connect_timeout=settings.connect_timeout,
        client_error_hint=client_error_hint,
    )
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        try:
            response = await client.post(
                url, content=body, headers=headers, timeout=request_timeout
            )
        except httpx.HTTPError as exc:
            if last or not _retryable_exception(exc):
                raise _map_exception(exc, ctx, attempt) from exc
        except httpx.InvalidURL as exc:  # not an HTTPError; retrying cannot fix it
            raise _map_exception(exc, ctx, attempt) from exc
        else:
            if response.status_code < 400:
                return _parse(response, ctx)
            if last or response.status_code not in RETRY_STATUSES:
                raise _http_error(response, ctx, attempt)
        await _sleep(settings.backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable: the last attempt always returns or raises")


@dataclass(frozen=True)
class _Context:
    model: str
    url: str
    url_option: str
    read_timeout: float
    connect_timeout: float
    client_error_hint: str | None = None

    def prefix(self) -> str:
        return f"Model '{self.model}':"

    def details(self, **extra: Any) -> dict[str, Any]:
        return {"model": self.model, "url": self.url, **extra}


def _retryable_exception(exc: httpx.HTTPError) -> bool:
    # NetworkError covers refused connections and connections the server dropped (stale
    # keep-alive); RemoteProtocolError is "server disconnected without sending a response".
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def _attempts_note(attempt: int) -> str:
    return f" (after {attempt} attempts)" if attempt > 1 else ""


def _connect_reason(exc: BaseException) -> str:
    """Why a connect failed, in words: httpx only says 'All connection attempts failed'."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, socket.gaierror):
            return "host name not found"
        cur = cur.__cause__ or cur.__context__
    return str(exc) or type(exc).__name__


def _map_exception(exc: Exception, ctx: _Context, attempt: int) -> Exception:
    """The gateway error for an httpx exception (the caller chains it with ``from``)."""
    p, url, note = ctx.prefix(), ctx.url, _attempts_note(attempt)
    hint = f"Check {ctx.url_option} with DESCRIBE {ctx.model}."
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return EndpointUnreachable(
            f"{p} invalid endpoint URL {url!r}: {exc}. {hint}", **ctx.details()
        )
    if isinstance(exc, httpx.ConnectError):
        reason = _connect_reason(exc)
        return EndpointUnreachable(
            f"{p} cannot connect to {url}: {reason}{note}. Is the endpoint running? {hint}",
            **ctx.details(reason=reason),
        )
    if isinstance(exc, httpx.ConnectTimeout):
        return EndpointTimeout(
            f"{p} could not connect to {url} within {ctx.connect_timeout:g}s{note}. "
            f"Is the host reachable? {hint}",
            **ctx.details(timeout_s=ctx.connect_timeout),
        )
    if isinstance(exc, httpx.ReadTimeout):
        return EndpointTimeout(
            f"{p} no answer from {url} within {ctx.read_timeout:g}s{note}. The model may be "
            "overloaded or the batch too large.",
            **ctx.details(timeout_s=ctx.read_timeout),
        )
    if isinstance(exc, httpx.TimeoutException):  # write or pool timeout
        return EndpointTimeout(
            f"{p} request to {url} timed out ({type(exc).__name__}){note}.", **ctx.details()
        )
    # Read/write errors and protocol errors: the connection opened but no complete answer came.
    return EndpointBadResponse(
        f"{p} {url} dropped the request without a complete answer{note}: "
        f"{exc or type(exc).__name__}.",
        **ctx.details(),
    )


def _http_error(response: httpx.Response, ctx: _Context, attempt: int) -> EndpointHTTPError:
    status = response.status_code
    body = snippet(response.text)
    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
    message = f"{ctx.prefix()} {ctx.url} answered HTTP {status}{reason}{_attempts_note(attempt)}"
    message += f": {body}" if body else "."
    if ctx.client_error_hint and 400 <= status < 500:
        message += f" {ctx.client_error_hint}"
    return EndpointHTTPError(message, **ctx.details(endpoint_status=status, body=body or None))


def _parse(response: httpx.Response, ctx: _Context) -> Any:
    content = response.content
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    # Python's json module writes NaN/Infinity for float nan/inf (orjson refuses them); a model
    # that predicts NaN is not a broken endpoint, so accept what json.loads accepts.
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        pass
    ctype = response.headers.get("content-type", "no content-type")
    body = snippet(response.text) or "<empty body>"
    raise EndpointBadResponse(
        f"{ctx.prefix()} {ctx.url} answered HTTP {response.status_code} with a body that is "
        f"not JSON ({ctype}): {body}",
        **ctx.details(body=body),
    )
