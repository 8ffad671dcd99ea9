"""What a failed call to a model endpoint says: every httpx failure and every unwanted answer
as a ``byom.errors.EndpointError`` naming the model and the (redacted) URL.

Endpoint bodies are quoted short (``EXCERPT_CHARS``, control characters escaped): enough to
debug with the status and content type, never a page of someone else's answer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import socket
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.breaker import Snapshot
from adapters.guard import AddressRefused
from adapters.urls import redact_url
from byom.errors import (
    EndpointBadResponse,
    EndpointError,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
)

__all__ = [
    "CIRCUIT_OPEN",
    "EXCERPT_CHARS",
    "CallContext",
    "excerpt",
    "is_fault",
    "retry_after_seconds",
]

EXCERPT_CHARS = 100
CIRCUIT_OPEN = "ENDPOINT_CIRCUIT_OPEN"
ADDRESS_REFUSED = "ENDPOINT_ADDRESS_REFUSED"


def _escaped(text: str) -> str:
    """Control and format characters (newlines, ANSI escapes, bidi overrides) as escapes,
    so a quoted body cannot forge lines in a log or reorder a terminal's text."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif unicodedata.category(ch) in ("Zs", "Zl", "Zp") and ch not in "\u2028\u2029":
            out.append(" ")
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def _cut(text: str, limit: int) -> str:
    text = _escaped(text.strip())
    return text if len(text) <= limit else text[:limit].rstrip() + "..."


def excerpt(raw: bytes, encoding: str | None = None, limit: int = EXCERPT_CHARS) -> str:
    """The start of an endpoint's answer, for an error message: ``limit`` characters,
    escaped. A FastAPI error (``{"detail": "..."}``) keeps its JSON form around the cut
    detail, so code that reads the detail (built-in models' refusals) still can."""
    text = raw.decode(encoding or "utf-8", errors="replace").strip()
    if text.startswith("{") and '"detail"' in text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("detail"), str):
            return json.dumps({"detail": _cut(parsed["detail"], limit)}, ensure_ascii=False)
    return _cut(text, limit)


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return max(seconds, 0.0) if seconds == seconds else None  # NaN is garbled too


def is_fault(exc: EndpointError) -> bool:
    """Whether ``exc`` says the endpoint is unwell (counts for its circuit breaker):
    connect errors, timeouts, HTTP 5xx, dropped connections - not 4xx, redirects,
    oversized or non-JSON answers, which are about the request or the registration."""
    if isinstance(exc, EndpointTimeout):
        return True
    if isinstance(exc, EndpointUnreachable):
        return exc.code == EndpointUnreachable.code
    if isinstance(exc, EndpointHTTPError):
        return int(exc.details.get("endpoint_status") or 0) >= 500
    return isinstance(exc, EndpointBadResponse) and isinstance(exc.__cause__, httpx.TransportError)


