"""Catalog schema versions and the steps between them.

A fresh database gets the current tables and ``SCHEMA_VERSION`` at once. An older one runs
``UPGRADES[v]`` (version v -> v+1) for each version it lacks, in order, each step in its own
transaction together with the version bump, so a failed step leaves the database at the last
version that fully applied. A database newer than this code is refused: guessing would risk
corrupting a catalog a newer gateway still uses.

To change the schema: edit ``catalog/tables.py``, append a step here, bump ``SCHEMA_VERSION``.
A step never reads the live tables of ``catalog/tables.py`` (they move on with later
versions): it uses the definitions frozen here for the version it produces.

    1  datasources, predictors, training_jobs, schema_version
    2  predictors: kind, task, version, deployment added; url_predict nullable (built-in
       models hosted on Ray Serve have no URL until deployed)
    3  projects (namespaces of models) added, holding ``mindsdb`` and every namespace a
       predictor already had; predictors' namespaces ``model``/``models``/'' become
       ``mindsdb`` (they were other names of it)
    4  model_versions added: one row per training run (version) of a built-in model; the
       predictor's ``version`` names the active one
    5  several gateway replicas share one catalog: training_jobs get ``owner`` (the gateway
       running the job) and ``heartbeat_at``; queries (streaming statements' progress) and
       sessions (HTTP sessions' USE and SET @v) added
    6  tokens (API tokens: name, role, SHA-256 of the secret) added; authentication is on
       once the table holds a row
    7  datasource secrets (password, token, ...) encrypted at rest with the gateway's key
       (``catalog.secrets``): every plain one is sealed; the SQLite file is checkpointed so
       the plain text does not linger in it
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    column,
    func,
    inspect,
    select,
    table,
    update,
)
from sqlalchemy.schema import CreateColumn, CreateTable

from byom.errors import GatewayError
from catalog.records import DEFAULT_PROJECT, PROJECT_ALIASES
from catalog.secrets import SecretBox
from catalog.tables import Base, SchemaVersionRow, UTCDateTime, utcnow

SCHEMA_VERSION = 7

Step = Callable[[Connection], None]

# Where ``migrate`` puts its ``SecretBox`` for the steps (``conn.info``): steps only get a
# connection, and only the one that seals secrets needs a key.
_SECRETS_INFO = "byom_secrets"

# Held while migrating a PostgreSQL catalog, so gateway replicas starting together do not
# race to create the same tables. Any fixed 64-bit number works; this one spells "byom".
_PG_LOCK_KEY = 0x62796F6D


# -- frozen table definitions ----------------------------------------------------------------

# Version 1, as gateways of that version created it (tests build version-1 catalogs from it).
V1_METADATA = MetaData()

Table(
    "datasources",
    V1_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), unique=True, nullable=False),
    Column("engine", String(64), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


Table(
    "predictors",
    V1_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), unique=True, nullable=False),
    Column("namespace", String(255), nullable=False),
    Column("format", String(64), nullable=False),
    Column("url_predict", Text, nullable=False),
    Column("url_train", Text),
    Column("dtype_dict", JSON, nullable=False),
    Column("target", String(255)),
    Column("training_datasource", String(255)),
    Column("training_query", Text),
    Column("options", JSON, nullable=False),
    Column("status", String(32), nullable=False),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

Table(
    "training_jobs",
    V1_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("predictor", String(255), nullable=False, index=True),
    Column("status", String(32), nullable=False),
    Column("error", Text),
    Column("rows", Integer),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("extra", JSON, nullable=False),
)

_V2_PREDICTORS = Table(
    "predictors",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), unique=True, nullable=False),
    Column("namespace", String(255), nullable=False),
    Column("kind", String(16), nullable=False, server_default="external"),
    Column("format", String(64), nullable=False),
    Column("url_predict", Text),
    Column("url_train", Text),
    Column("dtype_dict", JSON, nullable=False),
    Column("target", String(255)),
    Column("training_datasource", String(255)),
    Column("training_query", Text),
    Column("options", JSON, nullable=False),
    Column("task", String(64)),
    Column("status", String(32), nullable=False),
    Column("error", Text),
    Column("version", Integer),
    Column("deployment", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


_V3_PROJECTS = Table(
    "projects",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), unique=True, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


_V4_MODEL_VERSIONS = Table(
    "model_versions",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("predictor", String(255), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("task", String(64), nullable=False),
    Column("job_id", Integer),
    Column("training_datasource", String(255)),
    Column("training_query", Text),
    Column("options", JSON, nullable=False),
    Column("progress", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("hyperparams", JSON, nullable=False),
    Column("run_id", String(255)),
    Column("model_uri", Text),
    Column("tracking_uri", Text),
    Column("deployment", Text),
    Column("url_predict", Text),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("predictor", "version", name="uq_model_versions_predictor_version"),
)


_V5_TRAINING_JOBS = Table(
    "training_jobs",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("predictor", String(255), nullable=False, index=True),
    Column("status", String(32), nullable=False),
    Column("error", Text),
    Column("rows", Integer),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("extra", JSON, nullable=False),
    Column("owner", String(255)),
    Column("heartbeat_at", UTCDateTime),
)

_V5_QUERIES = Table(
    "queries",
    MetaData(),
    Column("id", String(255), primary_key=True),
    Column("statement", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rows_done", BigInteger, nullable=False),
    Column("rows_total", BigInteger),
    Column("error", Text),
    Column("owner", String(255)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

_V5_SESSIONS = Table(
    "sessions",
    MetaData(),
    Column("id", String(128), primary_key=True),
    Column("datasource", String(255)),
    Column("project", String(255)),
    Column("variables", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False, index=True),
)

_V6_TOKENS = Table(
    "tokens",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), unique=True, nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), unique=True, nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)


# -- upgrade steps --------------------------------------------------------------------------


def _v0_to_v1(conn: Connection) -> None:
    """Version 0 is a catalog from before versioning: create whatever tables it lacks."""
    V1_METADATA.create_all(conn, checkfirst=True)


def _v1_to_v2(conn: Connection) -> None:
    """Predictors get a kind (existing ones are ``external``), a task, the active version
    and Serve deployment of a built-in model; ``url_predict`` may be NULL."""
    _widen_table(conn, _V2_PREDICTORS)


def _v2_to_v3(conn: Connection) -> None:
    """Projects: the table, ``mindsdb`` in it, and a project for every other namespace a
    predictor was registered with (``POST /api/predictors`` took any); the other names of
    ``mindsdb`` (``model``, ``models``, none) are rewritten to it."""
    _V3_PROJECTS.create(conn, checkfirst=True)
    predictors = table("predictors", column("namespace"))
    aliases = ("", *PROJECT_ALIASES)
    namespace = func.lower(predictors.c.namespace)  # names are stored lower-case anyway
    conn.execute(update(predictors).values(namespace=namespace))
    conn.execute(
        update(predictors)
        .where(predictors.c.namespace.in_(aliases))
        .values(namespace=DEFAULT_PROJECT)
    )
    namespaces = set(conn.execute(select(predictors.c.namespace).distinct()).scalars())
    _add_projects(conn, {DEFAULT_PROJECT} | namespaces)


def _v3_to_v4(conn: Connection) -> None:
    """Model versions: the table, empty (a predictor's next version is numbered past its
    ``version`` column too, so a version set before this table existed is not reused)."""
    _V4_MODEL_VERSIONS.create(conn, checkfirst=True)


def _v4_to_v5(conn: Connection) -> None:
    """Replicas: training jobs get an owner and a heartbeat (NULL for the existing rows: a
    running one of them belongs to no live gateway); the queries and sessions tables."""
    _widen_table(conn, _V5_TRAINING_JOBS)
    _V5_QUERIES.create(conn, checkfirst=True)
    _V5_SESSIONS.create(conn, checkfirst=True)


def _v5_to_v6(conn: Connection) -> None:
    """API tokens: the table, empty (authentication stays off until a token is created)."""
    _V6_TOKENS.create(conn, checkfirst=True)


def _v6_to_v7(conn: Connection) -> None:
    """Datasource secrets encrypted: every plain secret parameter value is sealed with the
    key ``migrate`` was given (default: ``$BYOM_SECRET_KEY`` or the default home's key
    file), loaded only when there is one to seal. Sealed values are left alone."""
    box: SecretBox = conn.info.get(_SECRETS_INFO) or SecretBox()
    if conn.dialect.name == "sqlite":
        # The old row's bytes are zeroed in the page instead of left in its free space.
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
    datasources = table("datasources", column("id"), column("parameters", JSON))
    for row_id, parameters in conn.execute(select(*datasources.c)).all():
        sealed = box.seal_parameters(parameters or {})
        if sealed != parameters:
            conn.execute(
                update(datasources).where(datasources.c.id == row_id).values(parameters=sealed)
            )


def _add_projects(conn: Connection, names: set[str]) -> None:
    """Insert the projects ``names`` the table does not hold yet."""
    existing = set(conn.execute(select(_V3_PROJECTS.c.name)).scalars())
    now = utcnow()
    for name in sorted(names - existing):
        conn.execute(_V3_PROJECTS.insert().values(name=name, created_at=now))


def _widen_table(conn: Connection, target: Table) -> None:
    """Bring the existing table ``target.name`` to ``target``'s definition, in place.

    Handles the changes that keep every row valid: added columns (nullable or with a
    server default, which existing rows take) and NOT NULL constraints dropped. Columns the
    table already has in the target's form are left alone, so the step is safe to re-run.
    """
    existing = {c["name"]: c for c in inspect(conn).get_columns(target.name)}
    added = [c for c in target.columns if c.name not in existing]
    loosened = [
        c
        for c in target.columns
        if c.name in existing and c.nullable and not existing[c.name]["nullable"]
    ]
    if not added and not loosened:
        return
    if conn.dialect.name == "sqlite":
        _rebuild_sqlite_table(conn, target, list(existing))
        return
    quote = conn.dialect.identifier_preparer.quote
    name = quote(target.name)
    for col in added:
        spec = CreateColumn(col).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {spec}")
    for col in loosened:
        conn.exec_driver_sql(f"ALTER TABLE {name} ALTER COLUMN {quote(col.name)} DROP NOT NULL")


def _rebuild_sqlite_table(conn: Connection, target: Table, existing: list[str]) -> None:
    """SQLite cannot drop a NOT NULL: create the new table under a scratch name, copy the
    rows, drop the old table and rename the new one (sqlite.org/lang_altertable.html, the
    generalised procedure), all in the caller's transaction."""
    unknown = [c for c in existing if c not in target.columns]
    if unknown:
        # Rebuilding would silently lose them; a catalog of ours never has them.
        raise GatewayError(
            f"Cannot upgrade catalog table {target.name}: it has columns this gateway does "
            f"not know ({', '.join(unknown)})."
        )
    scratch = target.to_metadata(MetaData(), name=f"_upgrade_{target.name}")
    conn.execute(CreateTable(scratch))  # no indexes yet: their names are still taken
    old = table(target.name, *(column(c) for c in existing))
    new_cols = [scratch.c[c] for c in existing]
    conn.execute(scratch.insert().from_select(new_cols, select(*old.c)))
    quote = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(f"DROP TABLE {quote(target.name)}")
    conn.exec_driver_sql(f"ALTER TABLE {quote(scratch.name)} RENAME TO {quote(target.name)}")
    for index in target.indexes:
        index.create(conn)


