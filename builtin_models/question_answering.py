"""The ``question_answering`` task: columns ``question``, ``context`` -> ``answer``, extractive.

An encoder with a span head (``AutoModelForQuestionAnswering`` on the base model; the
default is the packaged all-MiniLM-L6-v2, its span head new) learns where the answer starts
and ends in the context, fine-tuned with ``Trainer`` (``hf_training``). Contexts longer than
a window are read in overlapping windows (``question_answerer_model.py``); a training window
that does not hold the whole answer learns "not here" (its [CLS] token), as in SQuAD
fine-tuning.

Training rows give the answer *text*: its place is its first occurrence in the context, an
exact match first, else one ignoring case. A row whose answer is not in its context (or is
empty) cannot teach a span: like a NULL, it is an InvalidInput that counts such rows and
shows the first ones, so the user fixes or filters them (``WHERE INSTR(context, answer) >
0``); no row is dropped silently. EVALUATE scores answers as text, so there any row counts.

Hyperparameters (any other ``TrainingArguments`` field is accepted too) and their defaults:

- ``learning_rate`` 1e-4; ``per_device_train_batch_size`` 16, ``per_device_eval_batch_size``
  64; ``num_train_epochs`` 3; ``weight_decay`` 0.01; ``warmup_steps`` 0.1; ``seed`` 42;
  batches of similar lengths (``hf_training.LENGTH_GROUPING``);
- ``max_length`` 256: tokens per window (question and context), at most the tokenizer's;
- ``doc_stride`` 127: tokens shared by consecutive windows, less than ``max_length / 2``
  (when not given, lowered to fit a shorter ``max_length``; lowered to ``max_length / 4``
  when ``max_length`` is cut to the tokenizer's limit);
  questions are cut to ``max_length / 4`` tokens;
- ``max_answer_length`` 30: the longest answer predicted, in tokens (per query: ``USING
  max_answer_length = n``, 1 to 512).

Metrics: ``exact_match`` and ``f1`` (SQuAD v1.1 definitions, ``qa_metrics``), as fractions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import transformers
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding

from builtin_models import hf_training, question_answerer_model
from builtin_models.qa_metrics import qa_metrics
from builtin_models.question_answerer_model import (
    META_FILE,
    PARAMS_EXAMPLE,
    QuestionAnswerer,
    context_range,
    encode_windows,
)
from builtin_models.tasks import StepCallback
from byom.errors import InvalidInput, InvalidOption

__all__ = [
    "DEFAULT_HYPERPARAMS",
    "MIN_ROWS",
    "MODEL_CODE_PATH",
    "PARAMS_EXAMPLE",
    "Examples",
    "Trained",
    "answer_start",
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

QUESTION, CONTEXT, ANSWER = "question", "context", "answer"
MIN_ROWS = 10
#: How many rows whose answer is not in their context the error shows.
SHOWN_BAD_ROWS = 5
MODEL_CODE_PATH = Path(question_answerer_model.__file__)
DEFAULT_HYPERPARAMS: dict[str, Any] = {
    # Measured on XQuAD-en (826 training questions, benchmarks/builtin_tasks.py): 5e-5 and
    # 384-token windows gave F1 0.109 in 29 min, below the overlap-sentence baseline; 1e-4
    # and 256 give F1 0.241 in 16 min on one CPU. Small data needs the larger steps, and
    # most paragraphs fit 256 tokens (longer ones are windowed).
    "learning_rate": 1e-4,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "num_train_epochs": 3,
    "weight_decay": 0.01,
    "warmup_steps": 0.1,
    "seed": 42,
    **hf_training.LENGTH_GROUPING,
    "max_length": 256,
    "doc_stride": 127,
    "max_answer_length": 30,
}
# Keys of ours, not TrainingArguments fields.
_OWN_KEYS = ("max_length", "doc_stride", "max_answer_length")
_MIN_WINDOW = 32


@dataclass(frozen=True)
class Examples:
    """Validated rows: question, context, answer text and its start in the context (-1:
    not found, only in rows to score with ``prepare_for``)."""

    questions: list[str]
    contexts: list[str]
    answers: list[str]
    starts: list[int]


@dataclass
class Trained:
    """A fine-tuned answerer with its window settings."""

    model: Any
    tokenizer: Any
    max_length: int
    doc_stride: int
    max_answer_length: int
    train_loss: float | None = None
    eval_batch_size: int = 64

    def answerer(self) -> QuestionAnswerer:
        return QuestionAnswerer(self.model, self.tokenizer, self.meta())

    def meta(self) -> dict[str, Any]:
        return {
            "task": "question_answering",
            "max_length": self.max_length,
            "doc_stride": self.doc_stride,
            "max_answer_length": self.max_answer_length,
        }


def validate_hyperparams(hyperparams: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with ``hyperparams``; InvalidOption for unknown, fixed or bad values."""
    merged = hf_training.validate(hyperparams, DEFAULT_HYPERPARAMS, _OWN_KEYS)
    if "doc_stride" not in (hyperparams or {}) and isinstance(merged["max_length"], int):
        # A shorter window than the default keeps a stride that fits it.
        merged["doc_stride"] = min(merged["doc_stride"], (merged["max_length"] - 1) // 2)
    for key in ("doc_stride", "max_answer_length"):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidOption(
                f"hyperparams.{key} must be a positive integer, got {value!r}.",
                option="hyperparams",
            )
    if merged["max_length"] < _MIN_WINDOW:
        raise InvalidOption(
            f"hyperparams.max_length must be at least {_MIN_WINDOW} tokens for question "
            f"answering (a window holds the question and part of the context), got "
            f"{merged['max_length']}.",
            option="hyperparams",
        )
    if merged["doc_stride"] * 2 >= merged["max_length"]:
        raise InvalidOption(
            f"hyperparams.doc_stride ({merged['doc_stride']}) must be less than half of "
            f"max_length ({merged['max_length']}): consecutive windows share doc_stride tokens.",
            option="hyperparams",
        )
    return merged


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    by_lower = {str(c).lower(): c for c in frame.columns}
    if name not in by_lower:
        got = ", ".join(map(str, frame.columns)) or "no columns"
        raise InvalidInput(
            f"question_answering needs the columns {QUESTION}, {CONTEXT} and {ANSWER}; the "
            f"query returned {got}. Alias them, e.g. SELECT q AS {QUESTION}, passage AS "
            f"{CONTEXT}, a AS {ANSWER} FROM ...",
            column=name,
        )
    return frame[by_lower[name]]


def _no_nulls(values: pd.Series, name: str) -> None:
    nulls = values.isna()
    if nulls.any():
        first = int(nulls.to_numpy().nonzero()[0][0]) + 1
        raise InvalidInput(
            f"{int(nulls.sum())} of {len(values)} rows have a NULL {name} (the first is row "
            f"{first}): filter them out with WHERE {name} IS NOT NULL.",
            column=name,
        )


def _text(value: Any) -> str:
    """A cell as text (a numpy scalar as its Python value first: 1998, not 1998.0)."""
    return str(value.item() if hasattr(value, "item") else value)


def answer_start(answer: str, context: str) -> int:
    """Where ``answer`` first occurs in ``context``: an exact match first, else one ignoring
    case; -1 when it does not occur (or is empty)."""
    if not answer:
        return -1
    found = context.find(answer)
    if found < 0:
        found = context.lower().find(answer.lower())
        # Lowercasing may change lengths (e.g. 'İ'): keep only a match of the same text.
        if found >= 0 and context[found : found + len(answer)].lower() != answer.lower():
            found = -1
    return found


def _read(frame: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    columns = [_column(frame, name) for name in (QUESTION, CONTEXT, ANSWER)]
    for values, name in zip(columns, (QUESTION, CONTEXT, ANSWER), strict=True):
        _no_nulls(values, name)
    questions, contexts, answers = ([_text(v) for v in c.tolist()] for c in columns)
    return questions, contexts, [a.strip() for a in answers]


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def prepare(
    frame: pd.DataFrame,
    hyperparams: Mapping[str, Any],
    *,
    task_options: Mapping[str, Any] | None = None,
    side: Mapping[str, pd.DataFrame] | None = None,
) -> Examples:
    """Check the rows (columns, NULLs, row count, every answer in its context) and find each
    answer's start (the task has no options or side tables: both are ignored)."""
    questions, contexts, answers = _read(frame)
    if len(frame) < MIN_ROWS:
        raise InvalidInput(
            f"question_answering needs at least {MIN_ROWS} rows to train and evaluate, got "
            f"{len(frame)}.",
        )
    starts = [answer_start(a, c) for a, c in zip(answers, contexts, strict=True)]
    bad = [i for i, s in enumerate(starts) if s < 0]
    if bad:
        first = bad[0]
        shown = ", ".join(str(i + 1) for i in bad[:SHOWN_BAD_ROWS])
        more = f" and {len(bad) - SHOWN_BAD_ROWS} more" if len(bad) > SHOWN_BAD_ROWS else ""
        raise InvalidInput(
            f"{len(bad)} of {len(answers)} rows have an answer that is not in their context "
            f"(rows {shown}{more}; row {first + 1}: answer '{_short(answers[first])}', "
            f"context '{_short(contexts[first])}'). Extractive question answering learns "
            "where the answer is in the context: give the answer as it is written there "
            "(case aside), or filter the rows out, e.g. WHERE INSTR(context, answer) > 0.",
            column=ANSWER,
            bad_rows=len(bad),
            rows=[i + 1 for i in bad[:SHOWN_BAD_ROWS]],
        )
    return Examples(questions, contexts, answers, starts)


def prepare_for(trained: Trained, frame: pd.DataFrame) -> Examples:
    """Rows to score ``trained`` on (EVALUATE): answers are compared as text, so an answer
    that is not in its context only scores 0."""
    questions, contexts, answers = _read(frame)
    starts = [answer_start(a, c) for a, c in zip(answers, contexts, strict=True)]
    return Examples(questions, contexts, answers, starts)


def load(pyfunc_model: Any) -> Trained:
    """The Trained model inside a loaded MLflow pyfunc model of this task (to evaluate it)."""
    answerer: QuestionAnswerer = pyfunc_model.unwrap_python_model().answerer
    return Trained(
        model=answerer.model,
        tokenizer=answerer.tokenizer,
        max_length=answerer.max_length,
        doc_stride=answerer.doc_stride,
        max_answer_length=answerer.max_answer_length,
    )


def stratify_keys(examples: Examples) -> list[Any]:
    """No classes: one key for every row (``stratified`` is then a random split)."""
    return [""] * len(examples.questions)


def subset(examples: Examples, indices: Sequence[int]) -> Examples:
    """The rows at ``indices``, in that order."""
    return dataclasses.replace(
        examples,
        questions=[examples.questions[i] for i in indices],
        contexts=[examples.contexts[i] for i in indices],
        answers=[examples.answers[i] for i in indices],
        starts=[examples.starts[i] for i in indices],
    )


def labels(trained: Trained) -> list[Any]:
    return []


def _token_span(
    offsets: Sequence[tuple[int, int]], first: int, last: int, start: int, end: int
) -> tuple[int, int]:
    """Token indices of the characters ``start:end`` in a window whose context tokens are
    ``first..last``; ``(0, 0)`` (the [CLS] token) when the window does not hold them all."""
    if offsets[first][0] > start or offsets[last][1] < end:
        return 0, 0
    i = first
    while i <= last and offsets[i][1] <= start:
        i += 1
    j = last
    while j >= first and offsets[j][0] >= end:
        j -= 1
    return i, j


def windows(examples: Examples, tokenizer: Any, max_length: int, doc_stride: int) -> list[dict]:
    """The training windows: model inputs plus ``start_positions`` / ``end_positions``."""
    encoded = encode_windows(
        tokenizer, examples.questions, examples.contexts, max_length, doc_stride
    )
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    rows = []
    for w, row in enumerate(encoded["overflow_to_sample_mapping"]):
        start = examples.starts[row]
        end = start + len(examples.answers[row])
        found = context_range(encoded.sequence_ids(w))
        span = (0, 0)
        if found is not None:
            span = _token_span(encoded["offset_mapping"][w], *found, start, end)
        rows.append(
            {
                **{k: encoded[k][w] for k in keys},
                "start_positions": span[0],
                "end_positions": span[1],
            }
        )
    return rows


def train(
    examples: Examples,
    *,
    base_model: str,
    hyperparams: Mapping[str, Any],
    workdir: Path,
    on_step: StepCallback | None = None,
) -> Trained:
    """Fine-tune a span head on the model in directory ``base_model`` with ``Trainer``."""
    params = validate_hyperparams(hyperparams)
    own = {k: params.pop(k) for k in _OWN_KEYS}
    transformers.set_seed(int(params.get("seed", 42)))
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        model = AutoModelForQuestionAnswering.from_pretrained(base_model)
    except (OSError, ValueError) as exc:
        raise InvalidOption(
            f"Cannot load the base model from {base_model} for question answering: {exc}",
            option="model_name",
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise InvalidOption(
            f"The base model {base_model} has no fast tokenizer (tokenizer.json): question "
            "answering needs its character offsets to find answers.",
            option="model_name",
        )
    max_length, doc_stride = int(own["max_length"]), int(own["doc_stride"])
    if 0 < getattr(tokenizer, "model_max_length", 0) < max_length:
        max_length = int(tokenizer.model_max_length)
        if doc_stride * 2 >= max_length:
            doc_stride = max(1, max_length // 4)
    dataset = windows(examples, tokenizer, max_length, doc_stride)
    trainer, loss = hf_training.run_trainer(
        model,
        tokenizer,
        dataset,
        params,
        workdir=workdir,
        collator=DataCollatorWithPadding(tokenizer),
        on_step=on_step,
    )
    return Trained(
        model=trainer.model.eval(),
        tokenizer=tokenizer,
        max_length=max_length,
        doc_stride=doc_stride,
        max_answer_length=int(own["max_answer_length"]),
        train_loss=loss,
        eval_batch_size=int(trainer.args.per_device_eval_batch_size),
    )


def evaluate(trained: Trained, examples: Examples) -> dict[str, Any]:
    """Holdout ``exact_match`` and ``f1`` (``qa_metrics``); {} for an empty holdout."""
    if not examples.questions:
        return {}
    found = trained.answerer().spans(examples.questions, examples.contexts, trained.eval_batch_size)
    predictions = [span[0] if span else None for span in found]
    return qa_metrics(predictions, examples.answers)


def save(trained: Trained, path: Path) -> None:
    """``save_pretrained`` model and tokenizer, plus the window settings, into ``path``."""
    hf_training.save_model(trained.model, trained.tokenizer, trained.meta(), path, META_FILE)
