"""Generation with a fine-tuned causal language model (the ``text_generation`` task), and its
MLflow "model from code".

Self-contained on purpose: MLflow copies this file into every logged model and runs it on
load, so it imports only mlflow, pandas, numpy, torch and transformers - never the gateway
(so the small parameter checks of ``seq2seq_model.py`` are repeated here, not imported).

A saved model is a ``save_pretrained`` directory (a decoder: GPT-2 and friends, or the BERT
warm-started as a decoder, ``BertLMHeadModel``) plus ``byom_text_generation.json``: the task,
``max_length`` (prompt tokens kept: the last ones), the generation defaults
``max_new_tokens`` and ``num_beams``, and the ``start_token_id`` / ``end_token_id`` /
``pad_token_id`` of the model ([CLS], [SEP], [PAD] for a BERT; GPT-2's ``<|endoftext|>``
for all three).

``predict(DataFrame with text or prompt, params)`` answers one ``prediction`` per row: the
continuation of the row's text (the generated text only, not the prompt, trimmed of
surrounding whitespace); a NULL text answers None. A prompt is read as training read texts:
the start token ([CLS], or ``start_token_id`` where the tokenizer adds none), then the text
(its last tokens), no end token. Params, per query (``pgml.generate``'s names):

* ``max_new_tokens``: at most this many generated tokens (0: the model's default);
* ``num_beams``: beam search width (0: the model's default; 1 is greedy);
* ``temperature``: 0 decodes deterministically (greedy or beams); above 0 samples with
  that temperature, ``top_p`` (nucleus sampling, 1.0: off) applying;
* ``seed``: with sampling, a seed makes each row's output reproducible (each row is then
  generated on its own, so it does not depend on the other rows of the batch); -1: none.

Prompts are generated in batches of similar token lengths (sorted by length, left-padded as
a decoder needs), answered in input order.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

META_FILE = "byom_text_generation.json"
#: The input column, and its alias (``WHERE prompt = '...'``).
INPUT_COLUMNS = ("text", "prompt")
ARTIFACT_KEY = "model"
INFERENCE_BATCH = 16
#: The params the logged signature declares, with their defaults (MLflow fills these in;
#: 0 and -1 mean "the model's default" and "no seed").
PARAMS_EXAMPLE: dict[str, Any] = {
    "max_new_tokens": 0,
    "num_beams": 0,
    "temperature": 0.0,
    "top_p": 1.0,
    "seed": -1,
}
MAX_NEW_TOKENS_LIMIT = 4096
MAX_BEAMS = 64


def added_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The token ids the tokenizer puts before and after every text (BERT: [CLS] and [SEP];
    GPT-2: none)."""
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    return [], []


