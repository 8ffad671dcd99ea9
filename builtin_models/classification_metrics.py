"""Holdout metrics of a classifier, computed with scikit-learn.

Both functions return the same headline keys - ``accuracy``, ``precision``, ``recall``,
``f1`` (macro averages) and ``roc_auc`` - so every classifier version can be compared in
one catalog column, plus mode-specific keys and a JSON-able ``confusion_matrix`` report.
A metric the holdout cannot define (ROC AUC when a class is missing from it) is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
)

__all__ = ["REPORT_KEYS", "multi_label_metrics", "single_label_metrics"]

#: Keys whose values are reports (lists, dicts), not scalar metrics.
REPORT_KEYS = ("confusion_matrix",)
_DIGITS = 6


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), _DIGITS)


def _roc_auc(truth: Any, scores: np.ndarray, **kwargs: Any) -> float | None:
    try:
        value = roc_auc_score(truth, scores, **kwargs)
    except ValueError:  # a class absent from the holdout: AUC is undefined
        return None
    return None if np.isnan(value) else float(value)


def single_label_metrics(
    truth: Sequence[int], probs: np.ndarray, labels: Sequence[Any]
) -> dict[str, Any]:
    """Metrics of one-label predictions; ``truth`` holds label indices, ``probs`` rows."""
    y_true = np.asarray(truth, dtype=int)
    y_pred = probs.argmax(axis=1)
    every = list(range(len(labels)))
    macro = {"labels": every, "average": "macro", "zero_division": 0}
    if len(labels) == 2:
        roc_auc = _roc_auc(y_true, probs[:, 1])
    else:
        # Softmax rows sum to 1 up to float error; sklearn checks that strictly.
        normed = probs / probs.sum(axis=1, keepdims=True)
        roc_auc = _roc_auc(y_true, normed, multi_class="ovr", average="macro", labels=every)
    matrix = confusion_matrix(y_true, y_pred, labels=every)
    return {
        "accuracy": _round(accuracy_score(y_true, y_pred)),
        "precision": _round(precision_score(y_true, y_pred, **macro)),
        "recall": _round(recall_score(y_true, y_pred, **macro)),
        "f1": _round(f1_score(y_true, y_pred, **macro)),
        "roc_auc": _round(roc_auc),
        "test_rows": int(len(y_true)),
        "confusion_matrix": {
            "labels": list(labels),
            "matrix": matrix.tolist(),  # rows: true label, columns: predicted label
        },
    }


def multi_label_metrics(
    truth: Sequence[Sequence[float]],
    probs: np.ndarray,
    labels: Sequence[Any],
    threshold: float,
) -> dict[str, Any]:
    """Metrics of multi-label predictions; ``truth`` is a 0/1 indicator matrix."""
    y_true = np.asarray(truth, dtype=int)
    y_pred = (probs >= threshold).astype(int)
    every = list(range(len(labels)))
    scores: dict[str, Any] = {}
    for average in ("macro", "micro"):
        kwargs = {"labels": every, "average": average, "zero_division": 0}
        scores[f"precision_{average}"] = precision_score(y_true, y_pred, **kwargs)
        scores[f"recall_{average}"] = recall_score(y_true, y_pred, **kwargs)
        scores[f"f1_{average}"] = f1_score(y_true, y_pred, **kwargs)
    subset_accuracy = accuracy_score(y_true, y_pred)
    matrices = multilabel_confusion_matrix(y_true, y_pred, labels=every)
    return {
        "accuracy": _round(subset_accuracy),
        "precision": _round(scores["precision_macro"]),
        "recall": _round(scores["recall_macro"]),
        "f1": _round(scores["f1_macro"]),
        "roc_auc": _round(_roc_auc(y_true, probs, average="macro")),
        "subset_accuracy": _round(subset_accuracy),
        "hamming_loss": _round(hamming_loss(y_true, y_pred)),
        **{key: _round(value) for key, value in scores.items()},
        "test_rows": int(len(y_true)),
        "confusion_matrix": {
            "labels": list(labels),
            # one [[tn, fp], [fn, tp]] per label
            "matrices": matrices.tolist(),
        },
    }
