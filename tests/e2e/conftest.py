"""PostgreSQL fixtures (see tests/pg_fixtures.py) for the tests in this folder."""

from tests.pg_fixtures import (  # noqa: F401  (fixtures are found by name)
    pg_catalog_clean_url,
    pg_catalog_url,
    postgres_params,
    postgres_url,
)
