"""Catalog fixtures: each test runs on an empty SQLite file and an empty PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.repository import Catalog


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
