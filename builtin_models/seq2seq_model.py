"""Generation with a fine-tuned sequence-to-sequence model (summarization, translation), and
its MLflow "model from code".

Self-contained on purpose: MLflow copies this file into every logged model and runs it on
load, so it imports only mlflow, pandas, torch and transformers - never the gateway.

A saved model is a ``save_pretrained`` directory (an encoder-decoder: T5, BART, Marian, or
a BERT2BERT ``EncoderDecoderModel``) plus ``byom_seq2seq.json``: the task, the ``prefix``
put before every source (T5's "summarize: "; "" for other models), ``max_length`` (source
tokens kept) and the generation defaults ``max_new_tokens`` and ``num_beams``; for a
multilingual translation model (mBART-50, NLLB, M2M100) also the tokenizer's language codes
(``tokenizer_src_lang``, ``tokenizer_tgt_lang``) and the target language's token, which
starts every generated text (``forced_bos_token_id``).

``predict(DataFrame with source, params)`` answers one ``prediction`` (the generated text)
per row; a NULL source answers None. Params, per query (``pgml.generate``'s names):

* ``max_new_tokens``: at most this many generated tokens (0: the model's default);
* ``num_beams``: beam search width (0: the model's default; 1 is greedy);
* ``temperature``: 0 decodes deterministically (greedy or beams); above 0 samples with
  that temperature, ``top_p`` (nucleus sampling, 1.0: off) applying;
* ``seed``: with sampling, a seed makes each row's output reproducible (each row is then
  generated on its own, so it does not depend on the other rows of the batch); -1: none.

Rows are generated in batches of ``INFERENCE_BATCH`` sources of similar lengths (sorted by
their token counts, so little padding), answered in input order. The deployment merges
concurrent requests with the same params into one call (``serving.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

META_FILE = "byom_seq2seq.json"
INPUT_COLUMN = "source"
ARTIFACT_KEY = "model"
INFERENCE_BATCH = 32
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


class Seq2SeqGenerator:
    """A tokenizer + encoder-decoder model + generation defaults, ready to generate."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = dict(meta)
        self.prefix = str(meta.get("prefix") or "")
        self.max_length = int(meta.get("max_length", 256))
        self.max_new_tokens = int(meta.get("max_new_tokens", 64))
        self.num_beams = int(meta.get("num_beams", 1))
        # A multilingual model (mBART-50, NLLB, M2M100): the tokenizer marks the source
        # language, generation starts with the target's token.
        if meta.get("tokenizer_src_lang"):
            self.tokenizer.src_lang = meta["tokenizer_src_lang"]
            self.tokenizer.tgt_lang = meta.get("tokenizer_tgt_lang")
        forced = meta.get("forced_bos_token_id")
        self.forced_bos_token_id = int(forced) if forced is not None else None

    @classmethod
    def load(cls, path: str | Path) -> Seq2SeqGenerator:
        """Load a saved model directory."""
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # no "Loading weights" bars in server logs
        meta = json.loads((Path(path) / META_FILE).read_text())
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForSeq2SeqLM.from_pretrained(str(path))
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
        if self.forced_bos_token_id is not None:
            out["forced_bos_token_id"] = self.forced_bos_token_id
        if temperature and temperature > 0:
            out.update(do_sample=True, temperature=temperature, top_p=top_p)
            if seed is not None and seed >= 0:
                out["seed"] = seed
        else:
            out["do_sample"] = False
        return out

    def length_order(self, sources: list[str]) -> list[int]:
        """Row indexes by source length in tokens (as truncated), shortest first: batches of
        neighbours pad little."""
        ids = self.tokenizer(
            sources, truncation=True, max_length=self.max_length, return_token_type_ids=False
        )["input_ids"]
        return sorted(range(len(sources)), key=lambda i: len(ids[i]))

    def generate(self, texts: list[str], params: dict[str, Any] | None = None) -> list[str]:
        """One generated text per source text, in order."""
        import torch

        settings = self.settings(params)
        seed = settings.pop("seed", None)
        if not texts:
            return []
        sources = [self.prefix + str(t) for t in texts]
        order = self.length_order(sources)
        # A seeded row is generated alone: its sample cannot depend on its batch mates.
        size = 1 if seed is not None else INFERENCE_BATCH
        out: list[str] = [""] * len(sources)
        with torch.inference_mode():
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                batch = self.tokenizer(
                    [sources[i] for i in rows],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                batch.pop("token_type_ids", None)  # BERT2BERT's encoder takes none
                if seed is not None:
                    torch.manual_seed(seed)
                ids = self.model.generate(**batch, **settings)
                texts_out = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
                for i, text in zip(rows, texts_out, strict=True):
                    out[i] = text.strip()
        return out

    def predict(self, texts: list[Any], params: dict[str, Any] | None = None) -> list[Any]:
        """Generated texts for ``texts``; None/NaN texts answer None."""
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
    """The source texts of a pyfunc input: a DataFrame (``source`` column, or its only
    column), a Series, a list of strings, or a dict of columns."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        columns = {str(c).lower(): c for c in model_input.columns}
        if INPUT_COLUMN in columns:
            return model_input[columns[INPUT_COLUMN]].tolist()
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].tolist()
        raise ValueError(
            f"expected a '{INPUT_COLUMN}' column, got: {', '.join(map(str, model_input.columns))}"
        )
    if isinstance(model_input, pd.Series | np.ndarray):
        return list(model_input.tolist())
    if isinstance(model_input, list | tuple):
        return list(model_input)
    raise ValueError(f"cannot read texts from a {type(model_input).__name__}")


class Seq2SeqModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: ``predict(DataFrame with source, params)`` -> DataFrame with
    ``prediction``."""

    generator: Seq2SeqGenerator

    def load_context(self, context: Any) -> None:
        self.generator = Seq2SeqGenerator.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        answer = self.generator.predict(texts_of(model_input), params)
        return pd.DataFrame({"prediction": answer}, dtype=object)


mlflow.models.set_model(Seq2SeqModel())
