"""A small synchronous Python client for a running gateway (``byom serve``).

    with Client("http://127.0.0.1:47334") as client:
        print(client.sql("SHOW MODELS").records())
        for result in client.sql_script("CREATE DATABASE d ...; SHOW DATABASES"):
            print(result.columns, result.rows)
        with client.iter_sql("SELECT t.*, m.y FROM db.big AS t JOIN m") as rows:
            for batch in rows:          # lists of rows; memory stays flat
                ...

Error answers come back as the same ``GatewayError`` subclass the server raised (chosen by
the stable ``code``), so ``except ModelNotFound`` works the same embedded or remote.

A ``Client`` is one session: it sends the header ``X-Byom-Session`` with a random id (or
the ``session`` given) on every request, so a ``USE`` holds for its later calls.
"""

from __future__ import annotations

import inspect
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from byom.errors import AlreadyExists, EndpointError, GatewayError, NotFound, UserError
from gateway.formatting import dumps_json
from gateway.result import Result
from gateway.session import HEADER as SESSION_HEADER

DEFAULT_URL = "http://127.0.0.1:47334"
# A model's status while it trains in the background (DESCRIBE, SHOW MODELS).
TRAINING_STATUSES = ("generating", "training")

# A code without a class of its own (``NotFound(..., code="QUERY_NOT_FOUND")``) still gets
# the family its status stands for, so ``except NotFound`` works for it too.
_FAMILY_BY_STATUS: dict[int, type[GatewayError]] = {
    400: UserError,
    404: NotFound,
    409: AlreadyExists,
    502: EndpointError,
}


def error_classes() -> dict[str, type[GatewayError]]:
    """``code -> class`` for every GatewayError subclass currently defined.

    Walked parent-first, so a subclass that does not set its own code maps to its parent.
    """
    classes: dict[str, type[GatewayError]] = {}
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        cls = pending.pop(0)
        classes.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return classes


