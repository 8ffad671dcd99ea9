"""The user's databases, reached through SQLAlchemy.

A ``Datasource`` wraps one pooled SQLAlchemy engine and speaks in plain columns and row
tuples. Every database failure leaves here as ``DatasourceError`` naming the datasource and
carrying the database's own message; passwords never appear in messages.

Engines (``CREATE DATABASE ... WITH ENGINE = '<name>', PARAMETERS = {...}``):

* ``sqlite``: ``path`` (a file; ``:memory:`` is refused because every pooled connection
  would see its own empty database), ``attach`` (``{schema: path}``, attached on every
  connection, since SQLite's schemas are attached databases) and ``attach_dir`` (every
  ``<dir>/<schema>.sqlite`` is attached as ``<schema>``, rescanned whenever a connection is
  handed out, so a file dropped there later shows up without a restart). Every file is
  switched to WAL journal mode (stored in the file), so a write-back can commit into a file
  that a JOIN is still reading.
* ``postgres`` (alias ``postgresql``): ``host``, ``user``, ``database`` and optionally
  ``port`` (5432), ``password``, ``schema`` (becomes the search_path), ``sslmode`` and
  ``connect_timeout`` (seconds, 10).

The embedded default datasource ``local`` is a SQLite file under the gateway's home whose
``attach_dir`` is ``<home>/local``: ``test_data.home_rentals`` lives in
``<home>/local/test_data.sqlite``.

Write-back (``Datasource.open_writer``) streams rows into a table in chunks, and each
``TableWriter.write`` call is its own transaction: when a chunk fails, the chunks before it
stay committed and the error says how many rows were written. ``CREATE TABLE ... AS SELECT``
creates the table (in its own transaction) from the Python types of the first rows;
``INSERT INTO ... SELECT`` appends to an existing table, matching columns by name.
"""

from __future__ import annotations

import functools
import json
import logging
import numbers
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DOUBLE_PRECISION,
    REAL,
    TIMESTAMP,
    BigInteger,
    Boolean,
    Column,
    Connection,
    CursorResult,
    Date,
    Engine,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.types import TypeEngine

from catalog.records import DatasourceRecord
from gateway.errors import DatasourceError, InvalidInput, InvalidOption, did_you_mean

if TYPE_CHECKING:
    import pandas

log = logging.getLogger(__name__)

EMBEDDED_NAME = "local"
SQLITE_BUSY_TIMEOUT_S = 30
DEFAULT_CHUNK_ROWS = 10_000

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SQLITE_RESERVED_SCHEMAS = frozenset({"main", "temp"})
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_IF_EXISTS = ("fail", "append", "replace")
WRITE_MODES = ("create", "append")

_NO_DEFAULT = object()


@dataclass(frozen=True)
class _EngineSpec:
    """What an engine's PARAMETERS may hold: required names and optional ones with defaults."""

    dialect: str  # sqlglot's dialect name
    required: tuple[str, ...]
    optional: Mapping[str, Any]

    def expected(self) -> str:
        parts = [", ".join(self.required) + " (required)"] if self.required else []
        if self.optional:
            parts.append(", ".join(self.optional) + " (optional)")
        return "; ".join(parts)


ENGINES: dict[str, _EngineSpec] = {
    "sqlite": _EngineSpec("sqlite", ("path",), {"attach": None, "attach_dir": None}),
    "postgres": _EngineSpec(
        "postgres",
        ("host", "user", "database"),
        {
            "port": 5432,
            "password": None,
            "schema": None,
            "sslmode": None,
            "connect_timeout": 10,
        },
    ),
}
ENGINE_ALIASES = {"postgresql": "postgres", "sqlite3": "sqlite"}


# -- parameter validation ----------------------------------------------------------------


def _engine_name(engine: str) -> str:
    key = str(engine).strip().lower()
    key = ENGINE_ALIASES.get(key, key)
    if key not in ENGINES:
        names = [*ENGINES, *ENGINE_ALIASES]
        suggestion = did_you_mean(key, names)
        hint = f" Did you mean {ENGINE_ALIASES.get(suggestion, suggestion)}?" if suggestion else ""
        raise InvalidOption(
            f"Unknown datasource engine '{engine}'.{hint} Supported engines: {', '.join(ENGINES)}.",
            suggestion=suggestion,
        )
    return key


