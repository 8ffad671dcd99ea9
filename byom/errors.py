"""The one error hierarchy of the gateway.

Every failure a user can see is a ``GatewayError`` with a stable ``code`` (never parse the
message to branch on it) and an HTTP ``status``. ``gateway.server`` turns any of them into
``{"error": {"code": ..., "message": ...}}`` in one place; the CLI prints the same fields.

    GatewayError (500, GATEWAY_ERROR)            a fault of the gateway itself
    +-- UserError (400)                          the statement or request is wrong
    |   +-- ParseError (PARSE_ERROR)             carries line, col and a did-you-mean
    |   +-- UnsupportedStatement (UNSUPPORTED_STATEMENT)
    |   +-- InvalidOption (INVALID_OPTION)       a USING / PARAMETERS value is wrong
    |   +-- InvalidInput (INVALID_INPUT)         rows or columns do not fit the model
    |   +-- NotFound (404)                       MODEL_NOT_FOUND, DATASOURCE_NOT_FOUND,
    |                                            PROJECT_NOT_FOUND, MODEL_VERSION_NOT_FOUND
    |   +-- AlreadyExists (409)                  MODEL_EXISTS, DATASOURCE_EXISTS
    |   +-- ModelNotReady (409, MODEL_NOT_READY)
    |   +-- TooLarge (413)                       REQUEST_TOO_LARGE, STATEMENT_TOO_LARGE,
    |                                            TOO_MANY_STATEMENTS (the limit is named)
    +-- DatasourceError (DATASOURCE_ERROR, 400)  the user's database refused or failed
    |   +-- DatasourceUnavailable (DATASOURCE_UNAVAILABLE, 503)  unreachable, or lost
    +-- StatementTimeout (STATEMENT_TIMEOUT, 504) the statement outran its time limit
    +-- Busy (GATEWAY_BUSY, 503, Retry-After)    too many statements running now
    |   +-- TooManyRequests (TOO_MANY_REQUESTS, 429)  ... from this one client
    +-- EndpointError (502)                      the model endpoint failed us
        +-- EndpointUnreachable (ENDPOINT_UNREACHABLE)
        +-- EndpointTimeout (ENDPOINT_TIMEOUT, 504)
        +-- EndpointHTTPError (ENDPOINT_HTTP_ERROR)
        +-- EndpointBadResponse (ENDPOINT_BAD_RESPONSE)

Endpoint failures are 502/504 because the gateway is a proxy for the model: the request was
fine, the upstream was not (RFC 9110 15.6.3). They are never 500, which is kept for bugs here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Self


class GatewayError(Exception):
    """Base of every error the gateway reports; subclasses fix ``code`` and ``status``."""

    code: str = "GATEWAY_ERROR"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        message = finish_sentence(message)
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = {k: v for k, v in details.items() if v is not None}

    def amend(self, *, before: str = "", after: str = "") -> None:
        """Add context to the message in place (``before`` it, ``after`` it), keeping one
        final period: ``Statement 3: <message> (statements 1-2 took effect).``"""
        core = self.message.rstrip()
        if after:
            core = core.rstrip(".")
        self.message = finish_sentence(f"{before}{core}{after}")
        self.args = (self.message,)

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer to this error carries (``Retry-After`` for ``Busy``)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of this error: ``{"error": {"code", "message", ...details}}``."""
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class UserError(GatewayError):
    code = "BAD_REQUEST"
    status = 400


class ParseError(UserError):
    """A statement that does not parse; ``line``/``col`` are 1-based."""

    code = "PARSE_ERROR"

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        col: int | None = None,
        suggestion: str | None = None,
    ) -> None:
        text = message
        if suggestion:
            text += f" Did you mean {suggestion}?"
        if line is not None and col is not None:
            text += f" (line {line}, col {col})"
        super().__init__(text, line=line, col=col, suggestion=suggestion)
        self.line = line
        self.col = col
        self.suggestion = suggestion


class UnsupportedStatement(UserError):
    code = "UNSUPPORTED_STATEMENT"


class InvalidOption(UserError):
    code = "INVALID_OPTION"


class InvalidInput(UserError):
    code = "INVALID_INPUT"


class NotFound(UserError):
    code = "NOT_FOUND"
    status = 404
    # What ``named`` says: the thing (``Model``), its detail key and the statement that
    # lists the existing ones.
    thing = "Item"
    show = "SHOW"

    @classmethod
    def named(cls, name: str, known: Iterable[str]) -> Self:
        """``Model 'x' not found. Did you mean y? See SHOW MODELS.`` over the ``known`` names
        (``model``/``datasource``/``project`` and ``suggestion`` in the details)."""
        hint = did_you_mean(name, known)
        text = f"{cls.thing} '{name}' not found." + (f" Did you mean {hint}?" if hint else "")
        details = {cls.thing.lower(): name, "suggestion": hint}
        return cls(f"{text} See {cls.show}.", **details)


class ModelNotFound(NotFound):
    code = "MODEL_NOT_FOUND"
    thing, show = "Model", "SHOW MODELS"


