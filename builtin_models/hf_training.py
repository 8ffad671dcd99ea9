"""What every transformers fine-tuning task shares: hyperparameter checks, text row checks,
the Trainer run (fixed settings, step reports), out-of-memory errors a user can act on, and
saving a model with its task's metadata.

A task declares its defaults and its own keys (hyperparams that are not
``TrainingArguments`` fields, e.g. ``max_length``); every other ``TrainingArguments``
field is accepted as PostgresML does, except those the gateway owns (:data:`FIXED_KEYS`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from builtin_models.tasks import StepCallback
from byom.errors import InvalidInput, InvalidOption, did_you_mean

__all__ = [
    "FIXED_KEYS",
    "LENGTH_GROUPING",
    "is_out_of_memory",
    "out_of_memory",
    "run_trainer",
    "training_fields",
    "validate",
]

_NUMBER = int | float
# Type and range checks of common keys (TrainingArguments does not check types itself).
_RANGES: dict[str, tuple[Any, float, float]] = {
    "learning_rate": (_NUMBER, 0, 1),
    "per_device_train_batch_size": (int, 1, 65536),
    "per_device_eval_batch_size": (int, 1, 65536),
    "num_train_epochs": (_NUMBER, 0, 10000),
    "max_steps": (int, -1, 10**9),
    "weight_decay": (_NUMBER, 0, 1),
    "warmup_steps": (_NUMBER, 0, 10**9),
    "seed": (int, 0, 2**32 - 1),
    "max_length": (int, 8, 8192),
    "threshold": (_NUMBER, 0, 1),
}
#: TrainingArguments fields the gateway owns (where files go, what is uploaded or reported).
FIXED_KEYS = frozenset(
    {
        "output_dir",
        "report_to",
        "push_to_hub",
        "hub_model_id",
        "hub_token",
        "hub_strategy",
        "hub_private_repo",
        "hub_always_push",
        "hub_revision",
        "resume_from_checkpoint",
        "do_train",
        "do_eval",
        "do_predict",
        "eval_strategy",
        "load_best_model_at_end",
        "deepspeed",
        "local_rank",
        # the gateway logs every step's loss (the curve in MLflow)
        "logging_strategy",
        "logging_steps",
    }
)


def training_fields() -> set[str]:
    """The names ``TrainingArguments`` accepts."""
    return {f.name for f in dataclasses.fields(TrainingArguments) if f.init}


#: Batches of similar lengths pad less: about twice as fast on CPU as random batches for the
#: same accuracy (measured on SST-2). transformers 5 names it; 4.x has group_by_length.
LENGTH_GROUPING: dict[str, Any] = (
    {"train_sampling_strategy": "group_by_length"}
    if "train_sampling_strategy" in training_fields()
    else {"group_by_length": True}
)


def validate(
    hyperparams: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    own_keys: Collection[str],
) -> dict[str, Any]:
    """``defaults`` merged with ``hyperparams``; InvalidOption for an unknown key (with a
    did-you-mean), a key the gateway owns, or a value of the wrong type or range."""
    given = dict(hyperparams or {})
    allowed = training_fields() | set(own_keys)
    for key in given:
        if key in FIXED_KEYS:
            raise InvalidOption(
                f"hyperparams.{key} is set by the gateway and cannot be given.",
                option="hyperparams",
            )
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            raise InvalidOption(
                f"Unknown hyperparameter '{key}'."
                + (f" Did you mean {hint}?" if hint else "")
                + " Use TrainingArguments names (learning_rate, num_train_epochs, "
                "per_device_train_batch_size, weight_decay, ...) or "
                + ", ".join(sorted(own_keys))
                + ".",
                option="hyperparams",
                suggestion=hint,
            )
    merged = {**defaults, **given}
    for key, (kind, low, high) in _RANGES.items():
        if key not in merged:
            continue
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
            what = "an integer" if kind is int else "a number"
            raise InvalidOption(
                f"hyperparams.{key} must be {what} in [{low:g}, {high:g}], got {value!r}.",
                option="hyperparams",
            )
    return merged


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the ways torch reports running out of memory (GPU or CPU)."""
    # torch.cuda.OutOfMemoryError is torch.OutOfMemoryError on torch >= 2.5.
    if isinstance(exc, MemoryError | torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def out_of_memory(exc: BaseException) -> InvalidOption:
    """The error a user can act on for an out-of-memory failure."""
    return InvalidOption(
        f"Training ran out of memory ({type(exc).__name__}). Lower "
        "hyperparams.per_device_train_batch_size or max_length, or train on fewer rows.",
        code="OUT_OF_MEMORY",
    )


class _StepReporter(TrainerCallback):
    """Forwards each optimizer step, with its loss, to ``on_step(step, total, epoch, loss)``.

    The Trainer logs every step (``logging_steps=1``, fixed) right after ``on_step_end``;
    reporting from the log gives progress and the loss curve in one call per step.
    """

    def __init__(self, on_step: StepCallback) -> None:
        self.on_step = on_step

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        # The last log of a run holds train_loss (the mean), not a step's loss.
        if logs and "loss" in logs:
            epoch = float(state.epoch or 0.0)
            step, total = int(state.global_step), int(state.max_steps)
            self.on_step(step, total, epoch, loss=float(logs["loss"]))


def run_trainer(
    model: Any,
    tokenizer: Any,
    dataset: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    *,
    workdir: Path,
    collator: Any,
    on_step: StepCallback | None = None,
    trainer_class: type[Trainer] = Trainer,
    arguments_class: type[TrainingArguments] = TrainingArguments,
) -> tuple[Trainer, float]:
    """Train ``model`` on ``dataset`` with ``params`` (TrainingArguments fields only).

    No checkpoints, no reporting to outside services, progress to ``on_step``. Returns the
    trainer and the mean training loss; OOM becomes :func:`out_of_memory`'s error.
    ``trainer_class``/``arguments_class``: e.g. ``Seq2SeqTrainer`` and its arguments.
    """
    settings = dict(params)
    # pin_memory only helps a GPU; on CPU it warns on every run.
    settings.setdefault("dataloader_pin_memory", torch.cuda.is_available())
    try:
        args = arguments_class(
            output_dir=str(workdir),
            save_strategy="no",
            eval_strategy="no",
            # every step's loss reaches on_step (the training-loss curve), nowhere else
            logging_strategy="steps",
            logging_steps=1,
            report_to="none",
            disable_tqdm=True,
            **settings,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidOption(f"Invalid hyperparams: {exc}", option="hyperparams") from exc
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=dataset,  # type: ignore[arg-type]  # a list of dicts is a map dataset
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[_StepReporter(on_step)] if on_step else None,
    )
    # disable_tqdm swaps the progress bar for a callback that prints every log to stdout
    trainer.remove_callback(PrinterCallback)
    try:
        output = trainer.train()
    except Exception as exc:
        if is_out_of_memory(exc):
            raise out_of_memory(exc) from exc
        raise
    return trainer, float(output.training_loss)


def save_model(
    model: Any, tokenizer: Any, meta: Mapping[str, Any], path: Path, meta_file: str
) -> None:
    """``save_pretrained`` model and tokenizer into ``path``, plus the task's metadata
    (labels, window or generation settings) as JSON in ``meta_file``: what each task's
    MLflow model reads back."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    (path / meta_file).write_text(json.dumps(dict(meta), indent=2))


def texts(values: pd.Series, name: str) -> list[str]:
    """Column ``name`` as strings; InvalidInput for NULL or blank values (counted, the
    first row named, the WHERE clause that filters them given)."""
    found = [None if pd.isna(v) else str(v) for v in values.tolist()]
    bad = [i for i, t in enumerate(found) if t is None or not t.strip()]
    if bad:
        raise InvalidInput(
            f"{len(bad)} of {len(found)} rows have a NULL or empty {name} (the first is row "
            f"{bad[0] + 1}): filter them out with WHERE {name} IS NOT NULL AND {name} <> ''.",
            column=name,
        )
    return [str(t) for t in found]