@dataclass(frozen=True)
class CallContext:
    """One ``post_json`` call, for its error messages."""

    model: str
    url: str
    url_option: str
    budget: float  # seconds for all attempts together
    connect_timeout: float
    limit: int  # answer size cap, bytes
    client_error_hint: str | None = None
    shown: str = field(init=False)  # the URL as messages show it

    def __post_init__(self) -> None:
        object.__setattr__(self, "shown", redact_url(self.url) or "")

    def prefix(self) -> str:
        return f"Model '{self.model}':"

    def details(self, **extra: Any) -> dict[str, Any]:
        return {"model": self.model, "url": self.shown, **extra}

    def hint(self) -> str:
        return f"Check {self.url_option} with DESCRIBE {self.model}."

    # ---- failures before an answer -------------------------------------------------------

    def exception(self, exc: Exception, attempt: int) -> EndpointError:
        """The gateway error for an httpx exception, or ``TimeoutError`` (the budget ran
        out); the caller chains it with ``from``."""
        p, url, note = self.prefix(), self.shown, _attempts_note(attempt)
        if isinstance(exc, AddressRefused):
            return EndpointUnreachable(
                f"{p} refused to connect to {url}: {exc}.",
                code=ADDRESS_REFUSED,
                **self.details(addresses=exc.addresses),
            )
        if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            return EndpointUnreachable(
                f"{p} invalid endpoint URL {url!r}: {exc}. {self.hint()}", **self.details()
            )
        if isinstance(exc, httpx.ConnectError):
            reason = _connect_reason(exc)
            return EndpointUnreachable(
                f"{p} cannot connect to {url}: {reason}{note}. Is the endpoint running? "
                f"{self.hint()}",
                **self.details(reason=reason),
            )
        if isinstance(exc, httpx.ConnectTimeout):
            return EndpointTimeout(
                f"{p} could not connect to {url} within {self.connect_timeout:g}s{note}. "
                f"Is the host reachable? {self.hint()}",
                **self.details(timeout_s=self.connect_timeout),
            )
        if isinstance(exc, httpx.ReadTimeout | TimeoutError):
            return EndpointTimeout(
                f"{p} no answer from {url} within {self.budget:g}s{note}. The model may be "
                "overloaded or the batch too large.",
                **self.details(timeout_s=self.budget),
            )
        if isinstance(exc, httpx.TimeoutException):  # write or pool timeout
            return EndpointTimeout(
                f"{p} request to {url} timed out ({type(exc).__name__}){note}.",
                **self.details(),
            )
        # Read/write and protocol errors: the connection opened, no complete answer came.
        return EndpointBadResponse(
            f"{p} {url} dropped the request without a complete answer{note}: "
            f"{exc or type(exc).__name__}.",
            **self.details(),
        )

    def circuit_open(self, key: str, state: Snapshot) -> EndpointError:
        """The fail-fast error of an open (or probing) breaker."""
        shown = redact_url(key) or key
        if state.retry_in_s is not None:
            when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=state.retry_in_s)
            stamp = when.strftime("%H:%M:%S UTC")
            retry = f"it will be tried again at {stamp} (in {state.retry_in_s:.0f}s)"
        else:
            retry = "a probe call to it is in flight; try again shortly"
        return EndpointUnreachable(
            f"{self.prefix()} endpoint {shown} failed {state.failures} times in a row, so "
            f"calls to it fail fast (circuit breaker {state.state}); {retry}.",
            code=CIRCUIT_OPEN,
            **self.details(
                endpoint=shown,
                failures=state.failures,
                breaker=state.state,
                retry_in_s=None if state.retry_in_s is None else round(state.retry_in_s, 1),
            ),
        )

    # ---- answers we do not take ----------------------------------------------------------

    def http_error(
        self, response: httpx.Response, raw: bytes, attempt: int, note: str = ""
    ) -> EndpointHTTPError:
        """An HTTP 3xx/4xx/5xx answer: the status, content type and a short excerpt."""
        status = response.status_code
        reason = f" {response.reason_phrase}" if response.reason_phrase else ""
        where = f"{self.prefix()} {self.shown} answered HTTP {status}{reason}"
        if 300 <= status < 400:
            location = redact_url(response.headers.get("location")) or "no Location"
            return EndpointHTTPError(
                f"{where} redirecting to {location}{_attempts_note(attempt)}; redirects are "
                f"not followed: register the final URL as {self.url_option}",
                **self.details(endpoint_status=status, location=location),
            )
        body = excerpt(raw, response.encoding)
        ctype = response.headers.get("content-type", "no content-type")
        message = f"{where} ({ctype}){_attempts_note(attempt)}"
        message += f": {body}" if body else "."
        if note:
            message = f"{message.rstrip('.')}; {note}"
        if self.client_error_hint and 400 <= status < 500:
            message += f" {self.client_error_hint}"
        return EndpointHTTPError(message, **self.details(endpoint_status=status, body=body or None))

    def too_large(self, length: int | None) -> EndpointBadResponse:
        """An answer over the size cap (from Content-Length, or counted while reading)."""
        size = f"{_mib(length)} (Content-Length)" if length is not None else "more than that"
        return EndpointBadResponse(
            f"{self.prefix()} {self.shown} answered {size}, over the {_mib(self.limit)} limit "
            "on an endpoint's answer (BYOM_MAX_RESPONSE_BYTES); it was not read. Predict "
            "smaller batches (USING batch_size = n) or raise the limit",
            **self.details(limit_bytes=self.limit, content_length=length),
        )

    def not_json(self, response: httpx.Response, raw: bytes) -> EndpointBadResponse:
        ctype = response.headers.get("content-type", "no content-type")
        body = excerpt(raw, response.encoding) or "<empty body>"
        return EndpointBadResponse(
            f"{self.prefix()} {self.shown} answered HTTP {response.status_code} with a body "
            f"that is not JSON ({ctype}): {body}",
            **self.details(body=body),
        )


def _attempts_note(attempt: int) -> str:
    return f" (after {attempt} attempts)" if attempt > 1 else ""


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


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
