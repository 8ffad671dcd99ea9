"""The catalog's tables, as SQLAlchemy 2 declarative classes.

These classes never leave ``catalog/``: ``catalog.repository`` turns rows into the plain
dataclasses of ``catalog.records``. Names (datasource, predictor) are stored lower-case so
lookups are case-insensitive on every database without collations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no timezone type and hands back naive datetimes; PostgreSQL hands back the
    session's zone. Both are normalised here so callers never see a naive datetime.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("catalog timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # Stored as UTC by process_bind_param; SQLite just forgot the zone.
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class DatasourceRow(Base):
    """A user database the gateway can reach; ``parameters`` includes secrets."""

    __tablename__ = "datasources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    engine: Mapped[str] = mapped_column(String(64), nullable=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)


class PredictorRow(Base):
    """A model: an external endpoint registered by URL, or a built-in model the gateway
    hosts on Ray Serve (no ``url_predict`` until a version is deployed); and how to train it.

    Columns are named after the fields of ``catalog.records.PredictorRecord``.
    """

    __tablename__ = "predictors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    namespace: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    kind: Mapped[str] = mapped_column(String(16), nullable=False, server_default="external")
    format: Mapped[str] = mapped_column(String(64), nullable=False)
    url_predict: Mapped[str | None] = mapped_column(Text)
    url_train: Mapped[str | None] = mapped_column(Text)
    dtype_dict: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    target: Mapped[str | None] = mapped_column(String(255))
    training_datasource: Mapped[str | None] = mapped_column(String(255))
    training_query: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    task: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int | None] = mapped_column(Integer)
    deployment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False)


class ProjectRow(Base):
    """A project: a namespace for models. The predictors of project p have namespace p; a
    predictor's name is still unique across all projects."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)


class TrainingJobRow(Base):
    """One training run of a predictor (running, then complete or error), by the gateway
    ``owner`` that runs it, which beats ``heartbeat_at`` while it does (``catalog.liveness``)."""

    __tablename__ = "training_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    predictor: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column()
    extra: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    owner: Mapped[str | None] = mapped_column(String(255))  # None: from before schema v5
    heartbeat_at: Mapped[datetime | None] = mapped_column()  # None: never beaten yet


class ModelVersionRow(Base):
    """One training run (version) of a built-in model: 1, 2, ... per predictor, never
    reused while the predictor exists. The predictor's ``version`` column says which one
    is active. Columns are named after the fields of ``catalog.records.ModelVersionRecord``
    (all but the computed ``active``)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("predictor", "version", name="uq_model_versions_predictor_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    predictor: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    task: Mapped[str] = mapped_column(String(64), nullable=False)
    job_id: Mapped[int | None] = mapped_column(Integer)
    training_datasource: Mapped[str | None] = mapped_column(String(255))
    training_query: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    progress: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    hyperparams: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(255))
    model_uri: Mapped[str | None] = mapped_column(Text)
    tracking_uri: Mapped[str | None] = mapped_column(Text)
    deployment: Mapped[str | None] = mapped_column(Text)
    url_predict: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False)


class QueryRow(Base):
    """The progress of one streaming statement (JOIN, write-back), written by the gateway
    ``owner`` running it and read by every replica (``catalog.queries``)."""

    __tablename__ = "queries"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    statement: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    rows_done: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(nullable=False)


class SessionRow(Base):
    """One HTTP session (``X-Byom-Session``): what ``USE`` and ``SET @v`` left for the
    session's next request, on whichever replica it lands (``catalog.sessions``)."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    datasource: Mapped[str | None] = mapped_column(String(255))
    project: Mapped[str | None] = mapped_column(String(255))
    variables: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, index=True)


class TokenRow(Base):
    """An API token (``catalog.tokens``): only its SHA-256 is kept, with a short prefix to
    recognise it by. A revoked token keeps its row (``revoked_at``), so revoking the last
    token never turns authentication off again."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class SchemaVersionRow(Base):
    """A single row: the catalog schema version this database is at."""

    __tablename__ = "schema_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
