"""The catalog as tables: DESCRIBE, ``SELECT ... FROM mindsdb.*``, and the in-memory SQLite
that filters them (and every SHOW answer's ``LIKE``/``WHERE``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from byom.errors import InvalidInput
from catalog.records import ModelVersionRecord, PredictorRecord, project_key
from gateway.executor.services import Services
from gateway.plans import CatalogQueryPlan, DescribePlan
from gateway.progress import ProgressRegistry
from gateway.result import Result

SHOW_MODELS_COLUMNS = ["name", "namespace", "format", "status", "target", "error"]
MODEL_COLUMNS = [
    "name", "namespace", "kind", "format", "status", "target", "url_predict", "url_train",
    "dtype_dict", "training_datasource", "training_query", "task", "version", "error",
    "created_at", "updated_at",
]  # fmt: skip
JOB_COLUMNS = ["id", "model", "status", "error", "rows", "started_at", "finished_at"]
PROJECT_COLUMNS = ["name", "models", "created_at"]
DATASOURCE_COLUMNS = ["name", "engine", "parameters"]
# DESCRIBE of a built-in model, and mindsdb.models_versions: one row per version.
VERSION_COLUMNS = [
    "name", "version", "active", "status", "phase", "percent", "epoch", "step",
    "total_steps", "task", "model_name", "hyperparams", "metrics", "training_datasource",
    "training_query", "job_id", "run_id", "model_uri", "url_predict", "error", "created_at",
    "updated_at",
]  # fmt: skip
# DESCRIBE m.features: one row per column the model knows (its dtype_dict, and its target).
FEATURE_COLUMNS = ["column", "type", "role"]
# DESCRIBE m.model: how the model is reached and where it stands.
DETAIL_COLUMNS = [
    "name", "project", "kind", "format", "url_predict", "url_train", "task", "version",
    "status", "target", "options", "deployment", "error",
]  # fmt: skip


def models_table(records: Sequence[PredictorRecord]) -> Result:
    """One row per predictor with everything the catalog knows (DESCRIBE, mindsdb.models)."""
    rows = [
        [
            r.name, r.namespace, r.kind, r.format, r.status, r.target, r.url_predict,
            r.url_train, dict(r.dtype_dict), r.training_datasource, r.training_query,
            r.task, r.version, r.error, r.created_at.isoformat(), r.updated_at.isoformat(),
        ]
        for r in records
    ]  # fmt: skip
    return Result(columns=list(MODEL_COLUMNS), rows=rows)


def versions_table(versions: Sequence[ModelVersionRecord]) -> Result:
    """One row per version of built-in models: status, progress, options, metrics."""
    rows = []
    for v in versions:
        progress = v.progress or {}
        percent = progress.get("percent")
        rows.append(
            [
                v.predictor, v.version, v.active, v.status, progress.get("phase"),
                round(float(percent), 1) if percent is not None else None,
                progress.get("epoch"), progress.get("step"), progress.get("total_steps"),
                v.task, v.options.get("model_name"), dict(v.hyperparams or
                v.options.get("hyperparams") or {}), dict(v.metrics), v.training_datasource,
                v.training_query, v.job_id, v.run_id, v.model_uri, v.url_predict, v.error,
                v.created_at.isoformat(), v.updated_at.isoformat(),
            ]
        )  # fmt: skip
    return Result(columns=list(VERSION_COLUMNS), rows=rows)


def show_models(services: Services, project: str | None = None) -> Result:
    """SHOW MODELS: every model, or those of ``project``."""
    rows = [
        [m.name, m.namespace, m.format, m.status, m.target, m.error]
        for m in services.catalog.list_predictors()
        if project is None or project_key(m.namespace) == project
    ]
    return Result(columns=list(SHOW_MODELS_COLUMNS), rows=rows)


def describe(services: Services, name: str) -> Result:
    """DESCRIBE: one row with everything the catalog knows about a predictor; a built-in
    model answers one row per version."""
    record = services.catalog.find_predictor(name)
    if record is None:
        raise services.model_not_found(name)
    return describe_plan(services, DescribePlan(model=record))


def describe_plan(services: Services, p: DescribePlan) -> Result:
    """DESCRIBE m (everything; a built-in model: its versions), m.features (its columns) or
    m.model (its details)."""
    record = p.model
    if p.attribute is None:
        if record.kind == "builtin":
            return versions_table(services.catalog.list_versions(record.name))
        return models_table([record])
    if p.attribute == "features":
        rows = [
            [column, dtype, "target" if column == record.target else "feature"]
            for column, dtype in record.dtype_dict.items()
        ]
        if record.target is not None and record.target not in record.dtype_dict:
            rows.append([record.target, None, "target"])
        return Result(columns=list(FEATURE_COLUMNS), rows=rows)
    row = [
        record.name, project_key(record.namespace), record.kind, record.format,
        record.url_predict, record.url_train, record.task, record.version, record.status,
        record.target, dict(record.options), record.deployment, record.error,
    ]  # fmt: skip
    return Result(columns=list(DETAIL_COLUMNS), rows=[row])


def datasources_table(services: Services) -> Result:
    """SHOW DATABASES: the embedded datasource, then the others by name."""
    records = [services.datasource_record(services.default_datasource)]
    records += services.catalog.list_datasources()
    rows = [[r.name, r.engine, r.public_parameters()] for r in records]
    return Result(columns=list(DATASOURCE_COLUMNS), rows=rows)


def projects_table(services: Services) -> Result:
    """SHOW PROJECTS: each project with its number of models."""
    counts: dict[str, int] = {}
    for m in services.catalog.list_predictors():
        key = project_key(m.namespace)
        counts[key] = counts.get(key, 0) + 1
    rows = [
        [p.name, counts.get(p.name, 0), p.created_at.isoformat()]
        for p in services.catalog.list_projects()
    ]
    return Result(columns=list(PROJECT_COLUMNS), rows=rows)


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
        "databases": datasources_table(services),
        "queries": Result(columns=list(ProgressRegistry.COLUMNS), rows=services.progress.rows()),
        "projects": projects_table(services),
        "models_versions": versions_table(services.catalog.list_versions()),
    }
    return in_memory(tables, p.sql, what="Catalog query")


def filtered(result: Result, like: str | None, where: str | None, what: str) -> Result:
    """``result`` with only the rows whose first column is ``LIKE like`` and for which the
    condition ``where`` (SQLite SQL over its columns) holds; ``what`` names the statement
    in errors (``SHOW MODELS``)."""
    if like is None and where is None:
        return result
    conditions: list[str] = []
    params: list[Any] = []
    if like is not None:
        conditions.append(f"{_quoted(result.columns[0])} LIKE ?")
        params.append(like)
    if where is not None:
        conditions.append(f"({where})")
    sql = "SELECT * FROM answer WHERE " + " AND ".join(conditions)
    answer = in_memory({"answer": result}, sql, params, what=f"{what} WHERE")
    # JSON objects went through SQLite as text; give them back as objects.
    objects = {
        i for row in result.rows[:1] for i, v in enumerate(row) if isinstance(v, dict | list)
    }
    rows = [
        [json.loads(v) if i in objects and isinstance(v, str) else v for i, v in enumerate(row)]
        for row in answer.rows
    ]
    return Result(columns=list(result.columns), rows=rows, message=result.message)


def in_memory(
    tables: Mapping[str, Result], sql: str, params: Sequence[Any] = (), *, what: str
) -> Result:
    """Run ``sql`` over ``tables`` loaded into a private in-memory SQLite; an error of the
    query is InvalidInput naming ``what`` (and the columns, for one table)."""
    conn = sqlite3.connect(":memory:")
    try:
        for table, data in tables.items():
            names = ", ".join(_quoted(c) for c in data.columns)
            conn.execute(f"CREATE TABLE {_quoted(table)} ({names})")
            marks = ", ".join("?" for _ in data.columns)
            rows = [[_sqlite_value(v) for v in row] for row in data.rows]
            conn.executemany(f"INSERT INTO {_quoted(table)} VALUES ({marks})", rows)
        try:
            cursor = conn.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            message = f"{what} failed: {exc}."
            if len(tables) == 1:
                message += f" Columns: {', '.join(next(iter(tables.values())).columns)}."
            raise InvalidInput(message) from exc
        columns = [d[0] for d in cursor.description or []]
        return Result(columns=columns, rows=[list(r) for r in cursor.fetchall()])
    finally:
        conn.close()


def _sqlite_value(value: Any) -> Any:
    """JSON objects (dtype_dict, parameters, options) are stored as JSON text in SQL tables."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
