"""Write-back: streaming rows into a table of a datasource, chunk by chunk.

Each ``TableWriter.write`` call is its own transaction: when a chunk fails, the chunks
before it stay committed and the error says how many rows were written. Create mode makes
the table (in its own transaction) typed from the first rows; append mode matches the
columns of an existing table by name.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, MetaData, Table, inspect
from sqlalchemy.exc import SQLAlchemyError

from byom.errors import (
    DatasourceError,
    DatasourceUnavailable,
    GatewayError,
    InvalidInput,
    InvalidOption,
)
from datasources.values import POSTGRES_NATIVE, SQLITE_NATIVE, bindable, infer_column_type

if TYPE_CHECKING:  # the Datasource module imports this one to open writers
    from datasources.datasource import Datasource

log = logging.getLogger(__name__)

WRITE_MODES = ("create", "append")


def open_writer(
    datasource: Datasource,
    table: str,
    columns: Sequence[str],
    *,
    schema: str | None = None,
    mode: str = "create",
) -> TableWriter:
    """The body of ``Datasource.open_writer`` (documented there)."""
    if mode not in WRITE_MODES:
        raise InvalidOption(f"write mode must be one of {', '.join(WRITE_MODES)}, not {mode!r}.")
    names = [str(c) for c in columns]
    if not names:
        raise InvalidInput(f"Cannot write table '{table}': no columns were given.")
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise InvalidInput(
            f"Cannot write table '{table}': column names must be distinct; "
            f"repeated: {', '.join(repeated)}."
        )
    where = f"{schema}.{table}" if schema else table
    try:
        with datasource._connect() as conn:
            inspector = inspect(conn)
            exists = inspector.has_table(table, schema=schema)
            existing = (
                [c["name"] for c in inspector.get_columns(table, schema=schema)]
                if exists and mode == "append"
                else []
            )
    except SQLAlchemyError as exc:
        raise datasource._query_error(exc) from exc
    if mode == "create":
        if exists:
            raise DatasourceError(
                f"table '{where}' already exists in datasource '{datasource.name}'; "
                "use INSERT INTO ... SELECT to append",
                datasource=datasource.name,
                table=where,
            )
        return TableWriter(datasource, table, names, schema=schema, create=True)
    if not exists:
        raise DatasourceError(
            f"table '{where}' does not exist in datasource '{datasource.name}'; "
            "use CREATE TABLE ... AS SELECT to create it",
            datasource=datasource.name,
            table=where,
        )
    matched = _match_columns(datasource.name, where, names, existing)
    return TableWriter(datasource, table, matched, schema=schema)


def _match_columns(
    datasource: str, where: str, wanted: list[str], existing: list[str]
) -> list[str]:
    """The table's own name for each of ``wanted``: the exact name, else the only one that
    differs by case (so ``rooms`` finds a column created as ``Rooms``)."""
    by_lower: dict[str, list[str]] = {}
    for name in existing:
        by_lower.setdefault(name.lower(), []).append(name)
    matched: list[str] = []
    missing: list[str] = []
    for name in wanted:
        candidates = by_lower.get(name.lower(), [])
        if name in existing:
            matched.append(name)
        elif len(candidates) == 1:
            matched.append(candidates[0])
        else:
            missing.append(name)
    if missing:
        raise DatasourceError(
            f"table '{where}' in datasource '{datasource}' has no column "
            f"{', '.join(repr(m) for m in missing)}; its columns: {', '.join(existing)}",
            datasource=datasource,
            table=where,
        )
    return matched


class TableWriter:
    """Streams rows into one table; made by ``Datasource.open_writer``.

    Every ``write`` is one transaction on a pooled connection that goes back to the pool
    when the call returns, so an abandoned writer holds nothing. A failing ``write`` rolls
    back only its own chunk: the chunks written before stay committed, and the
    ``DatasourceError`` says how many rows that is (also in ``rows_written``).
    """

    def __init__(
        self,
        datasource: Datasource,
        table: str,
        columns: list[str],
        *,
        schema: str | None = None,
        create: bool = False,
    ) -> None:
        self.datasource = datasource
        self.table = table
        self.schema = schema
        self.columns = list(columns)
        self.where = f"{schema}.{table}" if schema else table
        self._pending_create = create
        self._rows_written = 0
        self._closed = False
        self._sqlite = datasource.engine_name == "sqlite"
        native = SQLITE_NATIVE if self._sqlite else POSTGRES_NATIVE
        self._native = frozenset(native)
        # Untyped columns: the values reach the driver as they are (no SQLAlchemy type
        # processing that would refuse, say, a string for a DATE column); keys c0, c1, ...
        # keep bind names plain whatever the column is called ("1", "Number Of Rooms").
        # Every identifier is quoted: SQLAlchemy's keyword lists miss some (SQLite's
        # "nothing"), and a quoted lower-case name means the same as an unquoted one.
        self._keys = [f"c{i}" for i in range(len(columns))]
        self._insert = Table(
            table,
            MetaData(),
            *(
                Column(name, key=key, quote=True)
                for name, key in zip(columns, self._keys, strict=True)
            ),
            schema=schema,
            quote=True,
            quote_schema=True,
        ).insert()

    @property
    def rows_written(self) -> int:
        """Rows committed so far."""
        return self._rows_written

    @property
    def closed(self) -> bool:
        """True after ``close`` or ``finish``."""
        return self._closed

    def write(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert ``rows`` (each in ``columns`` order) in one transaction; return how many.

        In create mode the first call with rows creates the table first, in a transaction
        of its own. ``DatasourceError`` names the datasource, the table, the database's
        message and the rows committed before this chunk, which stay in the table.
        """
        if self._closed:
            raise ValueError(f"the writer for table '{self.where}' is closed")
        if not rows:
            return 0
        params = self._params(rows)  # checks the rows before anything is created
        if self._pending_create:
            self._create(rows)
        try:
            with self.datasource._connect() as conn, conn.begin():
                conn.execute(self._insert, params)
        except SQLAlchemyError as exc:
            raise self._error(exc, f"inserting {len(rows)} rows") from exc
        self._rows_written += len(rows)
        return len(rows)

    def finish(self) -> None:
        """Close, first creating the table (every column TEXT) if no row ever came, so
        ``CREATE TABLE ... AS SELECT`` of an empty result still leaves a table."""
        if self._pending_create and not self._closed:
            self._create([])
        self.close()

    def close(self) -> None:
        """Stop writing (idempotent); committed chunks stay, nothing is created."""
        self._closed = True

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.close()

    # -- internals

    def _create(self, rows: Sequence[Sequence[Any]]) -> None:
        dialect = self.datasource.dialect
        typed = Table(
            self.table,
            MetaData(),
            *(
                Column(name, infer_column_type([row[i] for row in rows], dialect), quote=True)
                for i, name in enumerate(self.columns)
            ),
            schema=self.schema,
            quote=True,
            quote_schema=True,
        )
        try:
            with self.datasource._connect() as conn, conn.begin():
                typed.create(conn)
        except SQLAlchemyError as exc:
            raise self._error(exc, "creating the table") from exc
        self._pending_create = False
        log.debug("created table %s in datasource %r", self.where, self.datasource.name)

    def _params(self, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        keys = self._keys
        width = len(keys)
        for row in rows:
            if len(row) != width:
                raise InvalidInput(
                    f"A row for table '{self.where}' has {len(row)} values; expected "
                    f"{width} ({', '.join(self.columns)})."
                )
        # Most chunks hold only types the driver binds natively: skip the per-value pass.
        seen = {type(v) for row in rows for v in row}
        if seen <= self._native:
            return [dict(zip(keys, row, strict=True)) for row in rows]
        convert = functools.partial(bindable, sqlite=self._sqlite)
        return [dict(zip(keys, map(convert, row), strict=True)) for row in rows]

    def _error(self, exc: BaseException, doing: str) -> GatewayError:
        ds = self.datasource
        refused = ds.refusal(exc, f"writing table '{self.where}'")
        if refused is not None:
            return refused
        # A lost connection is the database's outage, not a wrong statement (503)
        error = DatasourceUnavailable if ds.connection_lost(exc) else DatasourceError
        return error(
            f"writing table '{self.where}' in datasource '{ds.name}' ({ds.engine_name}) "
            f"failed while {doing}: {ds._reason(exc)}. {self._rows_written} rows were "
            "written before this chunk and stay committed (each chunk is its own "
            "transaction).",
            datasource=ds.name,
            table=self.where,
            rows_written=self._rows_written,
        )
