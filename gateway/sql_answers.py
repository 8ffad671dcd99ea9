"""The answers of ``POST /api/sql``, written as the statements run (see ``run_sql``).

One statement: the document ``{"columns", "rows", "message"?}`` (``Result.to_dict()``), or
ndjson lines ``{"columns"}``, ``{"rows"}`` per batch, ``{"done", "rows"}``. A JOIN's rows are
written batch by batch, so the gateway holds one batch whatever the row count; a failure
after the first bytes ends the answer with an ``"error"`` member (an ``{"error"}`` line).

A script of several statements: ``{"results": [{"statement": 1, "sql": "...", "columns":
[...], "rows": [...], "message"?: "..."}, ...]}``, or ndjson with a ``{"statement", "sql",
"columns", "message"?}`` line before each statement's rows and one last line ``{"done":
true, "statements": n, "rows": total}``. Statements run one at a time as the answer is
written. The results of the statements before the first one that streams are small and are
held back until it comes (or the script ends), so that a failure among them is still an
ordinary error answer, with its status; once bytes are sent, a failure ends the answer as
above. Either way the error names the statement and the ones that took effect
(``"statement": k, "done": [...]``, see ``gateway.scripts``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from gateway.formatting import dumps_json
from gateway.parser import ScriptStatement
from gateway.result import Result, StreamResult

logger = logging.getLogger("gateway.server")

NDJSON = "application/x-ndjson"

Item = tuple[ScriptStatement, Result | StreamResult]
# The ``{"code", "message", ...}`` of a failure after the answer started (the server's).
ErrorBody = Callable[[Exception], dict[str, Any]]


async def _json_document(stream: StreamResult, error_body: ErrorBody) -> AsyncIterator[bytes]:
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
        yield b'],"error":' + dumps_json(error_body(exc)) + b"}"
        return
    yield b"]}"


async def _ndjson_lines(
    stream: StreamResult | Result, error_body: ErrorBody
) -> AsyncIterator[bytes]:
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
        yield _line({"error": error_body(exc)})
        return
    yield _line({"done": True, "rows": count})


class StreamedAnswer(StreamingResponse):
    """Streams an answer and always runs ``close`` (which closes the statement's stream),
    whether the body was written to the end, the statement failed, or the client went away
    (which cancels the writing task) - even before the body's first byte."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        media_type: str,
        close: Callable[[], Awaitable[None]] | None = None,
        query_id: str | None = None,
    ) -> None:
        headers = {"X-Query-Id": query_id} if query_id else None
        super().__init__(body, media_type=media_type, headers=headers)
        self._close = close

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
                if self._close is not None:
                    await self._close()


def stream_response(
    result: Result | StreamResult, ndjson: bool, error_body: ErrorBody
) -> StreamedAnswer:
    """The streamed answer to one statement: ndjson, or a ``StreamResult`` as JSON."""
    close = result.aclose if isinstance(result, StreamResult) else None
    query_id = getattr(result, "query_id", None)
    if ndjson:
        return StreamedAnswer(_ndjson_lines(result, error_body), NDJSON, close, query_id)
    assert isinstance(result, StreamResult), "a Result is answered as JSONBody"
    body = _json_document(result, error_body)
    return StreamedAnswer(body, "application/json", close, query_id)


class ScriptAnswer:
    """One script's statements, run for one answer. ``await start()`` runs them up to the
    first that streams; then either ``document()`` (nothing streamed) or one of the writers.
    ``aclose`` stops the script and closes the stream being read (call it in any case)."""

    def __init__(self, results: AsyncIterator[Item], error_body: ErrorBody) -> None:
        self._results = results
        self._error_body = error_body
        self._held: list[Item] = []
        self._current: StreamResult | None = None
        self.streams = False

    async def start(self) -> None:
        """Run the statements before the first that streams; their errors are raised (and
        the script closed): nothing is sent yet."""
        try:
            async for item, result in self._results:
                self._held.append((item, result))
                if isinstance(result, StreamResult):
                    self.streams = True
                    return
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    def response(self, ndjson: bool, query_id: str | None) -> StreamedAnswer:
        """The streamed answer (the JSON document or ndjson) from here on."""
        if ndjson:
            return StreamedAnswer(self.ndjson_lines(), NDJSON, self.aclose, query_id)
        return StreamedAnswer(self.json_chunks(), "application/json", self.aclose, query_id)

    def document(self) -> dict[str, Any]:
        """The whole answer, when no statement streamed (the script has run to its end)."""
        return {"results": [_head(item, result) | _tail(result) for item, result in self._held]}

    async def _items(self) -> AsyncIterator[Item]:
        for item, result in self._held:
            self._current = result if isinstance(result, StreamResult) else None
            yield item, result
        self._held = []
        async for item, result in self._results:
            self._current = result if isinstance(result, StreamResult) else None
            yield item, result

    async def json_chunks(self) -> AsyncIterator[bytes]:
        """The JSON document, written as the statements run."""
        yield b'{"results":['
        separator = b""
        in_rows = False
        try:
            async for item, result in self._items():
                head = _head(item, result)
                if isinstance(result, Result):
                    yield separator + dumps_json(head | _tail(result))
                else:
                    # '{"statement":...,"columns":[...]' then the rows as they come.
                    yield separator + dumps_json(head)[:-1] + b',"rows":['
                    in_rows = True
                    rows_separator = b""
                    async for batch in result.batches:
                        if batch:
                            yield rows_separator + dumps_json(batch)[1:-1]
                            rows_separator = b","
                    yield b"]}"
                    in_rows = False
                separator = b","
        except Exception as exc:
            end = (b"]}" if in_rows else b"") + b'],"error":'
            yield end + dumps_json(self._error_body(exc)) + b"}"
            return
        yield b"]}"

    async def ndjson_lines(self) -> AsyncIterator[bytes]:
        """A head line per statement, its rows lines, then ``{"done", "statements", "rows"}``
        (or an ``{"error"}`` line)."""
        statements = total = 0
        try:
            async for item, result in self._items():
                statements += 1
                head = _head(item, result)
                if isinstance(result, Result) and result.message:
                    head["message"] = result.message
                yield _line(head)
                if isinstance(result, Result):
                    if result.rows:
                        total += len(result.rows)
                        yield _line({"rows": result.rows})
                    continue
                async for batch in result.batches:
                    if batch:
                        total += len(batch)
                        yield _line({"rows": batch})
        except Exception as exc:
            yield _line({"error": self._error_body(exc)})
            return
        yield _line({"done": True, "statements": statements, "rows": total})

    async def aclose(self) -> None:
        if self._current is not None:
            await self._current.aclose()
        for _, result in self._held:
            if isinstance(result, StreamResult):
                await result.aclose()
        await self._results.aclose()  # type: ignore[attr-defined]


def _head(item: ScriptStatement, result: Result | StreamResult) -> dict[str, Any]:
    return {"statement": item.index, "sql": item.sql, "columns": result.columns}


def _tail(result: Result) -> dict[str, Any]:
    tail: dict[str, Any] = {"rows": result.rows}
    if result.message:
        tail["message"] = result.message
    return tail


def _line(value: Any) -> bytes:
    return dumps_json(value) + b"\n"
