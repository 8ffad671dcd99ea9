"""``byom sql`` on a script: ``-f FILE`` (``-f -``: stdin), or SQL text of several statements.

The whole script is parsed first (a syntax error anywhere runs nothing); then each statement
runs and its result is printed, in order:

* table: a header line ``-- [k] <statement>`` before each result's table;
* csv: one CSV block per statement that answers columns (header line, rows), blocks
  separated by an empty line; the ``-- [k]`` lines and messages go to stderr, so stdout is
  CSV only;
* json: the document ``POST /api/sql`` answers for a script, ``{"results": [{"statement",
  "sql", "columns", "rows", "message"?}, ...]}``, written as the rows come; a failure ends it
  with an ``"error"`` member.

The script is one session: a ``USE`` holds for the statements after it (against ``--url``,
each statement is its own request, all in the ``Client``'s one session).

Training runs in the background, so a statement that predicts right after the ``CREATE
PREDICTOR`` that trains its model would fail (MODEL_NOT_READY). Here each statement waits
for the training the one before started: embedded, ``Gateway.wait_idle()``; against
``--url``, ``DESCRIBE <name>`` is polled until the status is neither ``generating`` nor
``training``. The row printed for that ``CREATE PREDICTOR`` is then the final one (status
``complete``, or ``error`` with the reason).
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from byom.errors import GatewayError
from gateway import statements as st
from gateway.cli_progress import ProgressBar, embedded_progress, stream_remote, write_batches
from gateway.formatting import CsvWriter, JsonWriter, ResultWriter, TableWriter, dumps_json
from gateway.parser import ScriptStatement
from gateway.result import Result, StreamResult
from gateway.scripts import script_failure

HEADER_WIDTH = 100
_SIMPLE_NAME = re.compile(r"[a-z_][a-z0-9_]*")

BarFactory = Callable[[], ProgressBar | None]


def header(item: ScriptStatement) -> str:
    """``-- [3] SELECT ...``: the statement on one line, cut at ``HEADER_WIDTH``."""
    text = " ".join(item.sql.split())
    if len(text) > HEADER_WIDTH:
        text = text[: HEADER_WIDTH - 3] + "..."
    return f"-- [{item.index}] {text}"


class ScriptOutput:
    """Prints the results of a script's statements in order, in one format."""

    def __init__(self, fmt: str, out: TextIO, err: TextIO, max_rows: int | None) -> None:
        self.fmt = fmt
        self.out = out
        self.err = err
        self.max_rows = max_rows
        self.rows = 0  # rows printed, all statements together
        self._count = 0
        self._blocks = 0  # CSV blocks printed
        self._current: ResultWriter | None = None

    def writer(self, item: ScriptStatement) -> ResultWriter:
        """The writer of statement ``item``'s result (its header printed first)."""
        self._close_current()
        first = self._count == 0
        self._count += 1
        if self.fmt == "json":
            if first:
                self.out.write('{"results":[')
            self._current = _JsonResultWriter(self.out, item, first)
        elif self.fmt == "csv":
            print(header(item), file=self.err)
            self._current = _CsvBlock(self)
        else:
            if not first:
                print(file=self.out)
            print(header(item), file=self.out)
            self._current = TableWriter(self.out, max_rows=self.max_rows)
        return self._current

    def finish(self) -> None:
        """After the last statement."""
        self._close_current()
        if self.fmt == "json" and self._count:
            self.out.write("]}\n")

    def fail(self, error: dict[str, Any]) -> None:
        """When a statement failed (its writer's ``fail`` already called, if it started)."""
        self._current = None
        if self.fmt == "json" and self._count:
            self.out.write('],"error":' + dumps_json(error).decode() + "}\n")

    def _close_current(self) -> None:
        if self._current is not None:
            self.rows += self._current.rows
            if self.fmt == "csv" and self._current.message:
                print(self._current.message, file=self.err)  # keep stdout pure CSV
        self._current = None


