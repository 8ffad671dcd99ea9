"""The ``summarization`` task: columns ``source`` -> ``summary``, an encoder-decoder
fine-tuned with ``Seq2SeqTrainer`` (shared code: ``seq2seq.py``).

Metrics on the holdout: ROUGE-1, ROUGE-2 and ROUGE-L F1 (``text_metrics.rouge``), in [0, 1].
Predictions answer the generated summary; per query ``USING max_new_tokens``, ``num_beams``,
``temperature``, ``top_p``, ``seed`` (``seq2seq_model.py``).

Hyperparameters (any other ``TrainingArguments`` field is accepted too) and their defaults:

- ``learning_rate`` 1e-4, ``per_device_train_batch_size`` 16, ``num_train_epochs`` 3,
  ``weight_decay`` 0.01, ``warmup_steps`` 0.1, ``seed`` 42, length-grouped batches;
- ``max_length`` 256: source tokens kept (longer documents are truncated);
- ``max_target_length`` 64: summary tokens kept for training;
- ``max_new_tokens`` null (= ``max_target_length``) and ``num_beams`` 1: the generation
  defaults of the holdout evaluation and of the deployment;
- ``source_prefix`` null: T5 base models get "summarize: ", others nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from builtin_models import hf_training, seq2seq, seq2seq_model, text_metrics
from builtin_models.seq2seq import Examples, Trained
from builtin_models.seq2seq_model import PARAMS_EXAMPLE
from builtin_models.tasks import StepCallback

__all__ = [
    "DEFAULT_HYPERPARAMS",
    "MODEL_CODE_PATH",
    "PARAMS_EXAMPLE",
    "SPEC",
    "Examples",
    "Trained",
    "evaluate",
    "labels",
    "load",
    "prepare",
    "prepare_for",
    "save",
    "stratify_keys",
    "subset",
    "train",
    "validate_hyperparams",
]

MODEL_CODE_PATH = Path(seq2seq_model.__file__)
DEFAULT_HYPERPARAMS: dict[str, Any] = {
    "learning_rate": 1e-4,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 32,
    "num_train_epochs": 3,
    "weight_decay": 0.01,
    "warmup_steps": 0.1,
    "seed": 42,
    **hf_training.LENGTH_GROUPING,
    "max_length": 256,
    "max_target_length": 64,
    "max_new_tokens": None,
    "num_beams": 1,
    "source_prefix": None,
}
SPEC = seq2seq.Spec(
    task="summarization",
    target="summary",
    defaults=DEFAULT_HYPERPARAMS,
    t5_prefix=lambda options: "summarize: ",
    metrics=text_metrics.rouge,
    alias_hint="SELECT article AS source, abstract AS summary FROM ...",
)


def validate_hyperparams(hyperparams: Mapping[str, Any] | None) -> dict[str, Any]:
    return seq2seq.validate_hyperparams(SPEC, hyperparams)


def prepare(
    frame: pd.DataFrame,
    hyperparams: Mapping[str, Any],
    *,
    task_options: Mapping[str, Any] | None = None,
    side: Mapping[str, pd.DataFrame] | None = None,
) -> Examples:
    """Check the rows and build the Examples (no options or side tables: ignored)."""
    return seq2seq.prepare(SPEC, frame, hyperparams)


def prepare_for(trained: Trained, frame: pd.DataFrame) -> Examples:
    return seq2seq.prepare_for(SPEC, trained, frame)


def stratify_keys(examples: Examples) -> list[Any]:
    return seq2seq.stratify_keys(examples)


def subset(examples: Examples, indices: Sequence[int]) -> Examples:
    return seq2seq.subset(examples, indices)


def labels(trained: Trained) -> list[Any]:
    return []


def train(
    examples: Examples,
    *,
    base_model: str,
    hyperparams: Mapping[str, Any],
    workdir: Path,
    on_step: StepCallback | None = None,
) -> Trained:
    return seq2seq.train(
        SPEC,
        examples,
        base_model=base_model,
        hyperparams=hyperparams,
        workdir=workdir,
        on_step=on_step,
    )


def evaluate(trained: Trained, examples: Examples) -> dict[str, Any]:
    """ROUGE-1/2/L F1, ``test_rows`` and a ``samples`` report; {} for an empty holdout."""
    return seq2seq.evaluate(SPEC, trained, examples)


def save(trained: Trained, path: Path) -> None:
    seq2seq.save(trained, path)


def load(pyfunc_model: Any) -> Trained:
    return seq2seq.load(pyfunc_model)