class ModelVersionNotFound(NotFound):
    """A model that exists but has no such version; ``of`` lists the versions it has."""

    code = "MODEL_VERSION_NOT_FOUND"
    thing, show = "Model version", "SHOW MODELS"

    @classmethod
    def of(cls, model: str, version: int, versions: Iterable[int]) -> Self:
        """``Model 'm' has no version 3. Its versions: 1, 2.`` (``model``, ``version`` and
        ``versions`` in the details)."""
        known = sorted(versions)
        listed = ", ".join(str(v) for v in known)
        text = f"Its versions: {listed}." if known else "It has no versions yet."
        return cls(
            f"Model '{model}' has no version {version}. {text}",
            model=model,
            version=version,
            versions=known,
        )


class DatasourceNotFound(NotFound):
    code = "DATASOURCE_NOT_FOUND"
    thing, show = "Datasource", "SHOW DATABASES"


class ProjectNotFound(NotFound):
    code = "PROJECT_NOT_FOUND"
    thing, show = "Project", "SHOW PROJECTS"


class TableNotFound(NotFound):
    """A datasource without such a table (``DESCRIBE ds.t``)."""

    code = "TABLE_NOT_FOUND"
    thing, show = "Table", "SHOW TABLES"


class AlreadyExists(UserError):
    code = "ALREADY_EXISTS"
    status = 409


class ModelExists(AlreadyExists):
    code = "MODEL_EXISTS"


class DatasourceExists(AlreadyExists):
    code = "DATASOURCE_EXISTS"


class ModelNotReady(UserError):
    code = "MODEL_NOT_READY"
    status = 409


class DatasourceError(GatewayError):
    """The user's database failed a query we sent (bad SQL, missing table, unreachable)."""

    code = "DATASOURCE_ERROR"
    status = 400


class DatasourceUnavailable(DatasourceError):
    """The user's database could not be reached (nothing took the connection, or the
    server is starting up) or the connection broke during a statement (the server
    restarted, the network dropped it): the statement was fine, retrying it may work."""

    code = "DATASOURCE_UNAVAILABLE"
    status = 503


class TooLarge(UserError):
    """A request body, statement or script over a size limit; the message names the limit
    and the knob that sets it (``limit`` in the details)."""

    code = "TOO_LARGE"
    status = 413


class StatementTimeout(GatewayError):
    """A statement ran longer than its limit and was cancelled (a gateway-side limit, so
    504 like the endpoint timeouts: the request was fine, it did not finish in time)."""

    code = "STATEMENT_TIMEOUT"
    status = 504


class CatalogUnavailable(GatewayError):
    """The catalog database cannot be reached (or is locked) right now: nothing about the
    request was wrong, and it may be retried once the catalog is back."""

    code = "CATALOG_UNAVAILABLE"
    status = 503

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class Busy(GatewayError):
    """Refused without queueing: too many statements in flight. ``retry_after`` (seconds)
    becomes the ``Retry-After`` header of the answer."""

    code = "GATEWAY_BUSY"
    status = 503

    def __init__(self, message: str, *, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after, **details)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyRequests(Busy):
    """This client has too many statements in flight (the others may go on)."""

    code = "TOO_MANY_REQUESTS"
    status = 429


class EndpointError(GatewayError):
    """A model endpoint failed; the message names the model and the URL."""

    code = "ENDPOINT_ERROR"
    status = 502


class EndpointUnreachable(EndpointError):
    code = "ENDPOINT_UNREACHABLE"


class EndpointTimeout(EndpointError):
    code = "ENDPOINT_TIMEOUT"
    status = 504


class EndpointHTTPError(EndpointError):
    code = "ENDPOINT_HTTP_ERROR"


class EndpointBadResponse(EndpointError):
    code = "ENDPOINT_BAD_RESPONSE"


class Unauthorized(GatewayError):
    """No valid token where authentication is on (``gateway.auth``)."""

    code = "UNAUTHORIZED"
    status = 401


class Forbidden(GatewayError):
    """A valid token whose role may not run the statement; the message names the role
    needed."""

    code = "FORBIDDEN"
    status = 403


class QueryCancelled(GatewayError):
    """A running statement was stopped between batches by ``Gateway.cancel_query`` (``DELETE
    /api/queries/{id}``, MySQL's KILL QUERY); the message says how many rows were done."""

    code = "QUERY_CANCELLED"
    status = 409


class QueryNotCancellable(UserError):
    """A cancel of a statement that already finished, or runs on another replica."""

    code = "QUERY_FINISHED"
    status = 409


def finish_sentence(message: str) -> str:
    """``message`` ending with exactly one period (a question keeps its question mark, a
    truncated snippet its ellipsis):
    every message a user sees reads the same, however it was put together."""
    text = message.rstrip()
    if text.endswith(("?", "...")):  # a question, or a snippet cut short
        return text
    return text.rstrip(".").rstrip() + "."


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``word`` (case-insensitive), or None when nothing is close."""
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None
