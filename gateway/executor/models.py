"""Model statements: CREATE PREDICTOR (register, then train in the background), its OR
REPLACE and IF NOT EXISTS forms, DROP MODEL."""

from __future__ import annotations

import asyncio

from byom.errors import GatewayError, ModelExists
from catalog.records import PredictorRecord, PredictorSpec, project_key
from gateway import statements as st
from gateway.executor.builtin import BuiltinModels
from gateway.executor.catalog_tables import models_table
from gateway.executor.services import Services
from gateway.executor.training import Trainer
from gateway.executor.training_query import checked_training_spec
from gateway.plans import RegisterPlan
from gateway.result import Result

# How long DROP MODEL / CREATE OR REPLACE wait for a cancelled training task to end.
STOP_TIMEOUT_S = 10.0


async def create(
    services: Services, trainer: Trainer, builtin: BuiltinModels, p: RegisterPlan
) -> Result:
    """CREATE [OR REPLACE] MODEL [IF NOT EXISTS]: store the predictor and start its training
    when it has a train URL and a query.

    Model names are unique across projects: a model of that name in another project is
    MODEL_EXISTS naming that project, whatever the form. In the same project, IF NOT EXISTS
    changes nothing and says so; OR REPLACE drops it (stopping its training) once the new
    definition passed its checks, so a mistake in it leaves the old model in place.
    """
    spec = p.spec
    existing = services.catalog.find_predictor(spec.name)
    kept = existing_answer(existing, spec, or_replace=p.or_replace, if_not_exists=p.if_not_exists)
    if kept is not None:
        return kept
    if spec.training_datasource is not None:
        services.datasource_record(spec.training_datasource)  # fail now, not in the background
    # The training query runs (wrapped, no rows) and has the target and dtype_dict columns:
    # a mistake there fails CREATE, not the background training. In a thread: a datasource
    # that does not answer must not hold up the other statements.
    spec = await asyncio.to_thread(checked_training_spec, services, spec)
    if existing is not None:  # OR REPLACE, and the new definition is sound
        await forget(services, trainer, builtin, existing)
    trains = spec.url_train is not None
    record = services.catalog.add_predictor(spec, status="generating" if trains else "complete")
    if trains:
        trainer.start(record)
    return models_table([record])


def existing_answer(
    existing: PredictorRecord | None, spec: PredictorSpec, *, or_replace: bool, if_not_exists: bool
) -> Result | None:
    """The answer of CREATE when model ``spec.name`` exists (IF NOT EXISTS), None when it may
    go on (no such model, or OR REPLACE in the same project); MODEL_EXISTS otherwise."""
    if existing is None:
        return None
    home, project = project_key(existing.namespace), project_key(spec.namespace)
    if home != project:
        raise ModelExists(
            f"Model '{spec.name}' already exists in project '{home}'; model names are "
            f"unique across projects: DROP MODEL {home}.{spec.name} first or pick "
            "another name.",
            model=spec.name,
            project=home,
        )
    if if_not_exists:
        return Result(message=f"Model '{home}.{spec.name}' already exists; nothing changed.")
    if not or_replace:
        raise ModelExists(
            f"Model '{spec.name}' already exists; DROP MODEL {spec.name} first or pick "
            "another name.",
            model=spec.name,
        )
    return None


async def drop(
    services: Services, trainer: Trainer, builtin: BuiltinModels, p: st.DropModel
) -> Result:
    """Forget a model: stop its training (and wait until the job recorded its end), remove
    its deployments (built-in), then its catalog rows."""
    record = services.catalog.find_predictor(p.name)
    if record is None:
        if p.if_exists:
            return Result(message=f"Model '{p.name}' does not exist; nothing dropped.")
        raise services.model_not_found(p.name)
    await forget(services, trainer, builtin, record)
    return Result(message=f"Model '{p.name}' dropped.")


async def forget(
    services: Services, trainer: Trainer, builtin: BuiltinModels, record: PredictorRecord
) -> None:
    """Stop whatever trains ``record``, remove its deployments, drop it from the catalog."""
    if record.kind == "builtin":
        if not await builtin.cancel(record.name):
            await stop_elsewhere(services, record.name)
        await builtin.remove_deployments(record.name)
    else:
        await stop_training(trainer, record.name)
    services.catalog.drop_predictor(record.name)


async def stop_elsewhere(services: Services, name: str) -> None:
    """The training of ``name`` runs in another replica (or none does): ask its owner to
    cancel it and wait until its job has ended, so dropping the rows never leaves a Ray
    task (and the deployment it would make) behind. GatewayError when the owner does not
    stop it in time; nothing is dropped then."""
    owner = services.catalog.request_cancel(name)
    if owner is None:
        return
    loop = asyncio.get_running_loop()
    wait = 2 * services.settings.heartbeat_interval + STOP_TIMEOUT_S
    deadline = loop.time() + wait
    while any(j.status == "running" for j in services.catalog.list_jobs(name)):
        if loop.time() > deadline:
            raise GatewayError(
                f"Model '{name}' is training in gateway {owner or '(unknown)'}, which did not "
                f"stop it within {wait:g} s; nothing was dropped. Try again, or wait "
                f"{services.settings.heartbeat_timeout:g} s for that gateway to count as lost.",
                code="TRAINING_ELSEWHERE",
                model=name,
            )
        await asyncio.sleep(0.2)


async def stop_training(trainer: Trainer, name: str) -> None:
    """Cancel the training of ``name`` and wait (at most ``STOP_TIMEOUT_S``) until its task
    has ended: it marks its job interrupted, which must happen before a model of the same
    name is dropped or created again."""
    trainer.cancel(name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_TIMEOUT_S
    while name in trainer.in_flight() and loop.time() < deadline:
        await asyncio.sleep(0.01)
