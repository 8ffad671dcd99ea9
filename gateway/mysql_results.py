"""How the gateway's answers become MySQL packets (``gateway.mysql_server``): error packets
(``mysql_error``: MySQL's own numbers where a client branches on them), result columns with
their types, and a JOIN's rows - written as text rows a batch at a time (COM_QUERY), or
handed row by row to mysql-mimic to encode (a prepared statement's binary rows)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from mysql_mimic import ResultColumn
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.results import infer_type
from mysql_mimic.stream import MysqlStream
from mysql_mimic.types import ColumnType

from byom.errors import (
    Busy,
    DatasourceNotFound,
    Forbidden,
    GatewayError,
    NotFound,
    ParseError,
    ProjectNotFound,
    TooManyRequests,
    Unauthorized,
)
from gateway.result import StreamResult

# MySQL's own error numbers for the gateway's error classes (the first match wins); every
# other error is ER_UNKNOWN_ERROR. The message always starts with the gateway's code.
ER_BAD_DB_ERROR = 1049
ER_NO_SUCH_TABLE = 1146
ER_TABLEACCESS_DENIED_ERROR = 1142
ER_NO_SUCH_THREAD = 1094  # KILL of a connection id that is not connected
# Over the in-flight limits (gateway.limits): this client's (HTTP's 429) is MySQL's "user
# has exceeded a resource"; the gateway's (HTTP's 503) is "too many connections", which
# pools and clients already read as "busy, retry later". Both are OperationalError to pymysql.
ER_CON_COUNT_ERROR = 1040
ER_USER_LIMIT_REACHED = 1226
_ERROR_NUMBERS: tuple[tuple[type[GatewayError], int], ...] = (
    (TooManyRequests, ER_USER_LIMIT_REACHED),  # before Busy: a subclass of it
    (Busy, ER_CON_COUNT_ERROR),
    (ParseError, ErrorCode.PARSE_ERROR),
    (DatasourceNotFound, ER_BAD_DB_ERROR),
    (ProjectNotFound, ER_BAD_DB_ERROR),
    (NotFound, ER_NO_SUCH_TABLE),
    (Forbidden, ER_TABLEACCESS_DENIED_ERROR),
    (Unauthorized, ErrorCode.ACCESS_DENIED_ERROR),
)


def mysql_error(exc: GatewayError) -> MysqlError:
    """The MySQL error packet of a gateway error: its number and ``[CODE] message``."""
    number = next((n for cls, n in _ERROR_NUMBERS if isinstance(exc, cls)), None)
    code = ErrorCode.UNKNOWN_ERROR if number is None else number
    return MysqlError(f"[{exc.code}] {exc.message}", code=code)  # type: ignore[arg-type]


_JSON_TYPES = (dict, list, tuple)


def _cell(value: Any) -> Any:
    """A JSON value (DESCRIBE's dtype_dict, SHOW DATABASES' parameters) as JSON text."""
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str).decode()
    return value


def result_columns(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[ResultColumn]:
    """Column types from the first non-NULL value of each column in ``rows`` (the first
    batch: mysql-mimic's own inference would read a stream until every column had one)."""
    columns = []
    for i, name in enumerate(names):
        values = [row[i] for row in rows if row[i] is not None]
        kind = ColumnType.VARCHAR if not values else infer_type(values[0])
        if isinstance(values[0] if values else None, dict | list | tuple):
            kind = ColumnType.VARCHAR  # sent as JSON text (``_cell``)
        elif kind == ColumnType.LONGLONG and any(isinstance(v, float) for v in values):
            kind = ColumnType.DOUBLE  # 2, 2.5, ...: a client would read "2.5" as an int
        columns.append(ResultColumn(name=str(name), type=kind))
    return columns


def plain_rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows with their JSON values as text."""
    return [[_cell(v) if type(v) in _JSON_TYPES else v for v in row] for row in rows]


async def streamed_rows(
    result: StreamResult,
    first: list[Sequence[Any]],
    stream: MysqlStream,
    columns: list[ResultColumn],
) -> AsyncIterator[list[Any]]:
    """The rows of a JOIN written to ``stream`` one batch at a time; yields none itself.
    Closing it (the client went away, or an error) cancels the statement.

    mysql-mimic 3.0.5 takes rows of an async result one by one and only buffers them until
    the result ends: the whole result in memory, and nothing for the client until then. So
    each batch is encoded here, in one call, straight after the column definitions the
    library has already buffered, and sent before the next batch is asked for: one batch in
    memory, the socket's backpressure pacing the statement, and a fraction of the per-row
    cost. The library then ends the result (its row count, 0, is not read by clients)."""
    try:
        batch: list[Sequence[Any]] | None = first
        while batch is not None:
            stream.write_text_rows(plain_rows(batch), columns)
            await stream.drain()
            batch = await anext(result.batches, None)
    except GatewayError as exc:  # after rows were sent: an error packet ends the result
        raise mysql_error(exc) from exc
    finally:
        await result.aclose()
    return
    yield  # an async generator (what mysql-mimic iterates) that yields nothing


async def library_rows(
    result: StreamResult, first: list[Sequence[Any]]
) -> AsyncIterator[list[Any]]:
    """A JOIN's rows one by one, for mysql-mimic to encode (COM_STMT_EXECUTE: binary
    rows, each written to the socket as it comes)."""
    try:
        batch: list[Sequence[Any]] | None = first
        while batch is not None:
            for row in plain_rows(batch):
                yield row
            batch = await anext(result.batches, None)
    except GatewayError as exc:
        raise mysql_error(exc) from exc
    finally:
        await result.aclose()
