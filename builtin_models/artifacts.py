"""Log trained built-in models to MLflow, and load them back.

Every training run is an MLflow run (params, hyperparams, metrics, reports) holding the
model as an MLflow pyfunc "model from code": the task's model file (e.g.
``text_classifier_model.py``) and the files it imports (``code_paths``:
``model_support.py``) plus the ``save_pretrained`` directory as an artifact. The real
``mlflow models serve -m <model_uri>`` serves it, and a Ray Serve deployment loads it with
:func:`load_model`.

Tracking URI: a parameter; the default is MLflow 3's own recommendation, a SQLite database,
here ``sqlite:///<home>/mlflow.db`` with artifacts in ``<home>/mlartifacts`` (``home`` is
``$BYOM_HOME`` or ``~/.byom``). Any other URI (``http://...`` a tracking server,
``postgresql://...``, ``file:...``) works the same way.

Artifact root: where a new experiment keeps its models (``artifact_root``, the gateway's
``$BYOM_ARTIFACT_ROOT``: ``s3://bucket/prefix``, or a folder every Ray node mounts at the
same path). On a cluster, training tasks and Serve replicas run on any node, so both the
tracking store and the artifact root must be reachable from every node; the SQLite default
is only when ``$BYOM_HOME`` itself is such a shared folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_EXPERIMENT",
    "LOSS_CURVE",
    "MAX_CURVE_POINTS",
    "MODEL_ARTIFACT",
    "LoggedModel",
    "curve_points",
    "default_tracking_uri",
    "load_model",
    "log_model",
    "metric_history",
    "pip_requirements",
    "store_lock",
    "tracking",
]

log = logging.getLogger("byom.artifacts")

DEFAULT_EXPERIMENT = "byom"
MODEL_ARTIFACT = "model"  # the logged model's name (and its artifact key in the pyfunc)
#: The MLflow metric holding a run's training-loss curve (one point per logged step); the
#: scalar ``train_loss`` is the mean over the run.
LOSS_CURVE = "loss"
#: A curve keeps at most this many points (bucket means): a long run stays one log_batch.
MAX_CURVE_POINTS = 500
# What a logged model needs to be served anywhere (pinned to the versions that trained it).
_SERVING_PACKAGES = ("mlflow", "torch", "transformers", "pandas", "numpy")


@dataclass(frozen=True)
class LoggedModel:
    """Where a training run's model went."""

    run_id: str
    experiment_id: str
    model_uri: str  # ``models:/<model id>``: needs the tracking URI to resolve
    artifact_uri: str  # the model directory itself (``file:///...``, ``s3://...``)
    tracking_uri: str


def _home() -> Path:
    env = os.environ.get("BYOM_HOME")  # the same rule as catalog.db.default_home
    return (Path(env) if env else Path.home() / ".byom").expanduser().absolute()


def default_tracking_uri(home: Path | None = None) -> str:
    """``sqlite:///<home>/mlflow.db`` (the folder is created)."""
    folder = Path(home).expanduser().absolute() if home is not None else _home()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def _artifact_root(tracking_uri: str) -> str | None:
    """Artifacts next to a SQLite tracking database; None leaves it to the server/store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()


@contextlib.contextmanager
def tracking(tracking_uri: str | None) -> Iterator[str]:
    """Point MLflow's fluent API at ``tracking_uri`` (default: see module) for a block.

    The process-wide URI is restored afterwards. MLflow keeps it in a global, so do not
    log from several threads of one process with different URIs at once.
    """
    import mlflow

    uri = tracking_uri or default_tracking_uri()
    previous = mlflow.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets it


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """One process at a time through a block that may create a SQLite store's tables or an
    experiment (a lock file next to the database; nothing for other stores or without
    ``fcntl``): two trainings starting on a fresh store would both run its migrations
    (Alembic fails "expected to match one row") or create the same experiment."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None  # type: ignore[assignment]
    if fcntl is None or not tracking_uri.startswith("sqlite:///"):
        yield
        return
    path = Path(tracking_uri[len("sqlite:///") :])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _experiment_id(name: str, tracking_uri: str, artifact_root: str | None = None) -> str:
    """The experiment ``name``, created with ``artifact_root`` (default: next to a SQLite
    store, else the store's or server's own default) when it does not exist."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        if artifact_root and not _same_location(found.artifact_location, artifact_root):
            # MLflow fixes an experiment's location when it is created: say why the
            # models do not go where the setting says.
            log.warning(
                "MLflow experiment %r keeps its artifacts at %s, not at the artifact root %s "
                "(an existing experiment's location cannot change; use another experiment "
                "or tracking store)",
                name,
                found.artifact_location,
                artifact_root,
            )
        return str(found.experiment_id)
    location = artifact_root or _artifact_root(tracking_uri)
    return str(mlflow.create_experiment(name, artifact_location=location))


def _same_location(location: str, root: str) -> bool:
    """Whether an experiment's location is ``root`` (a path and its ``file:`` URI agree)."""

    def norm(text: str) -> str:
        if "://" not in text and not text.startswith("file:"):
            text = Path(text).expanduser().absolute().as_uri()
        return text.rstrip("/")

    return norm(location) == norm(root)


