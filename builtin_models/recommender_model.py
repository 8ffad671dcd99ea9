"""Serving a trained TwoTower recommender with numpy alone, and its MLflow "model from code".

Self-contained on purpose: MLflow copies this file into every logged model and runs it on
load, so it imports only mlflow, numpy, pandas and ``model_support.py`` (the helpers the
model files share, logged with every model) - never the gateway, never torch (every vector
was computed when training ended).

A saved recommender is ``recommender.npz`` (ids, vectors, biases, the training interactions)
plus ``byom_recommender.json`` (feedback, column names, rating range).

``predict(DataFrame, params)``: columns ``user_id`` and/or ``item_id`` (strings). Params:

* ``recommend``: ``ratings`` | ``items`` | ``users`` | ``items_to_items`` | ``users_to_users``;
  ``auto`` (the default) is ``items`` for a ``user_id`` column alone, ``users`` for an
  ``item_id`` column alone and ``ratings`` for both;
* ``topk`` (default 3): how many ids per input row;
* ``remove_seen`` (default true): leave out what the user (item) interacted with in training.

Answers:

* ``ratings``: one row per input row, ``row`` (its 0-based position) and ``prediction``
  (explicit feedback: the predicted rating; implicit: the ranking score). NULL for a NULL id,
  and for an unknown item with implicit feedback (no score to give).
* the other modes, one to many: up to ``topk`` rows per input row, ordered by ``row`` then
  ``rank``: ``row``, ``prediction`` (the recommended id), ``item_id`` or ``user_id`` (the same
  id, named by what it is), ``score``, ``rank`` (1..topk) and ``cold_start``: true when the
  input id was unknown and the answer is the fallback list - the most popular items (implicit;
  score: the share of training interactions) or best-rated ones (explicit; score: the damped
  mean rating), the most active users for ``users``. A NULL id answers no rows.
  ``items_to_items``/``users_to_users`` rank by cosine similarity and never return the id
  itself.

Scores for a batch of users are one matrix product over all items (in chunks that bound
memory) and ``argpartition`` for the top k.
"""

from __future__ import annotations

import json
import math
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

META_FILE = "byom_recommender.json"
ARRAYS_FILE = "recommender.npz"
ARTIFACT_KEY = "model"
USER, ITEM = "user_id", "item_id"
MODES = ("ratings", "items", "users", "items_to_items", "users_to_users")
#: The params the logged signature declares (MLflow fills these defaults in).
PARAMS_EXAMPLE: dict[str, Any] = {"recommend": "auto", "topk": 3, "remove_seen": True}
_CELLS = 1 << 22  # scores per chunk of rows (16 MiB of float32)


