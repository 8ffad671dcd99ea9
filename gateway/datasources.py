"""The user's databases, reached through SQLAlchemy.

A ``Datasource`` wraps one pooled SQLAlchemy engine and speaks in plain columns and row
tuples. Every database failure leaves here as ``DatasourceError`` naming the datasource and
carrying the database's own message; passwords never appear in messages.

Engines (``CREATE DATABASE ... WITH ENGINE = '<name>', PARAMETERS = {...}``):

* ``sqlite``: ``path`` (a file; ``:memory:`` is refused because every pooled connection
  would see its own empty database), ``attach`` (``{schema: path}``, attached on every
  connection, since SQLite's schemas are attached databases) and ``attach_dir`` (every
  ``<dir>/<schema>.sqlite`` is attached as ``<schema>``, rescanned whenever a connection is
  handed out, so a file dropped there later shows up without a restart).
* ``postgres`` (alias ``postgresql``): ``host``, ``user``, ``database`` and optionally
  ``port`` (5432), ``password``, ``schema`` (becomes the search_path), ``sslmode`` and
  ``connect_timeout`` (seconds, 10).

The embedded default datasource ``local`` is a SQLite file under the gateway's home whose
``attach_dir`` is ``<home>/local``: ``test_data.home_rentals`` lives in
``<home>/local/test_data.sqlite``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from catalog.records import DatasourceRecord
from gateway.errors import DatasourceError, InvalidOption, did_you_mean

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


def _sqlite_engine(params: dict[str, Any]) -> Engine:
    engine = create_engine(
        URL.create("sqlite", database=params["path"]),
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )
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
        conn = self._connect()
        try:
            conn.execution_options(stream_results=True, yield_per=chunk_rows)
            try:
                result = self._execute(conn, sql, params)
            except SQLAlchemyError as exc:
                raise self._query_error(exc) from exc
            try:
                if not result.returns_rows:
                    conn.commit()
                    yield [], []
                    return
                columns = list(result.keys())
                empty = True
                while True:
                    try:
                        rows = result.fetchmany(chunk_rows)
                    except SQLAlchemyError as exc:
                        raise self._query_error(exc) from exc
                    if not rows:
                        break
                    empty = False
                    yield columns, [tuple(row) for row in rows]
                if empty:
                    yield columns, []
            finally:
                result.close()
        finally:
            conn.close()  # rolls back the read transaction and returns the connection

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

    def close(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()


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
