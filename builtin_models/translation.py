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

Multilingual base models (mBART-50, NLLB, M2M100) get their tokenizer's language codes
instead (``en`` -> ``en_XX``, ``eng_Latn`` or ``en``; ``language_codes.py``), and every
generated text starts with the target language's token.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from builtin_models import hf_training, seq2seq, seq2seq_model, text_metrics
from builtin_models.seq2seq import Examples, Trained
from builtin_models.seq2seq_model import PARAMS_EXAMPLE
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


_TASK = seq2seq.Seq2SeqTask(SPEC, check_options=check)
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
