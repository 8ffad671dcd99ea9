"""The catalog as tables: SHOW MODELS, SHOW DATABASES, DESCRIBE, ``SELECT ... FROM mindsdb.*``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from byom.errors import InvalidInput
from catalog.records import PredictorRecord
from gateway.executor.services import Services
from gateway.plans import CatalogQueryPlan
from gateway.progress import ProgressRegistry
from gateway.result import Result

SHOW_MODELS_COLUMNS = ["name", "namespace", "format", "status", "target", "error"]
MODEL_COLUMNS = [
    "name", "namespace", "kind", "format", "status", "target", "url_predict", "url_train",
    "dtype_dict", "training_datasource", "training_query", "task", "version", "error",
    "created_at", "updated_at",
]  # fmt: skip
JOB_COLUMNS = ["id", "model", "status", "error", "rows", "started_at", "finished_at"]


def models_table(records: Sequence[PredictorRecord]) -> Result:
    """One row per predictor with everything the catalog knows (DESCRIBE, mindsdb.models)."""
    rows = [
        [
            r.name, r.namespace, r.kind, r.format, r.status, r.target, r.url_predict,
            r.url_train, json.dumps(r.dtype_dict), r.training_datasource, r.training_query,
            r.task, r.version, r.error, r.created_at.isoformat(), r.updated_at.isoformat(),
        ]
        for r in records
    ]  # fmt: skip
    return Result(columns=list(MODEL_COLUMNS), rows=rows)


def show_models(services: Services) -> Result:
    rows = [
        [m.name, m.namespace, m.format, m.status, m.target, m.error]
        for m in services.catalog.list_predictors()
    ]
    return Result(columns=list(SHOW_MODELS_COLUMNS), rows=rows)


def describe(services: Services, name: str) -> Result:
    """DESCRIBE: one row with everything the catalog knows about a predictor."""
    record = services.catalog.find_predictor(name)
    if record is None:
        raise services.model_not_found(name)
    return models_table([record])


def show_databases(services: Services) -> Result:
    records = [services.datasource_record(services.default_datasource)]
    records += services.catalog.list_datasources()
    rows = [[r.name, r.engine, json.dumps(r.public_parameters())] for r in records]
    return Result(columns=["name", "engine", "parameters"], rows=rows)


def catalog_query(services: Services, p: CatalogQueryPlan) -> Result:
    """Run a SELECT over snapshots of the catalog tables in a private in-memory SQLite.

    The catalog may live in any database; a snapshot keeps user SQL away from it, and the
    catalog is small (one row per model, database and job).
    """
    jobs = Result(
        columns=list(JOB_COLUMNS),
        rows=[
            [j.id, j.predictor, j.status, j.error, j.rows, j.started_at.isoformat(),
             j.finished_at.isoformat() if j.finished_at else None]
            for j in services.catalog.list_jobs()
        ],
    )  # fmt: skip
    tables = {
        "models": models_table(services.catalog.list_predictors()),
        "jobs": jobs,
        "databases": show_databases(services),
        "queries": Result(columns=list(ProgressRegistry.COLUMNS), rows=services.progress.rows()),
    }
    conn = sqlite3.connect(":memory:")
    try:
        for table, data in tables.items():
            names = ", ".join(f'"{c}"' for c in data.columns)
            conn.execute(f"CREATE TABLE {table} ({names})")
            marks = ", ".join("?" for _ in data.columns)
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", data.rows)
        try:
            cursor = conn.execute(p.sql)
        except sqlite3.Error as exc:
            raise InvalidInput(f"Catalog query failed: {exc}") from exc
        columns = [d[0] for d in cursor.description or []]
        return Result(columns=columns, rows=[list(r) for r in cursor.fetchall()])
    finally:
        conn.close()
