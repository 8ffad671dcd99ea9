"""Planning the statements of built-in models: CREATE ... USING task=..., RETRAIN, EVALUATE,
CANCEL TRAINING, and the version switch ``UPDATE models SET active = true WHERE ...``.

Everything that can be checked without I/O is checked here: the task, the options and their
types. Whether the base model exists and the training query runs is the executor's check,
at CREATE time, before anything is stored.
"""

from __future__ import annotations

import json
from typing import Any

from sqlglot import exp

from adapters.urls import redact_url
from builtin_models.holdout import validate as validate_holdout
from builtin_models.tasks import ALIASES, TASKS, Task, get_task
from byom.errors import (
    DatasourceNotFound,
    InvalidOption,
    ModelNotFound,
    UnsupportedStatement,
    did_you_mean,
)
from catalog.records import PredictorRecord, PredictorSpec
from gateway import plan_catalog as names
from gateway import statements as st
from gateway.plans import (
    ActivateVersionPlan,
    CancelTrainingPlan,
    EvaluatePlan,
    Resolver,
    TrainBuiltinPlan,
)
from gateway.settings import parse_resources
from gateway.sql_tree import conjuncts, literal_value

#: USING options of a built-in model, kept per version.
TRAINING_OPTIONS = ("model_name", "hyperparams", "test_size", "test_sampling")
#: USING options of where a version runs on Ray, kept per version too (a restart deploys it
#: again with the same replicas): Serve replicas, custom Ray resources of the training task
#: and of each replica (instead of $BYOM_TRAIN_RESOURCES / $BYOM_REPLICA_RESOURCES).
CLUSTER_OPTIONS = ("replicas", "train_resources", "replica_resources")
BUILTIN_OPTIONS = ("task", *TRAINING_OPTIONS, *CLUSTER_OPTIONS, "active")
VERSION_TABLES = ("models", "models_versions")


def is_builtin(stmt: st.CreatePredictor) -> bool:
    """Whether CREATE MODEL asks for a built-in model (``task`` or ``model_name``)."""
    return "task" in stmt.options or "model_name" in stmt.options


def _task_of(options: dict[str, Any], model: str) -> tuple[Task, dict[str, Any]]:
    """The task and the remaining options. ``WHERE MODEL_NAME = 'text_classification'``
    names the task (the seed form); with ``task`` given, ``model_name`` is the base model."""
    options = dict(options)
    if "task" in options:
        return get_task(str(options.pop("task"))), options
    name = str(options.get("model_name", ""))
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)  # the seed's 'recommender' is task 'recommendation'
    if key in TASKS:
        options.pop("model_name")
        return TASKS[key], options
    raise InvalidOption(
        f"Model '{model}': model_name '{name}' is a base model, so the task is missing: add "
        f"USING task = '{next(iter(sorted(TASKS)))}' (tasks: {', '.join(sorted(TASKS))}).",
        model=model,
        option="task",
    )


def checked_options(options: dict[str, Any], model: str, task: Task) -> tuple[dict[str, Any], bool]:
    """The version's options (JSON hyperparams parsed, holdout checked, the task's own
    options checked by the task) and ``active``."""
    known = (*BUILTIN_OPTIONS, *task.options)
    unknown = [k for k in options if k not in known]
    if unknown:
        hint = did_you_mean(unknown[0], known)
        raise InvalidOption(
            f"Model '{model}': unknown option '{unknown[0]}' for a built-in {task.name} "
            "model."
            + (f" Did you mean {hint}?" if hint else "")
            + f" Options: {', '.join(known)}.",
            model=model,
            option=unknown[0],
            suggestion=hint,
        )
    own = task.check_options({k: options[k] for k in task.options if k in options})
    out = {k: options[k] for k in TRAINING_OPTIONS if k in options}
    out.update(own)
    out.update(cluster_options(options, model))
    hyper = out.get("hyperparams")
    if isinstance(hyper, str):
        try:
            hyper = json.loads(hyper) if hyper.strip() else {}
        except ValueError as exc:
            raise InvalidOption(
                f"Model '{model}': hyperparams is not JSON ({exc}); write it as "
                "hyperparams = '{\"num_train_epochs\": 1}'.",
                model=model,
                option="hyperparams",
            ) from None
    if hyper is not None and not isinstance(hyper, dict):
        raise InvalidOption(
            f"Model '{model}': hyperparams must be a JSON object, e.g. "
            "'{\"learning_rate\": 3e-5}'.",
            model=model,
            option="hyperparams",
        )
    if hyper is not None:
        out["hyperparams"] = hyper
    if "model_name" in out and not str(out["model_name"]).strip():
        raise InvalidOption(f"Model '{model}': model_name is empty.", option="model_name")
    validate_holdout(out.get("test_size"), out.get("test_sampling"))
    active = options.get("active", True)
    if not isinstance(active, bool):
        raise InvalidOption(
            f"Model '{model}': active must be true or false, got {active!r}.", option="active"
        )
    return out, active