# UPGRADES[n] takes a catalog from version n to n + 1.
UPGRADES: list[Step] = [
    _v0_to_v1, _v1_to_v2, _v2_to_v3, _v3_to_v4, _v4_to_v5, _v5_to_v6, _v6_to_v7,
]  # fmt: skip


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


def _checkpoint_sqlite(conn: Connection) -> None:
    """Copy the WAL into the SQLite file and empty it now, rather than at the next automatic
    checkpoint: the pages that held plain secrets are overwritten at once. Best effort (a
    busy reader just delays it); outside any transaction, on the driver's connection."""
    if conn.dialect.name == "sqlite":
        driver: Any = conn.connection.dbapi_connection
        driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def migrate(
    engine: Engine,
    *,
    target: int | None = None,
    steps: Sequence[Step] | None = None,
    secrets: SecretBox | None = None,
) -> int:
    """Bring the catalog at ``engine`` to ``target`` (default ``SCHEMA_VERSION``).

    ``steps`` defaults to ``UPGRADES``; both arguments exist so tests can exercise the
    upgrade path. ``secrets`` is the key the step sealing datasource secrets uses (see
    ``_v6_to_v7``). Returns the version the catalog is at afterwards.
    """
    target = SCHEMA_VERSION if target is None else target
    steps = UPGRADES if steps is None else steps
    if len(steps) < target:
        raise GatewayError(f"no upgrade step to catalog schema version {len(steps) + 1}")

    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        if secrets is not None:
            conn.info[_SECRETS_INFO] = secrets
        if postgres:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_LOCK_KEY})")
            conn.commit()
        try:
            with conn.begin():
                version = read_version(conn)
                if version is None:
                    Base.metadata.create_all(conn)
                    _add_projects(conn, {DEFAULT_PROJECT})  # the project that always exists
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
                if steps[version] is _v6_to_v7:
                    _checkpoint_sqlite(conn)
        finally:
            conn.info.pop(_SECRETS_INFO, None)  # the driver's connection goes back to a pool
            if postgres:
                conn.rollback()
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})")
                conn.commit()
