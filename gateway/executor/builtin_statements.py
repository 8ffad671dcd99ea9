"""The statements of built-in models: CREATE ... USING task=... (and the seed form),
RETRAIN, EVALUATE, CANCEL TRAINING, the version switch, and ``DESCRIBE m.training_loss``.

What a user can get wrong is checked here before anything is stored: the base model (a
local path or a reachable hub id) and the training query (run wrapped to return no rows,
it must give the task's columns). Training itself is ``builtin.BuiltinModels``' job.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from dataclasses import replace
from typing import Any

from byom.errors import EndpointError, InvalidInput, InvalidOption
from catalog.records import PredictorSpec
from gateway.executor.builtin import BuiltinModels, column_renames, train_resources
from gateway.executor.catalog_tables import models_table
from gateway.executor.models import existing_answer, forget
from gateway.executor.services import Services
from gateway.executor.training import Trainer
from gateway.executor.training_query import probe_sql
from gateway.plans import (
    ActivateVersionPlan,
    CancelTrainingPlan,
    DescribePlan,
    EvaluatePlan,
    TrainBuiltinPlan,
)
from gateway.result import Result
from gateway.sql_tree import sql_for_datasource

# The answer of the seed form ``CREATE MODEL ... WHERE MODEL_NAME = '<task>'``.
SEED_COLUMNS = ["model_id", "model_name", "model_type", "training_data", "status"]
EVALUATE_COLUMNS = ["model", "version", "metric", "value"]
LOSS_COLUMNS = ["version", "step", "loss"]


async def train(
    services: Services, trainer: Trainer, builtin: BuiltinModels, p: TrainBuiltinPlan
) -> Result:
    """CREATE MODEL (a new built-in model, version 1) or RETRAIN (version n+1): check, store
    the version, start its training in the background, answer at once."""
    spec = p.spec
    catalog = services.catalog
    existing = catalog.find_predictor(spec.name)
    if not p.retrain:
        kept = existing_answer(
            existing, spec, or_replace=p.or_replace, if_not_exists=p.if_not_exists
        )
        if kept is not None:
            return kept
    elif builtin.training(spec.name):
        raise InvalidInput(
            f"Model '{spec.name}' is training already; wait for it (DESCRIBE {spec.name}) or "
            f"stop it with CANCEL TRAINING {spec.name}.",
            model=spec.name,
        )
    spec = await asyncio.to_thread(_checked_spec, services, spec)
    if p.retrain:
        assert existing is not None  # the planner found it
        record = existing
    else:
        if existing is not None:  # OR REPLACE, and the new definition is sound
            await forget(services, trainer, builtin, existing)
        record = catalog.add_predictor(spec, status="generating")
    version = catalog.add_version(
        record.name,
        task=spec.task or "",
        training_datasource=spec.training_datasource,
        training_query=spec.training_query,
        options=dict(spec.options),
    )
    job = catalog.start_job(record.name, extra={"version": version.version, "task": spec.task})
    version = catalog.update_version(record.name, version.version, job_id=job.id)
    builtin.start(replace(record, target=spec.target), version, p.activate)
    if p.seed_answer:
        row = [job.id, record.name, spec.task, spec.training_query, version.status]
        return Result(columns=list(SEED_COLUMNS), rows=[row])
    return models_table([catalog.get_predictor(record.name)])


def _checked_spec(services: Services, spec: PredictorSpec) -> PredictorSpec:
    """``spec`` with its query rewritten for its datasource, once the base model resolved
    and the query returned the task's columns (no rows read)."""
    from builtin_models.base_models import resolve
    from builtin_models.tasks import get_task

    task = get_task(spec.task or "")
    if task.own_model is None:  # a fine-tuned base model: it must exist (a TwoTower need not)
        resolve(spec.options.get("model_name"))  # InvalidOption naming a missing one
    name = spec.training_datasource or services.default_datasource
    ds = services.datasource(name)
    sql = sql_for_datasource(spec.training_query or "", name, ds.dialect)
    columns, _ = ds.query(probe_sql(sql))
    named = {v: k for k, v in column_renames(task, spec.target, spec.options).items()}
    needed = [named.get(c, c) for c in task.input_columns]
    if spec.target and task.target_in_rows:  # a generator's PREDICT column is its answer
        needed.append(spec.target)
    lower = {c.lower() for c in columns}
    missing = [c for c in needed if c.lower() not in lower]
    if missing:
        raise InvalidInput(
            f"Model '{spec.name}': the training query returns "
            f"{', '.join(columns) or 'no columns'} but a {task.name} model needs "
            f"{', '.join(needed)}; alias them: SELECT x AS {needed[0]}, ...",
            model=spec.name,
            missing=missing,
        )
    return replace(spec, training_datasource=name, training_query=sql)


