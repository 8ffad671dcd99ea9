"""Catalog schema versions and the steps between them.

A fresh database gets the current tables and ``SCHEMA_VERSION`` at once. An older one runs
``UPGRADES[v]`` (version v -> v+1) for each version it lacks, in order, each step in its own
transaction together with the version bump, so a failed step leaves the database at the last
version that fully applied. A database newer than this code is refused: guessing would risk
corrupting a catalog a newer gateway still uses.

To change the schema: edit ``catalog/tables.py``, append a step here, bump ``SCHEMA_VERSION``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine, inspect, select

from catalog.tables import Base, SchemaVersionRow
from gateway.errors import GatewayError

SCHEMA_VERSION = 1

Step = Callable[[Connection], None]

# Held while migrating a PostgreSQL catalog, so gateway replicas starting together do not
# race to create the same tables. Any fixed 64-bit number works; this one spells "byom".
_PG_LOCK_KEY = 0x62796F6D


def _v0_to_v1(conn: Connection) -> None:
    """Version 0 is a catalog from before versioning: create whatever tables it lacks.

    This uses the live metadata, which is version 1 today. When a later version changes a
    table, freeze the version-1 table definitions here instead.
    """
    Base.metadata.create_all(conn, checkfirst=True)


# UPGRADES[n] takes a catalog from version n to n + 1.
UPGRADES: list[Step] = [_v0_to_v1]


def read_version(conn: Connection) -> int | None:
    """The version recorded in ``conn``'s catalog; 0 if unversioned, None if empty."""
    tables = set(inspect(conn).get_table_names())
    if SchemaVersionRow.__tablename__ not in tables:
        catalog_tables = set(Base.metadata.tables) - {SchemaVersionRow.__tablename__}
        return 0 if tables & catalog_tables else None
    version = conn.execute(select(SchemaVersionRow.version)).scalar()
    return 0 if version is None else int(version)


def _write_version(conn: Connection, version: int) -> None:
    Base.metadata.tables[SchemaVersionRow.__tablename__].create(conn, checkfirst=True)
    table = SchemaVersionRow.__table__
    conn.execute(table.delete())
    conn.execute(table.insert().values(id=1, version=version))


def migrate(
    engine: Engine, *, target: int | None = None, steps: Sequence[Step] | None = None
) -> int:
    """Bring the catalog at ``engine`` to ``target`` (default ``SCHEMA_VERSION``).

    ``steps`` defaults to ``UPGRADES``; both arguments exist so tests can exercise the
    upgrade path. Returns the version the catalog is at afterwards.
    """
    target = SCHEMA_VERSION if target is None else target
    steps = UPGRADES if steps is None else steps
    if len(steps) < target:
        raise GatewayError(f"no upgrade step to catalog schema version {len(steps) + 1}")

    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        if postgres:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_LOCK_KEY})")
            conn.commit()
        try:
            with conn.begin():
                version = read_version(conn)
                if version is None:
                    Base.metadata.create_all(conn)
                    _write_version(conn, target)
                    return target
            while True:
                with conn.begin():
                    # Re-read inside the transaction: another process may have moved on.
                    version = read_version(conn) or 0
                    if version > target:
                        raise GatewayError(
                            f"The catalog at {engine.url.render_as_string()} has schema "
                            f"version {version}, newer than this gateway supports "
                            f"({target}). Upgrade byom-gateway, or point BYOM_CATALOG_URL "
                            "at another catalog."
                        )
                    if version == target:
                        return version
                    steps[version](conn)
                    _write_version(conn, version + 1)
        finally:
            if postgres:
                conn.rollback()
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})")
                conn.commit()
