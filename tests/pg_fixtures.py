"""PostgreSQL fixtures for the catalog, datasource and end-to-end tests.

``BYOM_TEST_PG`` names a server where the user may create databases and schemas (default:
the local Debian cluster that ``.ci/run`` starts). An unreachable server fails the tests
loudly: a PostgreSQL catalog and datasource are features, and a skip would hide them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

DEFAULT_PG = "postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/postgres"

HOW_TO_START = """\
Start a local server:
    apt-get update && apt-get install -y postgresql
    pg_ctlcluster 15 main start
    su postgres -c "psql -c \\"ALTER USER postgres PASSWORD 'postgres'\\""
or point BYOM_TEST_PG at a server (a SQLAlchemy URL; the user must be able to create
databases and schemas)."""


def _unique(prefix: str) -> str:
    # Unique per session: other people may run the same tests on this server at once.
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The admin URL of the test PostgreSQL server; fails the test when unreachable."""
    url = os.environ.get("BYOM_TEST_PG", DEFAULT_PG)
    engine = create_engine(url)
    reason = None
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip()
    finally:
        engine.dispose()
    if reason is not None:  # failed outside the except block: no chained traceback noise
        shown = make_url(url).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL for tests is unreachable at {shown}: {reason}\n{HOW_TO_START}",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def postgres_params(postgres_url: str) -> Iterator[dict[str, Any]]:
    """Datasource PARAMETERS for a fresh schema on the test server, dropped at the end."""
    url = make_url(postgres_url)
    schema = _unique("byom_test_ds")
    # pre-ping: tests/e2e/test_chaos.py restarts the server while these connections idle.
    admin = create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    yield {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "database": url.database,
        "schema": schema,
    }
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    admin.dispose()


@contextmanager
def fresh_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new database ``<prefix>_*`` on the test server, dropped on exit."""
    url = make_url(postgres_url)
    name = _unique(prefix)
    admin = create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # FORCE: a test that failed half way may still hold a connection.
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def pg_catalog_url(postgres_url: str) -> Iterator[str]:
    """The URL of a dedicated catalog database (``byom_test_catalog_*``), dropped at the end."""
    with fresh_database(postgres_url, "byom_test_catalog") as url:
        yield url


@pytest.fixture
def pg_catalog_clean_url(pg_catalog_url: str) -> str:
    """``pg_catalog_url`` with its public schema emptied, so each test starts fresh."""
    engine = create_engine(pg_catalog_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()
    return pg_catalog_url