def _require_str(engine: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidOption(f"Parameter '{key}' of engine '{engine}' must be a non-empty string.")
    return value


def _require_int(engine: str, key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
        if isinstance(value, bool) or isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidOption(
            f"Parameter '{key}' of engine '{engine}' must be a whole number, got {value!r}."
        ) from None
    if not low <= number <= high:
        raise InvalidOption(
            f"Parameter '{key}' of engine '{engine}' must be between {low} and {high}."
        )
    return number


def _schema_name(engine: str, name: Any) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidOption(
            f"Schema name {name!r} of engine '{engine}' must be a plain identifier "
            "(letters, digits, underscore)."
        )
    if engine == "sqlite" and name.lower() in _SQLITE_RESERVED_SCHEMAS:
        raise InvalidOption(f"Schema name '{name}' is reserved by SQLite; pick another.")
    return name.lower()


def _file_path(value: str) -> str:
    # Stored absolute so the datasource means the same file whatever the gateway's cwd.
    return os.path.abspath(os.path.expanduser(value))


def _validate_sqlite(params: dict[str, Any]) -> dict[str, Any]:
    path = _require_str("sqlite", "path", params["path"])
    if path.strip() == ":memory:" or path.startswith("file::memory:"):
        raise InvalidOption(
            "A sqlite datasource needs a file 'path': ':memory:' is not allowed, because "
            "every pooled connection would see its own empty database."
        )
    params["path"] = _file_path(path)
    attach = params["attach"]
    if attach is not None:
        if not isinstance(attach, Mapping):
            raise InvalidOption(
                "Parameter 'attach' of engine 'sqlite' must be an object {schema: path}."
            )
        params["attach"] = {
            _schema_name("sqlite", schema): _file_path(_require_str("sqlite", "attach", p))
            for schema, p in attach.items()
        }
    if params["attach_dir"] is not None:
        params["attach_dir"] = _file_path(
            _require_str("sqlite", "attach_dir", params["attach_dir"])
        )
    return params


def _validate_postgres(params: dict[str, Any]) -> dict[str, Any]:
    for key in ("host", "user", "database"):
        _require_str("postgres", key, params[key])
    params["port"] = _require_int("postgres", "port", params["port"], 1, 65535)
    params["connect_timeout"] = _require_int(
        "postgres", "connect_timeout", params["connect_timeout"], 1, 3600
    )
    if params["password"] is not None and not isinstance(params["password"], str):
        params["password"] = str(params["password"])
    if params["schema"] is not None:
        # search_path takes any identifier, but plain ones keep quoting simple and obvious.
        params["schema"] = _require_str("postgres", "schema", params["schema"])
    if params["sslmode"] is not None and params["sslmode"] not in _SSLMODES:
        raise InvalidOption(
            f"Parameter 'sslmode' of engine 'postgres' must be one of {', '.join(_SSLMODES)}."
        )
    return params


def validate(engine: str, parameters: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check PARAMETERS for ``engine``; return the canonical engine name and the parameters
    with defaults filled in (and file paths made absolute)."""
    name = _engine_name(engine)
    spec = ENGINES[name]
    given = {str(k).strip().lower(): v for k, v in (parameters or {}).items()}
    known = (*spec.required, *spec.optional)
    for key in given:
        if key not in known:
            suggestion = did_you_mean(key, known)
            hint = f" Did you mean {suggestion}?" if suggestion else ""
            raise InvalidOption(
                f"Unknown parameter '{key}' for engine '{name}'.{hint} "
                f"Expected: {spec.expected()}.",
                suggestion=suggestion,
            )
    missing = [k for k in spec.required if given.get(k) is None]
    if missing:
        raise InvalidOption(
            f"Missing parameter {', '.join(repr(k) for k in missing)} for engine '{name}'. "
            f"Expected: {spec.expected()}."
        )
    params = {**spec.optional, **given}
    params = _validate_sqlite(params) if name == "sqlite" else _validate_postgres(params)
    return name, params


# -- engines ----------------------------------------------------------------------------


def _scan_attach_dir(directory: str) -> dict[str, str]:
    """``{schema: path}`` for every ``<directory>/<schema>.sqlite`` with a usable name."""
    found: dict[str, str] = {}
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return found
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        if ext != ".sqlite" or not entry.is_file():
            continue
        if not _IDENTIFIER.match(stem) or stem.lower() in _SQLITE_RESERVED_SCHEMAS:
            log.warning("not attaching %s: its name is not a usable schema name", entry.path)
            continue
        found[stem.lower()] = entry.path
    return found


def _use_wal(dbapi_connection: Any, schema: str) -> None:
    """Put one SQLite database file in WAL mode (a setting stored in the file).

    In the default rollback-journal mode a reader blocks every writer of the same file, so
    a JOIN streaming rows out of a table could never commit its write-back into another
    table of that file ("database is locked"). In WAL mode readers keep their snapshot and
    the writer commits beside them.
    """
    quoted = '"' + schema.replace('"', '""') + '"'
    try:
        dbapi_connection.execute(f"PRAGMA {quoted}.journal_mode=WAL").fetchall()
    except sqlite3.Error as exc:  # read-only file or medium: keep the file's own mode
        log.debug("cannot switch sqlite schema %s to WAL mode: %s", schema, exc)


def _sqlite_engine(params: dict[str, Any]) -> Engine:
    engine = create_engine(
        URL.create("sqlite", database=params["path"]),
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:
        _use_wal(dbapi_connection, "main")

    static: dict[str, str] = dict(params.get("attach") or {})
    attach_dir: str | None = params.get("attach_dir")
    if not static and not attach_dir:
        return engine

    @event.listens_for(engine, "checkout")
    def _attach(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # On checkout rather than connect: pooled connections live long, and a schema file
        # added to attach_dir after they opened must still become visible.
        if dbapi_connection.in_transaction:
            return  # ATTACH is refused inside a transaction; the next checkout catches up
        wanted = {**(_scan_attach_dir(attach_dir) if attach_dir else {}), **static}
        cursor = dbapi_connection.cursor()
        try:
            present = {row[1].lower() for row in cursor.execute("PRAGMA database_list")}
            for schema, path in wanted.items():
                if schema not in present:
                    quoted = '"' + schema.replace('"', '""') + '"'
                    cursor.execute(f"ATTACH DATABASE ? AS {quoted}", (path,))
                    _use_wal(dbapi_connection, schema)
        finally:
            cursor.close()

    return engine


def _postgres_url(params: dict[str, Any]) -> URL:
    query = {"sslmode": params["sslmode"]} if params.get("sslmode") else {}
    return URL.create(
        "postgresql+psycopg2",
        username=params["user"],
        password=params.get("password"),
        host=params["host"],
        port=params["port"],
        database=params["database"],
        query=query,
    )


def _postgres_engine(params: dict[str, Any]) -> Engine:
    engine = create_engine(
        _postgres_url(params),
        connect_args={"connect_timeout": params["connect_timeout"]},
        pool_pre_ping=True,
    )
    schema: str | None = params.get("schema")
    if schema:

        @event.listens_for(engine, "connect")
        def _search_path(dbapi_connection: Any, _record: Any) -> None:
            quoted = '"' + schema.replace('"', '""') + '"'
            cursor = dbapi_connection.cursor()
            try:
                # set_config binds the value, so no SQL is pasted together here.
                cursor.execute("SELECT set_config('search_path', %s, false)", (quoted,))
            finally:
                cursor.close()
            dbapi_connection.commit()  # psycopg2 opened a transaction; keep the setting

    return engine


# -- datasources --------------------------------------------------------------------------


class Datasource:
    """One user database: stream rows out of it, pass statements through, load tables."""

    def __init__(self, record: DatasourceRecord) -> None:
        self.engine_name, self.parameters = validate(record.engine, record.parameters)
        self.name = record.name.lower()
        self.dialect = ENGINES[self.engine_name].dialect
        if self.engine_name == "sqlite":
            self.location = self.parameters["path"]
            self._engine = _sqlite_engine(self.parameters)
        else:
            self.location = f"{self.parameters['host']}:{self.parameters['port']}"
            self._engine = _postgres_engine(self.parameters)

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

    # -- errors

    def _reason(self, exc: BaseException) -> str:
        raw = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        reason = str(raw).strip() or type(raw).__name__
        password = self.parameters.get("password")
        if password:
            reason = reason.replace(str(password), "******")
        return reason

    def _connect_error(self, exc: BaseException) -> DatasourceError:
        return DatasourceError(
            f"cannot connect to datasource '{self.name}' ({self.engine_name} at "
            f"{self.location}): {self._reason(exc)}",
            datasource=self.name,
        )

    def _query_error(self, exc: BaseException) -> DatasourceError:
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
            log.debug("datasource %r cannot count %r: %s", self.name, sql, self._reason(exc))
            return None
        if row is None or row[0] is None:
            return None
        return int(row[0])

    def write_table(
        self,
        table: str,
        df: pandas.DataFrame,
        if_exists: str = "fail",
        schema: str | None = None,
    ) -> int:
        """Write ``df`` (without its index) to ``[schema.]table``; return the rows written."""
        if if_exists not in _IF_EXISTS:
            raise InvalidOption(f"if_exists must be one of {', '.join(_IF_EXISTS)}.")
        try:
            with self._connect() as conn, conn.begin():
                df.to_sql(table, conn, schema=schema, if_exists=if_exists, index=False)
        except SQLAlchemyError as exc:
            raise self._query_error(exc) from exc
        except ValueError as exc:  # pandas: "Table 'x' already exists."
            raise DatasourceError(
                f"cannot write table '{table}' to datasource '{self.name}': {exc}",
                datasource=self.name,
            ) from exc
        return len(df)

    def open_writer(
        self,
        table: str,
        columns: Sequence[str],
        *,
        schema: str | None = None,
        mode: str = "create",
    ) -> TableWriter:
        """A ``TableWriter`` that streams rows (tuples in ``columns`` order) into
        ``[schema.]table``.

        ``mode="create"``: the table must not exist yet; it is created on the first
        ``write`` with rows, typed from those rows (see ``infer_column_type``).
        ``mode="append"``: the table must exist; ``columns`` are matched to its columns by
        name (exactly, else case-insensitively), and its other columns get their default
        (NULL unless the table defines one).
        """
        if mode not in WRITE_MODES:
            raise InvalidOption(
                f"write mode must be one of {', '.join(WRITE_MODES)}, not {mode!r}."
            )
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
            with self._connect() as conn:
                inspector = inspect(conn)
                exists = inspector.has_table(table, schema=schema)
                existing = (
                    [c["name"] for c in inspector.get_columns(table, schema=schema)]
                    if exists and mode == "append"
                    else []
                )
        except SQLAlchemyError as exc:
            raise self._query_error(exc) from exc
        if mode == "create":
            if exists:
                raise DatasourceError(
                    f"table '{where}' already exists in datasource '{self.name}'; "
                    "use INSERT INTO ... SELECT to append",
                    datasource=self.name,
                    table=where,
                )
            return TableWriter(self, table, names, schema=schema, create=True)
        if not exists:
            raise DatasourceError(
                f"table '{where}' does not exist in datasource '{self.name}'; "
                "use CREATE TABLE ... AS SELECT to create it",
                datasource=self.name,
                table=where,
            )
        return TableWriter(
            self, table, _match_columns(self.name, where, names, existing), schema=schema
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()


# -- write-back ----------------------------------------------------------------------------


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


def _kind(value: Any) -> str | None:
    """The write-back type family of one value (None for NULL)."""
    if value is None:
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # numpy scalars classify as the Python value they hold
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, numbers.Real):  # float, numpy floats
        return "float"
    if isinstance(value, datetime):
        return "timestamptz" if value.utcoffset() is not None else "timestamp"
    if isinstance(value, date):
        return "date"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    return "text"


# Mixes of kinds that widen to one type (the first family holding the mix wins).
_WIDENINGS = (
    ({"int", "float"}, "float"),
    ({"int", "decimal"}, "decimal"),
    ({"int", "float", "decimal"}, "float"),
    ({"date", "timestamp"}, "timestamp"),
)


def infer_column_type(values: Sequence[Any], dialect: str) -> TypeEngine[Any]:
    """The SQL type a new table's column gets from its first values.

    bool -> BOOLEAN, int -> BIGINT, float -> DOUBLE PRECISION (REAL on SQLite),
    Decimal -> NUMERIC, str -> TEXT, date -> DATE, datetime -> TIMESTAMP (WITH TIME ZONE on
    PostgreSQL when the values carry one), bytes -> BYTEA/BLOB, only NULLs -> TEXT. Mixed
    ints and floats widen to the float type, dates and datetimes to TIMESTAMP; any other
    mix becomes TEXT.
    """
    # One value per Python type is enough to classify, except timezones, which vary.
    samples = {type(v): v for v in values if v is not None and not isinstance(v, datetime)}
    kinds = {_kind(v) for v in samples.values()}
    kinds |= {_kind(v) for v in values if isinstance(v, datetime)}
    kinds.discard(None)
    kind = "text"
    if len(kinds) == 1:
        kind = next(iter(kinds))
    elif kinds:  # only NULLs (no kinds) stay TEXT
        for family, widened in _WIDENINGS:
            if kinds <= family:
                kind = widened
                break
    sqlite = dialect == "sqlite"
    if kind == "bool":
        return Boolean()
    if kind == "int":
        return BigInteger()
    if kind == "float":
        return REAL() if sqlite else DOUBLE_PRECISION()
    if kind == "decimal":
        return Numeric()
    if kind == "date":
        return Date()
    if kind in ("timestamp", "timestamptz"):
        return TIMESTAMP(timezone=kind == "timestamptz" and not sqlite)
    if kind == "bytes":
        return LargeBinary()
    return Text()


# Types each driver binds as they are; anything else goes through _bindable first.
_SQLITE_NATIVE = (type(None), bool, int, float, str, bytes, bytearray, memoryview)
_POSTGRES_NATIVE = (
    type(None),
    bool,
    int,
    float,
    str,
    bytes,
    bytearray,
    memoryview,
    Decimal,
    date,
    datetime,
    time,
    timedelta,
)


def _bindable(value: Any, sqlite: bool) -> Any:
    """``value`` in a form the driver can bind; the database converts it from there."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # numpy scalars: neither driver adapts them
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    if sqlite:
        # sqlite3's own date adapters are deprecated (Python 3.12); write what they wrote.
        if isinstance(value, datetime):
            return value.isoformat(" ")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)  # a NUMERIC column turns the text into a number
        native = _SQLITE_NATIVE
    else:
        native = _POSTGRES_NATIVE
    if value is None or isinstance(value, native):
        return value
    return str(value)


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
        native = _SQLITE_NATIVE if self._sqlite else _POSTGRES_NATIVE
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
        convert = functools.partial(_bindable, sqlite=self._sqlite)
        return [dict(zip(keys, map(convert, row), strict=True)) for row in rows]

    def _error(self, exc: BaseException, doing: str) -> DatasourceError:
        ds = self.datasource
        return DatasourceError(
            f"writing table '{self.where}' in datasource '{ds.name}' ({ds.engine_name}) "
            f"failed while {doing}: {ds._reason(exc)}. {self._rows_written} rows were "
            "written before this chunk and stay committed (each chunk is its own "
            "transaction).",
            datasource=ds.name,
            table=self.where,
            rows_written=self._rows_written,
        )


def open_datasource(record: DatasourceRecord) -> Datasource:
    """A ``Datasource`` for a catalog record (parameters are validated again)."""
    return Datasource(record)


class DatasourcePool:
    """Open datasources by name, each with its own connection pool; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Datasource] = {}

    def get(self, record: DatasourceRecord) -> Datasource:
        """The open datasource for ``record``, reopened if its parameters changed."""
        with self._lock:
            key = record.name.lower()
            current = self._open.get(key)
            if current is not None and current.matches(record):
                return current
            datasource = open_datasource(record)
            if current is not None:
                # Dropped and created again with other parameters: stop using the old pool.
                current.close()
            self._open[key] = datasource
            return datasource

    def drop(self, name: str) -> None:
        """Close and forget the datasource ``name`` (no error when it is not open)."""
        with self._lock:
            datasource = self._open.pop(name.lower(), None)
        if datasource is not None:
            datasource.close()

    def close_all(self) -> None:
        """Close every open datasource."""
        with self._lock:
            open_now, self._open = list(self._open.values()), {}
        for datasource in open_now:
            datasource.close()


# -- the embedded default -------------------------------------------------------------------


def embedded_record(home: Path) -> DatasourceRecord:
    """The embedded ``local`` datasource: ``<home>/local.sqlite`` with every
    ``<home>/local/<schema>.sqlite`` attached as ``<schema>``. Creates the directories."""
    home = Path(home).expanduser().absolute()
    (home / EMBEDDED_NAME).mkdir(parents=True, exist_ok=True)
    return DatasourceRecord(
        name=EMBEDDED_NAME,
        engine="sqlite",
        parameters={
            "path": str(home / f"{EMBEDDED_NAME}.sqlite"),
            "attach_dir": str(home / EMBEDDED_NAME),
        },
        created_at=datetime.fromtimestamp(0, UTC),
    )


def embedded_schema_path(home: Path, schema: str) -> Path:
    """The file backing schema ``schema`` of the embedded datasource, created (empty) when
    missing so the schema is attached from the next query on, ready for ``write_table``."""
    name = _schema_name("sqlite", schema)
    directory = Path(home).expanduser().absolute() / EMBEDDED_NAME
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.sqlite"
    path.touch(exist_ok=True)  # an empty file is a valid, empty SQLite database
    return path
