"""The catalog as tables: DESCRIBE, ``SELECT ... FROM mindsdb.*`` (``mindsdb.model_catalog``
is MySQL HeatWave's ``ML_SCHEMA_<user>.MODEL_CATALOG``), and the in-memory SQLite that
filters them (and every SHOW answer's ``LIKE``/``WHERE``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import sqlglot
import sqlglot.errors
from sqlglot import exp

from adapters.breaker import Breakers
from adapters.urls import endpoint_key, redact_url
from byom.errors import InvalidInput
from catalog.records import ModelVersionRecord, PredictorRecord, project_key
from gateway import audit
from gateway.api_bodies import token_dict
from gateway.executor.services import Services
from gateway.heatwave import USER
from gateway.parse_tokens import DIALECT
from gateway.plans import CatalogQueryPlan, DescribePlan
from gateway.progress import ProgressRegistry
from gateway.result import Result

SHOW_MODELS_COLUMNS = ["name", "namespace", "format", "status", "target", "error"]
MODEL_COLUMNS = [
    "name", "namespace", "kind", "format", "status", "target", "url_predict", "url_train",
    "dtype_dict", "training_datasource", "training_query", "task", "version", "error",
    "created_at", "updated_at", "endpoint_state",
]  # fmt: skip
# owner: the gateway (replica) running the job, heartbeat_at its last sign of life.
JOB_COLUMNS = ["id", "model", "status", "error", "rows", "started_at", "finished_at", "owner",
               "heartbeat_at"]  # fmt: skip
PROJECT_COLUMNS = ["name", "models", "created_at"]
# mindsdb.tokens (admin only, as mindsdb.audit): never a token's secret, only its prefix.
TOKEN_COLUMNS = ["name", "role", "prefix", "active", "created_at", "last_used_at", "revoked_at"]
DATASOURCE_COLUMNS = ["name", "engine", "parameters"]
# DESCRIBE of a built-in model, and mindsdb.models_versions: one row per version.
VERSION_COLUMNS = [
    "name", "version", "active", "status", "phase", "percent", "epoch", "step",
    "total_steps", "task", "model_name", "hyperparams", "replicas", "metrics",
    "training_datasource", "training_query", "job_id", "run_id", "model_uri", "url_predict",
    "error", "created_at", "updated_at",
]  # fmt: skip
# mindsdb.model_catalog (HeatWave's ML_SCHEMA_<user>.MODEL_CATALOG): one row per version of
# a built-in model, in HeatWave's column names.
MODEL_CATALOG_COLUMNS = [
    "model_id", "model_handle", "model_owner", "build_timestamp", "target_column_name",
    "train_table_name", "model_type", "task", "status", "version", "active",
    "model_metadata",
]  # fmt: skip
# DESCRIBE m.features: one row per column the model knows (its dtype_dict, and its target).
FEATURE_COLUMNS = ["column", "type", "role"]
# DESCRIBE m.model: how the model is reached and where it stands.
DETAIL_COLUMNS = [
    "name", "project", "kind", "format", "url_predict", "url_train", "task", "version",
    "status", "target", "options", "deployment", "error", "endpoint_state",
]  # fmt: skip


def endpoint_state(breakers: Breakers | None, url: str | None) -> str | None:
    """The circuit breaker of a model's predict endpoint in words (``closed``, ``open (5
    failures; next try in 27s)``); None when not known here."""
    if breakers is None or not url:
        return None
    return breakers.state(endpoint_key(url)).describe()


def models_table(records: Sequence[PredictorRecord], breakers: Breakers | None = None) -> Result:
    """One row per predictor with everything the catalog knows (DESCRIBE, mindsdb.models);
    URLs redacted (``adapters.urls.redact_url``), ``endpoint_state`` from ``breakers``."""
    rows = [
        [
            r.name, r.namespace, r.kind, r.format, r.status, r.target, redact_url(r.url_predict),
            redact_url(r.url_train), dict(r.dtype_dict), r.training_datasource,
            r.training_query, r.task, r.version, r.error, r.created_at.isoformat(),
            r.updated_at.isoformat(), endpoint_state(breakers, r.url_predict),
        ]
        for r in records
    ]  # fmt: skip
    return Result(columns=list(MODEL_COLUMNS), rows=rows)


def versions_table(versions: Sequence[ModelVersionRecord]) -> Result:
    """One row per version of built-in models: status, progress, options, metrics;
    ``replicas``: the Serve replicas a deployment of the version runs."""
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
                v.options.get("hyperparams") or {}), v.options.get("replicas", 1),
                dict(v.metrics), v.training_datasource,
                v.training_query, v.job_id, v.run_id, v.model_uri, redact_url(v.url_predict),
                v.error,
                v.created_at.isoformat(), v.updated_at.isoformat(),
            ]
        )  # fmt: skip
    return Result(columns=list(VERSION_COLUMNS), rows=rows)


def model_catalog_table(
    records: Sequence[PredictorRecord], versions: Sequence[ModelVersionRecord]
) -> Result:
    """HeatWave's MODEL_CATALOG over the built-in models: one row per version. ``model_id``
    is the version's training job (stable while the model exists), ``model_handle`` the
    model's name, ``build_timestamp`` the version's start in Unix seconds,
    ``train_table_name`` the datasource table it trained on (``ds.table``; the training
    query when that is more than one table), ``model_metadata`` the rest as JSON."""
    targets = {r.name: r.target for r in records if r.kind == "builtin"}
    rows = []
    for v in versions:
        if v.predictor not in targets:
            continue
        metadata = {
            "task": v.task, "status": v.status, "version": v.version, "active": v.active,
            "options": dict(v.options), "metrics": dict(v.metrics),
            "hyperparams": dict(v.hyperparams), "training_datasource": v.training_datasource,
            "training_query": v.training_query, "run_id": v.run_id, "model_uri": v.model_uri,
            "error": v.error,
        }  # fmt: skip
        rows.append(
            [
                v.job_id, v.predictor, USER, int(v.created_at.timestamp()),
                targets[v.predictor], train_table_name(v.training_datasource, v.training_query),
                v.options.get("model_name") or v.task, v.task, v.status, v.version, v.active,
                metadata,
            ]
        )  # fmt: skip
    return Result(columns=list(MODEL_CATALOG_COLUMNS), rows=rows)


def train_table_name(datasource: str | None, query: str | None) -> str | None:
    """``ds.table`` when ``query`` is ``SELECT * FROM table`` (a schema-qualified table as
    written: a schema of the datasource); else the query itself."""
    if not query:
        return None
    try:
        tree = sqlglot.parse_one(query, read=DIALECT)
    except sqlglot.errors.SqlglotError:
        return query
    if not isinstance(tree, exp.Select):
        return query
    source = tree.args.get("from_") or tree.args.get("from")
    plain = (
        source is not None
        and isinstance(source.this, exp.Table)
        and len(tree.expressions) == 1
        and isinstance(tree.expressions[0], exp.Star)
        and not any(tree.args.get(k) for k in ("joins", "where", "group", "limit", "order"))
    )
    if not plain:
        return query
    table = source.this
    parts = [p for p in (table.catalog, table.db, table.name) if p]
    if len(parts) == 1 and datasource:
        parts.insert(0, datasource)
    return ".".join(parts)


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
        return models_table([record], services.adapters.context.breakers)
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
        redact_url(record.url_predict), redact_url(record.url_train), record.task,
        record.version, record.status, record.target, dict(record.options), record.deployment,
        record.error, endpoint_state(services.adapters.context.breakers, record.url_predict),
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


def tokens_table(services: Services) -> Result:
    """mindsdb.tokens: every API token, revoked ones too, without its secret."""
    listed = [token_dict(t) for t in services.catalog.list_tokens()]
    rows = [[t[c] for c in TOKEN_COLUMNS] for t in listed]
    return Result(columns=list(TOKEN_COLUMNS), rows=rows)


def catalog_query(services: Services, p: CatalogQueryPlan) -> Result:
    """Run a SELECT over snapshots of the catalog tables in a private in-memory SQLite.

    The catalog may live in any database; a snapshot keeps user SQL away from it, and the
    catalog is small (one row per model, database and job).
    """
    jobs = Result(
        columns=list(JOB_COLUMNS),
        rows=[
            [j.id, j.predictor, j.status, j.error, j.rows, j.started_at.isoformat(),
             j.finished_at.isoformat() if j.finished_at else None, j.owner,
             j.heartbeat_at.isoformat() if j.heartbeat_at else None]
            for j in services.catalog.list_jobs()
        ],
    )  # fmt: skip
    predictors = services.catalog.list_predictors()
    version_records = services.catalog.list_versions()
    versions = versions_table(version_records)
    tables = {
        "models": models_table(predictors, services.adapters.context.breakers),
        "jobs": jobs,
        "databases": datasources_table(services),
        "queries": Result(columns=list(ProgressRegistry.COLUMNS), rows=services.progress.rows()),
        "projects": projects_table(services),
        "models_versions": versions,
        "model_catalog": model_catalog_table(predictors, version_records),
    }
    # Only read when asked for: the audit log may be megabytes (gateway.auth lets only an
    # admin name these two).
    if "audit" in p.sql.lower():
        tables["audit"] = Result(columns=list(audit.COLUMNS), rows=audit.read_rows(services.home))
    if "tokens" in p.sql.lower():
        tables["tokens"] = tokens_table(services)
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
