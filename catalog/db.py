"""Where the catalog lives and how to open an engine on it.

The embedded default is one SQLite file under the home directory; ``$BYOM_CATALOG_URL``
points several gateway replicas at a shared PostgreSQL catalog instead.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.pool import StaticPool

from byom.errors import CatalogUnavailable

# Seconds a SQLite connection waits for another writer before giving up with "locked".
SQLITE_BUSY_TIMEOUT_S = 30

# The execution option that marks an engine's transactions as reads only (``read_engine``).
READ_ONLY = "byom_read_only"


def default_home() -> Path:
    """The gateway's home directory: ``$BYOM_HOME`` or ``~/.byom``."""
    env = os.environ.get("BYOM_HOME")
    home = Path(env) if env else Path.home() / ".byom"
    return home.expanduser().absolute()


def catalog_url(home: Path) -> str:
    """The catalog URL: ``$BYOM_CATALOG_URL`` or a SQLite file ``<home>/catalog.sqlite``."""
    env = os.environ.get("BYOM_CATALOG_URL")
    if env:
        return env
    path = Path(home).expanduser().absolute() / "catalog.sqlite"
    return URL.create("sqlite", database=str(path)).render_as_string()


def make_engine(url: str | URL) -> Engine:
    """An engine on the catalog database.

    SQLite gets WAL (readers never block the writer), a busy timeout (writers queue instead
    of failing at once), connections usable from any thread, and real transactions: every
    transaction starts with ``BEGIN IMMEDIATE`` so a read-then-write cannot fail half way
    with "database is locked", and migrations' DDL is transactional. Transactions of a
    ``read_engine`` begin deferred instead: they read WAL's last committed snapshot and
    never wait for a writer.
    """
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        # pre_ping: a long-running gateway outlives server restarts and idle timeouts.
        return create_engine(url, pool_pre_ping=True)

    database = url.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}
    }
    if memory:
        # One shared connection, or every session would see its own empty database.
        # Fine for tests; use a file for anything multi-threaded.
        kwargs["poolclass"] = StaticPool
    else:
        Path(database).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (SQLAlchemy's documented
        # recipe); "begin" below emits the BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                _use_wal(cursor)
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read that took the write lock would wait out the busy timeout behind any writer
        # (a long write-back's progress, another gateway's DDL) for nothing.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode (it stays so: once a connection did, this only reads the
    mode). The switch needs the file to itself and SQLite does not wait for that (the busy
    handler is not asked), so gateways opening an old catalog together retry here within
    the busy timeout instead of failing with "database is locked"."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def read_engine(engine: Engine) -> Engine:
    """``engine`` for transactions that only read (same pool; on SQLite they begin
    deferred, see ``make_engine``). A write in one is an error on SQLite only when another
    writer got there first, so nothing that writes may use it."""
    return engine.execution_options(**{READ_ONLY: True})


@contextmanager
def unavailable_as_error(url: str) -> Iterator[None]:
    """The catalog database's connection failures (and SQLite's "locked") as
    ``CatalogUnavailable`` (503), naming the catalog without its password, instead of a
    driver exception that would answer 500."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        where = make_url(url).render_as_string(hide_password=True)
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        raise CatalogUnavailable(
            f"The catalog database ({where}) is unavailable: {reason}. Nothing was changed "
            "by this request; retry once the catalog is back.",
        ) from exc
