"""Datasource statements: CREATE/DROP DATABASE, and plain SQL passed through to one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import datasources as dsmod
from byom.errors import (
    DatasourceError,
    DatasourceExists,
    InvalidOption,
    ModelNotFound,
    did_you_mean,
)
from catalog.records import DatasourceRecord
from gateway import statements as st
from gateway.executor.services import Services
from gateway.plans import NativePlan
from gateway.result import Result


def _exists(services: Services, name: str) -> bool:
    # By name only, never decrypting: a datasource whose secret key was lost can still be
    # dropped.
    return name.lower() in {n.lower() for n in services.catalog_datasource_names()}


async def create_database(services: Services, p: st.CreateDatabase) -> Result:
    """Check the parameters, connect once (refuse what we cannot reach), then store it."""
    if _exists(services, p.name):
        if p.if_not_exists:
            return Result(message=f"Datasource '{p.name}' already exists.")
        raise DatasourceExists(
            f"Datasource '{p.name}' already exists; DROP DATABASE {p.name} first or pick "
            "another name.",
            datasource=p.name,
        )
    engine, parameters = dsmod.validate(p.engine, dict(p.parameters))
    record = DatasourceRecord(
        name=p.name, engine=engine, parameters=parameters, created_at=datetime.now(UTC)
    )
    # Which files this gateway may open: under its home or BYOM_DATA_DIRS, never its own
    # catalog (read from this gateway's home and catalog, not the environment's).
    policy = dsmod.FilePolicy.for_gateway(services.home, services.catalog.url)
    dsmod.check_files(record, policy)
    probe = dsmod.open_datasource(record)
    try:  # refuse a datasource we cannot reach, rather than fail at first use
        await asyncio.to_thread(probe.check)
    finally:
        probe.close()
    record = services.catalog.add_datasource(p.name, engine, parameters)
    return Result(
        columns=["name", "engine", "parameters"],
        rows=[[record.name, record.engine, record.public_parameters()]],
    )


def drop_database(services: Services, p: st.DropDatabase) -> Result:
    if p.name == services.default_datasource:
        raise InvalidOption(f"'{p.name}' is the embedded datasource and cannot be dropped.")
    if not _exists(services, p.name):
        if p.if_exists:
            return Result(message=f"Datasource '{p.name}' does not exist; nothing dropped.")
        services.catalog.get_datasource(p.name)  # raises DatasourceNotFound with a hint
    services.catalog.drop_datasource(p.name)
    services.datasources.drop(p.name)
    return Result(message=f"Datasource '{p.name}' dropped.")


async def pass_through(services: Services, p: NativePlan) -> Result:
    """Plain SQL for one datasource, run as written (after the planner's rewriting)."""
    ds = services.datasource(p.datasource)
    try:
        columns, rows = await asyncio.to_thread(ds.query, p.sql)
    except DatasourceError as exc:
        hint = _misspelt_model(services, p.bare_tables)
        if hint is not None:
            raise hint from exc
        raise
    return Result(columns=list(columns), rows=[list(r) for r in rows])


def _misspelt_model(services: Services, tables: Sequence[str]) -> ModelNotFound | None:
    """A failed bare-table query whose table name is close to a model name."""
    names = services.model_names()
    for table in tables:
        hint = did_you_mean(table, names)
        if hint is not None:
            return ModelNotFound(
                f"No model or table '{table}'. Did you mean model {hint}?",
                model=table,
                suggestion=hint,
            )
    return None
