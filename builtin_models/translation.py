"""The ``translation`` task: columns ``source`` -> ``target``, ``USING source_lang = 'en',
target_lang = 'fr'`` (required; checked by ``translation_options.py``), an encoder-decoder
fine-tuned with ``Seq2SeqTrainer`` (shared code: ``seq2seq.py``).

Metrics on the holdout: corpus BLEU and chrF from sacrebleu (``text_metrics.bleu_chrf``), in
[0, 100]. Predictions answer the translation; per query ``USING max_new_tokens``,
``num_beams``, ``temperature``, ``top_p``, ``seed`` (``seq2seq_model.py``).

Hyperparameters (any other ``TrainingArguments`` field is accepted too) and their defaults:

- ``learning_rate`` 1e-4, ``per_device_train_batch_size`` 16, ``num_train_epochs`` 3,
  ``weight_decay`` 0.01, ``warmup_steps`` 0.1, ``seed`` 42, length-grouped batches;
- ``max_length`` 128 and ``max_target_length`` 128: source and target tokens kept;
- ``max_new_tokens`` null (= ``max_target_length``) and ``num_beams`` 1: the generation
  defaults of the holdout evaluation and of the deployment;
- ``source_prefix`` null: T5 base models get "translate English to French: " (language names
  of the codes), others nothing.
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
from builtin_models.translation_options import check, language_name

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
    "max_length": 128,
    "max_target_length": 128,
    "max_new_tokens": None,
    "num_beams": 1,
    "source_prefix": None,
}


def _t5_prefix(options: Mapping[str, Any]) -> str:
    source = language_name(str(options.get("source_lang", "")))
    target = language_name(str(options.get("target_lang", "")))
    return f"translate {source} to {target}: "


SPEC = seq2seq.Spec(
    task="translation",
    target="target",
    defaults=DEFAULT_HYPERPARAMS,
    t5_prefix=_t5_prefix,
    metrics=text_metrics.bleu_chrf,
    alias_hint="SELECT en AS source, fr AS target FROM ...",
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
    """Check the options (source_lang, target_lang) and the rows; build the Examples (no
    side tables: ignored)."""
    return seq2seq.prepare(SPEC, frame, hyperparams, task_options=check(task_options or {}))


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
    """BLEU and chrF, ``test_rows`` and a ``samples`` report; {} for an empty holdout."""
    return seq2seq.evaluate(SPEC, trained, examples)


def save(trained: Trained, path: Path) -> None:
    seq2seq.save(trained, path)


def load(pyfunc_model: Any) -> Trained:
    return seq2seq.load(pyfunc_model)