class _JsonResultWriter(JsonWriter):
    """One ``{"statement", "sql", "columns", "rows", "message"?}`` of the results array."""

    def __init__(self, out: TextIO, item: ScriptStatement, first: bool) -> None:
        super().__init__(out)
        self._item = item
        self._first = first

    def start(self, columns: list[str], message: str | None = None) -> None:
        ResultWriter.start(self, columns, message)
        head = {"statement": self._item.index, "sql": self._item.sql, "columns": self.columns}
        separator = b"" if self._first else b","
        self._raw(separator + dumps_json(head)[:-1] + b',"rows":[')

    def finish(self) -> None:
        tail = b"]"
        if self.message:
            tail += b',"message":' + dumps_json(self.message)
        self._raw(tail + b"}")

    def fail(self, error: dict[str, Any]) -> None:
        self._raw(b"]}")  # the error closes the whole document (ScriptOutput.fail)


class _CsvBlock(CsvWriter):
    """A statement's CSV block, after an empty line when an earlier block was printed."""

    def __init__(self, output: ScriptOutput) -> None:
        super().__init__(output.out)
        self._output = output

    def start(self, columns: list[str], message: str | None = None) -> None:
        if columns:
            if self._output._blocks:
                self.out.write("\n")
            self._output._blocks += 1
        super().start(columns, message)


def _write_result(result: Result, writer: ResultWriter) -> None:
    writer.start(result.columns, result.message)
    writer.write(result.rows)
    writer.finish()


async def run_embedded(
    script: list[ScriptStatement], home: Path | None, output: ScriptOutput, bars: BarFactory
) -> None:
    """Run ``script`` on an embedded gateway over ``home``, printing each result."""
    from gateway.core import Gateway
    from gateway.session import Session

    gateway = await Gateway.start(home)
    try:
        # One session for the process: a USE holds for the statements after it.
        results = gateway.run_script(script, query_id=uuid.uuid4().hex, session=Session())
        try:
            async for item, result in results:
                writer = output.writer(item)
                if isinstance(result, StreamResult):
                    await _stream_embedded(gateway, result, writer, bars())
                    writer.finish()
                    continue
                trained = await gateway.wait_idle()
                statement = item.statement
                created = _created_model(statement)
                if created is not None and created in trained:
                    result = await gateway.describe_predictor(created)
                _write_result(result, writer)
        finally:
            await results.aclose()
    except GatewayError as exc:
        output.fail(exc.to_dict()["error"])
        raise
    finally:
        await gateway.close()
    output.finish()


async def _stream_embedded(
    gateway: Any, result: StreamResult, writer: ResultWriter, bar: ProgressBar | None
) -> None:
    async with embedded_progress(gateway, result.query_id, bar):
        await write_batches(result, writer)


def run_remote(
    script: list[ScriptStatement],
    url: str,
    token: str | None,
    output: ScriptOutput,
    bars: BarFactory,
) -> None:
    """Run ``script`` statement by statement on the gateway at ``url``, printing each
    result; a statement's failure is reported as that statement's (``gateway.scripts``)."""
    from gateway.client import Client

    with Client(url, token=token) as client:
        try:
            for item in script:
                writer = output.writer(item)
                try:
                    _run_remote_one(client, item, writer, bars())
                except GatewayError as exc:
                    if len(script) == 1:
                        raise
                    raise script_failure(exc, item.index, len(script)) from None
        except GatewayError as exc:
            output.fail(exc.to_dict()["error"])
            raise
    output.finish()


def _run_remote_one(
    client: Any, item: ScriptStatement, writer: ResultWriter, bar: ProgressBar | None
) -> None:
    statement = item.statement
    created = _created_model(statement)
    if created is not None:
        # A small answer: wait for the training it started, then print the model's final
        # row (DESCRIBE's) instead of the 'generating' one.
        client.sql(item.sql)
        namespace = statement.namespace if isinstance(statement, st.CreatePredictor) else None
        _write_result(client.wait_for_training(_sql_name(namespace, created)), writer)
        return
    stream_remote(client, item.sql, writer, bar)


def _created_model(statement: st.Statement) -> str | None:
    """The model a CREATE MODEL or PostgresML's pgml.tune creates (None for others)."""
    from gateway.postgresml import tuned_model

    if isinstance(statement, st.CreatePredictor):
        return statement.name
    return tuned_model(statement)


def _sql_name(namespace: str | None, name: str) -> str:
    """``[namespace.]name`` as SQL, quoted where it is not a plain lower-case word."""
    parts = [part for part in (namespace, name) if part]
    return ".".join(p if _SIMPLE_NAME.fullmatch(p) else f"`{p}`" for p in parts)


def read_script(path: str) -> str:
    """The text of ``-f path`` (``-``: stdin)."""
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")
