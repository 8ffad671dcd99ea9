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

from pathlib import Path
from typing import Any

from builtin_models import hf_training, seq2seq, seq2seq_model, text_metrics
from builtin_models.seq2seq import Examples, Trained
from builtin_models.seq2seq_model import PARAMS_EXAMPLE

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


_TASK = seq2seq.Seq2SeqTask(SPEC)
# The TaskImplementation names (tasks.py), bound to this task's SPEC.
validate_hyperparams = _TASK.validate_hyperparams
prepare = _TASK.prepare
prepare_for = _TASK.prepare_for
labels = _TASK.labels
train = _TASK.train
evaluate = _TASK.evaluate
stratify_keys = seq2seq.stratify_keys
subset = seq2seq.subset
save = seq2seq.save
load = seq2seq.load
