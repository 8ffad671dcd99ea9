"""JSON over HTTP for the adapters: one pooled client, timeouts, retries, error mapping.

Everything an adapter needs between "here are rows" and "here is the parsed answer" that does
not depend on the wire format lives here:

* ``make_client`` builds the one shared ``httpx.AsyncClient`` (pooled; tests pass an
  ``httpx.MockTransport``);
* ``post_json`` sends a body and maps every httpx failure to a ``gateway.errors.EndpointError``
  whose message names the model and the URL, retrying idempotent calls with backoff;
* ``dumps`` serialises rows (numpy/pandas scalars, dates, Decimal, NaN) to JSON;
* ``check_dtype`` validates predictions against the model's ``dtype_dict``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import json
import math
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from adapters.base import Endpoint
from gateway.errors import (
    EndpointBadResponse,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
    InvalidInput,
    InvalidOption,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "HttpSettings",
    "check_dtype",
    "dumps",
    "make_client",
    "post_json",
    "json_kind",
    "records",
    "show",
    "snippet",
]

# Only gateway-side overload statuses are worth retrying: the request never reached the
# model (502), the model said "busy" (503) or a proxy gave up (504). 4xx never changes on retry.
RETRY_STATUSES = frozenset({502, 503, 504})
SNIPPET_CHARS = 300
USER_AGENT = "byom-gateway/0.1"
_sleep = asyncio.sleep  # module attribute so tests can record the backoff delays


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts (seconds), retry policy and pool size for calls to model endpoints."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0  # one predict batch
    train_timeout: float = 3600.0  # one train call; training endpoints answer when done
    retries: int = 2  # extra attempts for idempotent calls (predict), never for train
    backoff: float = 0.2  # first retry waits this long, then doubles
    max_connections: int = 64

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpSettings:
        """Defaults overridden by ``BYOM_CONNECT_TIMEOUT``, ``BYOM_PREDICT_TIMEOUT``,
        ``BYOM_TRAIN_TIMEOUT`` and ``BYOM_PREDICT_RETRIES`` (the global knobs)."""
        env = os.environ if environ is None else environ
        names = {
            "connect_timeout": ("BYOM_CONNECT_TIMEOUT", float),
            "read_timeout": ("BYOM_PREDICT_TIMEOUT", float),
            "train_timeout": ("BYOM_TRAIN_TIMEOUT", float),
            "retries": ("BYOM_PREDICT_RETRIES", int),
        }
        values: dict[str, Any] = {}
        for field_name, (var, kind) in names.items():
            if env.get(var):
                try:
                    values[field_name] = kind(env[var])
                except ValueError:
                    raise InvalidOption(f"{var} must be a number, got {env[var]!r}") from None
        return cls(**values)


DEFAULT_SETTINGS = HttpSettings()


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
) -> Any:
    """POST ``body`` (already JSON) to ``url`` and return the parsed JSON answer.

    ``retry`` is True only for idempotent calls: they are retried with exponential backoff on
    connect errors, timeouts, dropped connections and HTTP 502/503/504, never on other
    statuses. ``timeout`` overrides ``settings.read_timeout``; ``url_option`` names the
    ``USING`` option that holds ``url``, for the hint in error messages.
    """
    read_timeout = settings.read_timeout if timeout is None else timeout
    request_timeout = httpx.Timeout(read_timeout, connect=settings.connect_timeout)
    attempts = 1 + (max(settings.retries, 0) if retry else 0)
    headers = {"content-type": "application/json"}
    ctx = _Context(model=model, url=url, url_option=url_option, read_timeout=read_timeout)
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
            f"{p} could not connect to {url} within the connect timeout{note}. "
            f"Is the host reachable? {hint}",
            **ctx.details(),
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


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked when cut; used to quote endpoint answers."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def show(value: Any, limit: int = SNIPPET_CHARS) -> str:
    """A parsed JSON answer as compact JSON text, cut to ``limit`` characters (for errors)."""
    try:
        text = orjson.dumps(value, default=_default).decode()
    except (TypeError, orjson.JSONEncodeError):  # NaN-bearing answers from json.loads are fine
        text = repr(value)
    return snippet(text, limit)


def json_kind(value: Any) -> str:
    """The JSON type name of a parsed value: object, array, string, number, boolean, null."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def _http_error(response: httpx.Response, ctx: _Context, attempt: int) -> EndpointHTTPError:
    status = response.status_code
    body = snippet(response.text)
    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
    message = f"{ctx.prefix()} {ctx.url} answered HTTP {status}{reason}{_attempts_note(attempt)}"
    message += f": {body}" if body else "."
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


