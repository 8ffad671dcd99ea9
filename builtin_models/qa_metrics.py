"""Exact match and token F1 of extractive answers, as the SQuAD v1.1 evaluation script
defines them (Rajpurkar et al. 2016, ``evaluate-v1.1.py``).

Both compare *normalised* answers: lowercased, punctuation removed, the articles a/an/the
removed, whitespace collapsed. Exact match is 1 when the normalised texts are equal; token
F1 is the harmonic mean of precision and recall of the normalised tokens (a bag: a token
counts as often as it occurs in both). Scores here are fractions in [0, 1] (the script
prints percentages) so they sit next to the classifiers' accuracy.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["exact_match", "normalize_answer", "qa_metrics", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_DIGITS = 6


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str | None, truth: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0 (no prediction: 0.0)."""
    if prediction is None:
        return 0.0
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str | None, truth: str) -> float:
    """F1 of the normalised tokens (0.0 when they share none, or there is no prediction).

    As the SQuAD v1.1 script: two answers that normalise to nothing share no token, so
    their F1 is 0.0 even though they match exactly.
    """
    if prediction is None:
        return 0.0
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def qa_metrics(predictions: Sequence[str | None], truths: Sequence[str]) -> dict[str, Any]:
    """Mean ``exact_match`` and ``f1`` over the rows, and ``test_rows``."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} answers")
    n = len(truths)
    if n == 0:
        return {"exact_match": None, "f1": None, "test_rows": 0}
    pairs = list(zip(predictions, truths, strict=True))
    return {
        "exact_match": round(sum(exact_match(p, t) for p, t in pairs) / n, _DIGITS),
        "f1": round(sum(token_f1(p, t) for p, t in pairs) / n, _DIGITS),
        "test_rows": n,
    }
