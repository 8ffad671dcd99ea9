"""What the sequence-to-sequence tasks share (summarization, translation): row checks,
hyperparameters, fine-tuning with ``Seq2SeqTrainer``, generation and evaluation.

A task module (``summarization.py``, ``translation.py``) is a :class:`Spec` - its target
column, defaults, T5 prefix and metrics - and thin functions that call these.

Base models (``model_name``):

* an encoder-decoder checkpoint (``config.is_encoder_decoder``: T5, BART, Marian such as
  ``Helsinki-NLP/opus-mt-en-fr``, mT5, ...), fine-tuned as it is through
  ``AutoModelForSeq2SeqLM``;
* an encoder such as the default all-MiniLM-L6-v2: an encoder-decoder is warm-started from
  it, the same weights as encoder and as decoder (the decoder's cross-attention is new),
  the "BERT2BERT" recipe of Rothe et al. 2020 (``EncoderDecoderModel``). Its
  ``decoder_start_token_id``/``eos_token_id``/``pad_token_id`` come from the tokenizer
  ([CLS], [SEP], [PAD]). It starts knowing no generation at all: it needs thousands of
  pairs and several epochs to write fluent text.

T5 checkpoints were pretrained with a task prefix ("summarize: ", "translate English to
French: "), put before each source when the base model is a T5 (``source_prefix`` in the
hyperparams overrides it, for any model). Multilingual translation models (mBART-50, NLLB,
M2M100) get their language codes instead (``language_codes.py``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import transformers
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    EncoderDecoderModel,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)

from builtin_models import hf_training, language_codes
from builtin_models.seq2seq_model import META_FILE, Seq2SeqGenerator
from builtin_models.tasks import StepCallback
from byom.errors import InvalidInput, InvalidOption

__all__ = [
    "MIN_ROWS",
    "OWN_KEYS",
    "SOURCE",
    "Examples",
    "Spec",
    "Trained",
    "evaluate",
    "load",
    "prepare",
    "prepare_for",
    "save",
    "stratify_keys",
    "subset",
    "train",
    "validate_hyperparams",
]

SOURCE = "source"
MIN_ROWS = 10
#: Rows of the holdout shown in the ``samples`` report (source, reference, prediction).
SAMPLES = 5
#: Hyperparameters of ours (not TrainingArguments fields): source tokens kept, target tokens
#: kept for training, the generation defaults of evaluation and serving, the source prefix.
OWN_KEYS = ("max_length", "max_target_length", "max_new_tokens", "num_beams", "source_prefix")
# Checks of our keys that hf_training's ranges do not cover (max_length is there).
_OWN_RANGES = {"max_target_length": (1, 8192), "max_new_tokens": (1, 4096), "num_beams": (1, 64)}
_SAMPLE_CHARS = 300


@dataclass(frozen=True)
class Spec:
    """A seq2seq task: names, defaults, its T5 prefix and its holdout metrics."""

    task: str
    target: str
    defaults: Mapping[str, Any]
    #: The T5 task prefix for the checked task options (e.g. "summarize: ").
    t5_prefix: Callable[[Mapping[str, Any]], str]
    #: ``(predictions, references) -> {metric: value}``.
    metrics: Callable[[Sequence[str], Sequence[str]], dict[str, float]]
    #: How a user aliases the columns, for the error that lists them.
    alias_hint: str = ""


@dataclass(frozen=True)
class Examples:
    """Validated rows: source and target texts, plus the task options (e.g. languages)."""

    sources: list[str]
    targets: list[str]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trained:
    """A fine-tuned encoder-decoder with what generating needs (``meta``: see
    ``seq2seq_model.py``)."""

    model: Any
    tokenizer: Any
    meta: dict[str, Any]
    train_loss: float | None = None

    def generator(self) -> Seq2SeqGenerator:
        return Seq2SeqGenerator(self.model, self.tokenizer, self.meta)


def validate_hyperparams(spec: Spec, hyperparams: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with ``hyperparams``; InvalidOption for unknown, fixed or bad values."""
    merged = hf_training.validate(hyperparams, spec.defaults, OWN_KEYS)
    for key, (low, high) in _OWN_RANGES.items():
        value = merged.get(key)
        if value is None and key == "max_new_tokens":
            continue  # max_target_length
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidOption(
                f"hyperparams.{key} must be an integer in [{low}, {high}], got {value!r}.",
                option="hyperparams",
            )
    prefix = merged.get("source_prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise InvalidOption(
            "hyperparams.source_prefix must be a string (or null: T5's task prefix for a T5 "
            f"base model, none for others), got {prefix!r}.",
            option="hyperparams",
        )
    return merged


# -- rows