async def evaluate(services: Services, builtin: BuiltinModels, p: EvaluatePlan) -> Result:
    """EVALUATE: the version's metrics on the query's rows, one row per metric."""
    from builtin_models.evaluation import submit_evaluation
    from builtin_models.tasks import get_task
    from builtin_models.training import explain_ray_failure

    record = p.model
    version = services.catalog.get_version(record.name, record.version or 0)
    if version.status != "complete" or not version.model_uri:
        raise InvalidInput(
            f"Model '{record.name}' version {version.version} is {version.status}; only a "
            "complete version can be evaluated.",
            model=record.name,
        )
    ds = services.datasource(p.datasource)
    sql = sql_for_datasource(p.query, p.datasource, ds.dialect)
    task = get_task(version.task)
    rename = {record.target: task.target_column} if record.target != task.target_column else {}
    await builtin.serve_url()  # Ray up
    ref = submit_evaluation(
        _reader(services, p.datasource, sql),
        version.task,
        version.model_uri,
        version.tracking_uri,
        rename,
        num_cpus=evaluation_cpus(services.settings.train_cpus),
        resources=train_resources(services.settings, version.options),
    )
    try:
        metrics = await asyncio.wrap_future(ref.future())
    except Exception as exc:  # the task's GatewayError, or what killed it
        raise explain_ray_failure(exc) from exc
    rows = [
        [record.name, version.version, key, _metric_value(value)] for key, value in metrics.items()
    ]
    return Result(columns=list(EVALUATE_COLUMNS), rows=rows)


def evaluation_cpus(wanted: float, free: float | None = None) -> float:
    """The CPUs an EVALUATE task asks for: ``BYOM_TRAIN_CPUS``, or what Ray has free when
    that is less. The caller waits for the answer, and on a small cluster the deployed
    replicas hold part of every CPU: a training-sized request would queue forever (seen
    with BYOM_TRAIN_CPUS = 2 on a 2-CPU machine). Evaluation only predicts: fewer CPUs are
    slower, never wrong."""
    if free is None:
        import ray

        free = float(ray.available_resources().get("CPU", 0.0))
    if free >= wanted:
        return wanted
    return max(0.1, math.floor(free * 10) / 10)  # tenths, never above what is free


def _reader(services: Services, datasource: str, sql: str) -> Any:
    from datasources.reader import QueryReader

    return QueryReader(services.datasource_record(datasource), sql)


def _metric_value(value: Any) -> Any:
    """Scalars as they are; reports (a confusion matrix) as JSON text, one type per column."""
    return json.dumps(value) if isinstance(value, dict | list) else value


async def cancel(services: Services, builtin: BuiltinModels, p: CancelTrainingPlan) -> Result:
    """CANCEL TRAINING m: stop its running job (the version ends as error: cancelled).

    The job may run in another replica sharing the catalog: then the request is recorded
    there, and that replica cancels it at its next heartbeat."""
    name = p.model.name
    if await builtin.cancel(name):
        return Result(message=f"Training of model '{name}' cancelled.")
    owner = services.catalog.request_cancel(name)
    if owner is None:
        raise InvalidInput(
            f"Model '{name}' has no training running (status '{p.model.status}').", model=name
        )
    every = services.settings.heartbeat_interval
    return Result(
        message=f"Cancel of model '{name}''s training requested: the gateway running it "
        f"({owner or 'unknown'}) stops it within about {every:g} s (DESCRIBE {name} shows it)."
    )


async def activate(services: Services, builtin: BuiltinModels, p: ActivateVersionPlan) -> Result:
    """Make version ``p.version`` the one that ``FROM m`` / ``JOIN m`` use."""
    version = services.catalog.get_version(p.model.name, p.version)
    if version.status != "complete":
        raise InvalidOption(
            f"Model '{p.model.name}' version {p.version} is {version.status}; only a complete "
            "version can be made active.",
            model=p.model.name,
        )
    await builtin.ensure_served(replace(p.model, version=version.version))  # deployed
    record = services.catalog.activate_version(p.model.name, p.version)
    return Result(
        message=f"Model '{record.name}' now answers with version {p.version}.",
    )


@functools.lru_cache(maxsize=256)
def _loss_points(run_id: str, tracking_uri: str) -> tuple[tuple[int, float], ...]:
    """A logged run's loss curve. A version gets its run id once its model and curve are
    logged, and the curve never changes after: kept, so a console refreshing a model page
    every 2 s while another version trains does not re-read MLflow (failures not kept)."""
    from builtin_models import artifacts

    return tuple(artifacts.metric_history(run_id, artifacts.LOSS_CURVE, tracking_uri))


async def training_loss(services: Services, p: DescribePlan) -> Result:
    """DESCRIBE m.training_loss: each logged version's training-loss curve, read from its
    MLflow run (one row per logged step; a version still training has none yet)."""

    record = p.model
    if record.kind != "builtin":
        raise InvalidInput(
            f"Model '{record.name}' is an external model ({record.format}): the gateway did "
            "not train it, so it has no training-loss curve.",
            model=record.name,
        )
    rows: list[list[Any]] = []
    for version in services.catalog.list_versions(record.name):
        if not version.run_id or not version.tracking_uri:
            continue
        try:
            points = await asyncio.to_thread(_loss_points, version.run_id, version.tracking_uri)
        except Exception as exc:  # the tracking store is another service: say which failed
            raise EndpointError(
                f"Reading model '{record.name}' version {version.version}'s training loss "
                f"from MLflow failed ({type(exc).__name__}); check that its tracking store "
                "is reachable from the gateway.",
                code="TRACKING_ERROR",
                model=record.name,
            ) from exc
        rows += [[version.version, step, loss] for step, loss in points]
    return Result(columns=list(LOSS_COLUMNS), rows=rows)
