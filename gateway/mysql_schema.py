"""What mysql-mimic shows as ``information_schema`` (and ``SHOW COLUMNS``) for the gateway.

Projects are schemas whose tables are their models (columns: the model's ``dtype_dict``, its
target last); datasources are schemas whose tables are what ``SHOW TABLES FROM ds`` lists,
with the columns ``SELECT * FROM ds.t LIMIT 0`` answers. It is built when a client asks
(GUI tools and ORMs browse with it), through the gateway's own statements, under the
connection's principal; a datasource that cannot be reached shows no tables rather than
failing the client's query. mysql-mimic lists only schemas and tables that have columns.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mysql_mimic.errors import ErrorCode, MysqlError

from byom.errors import GatewayError
from gateway.mysql_results import ER_NO_SUCH_TABLE
from gateway.session import Session

log = logging.getLogger("byom.mysql")

# At most this many tables of one datasource get their columns read (one query each).
MAX_TABLES = 100
# Seconds the whole datasource part of one schema read may take.
DATASOURCE_BUDGET_S = 5.0
# Declared type fragments -> MySQL type, first match wins (after SQLite's affinity rules:
# INTERVAL before INT, TIMESTAMP/DATETIME before DATE and TIME).
_AFFINITIES = (
    (("BOOL",), "TINYINT"),
    (("INTERVAL", "POINT"), "TEXT"),
    (("INT", "SERIAL"), "BIGINT"),
    (("CHAR", "CLOB", "TEXT", "UUID", "JSON"), "TEXT"),
    (("BLOB", "BYTEA", "BINARY"), "BLOB"),
    (("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL", "MONEY"), "DOUBLE"),
    (("TIMESTAMP", "DATETIME"), "DATETIME"),
    (("DATE",), "DATE"),
    (("TIME",), "TIME"),
)
_TYPES = {"integer": "BIGINT", "float": "DOUBLE", "binary": "TINYINT", "date": "DATE",
          "datetime": "DATETIME"}  # fmt: skip


async def schema(gateway: Any, session: Session) -> dict[str, dict[str, dict[str, str]]]:
    """``{schema: {table: {column: type}}}`` of the gateway, for mysql-mimic."""
    result: dict[str, dict[str, dict[str, str]]] = {}
    databases = await gateway.sql("SHOW FULL DATABASES", session=_copy(session))
    kinds = {row[0]: row[1] for row in databases.rows}
    for name, kind in kinds.items():
        if kind == "project":
            result.setdefault(name, {})
    for record in await asyncio.to_thread(gateway.catalog.list_predictors):
        dtypes = record.dtype_dict or {}
        columns = {k: _TYPES.get(str(v).lower(), "TEXT") for k, v in dtypes.items()}
        target = record.target or "prediction"
        columns.setdefault(target, "TEXT")
        result.setdefault(record.namespace, {})[record.name] = columns
    for name in (n for n, kind in kinds.items() if kind == "data"):
        try:
            tables = await asyncio.wait_for(
                _datasource(gateway, session, name), timeout=DATASOURCE_BUDGET_S
            )
        except (GatewayError, TimeoutError) as exc:
            log.info("information_schema: datasource %s skipped: %s", name, exc)
            tables = {}
        result[name] = tables
    # mysql-mimic reads the mapping's depth off its first entry: no empty levels.
    return {db: tables for db, tables in result.items() if tables and all(tables.values())}


async def _datasource(gateway: Any, session: Session, name: str) -> dict[str, dict[str, str]]:
    listed = await gateway.sql(f"SHOW TABLES FROM `{name}`", session=_copy(session))
    tables: dict[str, dict[str, str]] = {}
    for (table,) in [tuple(row[:1]) for row in listed.rows[:MAX_TABLES]]:
        try:
            tables[str(table)] = await _columns(gateway, session, name, str(table))
        except GatewayError:
            continue
    return tables


async def _columns(gateway: Any, session: Session, name: str, table: str) -> dict[str, str]:
    """``{column: MySQL type}`` of ``name.table``: typed by ``DESCRIBE ds.table``; a table
    of another schema (``schema.table``: DESCRIBE takes two parts) as ``TEXT``."""
    if "." not in table:
        described = await gateway.sql(f'DESCRIBE "{name}"."{table}"', session=_copy(session))
        return {str(row[0]): mysql_type(str(row[1] or "")) for row in described.rows}
    quoted = ".".join(f'"{part}"' for part in table.split("."))
    empty = await gateway.sql(f'SELECT * FROM "{name}".{quoted} LIMIT 0', session=_copy(session))
    return {column: "TEXT" for column in empty.columns}


def mysql_type(declared: str) -> str:
    """The MySQL type of a column the datasource declares ``declared`` (SQLite's affinity
    rules, which cover PostgreSQL's names too; no declared type is TEXT)."""
    upper = declared.upper()
    for fragments, kind in _AFFINITIES:
        if any(fragment in upper for fragment in fragments):
            return kind
    return "TEXT"


def create_table(
    tables: dict[str, dict[str, dict[str, str]]], database: str | None, table: str
) -> tuple[list[tuple[str, str]], list[str]]:
    """``SHOW CREATE TABLE``'s rows and columns for ``database.table`` of ``tables`` (what
    ``schema`` answers): DDL of the columns information_schema shows, which is how
    SQLAlchemy's MySQL dialect reflects a table (``inspect(engine).get_columns``)."""
    if database is None:
        raise MysqlError("No database selected", code=ErrorCode.NO_DB_ERROR)
    schema_tables = _named(tables, database) or {}
    columns = _named(schema_tables, table)
    if not columns:
        missing = f"Table '{database}.{table}' doesn't exist"  # MySQL's own message
        raise MysqlError(missing, code=ER_NO_SUCH_TABLE)  # type: ignore[arg-type]
    # Types in lower case, as MySQL writes them (and SQLAlchemy's reflection reads them).
    body = ",\n".join(f"  {_quoted(c)} {kind.lower()}" for c, kind in columns.items())
    return [(table, f"CREATE TABLE {_quoted(table)} (\n{body}\n)")], ["Table", "Create Table"]


def _named(mapping: dict[str, Any], name: str) -> Any:
    """``mapping[name]``, else the entry whose name differs only in case, else None."""
    if name in mapping:
        return mapping[name]
    return next((v for k, v in mapping.items() if k.lower() == name.lower()), None)


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _copy(session: Session) -> Session:
    """The connection's defaults, in a session of its own: browsing never changes them."""
    return Session(datasource=session.datasource, project=session.project)