# ---- JSON serialisation of rows -------------------------------------------------------------


def _default(value: Any) -> Any:
    """orjson fallback for the scalar types datasources and pandas hand us."""
    if isinstance(value, decimal.Decimal):
        return None if value.is_nan() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        # pandas.Timestamp is a datetime subclass that orjson does not take natively.
        if value != value:  # NaT compares unequal to itself
            return None
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    if hasattr(value, "item") and callable(value.item):  # numpy scalars orjson does not know
        return value.item()
    if _is_missing(value):  # pandas.NA, pandas.NaT
        return None
    raise TypeError(f"cannot send a value of type {type(value).__name__} as JSON")


def _is_missing(value: Any) -> bool:
    import pandas as pd  # local: needed only for the rare NA/NaT scalars, keeps import light

    return value is pd.NA or value is pd.NaT


def dumps(obj: Any, *, model: str) -> bytes:
    """``obj`` as JSON bytes; NaN and missing values become null, dates ISO strings."""
    try:
        return orjson.dumps(obj, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
    except (orjson.JSONEncodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"Model '{model}': cannot serialise the input rows to JSON: {exc}", model=model
        ) from exc


def records(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, model: str
) -> list[dict[str, Any]]:
    """Rows (tuples in ``columns`` order) as a list of dicts, checking widths and names."""
    cols = list(columns)
    if len(set(cols)) != len(cols):
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        raise InvalidInput(
            f"Model '{model}': duplicate input column name(s) {', '.join(dupes)}; "
            "alias them so each column has its own name.",
            model=model,
        )
    check_widths(cols, rows, model=model)
    return [dict(zip(cols, row, strict=True)) for row in rows]


def check_widths(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, model: str) -> None:
    """Raise InvalidInput when a row does not have one value per column."""
    width = len(columns)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise InvalidInput(
                f"Model '{model}': input row {i} has {len(row)} values for {width} columns "
                f"({', '.join(columns)}).",
                model=model,
                row=i,
            )


# ---- answer validation ----------------------------------------------------------------------

_SCALARS = (str, int, float, bool)
_BOOL_STRINGS = frozenset({"true", "false", "0", "1"})


def _integer_ok(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, float) and math.isfinite(v) and v.is_integer()


def _float_ok(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _binary_ok(v: Any) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, int | float):
        return v in (0, 1)
    return isinstance(v, str) and v.strip().lower() in _BOOL_STRINGS


def _scalar_ok(v: Any) -> bool:
    return isinstance(v, _SCALARS)


def _string_ok(v: Any) -> bool:
    return isinstance(v, str)


# dtype name -> (test, words for "expected ...") ; None is always allowed (a missing prediction).
_DTYPE_CHECKS = {
    "integer": (_integer_ok, "an integer"),
    "float": (_float_ok, "a number"),
    "binary": (_binary_ok, "a binary value (true/false, 0/1)"),
    "categorical": (_scalar_ok, "a scalar (string, number or boolean)"),
    "text": (_scalar_ok, "a scalar (string, number or boolean)"),
    "date": (_string_ok, "a date string"),
    "datetime": (_string_ok, "a datetime string"),
}


def check_dtype(values: Sequence[Any], endpoint: Endpoint) -> None:
    """Raise EndpointBadResponse when a prediction does not fit ``dtype_dict[target]``.

    Nothing is checked when the target has no dtype or an unknown one (dtypes are extendable).
    """
    if endpoint.target is None:
        return
    dtype = endpoint.dtype_dict.get(endpoint.target)
    if not isinstance(dtype, str):
        return
    check = _DTYPE_CHECKS.get(dtype.strip().lower())
    if check is None:
        return
    ok, expected = check
    for i, value in enumerate(values):
        # None (and NaN, which is how JSON-from-Python spells a missing float) is "no value".
        if value is None or (isinstance(value, float) and math.isnan(value)) or ok(value):
            continue
        shown = snippet(repr(value), 80)
        raise EndpointBadResponse(
            f"Model '{endpoint.model}': {endpoint.url_predict} returned {shown} for row {i}, "
            f"but column '{endpoint.target}' has dtype '{dtype}' and needs {expected}.",
            model=endpoint.model,
            url=endpoint.url_predict,
            row=i,
            value=shown,
            dtype=dtype,
        )
