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
    "ALIASES",
    "TASKS",
    "StepCallback",
    "Task",
    "TaskImplementation",
    "get_task",
    "task_names",
]


class StepCallback(Protocol):
    """Called once after each optimizer step of a training loop: ``(step, total_steps,
    epoch)`` and that step's training ``loss`` (the curve logged to MLflow; None where a
    loop does not know it)."""

    def __call__(self, step: int, total: int, epoch: float, loss: float | None = None) -> None:
        """Report one step."""


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

    def prepare(
        self,
        frame: pd.DataFrame,
        hyperparams: Mapping[str, Any],
        *,
        task_options: Mapping[str, Any] | None = None,
        side: Mapping[str, pd.DataFrame] | None = None,
    ) -> Any:
        """Validate the rows (InvalidInput with the reason) and return the task's Examples.

        ``task_options``: the checked :attr:`Task.options`; ``side``: the frames of side
        tables (e.g. ``item_metadata``) read next to the training query.
        """
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
    #: The ``USING`` options the task takes besides the platform's (task, hyperparams, ...).
    options: tuple[str, ...] = ()
    #: ``module:function`` checking those options at CREATE time (light: no pandas, torch):
    #: ``options -> normalised options``, InvalidOption for a wrong one. None: no checks.
    options_checker: str | None = None
    #: Other names ``get_task`` accepts (HeatWave's ``MODEL_NAME`` spellings).
    aliases: tuple[str, ...] = ()
    #: The model a task trains from scratch (no pretrained base model, no ``model_name``);
    #: None: the task fine-tunes the base model that ``model_name`` names.
    own_model: str | None = None
    #: The base model when ``model_name`` is not given: a hub id that a package installs
    #: offline (``packaged_models.PACKAGED``).
    default_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    #: Whether training needs the target column (a recommender learns from pairs alone:
    #: implicit feedback, no rating).
    target_required: bool = True
    #: Whether predictions are values of the target (a classifier's labels); a recommender
    #: answers ids and scores, so its first output is called ``prediction``.
    answers_target: bool = True
    #: Whether the training rows hold the target column. A text generator learns from its
    #: text alone: its target (``PREDICT continuation``) only names the column it answers.
    target_in_rows: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a training query must return: inputs, then the target."""
        return (*self.input_columns, self.target_column)

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` checked and normalised by :attr:`options_checker` (imported here)."""
        if self.options_checker is None:
            return dict(options)
        module, _, name = self.options_checker.partition(":")
        checker: Callable[[Mapping[str, Any]], dict[str, Any]] = getattr(
            importlib.import_module(module), name
        )
        return checker(options)

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
        Task(
            name="question_answering",
            description="fine-tune an encoder to extract the answer to a question from its "
            "context (answers answer, score, start, end)",
            input_columns=("question", "context"),
            target_column="answer",
            implementation="builtin_models.question_answering",
            metrics=("exact_match", "f1"),
        ),
        Task(
            name="summarization",
            description="fine-tune an encoder-decoder to summarize text (ROUGE)",
            input_columns=("source",),
            target_column="summary",
            implementation="builtin_models.summarization",
            metrics=("rouge1", "rouge2", "rougeL"),
        ),
        Task(
            name="translation",
            description="fine-tune an encoder-decoder to translate text from source_lang to "
            "target_lang (BLEU, chrF)",
            input_columns=("source",),
            target_column="target",
            implementation="builtin_models.translation",
            metrics=("bleu", "chrf"),
            options=("source_lang", "target_lang"),
            options_checker="builtin_models.translation_options:check",
        ),
        Task(
            name="text_generation",
            description="fine-tune a causal language model on text to continue prompts "
            "(perplexity)",
            input_columns=("text",),
            target_column="continuation",
            implementation="builtin_models.text_generation",
            metrics=("perplexity", "base_perplexity"),
            default_model="HuggingFaceTB/SmolLM2-135M-Instruct",
            target_required=False,
            target_in_rows=False,
        ),
        Task(
            name="recommendation",
            description="a TwoTower recommender trained on user-item interactions "
            "(HeatWave semantics)",
            input_columns=("user_id", "item_id"),
            target_column="rating",
            implementation="builtin_models.recommendation",
            metrics=("precision_at_k", "recall_at_k", "hr_at_k", "ndcg_at_k"),
            options=(
                "users",
                "items",
                "feedback",
                "feedback_threshold",
                "item_metadata",
                "user_metadata",
                "model_list",
            ),
            options_checker="builtin_models.recommendation_options:check",
            aliases=("recommender",),
            own_model="TwoTower",
            target_required=False,
            answers_target=False,
        ),
    )
}
#: Alias -> task name.
ALIASES: dict[str, str] = {alias: t.name for t in TASKS.values() for alias in t.aliases}


def task_names() -> list[str]:
    """The registered task names, sorted."""
    return sorted(TASKS)


def get_task(name: str) -> Task:
    """The task called ``name`` (case-insensitive; ``-`` and ``_`` are the same).

    Raises InvalidOption listing the tasks, with a did-you-mean when one is close.
    """
    key = str(name).strip().lower().replace("-", "_")
    task = TASKS.get(ALIASES.get(key, key))
    if task is not None:
        return task
    hint = did_you_mean(key, [*TASKS, *ALIASES])
    text = f"Unknown task '{name}'."
    if hint:
        text += f" Did you mean {hint}?"
    text += f" Available tasks: {', '.join(task_names())}."
    raise InvalidOption(text, option="task", value=str(name), suggestion=hint)