class Recommender:
    """Trained vectors and interactions, ready to answer every ``recommend`` mode."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.meta = dict(meta)
        self.explicit = meta["feedback"] == "explicit"
        self.user_ids = np.asarray(arrays["user_ids"]).astype(str)
        self.item_ids = np.asarray(arrays["item_ids"]).astype(str)
        self.user_vectors = np.ascontiguousarray(arrays["user_vectors"], dtype=np.float32)
        self.item_vectors = np.ascontiguousarray(arrays["item_vectors"], dtype=np.float32)
        self.item_bias = np.asarray(arrays["item_bias"], dtype=np.float32)
        self.arrays = dict(arrays)
        # Plain dicts: a lookup of a few ids costs microseconds (a pandas Index's get_indexer
        # costs ~1 ms of set-up per call, most of a one-user request over 100k items).
        self._user_index = {str(u): i for i, u in enumerate(self.user_ids)}
        self._item_index = {str(v): i for i, v in enumerate(self.item_ids)}
        # Training interactions, both ways, as CSR (indptr, indices).
        users, items = arrays["seen_users"], arrays["seen_items"]
        self.items_of = _csr(users, items, len(self.user_ids))
        self.users_of = _csr(items, users, len(self.item_ids))
        self.popular_items, self.popular_score = _fallback(arrays, "items")
        self.active_users, self.active_score = _fallback(arrays, "users")
        self._unit: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a saved recommender directory."""
        meta = json.loads((Path(path) / META_FILE).read_text())
        with np.load(Path(path) / ARRAYS_FILE, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        return cls(arrays, meta)

    def save(self, path: str | Path) -> None:
        """Write the directory :meth:`load` reads."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / ARRAYS_FILE, **self.arrays)
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2))

    # ----------------------------------------------------------------- lookups
    def user_index(self, ids: Any) -> np.ndarray:
        """Catalog index per id: -1 unknown, -2 NULL."""
        return _lookup(self._user_index, ids)

    def item_index(self, ids: Any) -> np.ndarray:
        return _lookup(self._item_index, ids)

    # ----------------------------------------------------------------- scores
    def ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Per pair: the predicted rating (explicit) or ranking score (implicit); NaN where
        an id is NULL (or the item unknown, implicit). Unknown ids count as zero vectors."""
        known_u, known_i = users >= 0, items >= 0
        u = np.where(known_u[:, None], self.user_vectors[np.maximum(users, 0)], 0.0)
        v = np.where(known_i[:, None], self.item_vectors[np.maximum(items, 0)], 0.0)
        if self.explicit:
            a = self.arrays
            bias_u = np.where(known_u, a["user_rating_bias"][np.maximum(users, 0)], 0.0)
            bias_i = np.where(known_i, a["item_rating_bias"][np.maximum(items, 0)], 0.0)
            value = self.meta["rating_mean"] + bias_u + bias_i
            value = value + ((u * a["rating_weight"]) * v).sum(axis=1)
            p = a["user_rating_factors"][np.maximum(users, 0)] * known_u[:, None]
            q = a["item_rating_factors"][np.maximum(items, 0)] * known_i[:, None]
            value = value + (p * q).sum(axis=1)
            value = np.clip(value, self.meta["rating_min"], self.meta["rating_max"])
            return np.where((users == -2) | (items == -2), np.nan, value)
        value = (u * v).sum(axis=1) + np.where(known_i, self.item_bias[np.maximum(items, 0)], 0)
        return np.where((users == -2) | ~known_i, np.nan, value)

    def top_items(
        self, users: np.ndarray, k: int, remove_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, scores)``, ``(len(users), k)``, best first; -1/NaN pad rows that have
        fewer candidates. ``users`` must be known (>= 0)."""
        return self._top(
            self.user_vectors, users, self.item_vectors, self.item_bias,
            self.items_of if remove_seen else None, k,
        )  # fmt: skip

    def top_users(
        self, items: np.ndarray, k: int, remove_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """The users whose score with each (known) item is highest."""
        bias = self.item_bias[items]
        index, score = self._top(
            self.item_vectors, items, self.user_vectors, None,
            self.users_of if remove_seen else None, k,
        )  # fmt: skip
        return index, score + bias[:, None]

    def similar(self, kind: str, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine neighbours of known items (``kind`` "items") or users, never themselves."""
        if kind not in self._unit:  # normalised once, on first use
            vectors = self.item_vectors if kind == "items" else self.user_vectors
            norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self._unit[kind] = vectors / norms
        unit = self._unit[kind]
        return self._top(unit, rows, unit, None, None, k, exclude_self=True)

    def _top(
        self,
        queries: np.ndarray,
        rows: np.ndarray,
        targets: np.ndarray,
        bias: np.ndarray | None,
        exclude: tuple[np.ndarray, np.ndarray] | None,
        k: int,
        exclude_self: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` targets per query row by dot product (+ ``bias``), leaving out the
        CSR ``exclude`` entries of each row (and the row itself with ``exclude_self``)."""
        n = len(targets)
        k_eff = min(k, n)
        out_index = np.full((len(rows), k), -1, dtype=np.int64)
        out_score = np.full((len(rows), k), np.nan, dtype=np.float64)
        chunk = max(1, _CELLS // max(n, 1))
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            scores = queries[part] @ targets.T
            if bias is not None:
                scores += bias
            if exclude_self:
                scores[np.arange(len(part)), part] = -np.inf
            if exclude is not None:
                indptr, indices = exclude
                which = np.repeat(np.arange(len(part)), indptr[part + 1] - indptr[part])
                cols = [indices[indptr[r] : indptr[r + 1]] for r in part]
                scores[which, np.concatenate(cols) if cols else which] = -np.inf
            if k_eff == 0:
                continue
            top = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            top_scores = np.take_along_axis(top_scores, order, axis=1)
            valid = np.isfinite(top_scores)
            out_index[start : start + len(part), :k_eff] = np.where(valid, top, -1)
            out_score[start : start + len(part), :k_eff] = np.where(valid, top_scores, np.nan)
        return out_index, out_score

    # ----------------------------------------------------------------- answers
    def predict(self, frame: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """The answer of the module docstring for ``frame`` and ``params``."""
        params = dict(params or {})
        users = _column(frame, USER, self.meta.get("users_column"))
        items = _column(frame, ITEM, self.meta.get("items_column"))
        mode = str(params.get("recommend") or "auto").strip().lower()
        if mode == "auto":
            mode = "ratings" if users is not None and items is not None else "items"
            mode = "users" if users is None and items is not None else mode
        if mode not in MODES:
            raise ValueError(f"recommend must be one of {', '.join(MODES)} (got '{mode}')")
        topk = int(params.get("topk", PARAMS_EXAMPLE["topk"]))
        if topk < 1:
            raise ValueError(f"topk must be at least 1 (got {topk})")
        remove_seen = _truth(params.get("remove_seen", True))
        needs = ITEM if mode in ("users", "items_to_items") else USER
        source = items if needs == ITEM else users
        if mode == "ratings" and (users is None or items is None):
            raise ValueError("recommend 'ratings' needs both user_id and item_id columns")
        if source is None:
            raise ValueError(f"recommend '{mode}' needs a {needs} column")
        if mode == "ratings":
            value = self.ratings(self.user_index(users), self.item_index(items))
            return pd.DataFrame({"row": np.arange(len(frame)), "prediction": _nullable(value)})
        index = self.item_index(source) if needs == ITEM else self.user_index(source)
        return self._one_to_many(mode, index, topk, remove_seen)

    def _one_to_many(self, mode: str, index: np.ndarray, k: int, remove_seen: bool) -> pd.DataFrame:
        answers_items = mode in ("items", "items_to_items")
        names = self.item_ids if answers_items else self.user_ids
        k = min(k, len(names))  # a huge topk must not allocate a huge answer
        known = np.flatnonzero(index >= 0)
        cold = np.flatnonzero(index == -1)
        if mode == "items":
            top, score = self.top_items(index[known], k, remove_seen)
        elif mode == "users":
            top, score = self.top_users(index[known], k, remove_seen)
        else:
            top, score = self.similar("items" if answers_items else "users", index[known], k)
        fallback, fallback_score = (
            (self.popular_items, self.popular_score)
            if answers_items
            else (self.active_users, self.active_score)
        )
        n_fb = min(k, len(fallback))
        rows = np.concatenate([np.repeat(known, k), np.repeat(cold, n_fb)])
        ids = np.concatenate([top.ravel(), np.tile(fallback[:n_fb], len(cold))])
        scores = np.concatenate([score.ravel(), np.tile(fallback_score[:n_fb], len(cold))])
        ranks = np.concatenate([np.tile(np.arange(1, k + 1), len(known)),
                                np.tile(np.arange(1, n_fb + 1), len(cold))])  # fmt: skip
        flags = np.concatenate([np.zeros(len(known) * k, bool), np.ones(len(cold) * n_fb, bool)])
        keep = ids >= 0
        rows, ids, scores, ranks, flags = (a[keep] for a in (rows, ids, scores, ranks, flags))
        order = np.lexsort((ranks, rows))
        named = names[ids[order]].astype(object)
        return pd.DataFrame(
            {
                "row": rows[order].astype(np.int64),
                "prediction": named,
                ITEM if answers_items else USER: named,
                "score": scores[order].astype(np.float64),
                "rank": ranks[order].astype(np.int64),
                "cold_start": flags[order],
            }
        )


def _csr(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, np.asarray(cols, dtype=np.int64)[order]


def _fallback(arrays: dict[str, np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The cold-start list (best first) and its scores, saved at training time."""
    return np.asarray(arrays[f"fallback_{kind}"]), np.asarray(arrays[f"fallback_{kind}_score"])


def _as_id(value: Any) -> Any:
    if model_support.missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _lookup(index: dict[str, int], ids: Any) -> np.ndarray:
    values = [_as_id(v) for v in list(ids)]
    return np.array([-2 if v is None else index.get(v, -1) for v in values], dtype=np.int64)


def _column(frame: pd.DataFrame, name: str, alias: str | None) -> pd.Series | None:
    columns = {str(c).lower(): c for c in frame.columns}
    for key in (name, (alias or "").lower()):
        if key and key in columns:
            return frame[columns[key]]
    return None


def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values.tolist()]


def _truth(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)


def frame_of(model_input: Any) -> pd.DataFrame:
    """A pyfunc input as a DataFrame (a DataFrame, a dict of columns or a list of records)."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, dict | list):
        return pd.DataFrame(model_input)
    raise ValueError(f"cannot read user_id/item_id from a {type(model_input).__name__}")


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: ``predict(DataFrame, params)`` -> DataFrame of the answer."""

    recommender: Recommender

    def load_context(self, context: Any) -> None:
        self.recommender = Recommender.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return self.recommender.predict(frame_of(model_input), params)


mlflow.models.set_model(RecommenderModel())