def error_from_body(body: Any, status: int | None) -> GatewayError | None:
    """The exception an error body ``{"error": {"code", "message", ...}}`` stands for.

    ``status`` None (an error reported inside a 200 streamed answer) keeps the status its
    class has.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or "code" not in error or "message" not in error:
        return None
    code, message = str(error["code"]), str(error["message"])
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    cls = error_classes().get(code) or _FAMILY_BY_STATUS.get(status or 0, GatewayError)
    # Subclass __init__s may re-format the message (ParseError appends line and col), and
    # the server already did that: build the instance with the base __init__ instead, then
    # fill the attributes a subclass __init__ would have set from its keyword arguments.
    exc = cls.__new__(cls)
    GatewayError.__init__(exc, message, code=code, **details)
    if status is not None:
        exc.status = status
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if param.kind is inspect.Parameter.KEYWORD_ONLY and name != "code":
            default = None if param.default is inspect.Parameter.empty else param.default
            setattr(exc, name, details.get(name, default))
    return exc


class Client:
    """Talks to the gateway's HTTP API; every method raises ``GatewayError`` on failure."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        timeout: float = 300.0,
        session: str | None = None,
        token: str | None = None,
    ) -> None:
        """``session``: the id of the gateway session this client's requests belong to
        (1-128 of ``A-Z a-z 0-9 _ . -``); default, a new random one. ``token``: the API token
        sent as ``Authorization: Bearer`` (default ``$BYOM_TOKEN``; none: no header)."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or uuid.uuid4().hex
        headers = {"Accept": "application/json", SESSION_HEADER: self.session}
        token = token if token is not None else os.environ.get("BYOM_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._token = token
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def fork(self, timeout: float | None = None) -> Client:
        """Another client to the same gateway, with the same token and session: for a
        thread of its own (this one's connection may be busy reading an answer)."""
        return Client(
            self.url, self.timeout if timeout is None else timeout, self.session, self._token or ""
        )

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """httpx's connection failures as ``GatewayError`` with codes a caller can branch on."""
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise GatewayError(
                f"cannot reach the gateway at {self.url}; start it with `byom serve`",
                code="GATEWAY_UNREACHABLE",
                url=self.url,
            ) from exc
        except httpx.TimeoutException as exc:
            raise GatewayError(
                f"the gateway at {self.url} did not answer within {self.timeout:g} s",
                code="GATEWAY_TIMEOUT",
                url=self.url,
            ) from exc
        except httpx.TransportError as exc:
            raise GatewayError(
                f"lost the connection to the gateway at {self.url}: {exc}",
                code="GATEWAY_UNREACHABLE",
                url=self.url,
            ) from exc

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        content = None if body is None else dumps_json(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        with self._transport_errors():
            response = self._http.request(method, path, content=content, headers=headers)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_error:
            error = error_from_body(payload, response.status_code)
            if error is not None:
                raise error
        if payload is None or response.is_error:
            raise self._unexpected(path, response)
        return payload

    def _unexpected(self, path: str, response: httpx.Response) -> GatewayError:
        # Not the gateway's own answer: a proxy page, or another server on that port.
        return GatewayError(
            f"unexpected answer from {self.url}{path}: HTTP {response.status_code} "
            f"{response.text[:200]!r}",
            code=f"HTTP_{response.status_code}",
            url=self.url,
        )

    @staticmethod
    def _result(payload: dict[str, Any]) -> Result:
        return Result(
            columns=list(payload["columns"]),
            rows=[list(row) for row in payload["rows"]],
            message=payload.get("message"),
        )

    @staticmethod
    def _name(name: str) -> str:
        return quote(name, safe="")

    # -- API --------------------------------------------------------------------------

    def sql(self, query: str, query_id: str | None = None) -> Result:
        """Run SQL on the gateway; the last statement's result, all rows in memory.

        ``query_id`` names the statement's progress entry (see ``query_progress``). A
        statement that fails after its rows started streaming raises like any other. For
        the result of every statement of a script, use ``sql_script``.
        """
        results = self._sql_results(query, query_id)
        return results[-1] if results else Result()

    def sql_script(self, script: str, query_id: str | None = None) -> list[Result]:
        """Run a script of one or more statements in one request; the result of each, in
        order (all rows in memory).

        The gateway parses the whole script first (a syntax error anywhere runs nothing),
        then runs the statements one after the other. When one fails, the error raised has
        ``details["statement"]`` (1-based) and ``details["done"]`` (the statements that took
        effect). Training started by a ``CREATE PREDICTOR`` runs in the background: a later
        statement of the same script that predicts with that model fails (MODEL_NOT_READY);
        ``byom sql -f`` waits in between instead (``wait_for_training``).
        """
        return self._sql_results(script, query_id)

    def _sql_results(self, query: str, query_id: str | None) -> list[Result]:
        body: dict[str, Any] = {"query": query}
        if query_id is not None:
            body["query_id"] = query_id
        payload = self._request("POST", "/api/sql", body)
        error = error_from_body(payload, None)
        if error is not None:
            raise error
        if isinstance(payload, dict) and "results" in payload:
            return [self._result(result) for result in payload["results"]]
        return [self._result(payload)]

    def wait_for_training(
        self, name: str, timeout: float | None = None, interval: float = 0.5
    ) -> Result:
        """Poll ``DESCRIBE name`` until the model's status is no longer ``generating`` or
        ``training``; return that last DESCRIBE result (status ``complete`` or ``error``).

        ``name`` is written as in SQL (``byom``, ``mindsdb.byom``). Raises ``GatewayError``
        (code TRAINING_TIMEOUT) after ``timeout`` seconds (None: no limit; the gateway's
        own training timeout ends the wait anyway).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            result = self.sql(f"DESCRIBE {name}")
            status = result.records()[0].get("status") if result.rows else None
            if status not in TRAINING_STATUSES:
                return result
            if deadline is not None and time.monotonic() > deadline:
                raise GatewayError(
                    f"Model '{name}' is still '{status}' after {timeout:g}s.",
                    code="TRAINING_TIMEOUT",
                )
            time.sleep(interval)

    def iter_sql(self, query: str, query_id: str | None = None) -> RowStream:
        """Run SQL and read its rows batch by batch (flat memory for any row count).

        Sends the request and reads the column names before returning, so errors found
        before streaming starts raise here. Use the answer as a context manager (or call
        ``close``) so an abandoned stream cancels the statement on the gateway::

            with client.iter_sql("SELECT ... JOIN m") as rows:
                print(rows.columns)
                for batch in rows:
                    ...
        """
        body: dict[str, Any] = {"query": query, "format": "ndjson"}
        if query_id is not None:
            body["query_id"] = query_id
        request = self._http.build_request(
            "POST",
            "/api/sql",
            content=dumps_json(body),
            headers={"Content-Type": "application/json", "Accept": "application/x-ndjson"},
        )
        with self._transport_errors():
            response = self._http.send(request, stream=True)
        try:
            if response.is_error:
                with self._transport_errors():
                    response.read()
                try:
                    error = error_from_body(response.json(), response.status_code)
                except ValueError:
                    error = None
                raise error or self._unexpected("/api/sql", response)
            return RowStream(response, self)
        except BaseException:
            response.close()
            raise

    def queries(self) -> list[dict[str, Any]]:
        """Running and recently finished streaming statements (``rows_done``, ``status``...)."""
        return self._request("GET", "/api/queries")

    def query_progress(self, query_id: str) -> dict[str, Any]:
        """One statement's progress; raises ``NotFound`` (QUERY_NOT_FOUND) when unknown."""
        return self._request("GET", f"/api/queries/{self._name(query_id)}")

    def register_predictor(self, **spec: Any) -> dict[str, Any]:
        """Register an external model (name, format, url_predict, dtype_dict, ...)."""
        return self._request("POST", "/api/predictors", spec)

    def list_predictors(self) -> list[dict[str, Any]]:
        """Every predictor as a dict."""
        return self._request("GET", "/api/predictors")

    def get_predictor(self, name: str) -> dict[str, Any]:
        """One predictor's row (status, error, ...) as a dict."""
        return self._request("GET", f"/api/predictors/{self._name(name)}")

    def drop_predictor(self, name: str) -> dict[str, Any]:
        """Drop a predictor; ``{"dropped": name}``."""
        return self._request("DELETE", f"/api/predictors/{self._name(name)}")

    def predict(self, name: str, rows: list[dict[str, Any]]) -> Result:
        """Predict ``rows`` with a model: input columns plus the prediction per row."""
        path = f"/api/predictors/{self._name(name)}/predict"
        return self._result(self._request("POST", path, {"rows": rows}))

    def health(self) -> dict[str, Any]:
        """The gateway's ``/healthz`` answer (raises when it is not ok)."""
        return self._request("GET", "/healthz")

    def create_token(self, name: str, role: str) -> dict[str, Any]:
        """``POST /api/tokens`` (admin): ``{"name", "role", "token"}``."""
        return self._request("POST", "/api/tokens", {"name": name, "role": role})

    def list_tokens(self) -> list[dict[str, Any]]:
        """``GET /api/tokens`` (admin): every token, without secrets."""
        return self._request("GET", "/api/tokens")["tokens"]

    def revoke_token(self, name: str) -> dict[str, Any]:
        """``DELETE /api/tokens/{name}`` (admin)."""
        return self._request("DELETE", f"/api/tokens/{quote(name, safe='')}")

    def status(self) -> dict[str, Any]:
        """``GET /api/status``: the answering replica, the Ray cluster, Serve, running jobs."""
        return self._request("GET", "/api/status")

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RowStream:
    """The rows of one statement as they arrive: ``columns`` (and ``message``) at once,
    then iterate for batches (lists of rows). Raises the statement's ``GatewayError`` if
    it fails part-way. Iterate once; ``close`` (or leaving ``with``) ends the request early.
    """

    def __init__(self, response: httpx.Response, client: Client) -> None:
        self._response = response
        self._client = client
        self._lines = self._read_lines()
        self.rows_read = 0
        self.done = False
        head = self._next_line()
        if head is None or "columns" not in head:
            self.close()
            raise self._cut_off()
        self.columns: list[str] = list(head["columns"])
        self.message: str | None = head.get("message")

    def _read_lines(self) -> Iterator[bytes]:
        # Split raw bytes ourselves: cheaper than decoding to text for lines of many rows,
        # and each chunk is scanned once however long a line is.
        parts: list[bytes] = []
        try:
            chunks = self._response.iter_bytes()
            for chunk in chunks:
                start = 0
                while (end := chunk.find(b"\n", start)) != -1:
                    parts.append(chunk[start:end])
                    line = b"".join(parts)
                    parts.clear()
                    if line:
                        yield line
                    start = end + 1
                if start < len(chunk):
                    parts.append(chunk[start:])
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # The connection broke mid-answer (the gateway or its replica died): what was
            # read is a part, never the whole - say so, with the count.
            raise self._cut_off(str(exc)) from exc
        except httpx.TransportError:
            with self._client._transport_errors():
                raise
        if parts:
            yield b"".join(parts)

    def _next_line(self) -> dict[str, Any] | None:
        line = next(self._lines, None)
        if line is None:
            return None
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            self.close()
            raise GatewayError(
                f"the gateway at {self._client.url} sent a line that is not JSON: {line[:200]!r}",
                code="BAD_STREAM",
                url=self._client.url,
            ) from exc
        return value if isinstance(value, dict) else {}

    def _cut_off(self, why: str = "") -> GatewayError:
        because = f": {why}" if why else ""
        return GatewayError(
            f"the answer from {self._client.url} ended before its last line "
            f"({self.rows_read} rows read){because}; the gateway may have stopped",
            code="STREAM_INCOMPLETE",
            url=self._client.url,
        )

    def __iter__(self) -> Iterator[list[list[Any]]]:
        try:
            while not self.done:
                line = self._next_line()
                if line is None:
                    raise self._cut_off()
                if "rows" in line and "done" not in line:
                    self.rows_read += len(line["rows"])
                    yield line["rows"]
                elif line.get("done"):
                    self.done = True
                else:
                    raise error_from_body(line, None) or self._cut_off()
        finally:
            self.close()

    def rows(self) -> Iterator[list[Any]]:
        """One row at a time (the batches flattened)."""
        for batch in self:
            yield from batch

    def close(self) -> None:
        """Stop reading; the gateway sees the client go and cancels the statement."""
        self._response.close()

    def __enter__(self) -> RowStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
