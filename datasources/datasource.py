"""``Datasource``: one user database behind a pooled SQLAlchemy engine.

It speaks in plain columns and row tuples. Every database failure leaves here as
``DatasourceError`` naming the datasource and carrying the database's own message;
passwords never appear in messages. Two refusals leave as their own errors: a write into a
``read_only`` datasource (``DATASOURCE_READ_ONLY``) and SQLite SQL that would open or write
other files (``STATEMENT_NOT_ALLOWED``, see ``guards``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, inspect, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.types import NullType

from byom.errors import (
    DatasourceError,
    DatasourceUnavailable,
    GatewayError,
    InvalidOption,
    TableNotFound,
    did_you_mean,
)
from catalog.records import DatasourceRecord
from datasources import guards, writing
from datasources.engines import postgres_engine, sqlite_engine
from datasources.parameters import ENGINES, validate

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 10_000

# libpq's words for a connection no PostgreSQL took: nothing listening or reachable, or a
# server that cannot take one now (SQLSTATE 57P03 cannot_connect_now, 53300 too many).
_PG_UNREACHABLE = (
    "Connection refused",
    "timeout expired",
    "No route to host",
    "Network is unreachable",
    "server closed the connection unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "too many clients already",
    "remaining connection slots are reserved",
)


@dataclass(frozen=True)
class TableColumn:
    """One column of a datasource's table (``Datasource.columns``)."""

    name: str
    type: str  # as the datasource's dialect writes it; "" when it has none (SQLite)
    nullable: bool
    default: str | None
    primary_key: bool


def _type_name(kind: Any, dialect: Any) -> str:
    """A reflected column type as ``dialect`` writes it ("" for SQLite's untyped columns)."""
    try:
        return "" if isinstance(kind, NullType) else str(kind.compile(dialect=dialect))
    except SQLAlchemyError:  # a type the dialect cannot write back
        return str(type(kind).__name__).upper()