def cluster_options(options: dict[str, Any], model: str) -> dict[str, Any]:
    """The :data:`CLUSTER_OPTIONS` among ``options``, checked: ``replicas`` a positive
    whole number (``2`` or ``'2'``), the resources a JSON object of positive amounts."""
    out: dict[str, Any] = {}
    if "replicas" in options:
        out["replicas"] = _replicas(options["replicas"], model)
    for key in ("train_resources", "replica_resources"):
        if key not in options:
            continue
        raw = options[key]
        text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        try:
            out[key] = parse_resources(text, key)
        except InvalidOption as exc:
            raise InvalidOption(
                f"Model '{model}': {exc.message} Example: {key} = '{{\"trainer\": 1}}'.",
                model=model,
                option=key,
            ) from None
        if "CPU" in out[key]:
            raise InvalidOption(
                f"Model '{model}': {key} takes custom Ray resources (and GPU); the CPUs are "
                "the gateway's BYOM_TRAIN_CPUS / BYOM_REPLICA_CPUS.",
                model=model,
                option=key,
            )
    return out


def _replicas(value: Any, model: str) -> int:
    """``USING replicas = n``: Serve replicas of the version, a positive whole number."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number < 1:
        raise InvalidOption(
            f"Model '{model}': replicas must be a positive whole number (the Ray Serve "
            f"replicas of the version), got {value!r}.",
            model=model,
            option="replicas",
            value=str(value),
        )
    return number


def plan_create(stmt: st.CreatePredictor, namespace: str) -> TrainBuiltinPlan:
    """``CREATE MODEL ... USING task=...`` or the seed form ``WHERE MODEL_NAME = '<task>'``."""
    task, options = _task_of(stmt.options, stmt.name)
    for key in ("url.predict", "url.train", "format", "dtype_dict"):
        if key in options:
            raise InvalidOption(
                f"Model '{stmt.name}' is a built-in {task.name} model, hosted by the gateway: "
                f"it takes no {key} (that is for external models).",
                model=stmt.name,
                option=key,
            )
    seed_form = "task" not in stmt.options
    if "feedback" in task.options and not stmt.target:
        # Pairs alone (the seed form: user_id, item_id) are implicit feedback; explicit
        # feedback, HeatWave's default, needs the rating column as the target.
        options.setdefault("feedback", "implicit")
    training, active = checked_options(options, stmt.name, task)
    if not (stmt.query or "").strip():
        columns = task.columns if task.target_in_rows else task.input_columns
        raise InvalidOption(
            f"Model '{stmt.name}': a built-in model is trained from your rows: add FROM "
            f"mydb (SELECT ... AS {', ... AS '.join(columns)} FROM ...).",
            model=stmt.name,
        )
    spec = PredictorSpec(
        name=stmt.name,
        namespace=namespace,
        kind="builtin",
        format="ray_serve",
        # The default target names the answer column too, unless training reads it and
        # may do without it (a recommender's pairs alone: implicit feedback).
        target=stmt.target
        or (task.target_column if task.target_required or not task.target_in_rows else None),
        training_datasource=stmt.datasource,
        training_query=stmt.query,
        options=training,
        task=task.name,
    )
    return TrainBuiltinPlan(
        spec=spec,
        activate=active,
        seed_answer=seed_form,
        or_replace=stmt.or_replace,
        if_not_exists=stmt.if_not_exists,
    )


def _builtin_model(
    name: str, namespace: str | None, resolver: Resolver, what: str
) -> PredictorRecord:
    """Built-in model ``[namespace.]name``; ModelNotFound, or UnsupportedStatement for an
    external model."""
    if namespace:
        record = names.model_in(name, names.require_project(namespace, resolver), resolver)
    else:
        record = resolver.model(name)
    if record is None:
        raise ModelNotFound.named(name, resolver.model_names())
    if record.kind != "builtin":
        raise UnsupportedStatement(
            f"{what} works on built-in models; '{name}' is an external model served at "
            f"{redact_url(record.url_predict)}: train it where it runs.",
            model=name,
        )
    return record


def plan_retrain(stmt: st.Retrain, resolver: Resolver) -> TrainBuiltinPlan:
    """``RETRAIN m [FROM ...] [USING ...]``: the last options, overridden by the new ones."""
    record = _builtin_model(stmt.name, stmt.namespace, resolver, "RETRAIN")
    if "task" in stmt.options and get_task(str(stmt.options["task"])).name != record.task:
        raise InvalidOption(
            f"Model '{record.name}' is a {record.task} model; RETRAIN cannot change its task "
            "(create another model).",
            option="task",
        )
    given = {k: v for k, v in stmt.options.items() if k != "task"}
    training, active = checked_options(
        {**record.options, **given}, record.name, get_task(record.task or "")
    )
    spec = PredictorSpec(
        **{
            **record.spec.__dict__,
            "training_datasource": stmt.datasource if stmt.query else record.training_datasource,
            "training_query": stmt.query or record.training_query,
            "target": stmt.target or record.target,
            "options": training,
        }
    )
    return TrainBuiltinPlan(spec=spec, retrain=True, activate=active)


def plan_evaluate(stmt: st.Evaluate, resolver: Resolver) -> EvaluatePlan:
    """``EVALUATE m [VERSION n] FROM ds (query)``: the active version unless one is named."""
    record = _builtin_model(stmt.name, stmt.namespace, resolver, "EVALUATE")
    version = stmt.version if stmt.version is not None else record.version
    if version is None:
        raise InvalidOption(
            f"Model '{record.name}' has no active version yet (status '{record.status}'); "
            f"wait for training (DESCRIBE {record.name}) or name one: VERSION n.",
            model=record.name,
        )
    datasource = stmt.datasource or resolver.default_datasource
    if resolver.datasource_dialect(datasource) is None:
        raise DatasourceNotFound.named(datasource, resolver.datasource_names())
    return EvaluatePlan(
        model=resolver.model_version(record.name, version),
        datasource=datasource,
        query=stmt.query,
    )


def plan_cancel(stmt: st.CancelTraining, resolver: Resolver) -> CancelTrainingPlan:
    return CancelTrainingPlan(
        model=_builtin_model(stmt.name, stmt.namespace, resolver, "CANCEL TRAINING")
    )


def is_version_switch(tree: exp.Expression) -> bool:
    """``UPDATE [mindsdb.]models|models_versions SET active = ...``."""
    if not isinstance(tree, exp.Update) or not isinstance(tree.this, exp.Table):
        return False
    table = tree.this
    return table.name.lower() in VERSION_TABLES and (
        not table.db or table.db.lower() in st.MODEL_NAMESPACES
    )


def plan_version_switch(tree: exp.Update, resolver: Resolver) -> ActivateVersionPlan:
    """``UPDATE models SET active = true WHERE name = 'm' AND version = n`` (MindsDB's form;
    ``project = 'p'`` may be added)."""
    usage = (
        "Switch versions with: UPDATE models SET active = true WHERE name = 'm' AND version = 2."
    )
    sets = tree.expressions
    if (
        len(sets) != 1
        or not isinstance(sets[0], exp.EQ)
        or not isinstance(sets[0].this, exp.Column)
        or sets[0].this.name.lower() != "active"
        or literal_value(sets[0].expression) not in (True, 1, "true", "1")
    ):
        raise UnsupportedStatement(
            "The catalog's models table only takes SET active = true. " + usage
        )
    where = tree.args.get("where")
    found: dict[str, Any] = {}
    for cond in conjuncts(where.this) if where is not None else []:
        if not (isinstance(cond, exp.EQ) and isinstance(cond.this, exp.Column)):
            raise UnsupportedStatement(f"Unsupported condition {cond.sql()}. " + usage)
        found[cond.this.name.lower()] = literal_value(cond.expression)
    if "name" not in found or "version" not in found:
        raise UnsupportedStatement("Name the model and the version. " + usage)
    try:
        version = int(found["version"])
    except (TypeError, ValueError):
        raise InvalidOption(f"version must be a number, got {found['version']!r}.") from None
    name = str(found["name"]).lower()
    project = found.get("project")
    namespace = str(project).lower() if project else None
    record = _builtin_model(name, namespace, resolver, "Switching versions")
    resolver.model_version(record.name, version)  # ModelVersionNotFound with the list
    return ActivateVersionPlan(model=record, version=version)