def pip_requirements(packages: Sequence[str] | None = None) -> list[str]:
    """The pinned ``packages`` a served model needs (default: those of a transformers model),
    at the versions installed here."""
    pins = []
    for package in packages or _SERVING_PACKAGES:
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def log_model(
    model_dir: Path,
    *,
    code_path: Path,
    code_paths: Sequence[Path] = (),
    tracking_uri: str | None = None,
    artifact_root: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    hyperparams: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    curves: Mapping[str, Sequence[tuple[int, float]]] | None = None,
    reports: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    input_example: Any = None,
    params_example: Mapping[str, Any] | None = None,
    packages: Sequence[str] | None = None,
) -> LoggedModel:
    """Log one training run: its params, hyperparams (``hp.<name>``), scalar metrics,
    metric histories (``curves``: name -> (step, value) points), JSON reports
    (``<name>.json``) and the model (``code_path`` + ``model_dir``).

    ``code_paths``: Python files the model file imports (MLflow copies them into the model's
    ``code/`` folder and puts it on ``sys.path`` when it loads the model, so they need not be
    installed where it is served).

    ``params_example``: the predict params the model takes, with their defaults (declared in
    the signature, so pyfunc and ``mlflow models serve`` pass them through); ``packages``:
    what serving needs (default: :func:`pip_requirements`'s); ``artifact_root``: where the
    experiment keeps its artifacts if this run creates it. Metrics that are None
    (undefined on this holdout) are left out.
    """
    import mlflow
    from mlflow.models import infer_signature

    with tracking(tracking_uri) as uri:
        with store_lock(uri):
            experiment_id = _experiment_id(experiment, uri, artifact_root)
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name, tags=dict(tags or {})
        ) as run:
            logged = {k: _param_value(v) for k, v in (params or {}).items()}
            logged.update({f"hp.{k}": _param_value(v) for k, v in (hyperparams or {}).items()})
            if logged:
                mlflow.log_params(logged)
            scalars = {
                k: float(v)
                for k, v in (metrics or {}).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            if scalars:
                mlflow.log_metrics(scalars)
            _log_curves(run.info.run_id, curves or {})
            for name, report in (reports or {}).items():
                mlflow.log_dict(report, f"{name}.json")
            signature = (
                infer_signature(input_example, params=dict(params_example or {}) or None)
                if input_example is not None
                else None
            )
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(code_path),
                code_paths=[str(p) for p in code_paths] or None,
                artifacts={MODEL_ARTIFACT: str(model_dir)},
                pip_requirements=pip_requirements(packages),
                signature=signature,
                input_example=input_example,
            )
            artifact_uri = mlflow.get_logged_model(info.model_id).artifact_location
    return LoggedModel(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=info.model_uri,
        artifact_uri=artifact_uri,
        tracking_uri=uri,
    )


def load_model(model_uri: str, tracking_uri: str | None = None) -> Any:
    """``mlflow.pyfunc.load_model`` of a logged model (``models:/...`` needs the URI)."""
    import mlflow

    if model_uri.startswith(("models:/", "runs:/")):
        with tracking(tracking_uri):
            return mlflow.pyfunc.load_model(model_uri)
    return mlflow.pyfunc.load_model(model_uri)


def curve_points(
    points: Sequence[tuple[int, float]], max_points: int = MAX_CURVE_POINTS
) -> list[tuple[int, float]]:
    """``points`` (step, value) in at most ``max_points``: consecutive buckets averaged, each
    at its last step (a long run's per-step losses are noisy anyway)."""
    if len(points) <= max_points:
        return [(int(step), float(value)) for step, value in points]
    size = -(-len(points) // max_points)  # ceil: never more than max_points buckets
    buckets = [points[i : i + size] for i in range(0, len(points), size)]
    return [(int(b[-1][0]), sum(float(v) for _, v in b) / len(b)) for b in buckets]


def _log_curves(run_id: str, curves: Mapping[str, Sequence[tuple[int, float]]]) -> None:
    """One ``log_batch`` per curve (MLflow takes up to 1,000 metrics a call)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient()  # inside tracking(): the run's store
    now = int(time.time() * 1000)
    for key, points in curves.items():
        metrics = [Metric(key, value, now, step) for step, value in curve_points(points)]
        if metrics:
            client.log_batch(run_id, metrics=metrics)


def metric_history(run_id: str, key: str, tracking_uri: str) -> list[tuple[int, float]]:
    """The (step, value) points of metric ``key`` of run ``run_id``, by step."""
    from mlflow.tracking import MlflowClient

    # A client of its own, not the fluent API's global URI: the gateway reads this from
    # worker threads while other threads may log elsewhere.
    history = MlflowClient(tracking_uri=tracking_uri).get_metric_history(run_id, key)
    return sorted((int(m.step), float(m.value)) for m in history)
