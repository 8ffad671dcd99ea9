"""Score a logged model version on labelled rows (``EVALUATE m [VERSION n] FROM ds (...)``).

Like training, evaluation gets a :class:`~builtin_models.training.RowReader` and reads the
rows where it runs; :func:`submit_evaluation` runs it as a Ray task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from builtin_models import artifacts
from builtin_models.tasks import get_task
from builtin_models.training import RowReader, read_frame, task_options

__all__ = ["run_evaluation", "submit_evaluation"]


def run_evaluation(
    reader: RowReader,
    task_name: str,
    model_uri: str,
    tracking_uri: str | None = None,
    rename: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The task's metrics of model ``model_uri`` on the rows of ``reader`` (plus ``rows``).

    InvalidInput for rows the task cannot score (missing columns, NULLs, unknown labels).
    """
    task = get_task(task_name)
    impl = task.load()
    frame = read_frame(reader, task.columns, lambda _event: None, rename)
    trained = impl.load(artifacts.load_model(model_uri, tracking_uri))
    metrics = impl.evaluate(trained, impl.prepare_for(trained, frame))
    return {"rows": len(frame), **metrics}


def submit_evaluation(
    reader: RowReader,
    task_name: str,
    model_uri: str,
    tracking_uri: str | None = None,
    rename: Mapping[str, str] | None = None,
    *,
    num_cpus: float = 1,
    resources: Mapping[str, float] | None = None,
) -> Any:
    """Start :func:`run_evaluation` as a Ray task (``num_cpus`` and custom ``resources``
    as a training task's); an ObjectRef of the metrics."""
    import ray

    remote = ray.remote(run_evaluation).options(**task_options(num_cpus, resources))
    return remote.remote(reader, task_name, model_uri, tracking_uri, dict(rename or {}))
