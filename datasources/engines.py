"""Pooled SQLAlchemy engines for validated parameters (see ``parameters.validate``).

SQLite: every file opened as a ``file:`` URI with ``mode=rw`` (``mode=ro`` when
``read_only``), so SQLite never creates a missing file; every writable file in WAL mode;
``attach`` and ``attach_dir`` schemas attached on checkout; then the authorizer of
``guards`` refuses ATTACH, DETACH, VACUUM INTO and load_extension() in the user's SQL.
PostgreSQL: a URL built from parts, ``schema`` as the search_path, and
``default_transaction_read_only`` when ``read_only``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.parse
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from datasources.guards import sqlite_authorizer
from datasources.parameters import IDENTIFIER, SQLITE_RESERVED_SCHEMAS

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 30


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def scan_attach_dir(directory: str) -> dict[str, str]:
    """``{schema: path}`` for every ``<directory>/<schema>.sqlite`` with a usable name.

    A symlink that resolves outside the directory is skipped: the file policy vetted the
    directory, not wherever its links point (say, the gateway's catalog).
    """
    found: dict[str, str] = {}
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return found
    real_dir = os.path.realpath(directory)
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        if ext != ".sqlite" or not entry.is_file():
            continue
        if not IDENTIFIER.match(stem) or stem.lower() in SQLITE_RESERVED_SCHEMAS:
            log.warning("not attaching %s: its name is not a usable schema name", entry.path)
            continue
        if os.path.dirname(os.path.realpath(entry.path)) != real_dir:
            log.warning("not attaching %s: it links outside %s", entry.path, directory)
            continue
        found[stem.lower()] = entry.path
    return found


def sqlite_uri(path: str, read_only: bool = False) -> str:
    """A ``file:`` URI for ``path`` that SQLite opens without ever creating the file."""
    mode = "ro" if read_only else "rw"
    return f"file:{urllib.parse.quote(path)}?mode={mode}"


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
    read_only = bool(params.get("read_only"))
    uri = sqlite_uri(params["path"], read_only)

    def _open() -> sqlite3.Connection:
        # uri=True: mode=rw/ro refuses to create the file, and ATTACH takes URIs too.
        return sqlite3.connect(
            uri, uri=True, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_S
        )

    # The URL still names the file: SQLAlchemy picks its pool (a queue for files) from it.
    engine = create_engine(URL.create("sqlite", database=params["path"]), creator=_open)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if hasattr(dbapi_connection, "enable_load_extension"):
            dbapi_connection.enable_load_extension(False)  # the default; said out loud
        if not read_only:  # WAL is a write to the file's header
            _use_wal(dbapi_connection, "main")
        dbapi_connection.set_authorizer(sqlite_authorizer)

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
        # The authorizer refuses every ATTACH; these are the datasource's own, vetted ones.
        dbapi_connection.set_authorizer(None)
        try:
            present = {row[1].lower() for row in cursor.execute("PRAGMA database_list")}
            for schema, path in wanted.items():
                if schema not in present:
                    target = sqlite_uri(path, read_only)
                    cursor.execute(f"ATTACH DATABASE ? AS {_quoted(schema)}", (target,))
                    if not read_only:
                        _use_wal(dbapi_connection, schema)
        finally:
            dbapi_connection.set_authorizer(sqlite_authorizer)
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
    connect_args: dict[str, Any] = {"connect_timeout": params["connect_timeout"]}
    read_only = bool(params.get("read_only"))
    if read_only:
        # Every transaction of the session starts READ ONLY: the server refuses writes.
        connect_args["options"] = "-c default_transaction_read_only=on"
    engine = create_engine(postgres_url(params), connect_args=connect_args, pool_pre_ping=True)
    if read_only:

        @event.listens_for(engine, "checkout")
        def _still_read_only(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            # Pass-through SQL is screened (guards), but a pooled session is long-lived:
            # set the mode again whenever it is handed out, whatever ran on it before.
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            finally:
                cursor.close()
            dbapi_connection.commit()

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
