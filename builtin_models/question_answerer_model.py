"""Inference for a fine-tuned extractive question answerer, and its MLflow "model from code".

Self-contained on purpose, as ``text_classifier_model.py``: MLflow copies this file into
every logged model and runs it on load, so it imports only mlflow, numpy, pandas, torch,
transformers and ``model_support.py`` (the helpers the model files share, logged with every
model) - never the gateway.

A saved answerer is a ``save_pretrained`` directory (an encoder with a span head,
``AutoModelForQuestionAnswering``, and a fast tokenizer) plus ``byom_qa.json``
(``max_length``, ``doc_stride``, ``max_answer_length``).

Long contexts are read in windows (the usual Hugging Face recipe): each window holds the
question and ``max_length`` tokens in all, consecutive windows overlap by ``doc_stride``
tokens. Every window scores every span of its context tokens (start <= end, at most
``max_answer_length`` tokens) with ``p(start) * p(end)``, softmaxes over the window's context
tokens and its [CLS] (the "no answer here" slot training teaches windows without the
answer); the row's answer is the best span of all its windows.

Predict answers, one entry per input row (a DataFrame from pyfunc, lists from
:meth:`QuestionAnswerer.predict`):

* ``prediction``: the answer, a substring of the context;
* ``score``: its probability ``p(start) * p(end)`` in its window;
* ``start``, ``end``: its character offsets in the context (``context[start:end]`` is the
  answer; ``end`` is exclusive).

A NULL question or context, or a context without a token, answers ``None`` in all four.

Params, per query: ``max_answer_length``, the longest answer in tokens (1 to
``MAX_ANSWER_LIMIT``; 0, the declared default: the model's own, set when it was trained).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

# The helpers shared by the model files. Inside this package (tests, training, the
# gateway's own loads) they are builtin_models.model_support; a logged model is also served
# where the package is not installed, and there MLflow puts the model's code/ folder, where
# artifacts.log_model ships model_support.py (``code_paths``), on sys.path.
try:
    from builtin_models import model_support
except ImportError:  # pragma: no cover - served from a logged model without this package
    import model_support  # type: ignore[no-redef]

META_FILE = "byom_qa.json"
QUESTION, CONTEXT = "question", "context"
ARTIFACT_KEY = "model"
INFERENCE_BATCH = 64
OUTPUTS = ("prediction", "score", "start", "end")
_DIGITS = 6
#: The params the logged signature declares, with their defaults (MLflow fills these in).
PARAMS_EXAMPLE: dict[str, Any] = {"max_answer_length": 0}
MAX_ANSWER_LIMIT = 512


def clip_questions(tokenizer: Any, questions: Sequence[str], max_tokens: int) -> list[str]:
    """``questions`` cut to at most ``max_tokens`` tokens (leading spaces stripped), so a
    long question leaves room in a window for the context and the stride."""
    stripped = [q.lstrip() for q in questions]
    if not stripped:
        return []
    encoded = tokenizer(
        stripped,
        add_special_tokens=False,
        truncation=True,
        max_length=max_tokens,
        return_offsets_mapping=True,
    )
    clipped = []
    for text, offsets in zip(stripped, encoded["offset_mapping"], strict=True):
        end = offsets[-1][1] if offsets else len(text)
        clipped.append(text[:end] if end < len(text.rstrip()) else text)
    return clipped


def encode_windows(
    tokenizer: Any,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_length: int,
    doc_stride: int,
) -> Any:
    """The windows of every (question, context) pair: a BatchEncoding with
    ``overflow_to_sample_mapping`` (window -> row) and ``offset_mapping`` (character
    offsets; those of the context's tokens index the context). ``sequence_ids(i)`` tells
    the context tokens (1) of window ``i``."""
    return tokenizer(
        clip_questions(tokenizer, questions, max(1, max_length // 4)),
        list(contexts),
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def context_range(sequence_ids: Sequence[int | None]) -> tuple[int, int] | None:
    """``(first, last)`` token index of the context in a window; None when it has none."""
    indices = [i for i, s in enumerate(sequence_ids) if s == 1]
    return (indices[0], indices[-1]) if indices else None


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def best_span(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    first: int,
    last: int,
    max_answer_length: int,
) -> tuple[int, int, float]:
    """The best span ``(start token, end token, p(start) * p(end))`` among the context
    tokens ``first..last`` (start <= end, at most ``max_answer_length`` tokens); the
    probabilities are over those tokens and [CLS] (token 0)."""
    keep = np.r_[0, first : last + 1]
    p_start = _softmax(start_logits[keep].astype(np.float64))[1:]
    p_end = _softmax(end_logits[keep].astype(np.float64))[1:]
    scores = np.outer(p_start, p_end)
    n = len(p_start)
    valid = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(
        np.ones((n, n), dtype=bool), k=max_answer_length
    )
    scores[~valid] = -1.0
    flat = int(scores.argmax())
    i, j = divmod(flat, n)
    return first + i, first + j, float(scores[i, j])


class QuestionAnswerer:
    """A fast tokenizer + span-head model + window settings, ready to answer."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = int(meta.get("max_length", 384))
        self.doc_stride = int(meta.get("doc_stride", 128))
        self.max_answer_length = int(meta.get("max_answer_length", 30))

    @classmethod
    def load(cls, path: str | Path) -> QuestionAnswerer:
        """Load a saved answerer directory."""
        from transformers import AutoModelForQuestionAnswering

        return cls(*model_support.load_pretrained(path, META_FILE, AutoModelForQuestionAnswering))

    def answer_length(self, params: dict[str, Any] | None = None) -> int:
        """The longest answer of ``params`` (``max_answer_length``; 0 or none: the model's
        own); ValueError for unknown params or a value out of range."""
        value = model_support.known_params(params, PARAMS_EXAMPLE).get("max_answer_length")
        if value is None:
            return self.max_answer_length
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or number != float(value):
            raise ValueError(f"max_answer_length must be a whole number, got {value!r}")
        if not 0 <= number <= MAX_ANSWER_LIMIT:
            raise ValueError(
                f"max_answer_length must be in [1, {MAX_ANSWER_LIMIT}] tokens (0: the "
                f"model's own, {self.max_answer_length}), got {value!r}"
            )
        return number or self.max_answer_length

    def spans(
        self,
        questions: list[str],
        contexts: list[str],
        batch_size: int = INFERENCE_BATCH,
        max_answer_length: int | None = None,
    ) -> list[tuple[str, float, int, int] | None]:
        """``(answer, score, start char, end char)`` per row, None for a row whose context
        has no token; answers of at most ``max_answer_length`` tokens (default: the
        model's own)."""
        import torch

        longest = max_answer_length or self.max_answer_length

        if not questions:
            return []
        encoded = encode_windows(
            self.tokenizer, questions, contexts, self.max_length, self.doc_stride
        )
        rows = encoded["overflow_to_sample_mapping"]
        model_keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
        best: list[tuple[str, float, int, int] | None] = [None] * len(questions)
        with torch.inference_mode():
            for begin in range(0, len(rows), batch_size):
                window_ids = range(begin, min(begin + batch_size, len(rows)))
                batch = self.tokenizer.pad(
                    [{k: encoded[k][w] for k in model_keys} for w in window_ids],
                    return_tensors="pt",
                )
                output = self.model(**batch)
                starts = output.start_logits.float().numpy()
                ends = output.end_logits.float().numpy()
                for b, w in enumerate(window_ids):
                    found = context_range(encoded.sequence_ids(w))
                    if found is None:
                        continue
                    i, j, score = best_span(starts[b], ends[b], *found, longest)
                    row = rows[w]
                    current = best[row]
                    if current is None or score > current[1]:
                        offsets = encoded["offset_mapping"][w]
                        start, end = int(offsets[i][0]), int(offsets[j][1])
                        best[row] = (contexts[row][start:end], score, start, end)
        return best

    def predict(
        self, questions: list[Any], contexts: list[Any], params: dict[str, Any] | None = None
    ) -> dict[str, list[Any]]:
        """The answer lists (module docstring); rows with a NULL input answer None."""
        longest = self.answer_length(params)
        present = [
            i
            for i, (q, c) in enumerate(zip(questions, contexts, strict=True))
            if not model_support.missing(q) and not model_support.missing(c)
        ]
        found = self.spans(
            [str(questions[i]) for i in present],
            [str(contexts[i]) for i in present],
            max_answer_length=longest,
        )
        answer: dict[str, list[Any]] = {name: [None] * len(questions) for name in OUTPUTS}
        for row, span in zip(present, found, strict=True):
            if span is None:
                continue
            text, score, start, end = span
            answer["prediction"][row] = text
            answer["score"][row] = round(score, _DIGITS)
            answer["start"][row] = start
            answer["end"][row] = end
        return answer


def inputs_of(model_input: Any) -> tuple[list[Any], list[Any]]:
    """``(questions, contexts)`` of a pyfunc input: a DataFrame (or a dict of columns) with
    ``question`` and ``context`` columns (any case)."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if not isinstance(model_input, pd.DataFrame):
        raise ValueError(
            f"expected a table with {QUESTION} and {CONTEXT} columns, got a "
            f"{type(model_input).__name__}"
        )
    columns = {str(c).lower(): c for c in model_input.columns}
    missing = [name for name in (QUESTION, CONTEXT) if name not in columns]
    if missing:
        got = ", ".join(map(str, model_input.columns)) or "none"
        raise ValueError(f"expected the columns {QUESTION} and {CONTEXT}, got: {got}")
    return (
        model_input[columns[QUESTION]].tolist(),
        model_input[columns[CONTEXT]].tolist(),
    )


class QuestionAnswererModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: ``predict(DataFrame with question, context)`` -> DataFrame of
    prediction, score, start, end."""

    answerer: QuestionAnswerer

    def load_context(self, context: Any) -> None:
        self.answerer = QuestionAnswerer.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        answer = self.answerer.predict(*inputs_of(model_input), params)
        return pd.DataFrame(answer, dtype=object)


mlflow.models.set_model(QuestionAnswererModel())
