"""Catalog fixtures: each test runs on an empty SQLite file and an empty PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from catalog.repository import Catalog
from catalog.secrets import ENV_VAR


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A key in the environment, so that no test writes a key file into the real home
    (``Catalog(url)`` would use ``~/.byom/secret.key``); key-file tests remove it."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(ENV_VAR, key)
    return key


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A catalog URL with nothing in it yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("pg_catalog_clean_url")


@pytest.fixture
def catalog(url: str) -> Iterator[Catalog]:
    cat = Catalog(url)
    yield cat
    cat.close()


@pytest.fixture(scope="session")
def pg_role(postgres_url: str) -> Iterator[dict[str, Any]]:
    """Datasource PARAMETERS of a new login role on the test server whose password is
    distinctive (found nowhere else), dropped at the end."""
    url = make_url(postgres_url)
    role = f"byom_secret_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    password = f"Sesame-{uuid.uuid4().hex}"
    # pre-ping: tests/e2e/test_chaos.py restarts the server before this is dropped.
    admin = create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD %(pw)s", {"pw": password})
    yield {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": role,
        "password": password,
        "database": url.database,
    }
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
    admin.dispose()