def position_limit(config: Any) -> int | None:
    """The longest sequence the model's position embeddings allow (None: no limit known)."""
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class TextGenerator:
    """A tokenizer + causal language model + generation defaults, ready to continue texts."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = dict(meta)
        self.max_length = int(meta.get("max_length", 128))
        self.max_new_tokens = int(meta.get("max_new_tokens", 32))
        self.num_beams = int(meta.get("num_beams", 1))
        self.end_id = int(meta["end_token_id"])
        self.pad_id = int(meta.get("pad_token_id", self.end_id))
        self.start_id = int(meta.get("start_token_id", self.end_id))
        # What starts every training text: the tokenizer's own [CLS] (or <s>), else the start
        # token (GPT-2). The end token it may add ([SEP]) is not part of a prompt.
        self.prefix = added_tokens(tokenizer)[0] or [self.start_id]
        self.limit = position_limit(model.config)

    @classmethod
    def load(cls, path: str | Path) -> TextGenerator:
        """Load a saved model directory."""
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # no "Loading weights" bars in server logs
        meta = json.loads((Path(path) / META_FILE).read_text())
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path))
        return cls(model, tokenizer, meta)

    def settings(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The generation settings of ``params`` over the model's defaults (ValueError for a
        value out of range)."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(PARAMS_EXAMPLE))
        if unknown:
            raise ValueError(
                f"unknown generation parameter(s) {', '.join(unknown)}; this model takes "
                f"{', '.join(PARAMS_EXAMPLE)}"
            )
        max_new = _number(params, "max_new_tokens", int, 0, MAX_NEW_TOKENS_LIMIT)
        beams = _number(params, "num_beams", int, 0, MAX_BEAMS)
        temperature = _number(params, "temperature", float, 0.0, 100.0)
        top_p = _number(params, "top_p", float, 0.0, 1.0)
        seed = _number(params, "seed", int, -1, 2**32 - 1)
        if top_p == 0:
            raise ValueError("top_p must be above 0 (1.0 turns nucleus sampling off)")
        out: dict[str, Any] = {
            "max_new_tokens": max_new or self.max_new_tokens,
            "num_beams": beams or self.num_beams,
        }
        if temperature and temperature > 0:
            out.update(do_sample=True, temperature=temperature, top_p=top_p)
            if seed is not None and seed >= 0:
                out["seed"] = seed
        else:
            out["do_sample"] = False
        return out

    def encode(self, text: str, keep: int) -> list[int]:
        """The prompt's ids: the start of a text ([CLS], <|endoftext|>) and the text's last
        tokens, ``keep`` in all at most."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        room = max(keep - len(self.prefix), 0)
        ids = [*self.prefix, *(ids[-room:] if room else [])]
        return ids

    def generate(self, texts: list[str], params: dict[str, Any] | None = None) -> list[str]:
        """The continuation of each text, in order."""
        import torch

        settings = self.settings(params)
        seed = settings.pop("seed", None)
        if not texts:
            return []
        keep = self.max_length
        if self.limit:  # prompt + new tokens must fit the position embeddings
            settings["max_new_tokens"] = min(settings["max_new_tokens"], self.limit - 1)
            keep = max(1, min(keep, self.limit - settings["max_new_tokens"]))
        prompts = [self.encode(str(t), keep) for t in texts]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        # A seeded row is generated alone: its sample cannot depend on its batch mates.
        size = 1 if seed is not None else INFERENCE_BATCH
        out: list[str] = [""] * len(prompts)
        with torch.inference_mode():
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                width = max(len(prompts[i]) for i in rows)
                # Left padding: every prompt ends where generation starts.
                ids = [[self.pad_id] * (width - len(prompts[i])) + prompts[i] for i in rows]
                mask = [[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in rows]
                if seed is not None:
                    torch.manual_seed(seed)
                generated = self.model.generate(
                    input_ids=torch.tensor(ids),
                    attention_mask=torch.tensor(mask),
                    pad_token_id=self.pad_id,
                    eos_token_id=self.end_id,
                    **settings,
                )
                for i, row in zip(rows, generated.tolist(), strict=True):
                    out[i] = self.continuation(prompts[i], row[width:])
        return out

    def continuation(self, prompt: list[int], new: list[int]) -> str:
        """The text of ``new`` after ``prompt`` (decoded together, so a word piece that
        continues the prompt's last word reads right), trimmed."""
        decode = self.tokenizer.decode
        before = decode(prompt, skip_special_tokens=True)
        both = decode(prompt + new, skip_special_tokens=True)
        text = (
            both[len(before) :]
            if both.startswith(before)
            else decode(new, skip_special_tokens=True)
        )
        return str(text).strip()

    def predict(self, texts: list[Any], params: dict[str, Any] | None = None) -> list[Any]:
        """Continuations of ``texts``; None/NaN texts answer None."""
        present = [i for i, t in enumerate(texts) if not _missing(t)]
        generated = self.generate([str(texts[i]) for i in present], params)
        answer: list[Any] = [None] * len(texts)
        for i, text in zip(present, generated, strict=True):
            answer[i] = text
        return answer


def _number(params: dict[str, Any], key: str, kind: type, low: float, high: float) -> Any:
    """``params[key]`` as ``kind`` within [low, high]; None when it is not given."""
    value = params.get(key)
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or (kind is int and float(value) != number):
        raise ValueError(f"{key} must be a whole number, got {value!r}")
    if not low <= number <= high:
        raise ValueError(f"{key} must be in [{low:g}, {high:g}], got {value!r}")
    return number


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def texts_of(model_input: Any) -> list[Any]:
    """The prompts of a pyfunc input: a DataFrame (``text`` column, else ``prompt``, a row's
    NULL text taking its prompt; or its only column), a Series, a list, a dict of columns."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        columns = {str(c).lower(): c for c in model_input.columns}
        found = [model_input[columns[c]].tolist() for c in INPUT_COLUMNS if c in columns]
        if found:
            texts = found[0]
            for other in found[1:]:
                texts = [o if _missing(t) else t for t, o in zip(texts, other, strict=True)]
            return texts
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].tolist()
        raise ValueError(
            "expected a 'text' (or 'prompt') column, got: "
            + ", ".join(map(str, model_input.columns))
        )
    if isinstance(model_input, pd.Series | np.ndarray):
        return list(model_input.tolist())
    if isinstance(model_input, list | tuple):
        return list(model_input)
    raise ValueError(f"cannot read texts from a {type(model_input).__name__}")


class TextGenerationModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: ``predict(DataFrame with text or prompt, params)`` -> DataFrame
    with ``prediction`` (the continuation)."""

    generator: TextGenerator

    def load_context(self, context: Any) -> None:
        self.generator = TextGenerator.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        answer = self.generator.predict(texts_of(model_input), params)
        return pd.DataFrame({"prediction": answer}, dtype=object)


mlflow.models.set_model(TextGenerationModel())
