"""One training run of a built-in model, wherever Ray (or a test) runs it.

:func:`run_training` gets a :class:`RowReader` - never the rows - and reads the training
query where it runs, chunk by chunk; then it validates the rows, holds out a test split,
fine-tunes, evaluates, logs everything to MLflow and returns a :class:`TrainingResult`.
:func:`submit` starts it as a Ray task. Progress goes to a callback as :class:`Progress`
events (the percent covers the whole run: reading 0-5, training 5-90, evaluating 90-95,
logging 95-100).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from builtin_models import artifacts, base_models, holdout, model_support
from builtin_models.cluster import resource_options
from builtin_models.tasks import Task, get_task
from byom.errors import GatewayError, InvalidOption

__all__ = [
    "Progress",
    "ProgressBox",
    "ProgressFn",
    "RowReader",
    "TrainingRequest",
    "TrainingResult",
    "explain_ray_failure",
    "read_frame",
    "run_training",
    "start_progress_box",
    "submit",
    "task_options",
]

#: Environment a training task needs wherever Ray starts it.
_TASK_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MLFLOW_DISABLE_TELEMETRY", "BYOM_HOME")


class RowReader(Protocol):
    """Reads the training query where it is called: yields ``(columns, rows)`` chunks.

    The shape of ``datasources.Datasource.stream``: every chunk repeats the column names;
    rows are tuples in column order. It must pickle (Ray ships it to the trainer) and may be
    called more than once.
    """

    def __call__(self) -> Iterable[tuple[Sequence[str], Sequence[Sequence[Any]]]]: ...


@dataclass(frozen=True)
class Progress:
    """A progress event. ``phase``: reading | preparing | training | evaluating | logging |
    done. ``percent`` is of the whole run; epoch/step/total_steps are set while training."""

    phase: str
    percent: float
    epoch: float | None = None
    step: int | None = None
    total_steps: int | None = None
    message: str = ""
    pid: int | None = None  # the training process (to tell a crash from a slow run)


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class TrainingRequest:
    """What to train: the task and the ``USING`` options of ``CREATE MODEL``."""

    task: str
    model_name: str | None = None
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    test_size: float | int | None = None
    test_sampling: str | None = None
    tracking_uri: str | None = None  # None: artifacts.default_tracking_uri()
    #: Where a new experiment keeps the models (None: see artifacts._experiment_id).
    artifact_root: str | None = None
    experiment: str = artifacts.DEFAULT_EXPERIMENT
    run_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    num_threads: int | None = None  # torch threads; None keeps torch's (Ray's) choice
    #: Query column -> task column (``PREDICT sentiment`` feeds the task's ``labels``).
    rename: Mapping[str, str] = field(default_factory=dict)
    #: The task's own ``USING`` options (``Task.options``, e.g. recommendation's feedback).
    task_options: Mapping[str, Any] = field(default_factory=dict)
    #: Side tables read where training runs, by name (e.g. ``item_metadata``).
    side_readers: Mapping[str, RowReader] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingResult:
    """What a finished run produced; ``metrics`` holds scalars and JSON reports."""

    task: str
    run_id: str
    model_uri: str
    artifact_uri: str
    tracking_uri: str
    base_model: str
    metrics: dict[str, Any]
    rows_used: int
    train_rows: int
    test_rows: int
    labels: list[Any]
    hyperparams: dict[str, Any]
    duration_s: float
    #: Tables the model writes next to the catalog, by suffix (recommendation: users, items,
    #: interactions); {} for most tasks.
    tables: dict[str, Any] = field(default_factory=dict)


def read_frame(
    reader: RowReader,
    columns: Sequence[str] | None,
    report: ProgressFn,
    rename: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """All chunks of ``reader`` as one frame, ``rename``d (only ``columns``, if given and
    all present)."""
    names: list[str] | None = None
    rows: list[Sequence[Any]] = []
    for chunk_columns, chunk_rows in reader():
        names = list(chunk_columns)
        rows.extend(chunk_rows)
        report(Progress("reading", 2.5, message=f"{len(rows)} rows read"))
    frame = pd.DataFrame(rows, columns=names or [])
    if rename:
        frame = frame.rename(columns=dict(rename))
    by_lower = {str(c).lower(): c for c in frame.columns}
    if columns and all(c in by_lower for c in columns):
        frame = frame[[by_lower[c] for c in columns]]
    return frame


def _reporter(progress: ProgressFn | None) -> ProgressFn:
    pid = os.getpid()

    def report(event: Progress) -> None:
        if progress is not None:
            progress(dataclasses.replace(event, pid=pid))

    return report


def run_training(
    reader: RowReader,
    request: TrainingRequest,
    progress: ProgressFn | None = None,
) -> TrainingResult:
    """Read, validate, split, fine-tune, evaluate and log one model version.

    Raises the task's GatewayErrors (InvalidOption, InvalidInput) for anything the user
    can fix; options are checked before a row is read.
    """
    started = time.monotonic()
    report = _reporter(progress)
    task = get_task(request.task)
    impl = task.load()
    hyperparams = impl.validate_hyperparams(request.hyperparams)
    options = task.check_options(request.task_options)
    test_size, test_sampling = holdout.validate(request.test_size, request.test_sampling)
    base_name, base_path = _base_model(task, request.model_name)
    if request.num_threads:
        import torch

        torch.set_num_threads(int(request.num_threads))

    report(Progress("reading", 0.0))
    frame = read_frame(reader, task.columns, report, request.rename)
    side = {name: read_frame(r, None, report) for name, r in request.side_readers.items()}
    report(Progress("preparing", 5.0, message=f"{len(frame)} rows"))
    examples = impl.prepare(frame, hyperparams, task_options=options, side=side)
    keys = impl.stratify_keys(examples)  # one per example (a task may drop rows)
    split = holdout.split(
        len(keys),
        test_size,
        test_sampling,
        classes=keys,
        seed=int(hyperparams.get("seed", holdout.DEFAULT_SEED)),
    )
    example_rows = (
        impl.input_example(examples)
        if hasattr(impl, "input_example")
        else frame[list(task.input_columns)].head(2)
    )

    losses: list[tuple[int, float]] = []

    def on_step(step: int, total: int, epoch: float, loss: float | None = None) -> None:
        if loss is not None:
            losses.append((step, loss))
        share = step / total if total else 1.0
        report(Progress("training", 5.0 + 85.0 * share, epoch, step, total))

    with tempfile.TemporaryDirectory(prefix="byom-train-") as workdir:
        trained = impl.train(
            impl.subset(examples, split.train),
            base_model=base_path,
            hyperparams=hyperparams,
            workdir=Path(workdir) / "trainer",
            on_step=on_step,
        )
        report(Progress("evaluating", 90.0, message=f"{len(split.test)} holdout rows"))
        metrics = impl.evaluate(trained, impl.subset(examples, split.test))
        report(Progress("logging", 95.0))
        model_dir = Path(workdir) / "model"
        impl.save(trained, model_dir)
        reports = {k: v for k, v in metrics.items() if isinstance(v, dict | list)}
        scalars = {k: v for k, v in metrics.items() if k not in reports}
        if getattr(trained, "train_loss", None) is not None:
            scalars["train_loss"] = trained.train_loss
        logged = artifacts.log_model(
            model_dir,
            code_path=impl.MODEL_CODE_PATH,
            # Every model file imports the shared helpers; shipped with the model, they serve
            # where this package is not installed.
            code_paths=[Path(model_support.__file__)],
            tracking_uri=request.tracking_uri,
            artifact_root=request.artifact_root,
            experiment=request.experiment,
            run_name=request.run_name,
            params={
                "task": task.name,
                "model_name": base_name,
                "base_model_path": base_path,
                "test_size": test_size,
                "test_sampling": test_sampling,
                "rows": len(keys),
                "train_rows": len(split.train),
                "test_rows": len(split.test),
                "labels": impl.labels(trained),
                **{f"option.{k}": v for k, v in options.items()},
            },
            hyperparams=hyperparams,
            metrics=scalars,
            curves={artifacts.LOSS_CURVE: losses},
            reports=reports,
            tags={"byom.task": task.name, **request.tags},
            input_example=example_rows,
            params_example=getattr(impl, "PARAMS_EXAMPLE", None),
            packages=getattr(impl, "SERVING_PACKAGES", None),
        )
        made = impl.tables(trained) if hasattr(impl, "tables") else {}
    result = TrainingResult(
        task=task.name,
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        artifact_uri=logged.artifact_uri,
        tracking_uri=logged.tracking_uri,
        base_model=base_name,
        metrics={**scalars, **reports},
        rows_used=len(keys),
        train_rows=len(split.train),
        test_rows=len(split.test),
        labels=impl.labels(trained),
        hyperparams=hyperparams,
        duration_s=round(time.monotonic() - started, 3),
        tables=made,
    )
    report(Progress("done", 100.0))
    return result


def _base_model(task: Task, model_name: str | None) -> tuple[str, str]:
    """``(name, local path)`` of the base model; a task with its own model has none (and
    takes no ``model_name``)."""
    if task.own_model is None:
        base = base_models.resolve(model_name, default=task.default_model)
        return base.name, base.path
    if model_name is not None and str(model_name).strip().lower() not in (
        "",
        task.own_model.lower(),
    ):
        raise InvalidOption(
            f"{task.name} trains its own {task.own_model} model from scratch: model_name "
            f"'{model_name}' does not apply; remove it.",
            option="model_name",
            value=str(model_name),
        )
    return task.own_model, ""


def submit(
    reader: RowReader,
    request: TrainingRequest,
    progress: ProgressFn | None = None,
    *,
    num_cpus: float = 1,
    resources: Mapping[str, float] | None = None,
) -> Any:
    """Start :func:`run_training` as a Ray task on the connected cluster; an ObjectRef.

    ``num_cpus`` is what the task reserves (keep some CPU for serving replicas); torch uses
    as many threads unless the request says otherwise. ``resources``: custom Ray resources
    it also reserves (``{"trainer": 1}`` runs it on a node started with ``--resources
    '{"trainer": 1}'``). ``progress`` runs in the task: pass something that forwards events
    to the caller (e.g. an actor method's ``.remote``).
    """
    import ray

    if request.num_threads is None:
        request = dataclasses.replace(request, num_threads=max(1, int(num_cpus)))
    remote = ray.remote(run_training).options(**task_options(num_cpus, resources))
    return remote.remote(reader, request, progress)


def task_options(num_cpus: float, resources: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Ray options of a training or evaluation task: its CPUs and custom resources, no
    retry (a failure is the user's to see), and the environment it needs (offline hub, the
    gateway's home)."""
    env = {k: os.environ[k] for k in _TASK_ENV if k in os.environ}
    options: dict[str, Any] = {
        "num_cpus": num_cpus,
        "max_retries": 0,
        "runtime_env": {"env_vars": env} if env else None,
    }
    options.update(resource_options(resources))
    return options


class ProgressBox:
    """The latest :class:`Progress` of one run: a Ray actor the gateway polls, so progress
    reaches the catalog through the gateway alone."""

    def __init__(self) -> None:
        self.latest: Progress | None = None

    def put(self, event: Progress) -> None:
        self.latest = event

    def get(self) -> Progress | None:
        return self.latest


@dataclass(frozen=True)
class _ToBox:
    """A picklable progress callback that forwards events to a ProgressBox actor."""

    box: Any

    def __call__(self, event: Progress) -> None:
        self.box.put.remote(event)  # fire and forget: training never waits on progress


def start_progress_box() -> tuple[Any, ProgressFn]:
    """A new ProgressBox actor (no CPU) and the callback that feeds it."""
    import ray

    box = ray.remote(num_cpus=0)(ProgressBox).remote()
    return box, _ToBox(box)


def explain_ray_failure(exc: BaseException) -> GatewayError:
    """The GatewayError inside a failed Ray training task, or one that explains the crash.

    Ray wraps a task's exception (``RayTaskError``); a worker killed by the memory monitor
    or the OS raises ``OutOfMemoryError`` / ``WorkerCrashedError`` with no exception of ours.
    """
    import ray.exceptions as rex

    cause = exc.cause if isinstance(exc, rex.RayTaskError) else exc
    if isinstance(cause, GatewayError):
        return cause
    if isinstance(exc, rex.OutOfMemoryError):
        return InvalidOption(
            "Training ran out of memory (Ray stopped the task). Lower "
            "hyperparams.per_device_train_batch_size or max_length, or train on fewer rows.",
            code="OUT_OF_MEMORY",
        )
    if isinstance(exc, rex.WorkerCrashedError):
        return InvalidOption(
            "The training process died, most often out of memory (killed by the OS). Lower "
            "hyperparams.per_device_train_batch_size or max_length, or train on fewer rows.",
            code="OUT_OF_MEMORY",
        )
    return GatewayError(f"Training failed: {type(cause).__name__}: {cause}")
