"""Top-k ranking metrics of a recommender, pure numpy.

Per user: ``recommended`` is the ranked list of the ``k`` items shown (best first; shorter
lists are padded with -1) and ``relevant`` the items the user really chose. With ``hits``
the number of recommended items that are relevant:

* ``precision@k`` = hits / k (a list shorter than k still counts k slots);
* ``recall@k`` = hits / number of relevant items;
* ``hr@k`` (hit ratio) = 1 when at least one recommended item is relevant, else 0;
* ``ndcg@k`` = DCG / ideal DCG, with DCG = sum over hit ranks r (1-based) of 1 / log2(r + 1)
  and the ideal DCG that of min(k, relevant) hits at the top.

Each metric is the mean over users with at least one relevant item (a user with none cannot
be scored and is left out).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

__all__ = [
    "hit_matrix",
    "hit_ratio_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
]


def hit_matrix(recommended: np.ndarray, relevant: Sequence[Collection[Any]]) -> np.ndarray:
    """``(users, k)`` bools: is the item at each rank relevant to its user?"""
    rec = np.asarray(recommended)
    hits = np.zeros(rec.shape, dtype=bool)
    for row, (items, chosen) in enumerate(zip(rec, relevant, strict=True)):
        if len(chosen):
            hits[row] = np.isin(items, np.fromiter(chosen, dtype=rec.dtype, count=len(chosen)))
    if rec.dtype.kind in "iu":
        hits &= rec >= 0  # padding never hits
    return hits


def precision_at_k(hits: np.ndarray) -> np.ndarray:
    """Per user: relevant recommendations / k."""
    return hits.sum(axis=1) / hits.shape[1]


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per user: relevant recommendations / relevant items."""
    return hits.sum(axis=1) / np.maximum(n_relevant, 1)


def hit_ratio_at_k(hits: np.ndarray) -> np.ndarray:
    """Per user: 1.0 when any recommendation is relevant."""
    return hits.any(axis=1).astype(float)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per user: discounted cumulative gain of the hits over the best possible one."""
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.clip(n_relevant, 1, k) - 1]
    return dcg / ideal


def ranking_metrics(
    recommended: np.ndarray, relevant: Sequence[Collection[Any]], k: int
) -> dict[str, float | int | None]:
    """Mean precision/recall/hr/ndcg at ``k`` over the users with a relevant item, and
    ``evaluated_users``. Metrics are None when no user can be scored."""
    rec = np.asarray(recommended)[:, :k]
    if rec.shape[1] < k:  # fewer items than k: pad, precision still counts k slots
        pad = np.full((rec.shape[0], k - rec.shape[1]), -1, dtype=rec.dtype)
        rec = np.concatenate([rec, pad], axis=1) if rec.dtype.kind in "iu" else rec
    n_relevant = np.array([len(r) for r in relevant], dtype=int)
    scored = n_relevant > 0
    if not scored.any():
        return {
            "precision_at_k": None,
            "recall_at_k": None,
            "hr_at_k": None,
            "ndcg_at_k": None,
            "evaluated_users": 0,
        }
    hits = hit_matrix(rec[scored], [r for r, s in zip(relevant, scored, strict=True) if s])
    n_rel = n_relevant[scored]
    return {
        "precision_at_k": float(precision_at_k(hits).mean()),
        "recall_at_k": float(recall_at_k(hits, n_rel).mean()),
        "hr_at_k": float(hit_ratio_at_k(hits).mean()),
        "ndcg_at_k": float(ndcg_at_k(hits, n_rel).mean()),
        "evaluated_users": int(scored.sum()),
    }
