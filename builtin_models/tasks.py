"""The task registry: ``MODEL_NAME``/``task`` -> column conventions and implementation.

A task is one module that implements :class:`TaskImplementation` (see
``text_classification.py``) plus one line in :data:`TASKS`. This module imports nothing heavy:
the implementation module (torch, transformers) is imported only when :meth:`Task.load` is
called, where the training or serving runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from byom.errors import InvalidOption, did_you_mean

if TYPE_CHECKING:  # the gateway's planner reads the registry: no pandas at its start-up
    import pandas as pd

__all__ = [
    "TASKS",
    "StepCallback",
    "Task",
    "TaskImplementation",
    "get_task",
    "task_names",
]

# (step, total_steps, epoch) after each optimizer step of a training loop.
StepCallback = Callable[[int, int, float], None]


class TaskImplementation(Protocol):
    """What a task module provides (module-level names; see text_classification.py).

    ``Examples`` is the task's validated training data and ``Trained`` its fitted model; the
    generic code only passes them between these functions.
    """

    #: Hyperparameters used when the user gives none (documented per task).
    DEFAULT_HYPERPARAMS: Mapping[str, Any]
    #: The MLflow "model from code" file that serves a saved model (``mlflow models serve``).
    MODEL_CODE_PATH: Path

    def validate_hyperparams(self, hyperparams: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults merged with the user's values; InvalidOption for unknown or bad keys."""
        ...

    def prepare(self, frame: pd.DataFrame, hyperparams: Mapping[str, Any]) -> Any:
        """Validate the rows (InvalidInput with the reason) and return the task's Examples."""
        ...

    def stratify_keys(self, examples: Any) -> Sequence[Any]:
        """One hashable class key per example, for ``test_sampling='stratified'``."""
        ...

    def subset(self, examples: Any, indices: Sequence[int]) -> Any:
        """The examples at ``indices``, in that order."""
        ...

    def train(
        self,
        examples: Any,
        *,
        base_model: str,
        hyperparams: Mapping[str, Any],
        workdir: Path,
        on_step: StepCallback | None = None,
    ) -> Any:
        """Fine-tune ``base_model`` (a local directory) on ``examples``; return Trained."""
        ...

    def evaluate(self, trained: Any, examples: Any) -> dict[str, Any]:
        """Holdout metrics: scalars, plus JSON-able reports (e.g. a confusion matrix)."""
        ...

    def save(self, trained: Any, path: Path) -> None:
        """Write the trained model to the directory ``path`` (the MLflow artifact)."""
        ...

    def load(self, pyfunc_model: Any) -> Any:
        """The Trained model inside a loaded MLflow pyfunc model of this task."""
        ...

    def prepare_for(self, trained: Any, frame: pd.DataFrame) -> Any:
        """Labelled rows as Examples that ``evaluate(trained, ...)`` can score."""
        ...

    def labels(self, trained: Any) -> list[Any]:
        """The labels (classes) the model predicts, or [] for tasks without classes."""
        ...


@dataclass(frozen=True)
class Task:
    """A built-in task: its SQL column conventions and the module that implements it."""

    name: str
    description: str
    input_columns: tuple[str, ...]
    target_column: str
    #: Dotted module path of the :class:`TaskImplementation`.
    implementation: str
    #: The Ray Serve deployment class, as ``module:Class``.
    deployment: str = "builtin_models.serving:ModelDeployment"
    #: Names of the holdout metrics the task reports (scalars).
    metrics: tuple[str, ...] = field(default_factory=tuple)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a training query must return: inputs, then the target."""
        return (*self.input_columns, self.target_column)

    def load(self) -> TaskImplementation:
        """Import and return the implementation module (torch and friends load here)."""
        module: Any = importlib.import_module(self.implementation)
        return module


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="text_classification",
            description="fine-tune a transformer to label text (one label, or several)",
            input_columns=("text",),
            target_column="labels",
            implementation="builtin_models.text_classification",
            metrics=("accuracy", "precision", "recall", "f1", "roc_auc"),
        ),
    )
}


def task_names() -> list[str]:
    """The registered task names, sorted."""
    return sorted(TASKS)


def get_task(name: str) -> Task:
    """The task called ``name`` (case-insensitive; ``-`` and ``_`` are the same).

    Raises InvalidOption listing the tasks, with a did-you-mean when one is close.
    """
    key = str(name).strip().lower().replace("-", "_")
    task = TASKS.get(key)
    if task is not None:
        return task
    hint = did_you_mean(key, TASKS)
    text = f"Unknown task '{name}'."
    if hint:
        text += f" Did you mean {hint}?"
    text += f" Available tasks: {', '.join(task_names())}."
    raise InvalidOption(text, option="task", value=str(name), suggestion=hint)