class Datasource:
    """One user database: stream rows out of it, pass statements through, load tables."""

    def __init__(self, record: DatasourceRecord) -> None:
        self.engine_name, self.parameters = validate(record.engine, record.parameters)
        self.name = record.name.lower()
        self.dialect = ENGINES[self.engine_name].dialect
        self.read_only: bool = bool(self.parameters.get("read_only"))
        if self.engine_name == "sqlite":
            self.location = self.parameters["path"]
            self._engine = sqlite_engine(self.parameters)
        else:
            self.location = f"{self.parameters['host']}:{self.parameters['port']}"
            self._engine = postgres_engine(self.parameters)

    def __repr__(self) -> str:
        return f"<Datasource {self.name!r} ({self.engine_name} at {self.location})>"

    @property
    def sa_engine(self) -> Engine:
        """The pooled SQLAlchemy engine (for pool statistics and advanced callers)."""
        return self._engine

    def matches(self, record: DatasourceRecord) -> bool:
        """True when ``record`` describes the same database as this datasource."""
        try:
            engine, params = validate(record.engine, record.parameters)
        except InvalidOption:
            return False
        return (record.name.lower(), engine, params) == (
            self.name,
            self.engine_name,
            self.parameters,
        )

    # -- errors (also used by writing.TableWriter)

    def _reason(self, exc: BaseException) -> str:
        raw = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        reason = str(raw).strip() or type(raw).__name__
        password = self.parameters.get("password")
        if password:
            reason = reason.replace(str(password), "******")
        return reason

    def _connect_error(self, exc: BaseException) -> DatasourceError:
        what = (
            f"cannot connect to datasource '{self.name}' ({self.engine_name} at "
            f"{self.location}): {self._reason(exc)}"
        )
        if self._unreachable(exc):
            return DatasourceUnavailable(
                f"{what}. The database did not take the connection (down, restarting, or "
                "not reachable from the gateway): the statement itself may be fine, retry "
                "it once the database is back",
                datasource=self.name,
            )
        return DatasourceError(what, datasource=self.name)

    def _unreachable(self, exc: BaseException) -> bool:
        """Whether a failed connect met no database able to take it (refused, timed out,
        starting up or shutting down, out of connection slots), as opposed to one that
        answered no (password, unknown database, unknown host name: the parameters')."""
        raw = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        # libpq's (psycopg2's) connect failures carry no SQLSTATE: their text tells.
        return self.engine_name == "postgres" and any(m in str(raw) for m in _PG_UNREACHABLE)

    def refusal(self, exc: BaseException, doing: str) -> GatewayError | None:
        """The refusal behind a failed statement, when it was one: the SQLite authorizer's
        (``STATEMENT_NOT_ALLOWED``) or the read-only database's (``DATASOURCE_READ_ONLY``)."""
        raw = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        reason = self._reason(exc)
        if self.engine_name == "sqlite":
            what = guards.take_refusal(reason)
            if what is not None:
                return guards.not_allowed(self.name, what)
            if self.read_only and getattr(raw, "sqlite_errorname", "") == "SQLITE_READONLY":
                return guards.read_only(self.name, doing, reason)
        elif self.read_only and getattr(raw, "pgcode", None) == "25006":
            return guards.read_only(self.name, doing, reason)  # read_only_sql_transaction
        return None

    def refuse_writes(self, doing: str) -> None:
        """``DATASOURCE_READ_ONLY`` now, before anything runs, when this one is read-only."""
        if self.read_only:
            raise guards.read_only(self.name, doing)

    def check_sql(self, sql: str) -> None:
        """Refuse SQL this datasource must not run (see ``guards``); every statement text
        from a user reaches the database through ``query`` or ``stream``, which call this."""
        if self.read_only:
            guards.check_pass_through(self.name, self.engine_name, sql)

    def connection_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` broke the connection itself, as SQLAlchemy's dialect recognises
        a disconnect (``stream`` reads the driver's cursor, whose errors SQLAlchemy never
        saw). The pool pre-pings, so the next statement gets a live connection."""
        if isinstance(exc, DBAPIError):
            return bool(exc.connection_invalidated)
        dialect = self._engine.dialect
        return isinstance(exc, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
            exc, None, None
        )

    def _query_error(self, exc: BaseException) -> GatewayError:
        refused = self.refusal(exc, "the statement")
        if refused is not None:
            return refused
        if self.connection_lost(exc):
            return DatasourceUnavailable(
                f"the connection to datasource '{self.name}' ({self.engine_name} at "
                f"{self.location}) was lost during the statement: {self._reason(exc)}. The "
                "statement itself was fine; the gateway reconnects for the next one, so "
                "retry it once the database is back",
                datasource=self.name,
            )
        return DatasourceError(
            f"query failed on datasource '{self.name}' ({self.engine_name}): {self._reason(exc)}",
            datasource=self.name,
        )

    # -- connections

    def _connect(self) -> Connection:
        try:
            return self._engine.connect()
        except SQLAlchemyError as exc:
            raise self._connect_error(exc) from exc

    @staticmethod
    def _execute(conn: Connection, sql: str, params: Mapping[str, Any] | None) -> CursorResult:
        if params:
            return conn.execute(text(sql), dict(params))
        # No parameters: hand the text to the driver untouched, so a ':x' or '%' inside a
        # string literal is not mistaken for a placeholder.
        return conn.execution_options(no_parameters=True).exec_driver_sql(sql)

    def check(self) -> None:
        """Connect and run ``SELECT 1``; ``DatasourceError`` saying why when that fails."""
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1").all()
        except SQLAlchemyError as exc:
            raise self._connect_error(exc) from exc

    # -- reading

    def stream(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """Run a query and yield ``(columns, rows)`` chunks of at most ``chunk_rows`` rows.

        PostgreSQL reads through a server-side cursor, so the result is never all in memory.
        At least one chunk is yielded (possibly with no rows) so the columns are always known.
        The connection goes back to the pool when the generator ends, fails or is closed.
        """
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        self.check_sql(sql)
        # The DBAPI cursor itself is read, not SQLAlchemy's Result: its rows are already
        # plain tuples, and skipping Row objects makes the hot loop of a big JOIN several
        # times cheaper. SQLAlchemy still pools the connection and compiles the parameters.
        conn = self._connect()
        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        cursor = None
        try:
            statement, args = self._driver_statement(sql, params)
            raw = conn.connection.dbapi_connection
            if self.engine_name == "postgres":
                # A named cursor is server-side: rows are fetched chunk by chunk.
                cursor = raw.cursor(name=f"byom_{uuid.uuid4().hex}")
                cursor.itersize = chunk_rows
            else:
                cursor = raw.cursor()
            # Tell SQLAlchemy's listeners (echo, tracing, the tests' pushdown checks) what the
            # driver receives, as they would hear it for a statement SQLAlchemy runs itself.
            self._engine.dispatch.before_cursor_execute(conn, cursor, statement, args, None, False)
            try:
                cursor.execute(statement, args) if args is not None else cursor.execute(statement)
                rows = cursor.fetchmany(chunk_rows)
            except dbapi_error as exc:
                raise self._query_error(exc) from exc
            if cursor.description is None:  # not a query: nothing to stream
                raw.commit()
                yield [], []
                return
            columns = [d[0] for d in cursor.description]
            yield columns, rows
            while rows:
                try:
                    rows = cursor.fetchmany(chunk_rows)
                except dbapi_error as exc:
                    raise self._query_error(exc) from exc
                if rows:
                    yield columns, rows
        finally:
            if cursor is not None:
                try:
                    cursor.close()
                except dbapi_error:  # a failed transaction may refuse to close its cursor
                    pass
            conn.close()  # rolls back the read transaction and returns the connection

    def _driver_statement(self, sql: str, params: Mapping[str, Any] | None) -> tuple[str, Any]:
        """``sql`` with ``:name`` parameters in the driver's own paramstyle, plus its args.

        Without parameters the text goes to the driver untouched (no args), so a ``%`` or
        ``:x`` inside a string literal is never mistaken for a placeholder.
        """
        if not params:
            return sql, None
        compiled = text(sql).compile(dialect=self._engine.dialect)
        values = compiled.construct_params(dict(params))
        if compiled.positional:
            return compiled.string, tuple(values[name] for name in compiled.positiontup or ())
        return compiled.string, values

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run any one statement and commit; ``([], [])`` for statements without rows."""
        self.check_sql(sql)
        with self._connect() as conn:
            try:
                result = self._execute(conn, sql, params)
                if result.returns_rows:
                    columns = list(result.keys())
                    rows = [tuple(row) for row in result.fetchall()]
                else:
                    columns, rows = [], []
                conn.commit()
            except SQLAlchemyError as exc:
                raise self._query_error(exc) from exc
        return columns, rows

    def count(self, sql: str, params: Mapping[str, Any] | None = None) -> int | None:
        """How many rows ``sql`` returns, from ``SELECT count(*) FROM (<sql>) AS q`` with the
        same parameters; None when the database cannot count it (say, a statement that is
        not a query, or a form it refuses as a subquery). For progress totals only, so a
        failure is logged at debug level and never raised."""
        inner = sql.strip().rstrip(";").rstrip()
        # The query on lines of its own: a trailing "-- comment" must not swallow the ")".
        wrapped = f"SELECT count(*) FROM (\n{inner}\n) AS q"
        try:
            with self._engine.connect() as conn:
                row = self._execute(conn, wrapped, params).first()
        except SQLAlchemyError as exc:
            guards.take_refusal("")  # a refusal swallowed here must not name a later error
            log.debug("datasource %r cannot count %r: %s", self.name, sql, self._reason(exc))
            return None
        if row is None or row[0] is None:
            return None
        return int(row[0])

    def tables(self) -> list[tuple[str, str]]:
        """``(name, type)`` of every table and view a query can name, sorted; type is
        ``BASE TABLE`` or ``VIEW``.

        SQLite: the main database's tables by name, an attached schema's as
        ``schema.table``. PostgreSQL: the tables of the schemas on the search_path (the
        datasource's ``schema`` when it has one), the first schema's by name, the others'
        as ``schema.table``.
        """
        with self._connect() as conn:
            try:
                insp = inspect(conn)
                if self.engine_name == "sqlite":
                    schemas = [s for s in insp.get_schema_names() if s != "temp"]
                    schemas.sort(key=lambda s: (s != "main", s))
                else:
                    found = conn.exec_driver_sql("SELECT unnest(current_schemas(false))")
                    schemas = [row[0] for row in found]
                out: list[tuple[str, str]] = []
                for i, schema in enumerate(schemas):
                    prefix = f"{schema}." if i else ""
                    for kind, names in (
                        ("BASE TABLE", insp.get_table_names(schema=schema)),
                        ("VIEW", insp.get_view_names(schema=schema)),
                    ):
                        out.extend((prefix + name, kind) for name in names)
            except SQLAlchemyError as exc:
                raise self._query_error(exc) from exc
        return sorted(out)

    def columns(self, table: str) -> list[TableColumn]:
        """The columns of ``table`` (a table or view, named as ``tables`` lists it: another
        schema's as ``schema.table``), in order; ``TableNotFound`` when there is none."""
        schema, _, name = table.rpartition(".")
        with self._connect() as conn:
            try:
                insp = inspect(conn)
                if not insp.has_table(name, schema=schema or None):
                    raise self._no_table(table)
                found = insp.get_columns(name, schema=schema or None)
                keys = insp.get_pk_constraint(name, schema=schema or None)
            except SQLAlchemyError as exc:
                raise self._query_error(exc) from exc
        primary = set(keys.get("constrained_columns") or ())
        return [
            TableColumn(
                name=column["name"],
                type=_type_name(column["type"], self._engine.dialect),
                nullable=bool(column.get("nullable", True)),
                default=column.get("default"),
                primary_key=column["name"] in primary,
            )
            for column in found
        ]

    def _no_table(self, table: str) -> TableNotFound:
        hint = did_you_mean(table, [name for name, _ in self.tables()])
        return TableNotFound(
            f"Table '{table}' not found in datasource '{self.name}'."
            + (f" Did you mean {hint}?" if hint else "")
            + f" See SHOW TABLES FROM {self.name}.",
            datasource=self.name,
            table=table,
            suggestion=hint,
        )

    # -- writing

    def open_writer(
        self,
        table: str,
        columns: Sequence[str],
        *,
        schema: str | None = None,
        mode: str = "create",
    ) -> writing.TableWriter:
        """A ``TableWriter`` that streams rows (tuples in ``columns`` order) into
        ``[schema.]table``.

        ``mode="create"``: the table must not exist yet; it is created on the first
        ``write`` with rows, typed from those rows (see ``infer_column_type``).
        ``mode="append"``: the table must exist; ``columns`` are matched to its columns by
        name (exactly, else case-insensitively), and its other columns get their default
        (NULL unless the table defines one).
        """
        return writing.open_writer(self, table, columns, schema=schema, mode=mode)

    def close(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()
