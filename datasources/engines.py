"""Pooled SQLAlchemy engines for validated parameters (see ``parameters.validate``).

SQLite: every file in WAL mode, ``attach`` and ``attach_dir`` schemas attached on checkout.
PostgreSQL: a URL built from parts, and ``schema`` as the search_path.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from datasources.parameters import IDENTIFIER, SQLITE_RESERVED_SCHEMAS

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 30


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def scan_attach_dir(directory: str) -> dict[str, str]:
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
        if not IDENTIFIER.match(stem) or stem.lower() in SQLITE_RESERVED_SCHEMAS:
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
    try:
        dbapi_connection.execute(f"PRAGMA {_quoted(schema)}.journal_mode=WAL").fetchall()
    except sqlite3.Error as exc:  # read-only file or medium: keep the file's own mode
        log.debug("cannot switch sqlite schema %s to WAL mode: %s", schema, exc)


def sqlite_engine(params: dict[str, Any]) -> Engine:
    """The engine of a validated ``sqlite`` datasource."""
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
        wanted = {**(scan_attach_dir(attach_dir) if attach_dir else {}), **static}
        cursor = dbapi_connection.cursor()
        try:
            present = {row[1].lower() for row in cursor.execute("PRAGMA database_list")}
            for schema, path in wanted.items():
                if schema not in present:
                    cursor.execute(f"ATTACH DATABASE ? AS {_quoted(schema)}", (path,))
                    _use_wal(dbapi_connection, schema)
        finally:
            cursor.close()

    return engine


def postgres_url(params: dict[str, Any]) -> URL:
    """The URL of a validated ``postgres`` datasource, built from parts so that '@', ':'
    or '%' in a password need no escaping."""
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


def postgres_engine(params: dict[str, Any]) -> Engine:
    """The engine of a validated ``postgres`` datasource."""
    engine = create_engine(
        postgres_url(params),
        connect_args={"connect_timeout": params["connect_timeout"]},
        pool_pre_ping=True,
    )
    schema: str | None = params.get("schema")
    if schema:

        @event.listens_for(engine, "connect")
        def _search_path(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                # set_config binds the value, so no SQL is pasted together here.
                cursor.execute("SELECT set_config('search_path', %s, false)", (_quoted(schema),))
            finally:
                cursor.close()
            dbapi_connection.commit()  # psycopg2 opened a transaction; keep the setting

    return engine