def _column(spec: Spec, frame: pd.DataFrame, name: str) -> pd.Series:
    by_lower = {str(c).lower(): c for c in frame.columns}
    if name not in by_lower:
        got = ", ".join(map(str, frame.columns)) or "no columns"
        raise InvalidInput(
            f"{spec.task} needs the columns {SOURCE} and {spec.target}; the query returned "
            f"{got}." + (f" Alias them, e.g. {spec.alias_hint}" if spec.alias_hint else ""),
            column=name,
        )
    return frame[by_lower[name]]


def _examples(spec: Spec, frame: pd.DataFrame, options: Mapping[str, Any] | None) -> Examples:
    sources = hf_training.texts(_column(spec, frame, SOURCE), SOURCE)
    targets = hf_training.texts(_column(spec, frame, spec.target), spec.target)
    return Examples(sources, targets, dict(options or {}))


def prepare(
    spec: Spec,
    frame: pd.DataFrame,
    hyperparams: Mapping[str, Any],
    *,
    task_options: Mapping[str, Any] | None = None,
) -> Examples:
    """Check the rows (columns, NULL or empty texts, row count) and build the Examples."""
    examples = _examples(spec, frame, task_options)
    if len(examples.sources) < MIN_ROWS:
        raise InvalidInput(
            f"{spec.task} needs at least {MIN_ROWS} rows to train and evaluate, got "
            f"{len(examples.sources)}.",
        )
    return examples


def prepare_for(spec: Spec, trained: Trained, frame: pd.DataFrame) -> Examples:
    """Rows with references to score ``trained`` on (any number of rows)."""
    options = {k: trained.meta[k] for k in ("source_lang", "target_lang") if k in trained.meta}
    return _examples(spec, frame, options)


def stratify_keys(examples: Examples) -> list[Any]:
    """No classes: one key for every row (a stratified holdout is a random one)."""
    return [""] * len(examples.sources)


def subset(examples: Examples, indices: Sequence[int]) -> Examples:
    """The rows at ``indices``, in that order."""
    return dataclasses.replace(
        examples,
        sources=[examples.sources[i] for i in indices],
        targets=[examples.targets[i] for i in indices],
    )


# -- training


def _warm_start(base_model: str, tokenizer: Any) -> Any:
    """An EncoderDecoderModel with ``base_model`` as encoder and as decoder (BERT2BERT)."""
    start = tokenizer.cls_token_id
    start = start if start is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id
    end = end if end is not None else tokenizer.eos_token_id
    if start is None or end is None or tokenizer.pad_token_id is None:
        raise ValueError(
            "its tokenizer lacks a start ([CLS]/<s>), end ([SEP]/</s>) or padding token, "
            "which an encoder-decoder warm-started from it needs"
        )
    verbosity = transformers.logging.get_verbosity()
    # Not the load report listing every new cross-attention weight: they are new by design.
    transformers.logging.set_verbosity_error()
    try:
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(base_model, base_model)
    finally:
        transformers.logging.set_verbosity(verbosity)
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = start
        config.eos_token_id = end
        config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = start
    return model


def _load(spec: Spec, base_model: str) -> tuple[Any, Any, str]:
    """``(model, tokenizer, model_type)`` of the base model; InvalidOption if unusable."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        config = AutoConfig.from_pretrained(base_model)
        if getattr(config, "is_encoder_decoder", False):
            model = AutoModelForSeq2SeqLM.from_pretrained(base_model)
        else:
            model = _warm_start(base_model, tokenizer)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidOption(
            f"Cannot load the base model from {base_model} for {spec.task}: {exc}. Use an "
            "encoder-decoder checkpoint (T5, BART, Marian) or a BERT-like encoder.",
            option="model_name",
        ) from exc
    return model, tokenizer, str(config.model_type)


def _prefix(spec: Spec, model_type: str, own: Mapping[str, Any], options: Mapping[str, Any]) -> str:
    if own.get("source_prefix") is not None:
        return str(own["source_prefix"])
    return spec.t5_prefix(options) if model_type == "t5" else ""


def _capped(tokenizer: Any, length: int) -> int:
    limit = getattr(tokenizer, "model_max_length", 0) or 0
    return int(limit) if 0 < limit < length else length


def train(
    spec: Spec,
    examples: Examples,
    *,
    base_model: str,
    hyperparams: Mapping[str, Any],
    workdir: Path,
    on_step: StepCallback | None = None,
) -> Trained:
    """Fine-tune the model in directory ``base_model`` with ``Seq2SeqTrainer``."""
    params = validate_hyperparams(spec, hyperparams)
    own = {k: params.pop(k) for k in OWN_KEYS}
    transformers.set_seed(int(params.get("seed", 42)))
    model, tokenizer, model_type = _load(spec, base_model)
    # mBART-50, NLLB, M2M100: their own language codes, set on the tokenizer (label tokens).
    languages = language_codes.resolve(tokenizer, examples.options)
    prefix = _prefix(spec, model_type, own, examples.options)
    max_length = _capped(tokenizer, int(own["max_length"]))
    max_target = _capped(tokenizer, int(own["max_target_length"]))
    sources = tokenizer(
        [prefix + s for s in examples.sources],
        truncation=True,
        max_length=max_length,
        return_token_type_ids=False,
    )
    labels = tokenizer(
        text_target=examples.targets,
        truncation=True,
        max_length=max_target,
        return_token_type_ids=False,
    )["input_ids"]
    start = model.config.decoder_start_token_id
    # BERT's tokenizer starts every text with [CLS], the decoder's start token: the model
    # would learn to write it twice.
    labels = [ids[1:] if ids and ids[0] == start else ids for ids in labels]
    dataset = [
        {
            "input_ids": sources["input_ids"][i],
            "attention_mask": sources["attention_mask"][i],
            "labels": labels[i],
        }
        for i in range(len(examples.sources))
    ]
    with warnings.catch_warnings():
        # EncoderDecoderModel warns on every loss it computes that 4.12 changed the loss.
        warnings.filterwarnings("ignore", "Version v4.12.0 introduces", FutureWarning)
        trainer, loss = hf_training.run_trainer(
            model,
            tokenizer,
            dataset,
            params,
            workdir=workdir,
            collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
            on_step=on_step,
            trainer_class=Seq2SeqTrainer,
            arguments_class=Seq2SeqTrainingArguments,
        )
    meta = {
        "task": spec.task,
        "prefix": prefix,
        "max_length": max_length,
        "max_target_length": max_target,
        "max_new_tokens": int(own["max_new_tokens"] or max_target),
        "num_beams": int(own["num_beams"]),
        **examples.options,
        **languages,
    }
    return Trained(trainer.model.eval(), tokenizer, meta, loss)


# -- evaluation, saving


def evaluate(spec: Spec, trained: Trained, examples: Examples) -> dict[str, Any]:
    """The task's metrics of the generated texts against the references (generation
    defaults of the model), ``test_rows`` and a ``samples`` report; {} for no rows."""
    if not examples.sources:
        return {}
    predictions = trained.generator().generate(examples.sources)
    metrics: dict[str, Any] = dict(spec.metrics(predictions, examples.targets))
    metrics["test_rows"] = len(examples.sources)
    metrics["samples"] = [
        {
            SOURCE: source[:_SAMPLE_CHARS],
            "reference": reference[:_SAMPLE_CHARS],
            "prediction": prediction[:_SAMPLE_CHARS],
        }
        for source, reference, prediction in list(
            zip(examples.sources, examples.targets, predictions, strict=True)
        )[:SAMPLES]
    ]
    return metrics


def save(trained: Trained, path: Path) -> None:
    """``save_pretrained`` model and tokenizer, plus the generation metadata, into ``path``."""
    hf_training.save_model(trained.model, trained.tokenizer, trained.meta, path, META_FILE)


def load(pyfunc_model: Any) -> Trained:
    """The Trained model inside a loaded MLflow pyfunc model of a seq2seq task."""
    generator: Seq2SeqGenerator = pyfunc_model.unwrap_python_model().generator
    return Trained(generator.model, generator.tokenizer, dict(generator.meta))


# -- one task implementation per Spec


@dataclasses.dataclass(frozen=True)
class Seq2SeqTask:
    """The ``TaskImplementation`` functions of one seq2seq task, bound to its ``spec``:
    summarization.py and translation.py expose these as their module-level names.
    ``check_options`` checks the task's USING options (translation's languages)."""

    spec: Spec
    check_options: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None

    def validate_hyperparams(self, hyperparams: Mapping[str, Any] | None) -> dict[str, Any]:
        return validate_hyperparams(self.spec, hyperparams)

    def prepare(
        self,
        frame: pd.DataFrame,
        hyperparams: Mapping[str, Any],
        *,
        task_options: Mapping[str, Any] | None = None,
        side: Mapping[str, pd.DataFrame] | None = None,
    ) -> Examples:
        """Check the options (if the task has any) and the rows; side tables are ignored."""
        options = self.check_options(task_options or {}) if self.check_options else None
        return prepare(self.spec, frame, hyperparams, task_options=options)

    def prepare_for(self, trained: Trained, frame: pd.DataFrame) -> Examples:
        return prepare_for(self.spec, trained, frame)

    def labels(self, trained: Trained) -> list[Any]:
        return []  # no classes

    def train(
        self,
        examples: Examples,
        *,
        base_model: str,
        hyperparams: Mapping[str, Any],
        workdir: Path,
        on_step: StepCallback | None = None,
    ) -> Trained:
        return train(self.spec, examples, base_model=base_model, hyperparams=hyperparams,
                     workdir=workdir, on_step=on_step)  # fmt: skip

    def evaluate(self, trained: Trained, examples: Examples) -> dict[str, Any]:
        return evaluate(self.spec, trained, examples)
