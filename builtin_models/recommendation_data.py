"""The recommendation task's data: interactions read from the training query's rows
(:func:`read_interactions`) and content features of users and items from a metadata table
(``item_metadata`` / ``user_metadata``) for the TwoTower model's towers.

Interactions: ids must be strings (HeatWave's rule; another type is an InvalidInput naming the
column), rows with a NULL user, item or (explicit feedback) rating are dropped and counted.

Metadata: one column holds the ids (named like the ``items``/``users`` option); every other
column is a feature, its kind read from its values:

* text with a ``|`` in any value: several categories (MovieLens genres ``"Action|Comedy"``);
* other text of two words or more on average: a bag of words (lower-cased words);
* anything else: one category per value; numbers with many distinct values go to quantile
  buckets first.

A token becomes a feature only when at least two entities share it (a token of one entity
says nothing its ID embedding does not), and the most frequent :data:`MAX_FEATURES` are kept.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from builtin_models.two_tower import Features
from byom.errors import InvalidInput

__all__ = [
    "ITEM",
    "MAX_FEATURES",
    "MAX_PER_ENTITY",
    "RATING",
    "USER",
    "Examples",
    "Metadata",
    "features_for",
    "read_interactions",
    "read_metadata",
]

USER, ITEM, RATING = "user_id", "item_id", "rating"

MAX_FEATURES = 50_000
MAX_PER_ENTITY = 48
_BUCKETS = 8  # quantile buckets of a numeric column
_FEW = 20  # distinct values below which a number is a category
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Metadata:
    """A metadata table reduced to tokens per id (``what``: item_metadata | user_metadata)."""

    what: str
    tokens: dict[str, list[str]]  # id -> its feature tokens
    columns: list[str]  # the feature columns used


@dataclass(frozen=True)
class Examples:
    """Validated interactions (one per row, in query order) and what came with them."""

    users: list[str]
    items: list[str]
    ratings: list[float] | None  # the rating column, if the query had one
    feedback: str  # explicit | implicit
    threshold: float | None
    dropped_null_rows: int = 0
    user_metadata: Metadata | None = None
    item_metadata: Metadata | None = None
    columns: dict[str, str] = dataclasses.field(default_factory=dict)  # users/items options

    def positives(self) -> np.ndarray:
        """A bool per row: a positive interaction (what the ranking learns)."""
        if self.feedback == "implicit" and self.ratings is not None and self.threshold is not None:
            return np.asarray(self.ratings, dtype=float) > self.threshold
        return np.ones(len(self.users), dtype=bool)


def _find(frame: pd.DataFrame, *names: str) -> Any:
    by_lower = {str(c).lower(): c for c in frame.columns}
    return next((by_lower[n.lower()] for n in names if n and n.lower() in by_lower), None)


def _strings(values: pd.Series, name: str) -> None:
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return
    present = values.dropna()
    bad = present.map(lambda v: not isinstance(v, str))
    if bad.any():
        kind = type(present[bad].iloc[0]).__name__
        raise InvalidInput(
            f"The {name} column must hold strings, got {kind} (as in HeatWave): CAST({name} "
            "AS CHAR) in the query, or store the ids as text.",
            column=name,
        )


def read_interactions(
    frame: pd.DataFrame, options: Mapping[str, Any], metadata: dict[str, Metadata | None]
) -> Examples:
    """Rows -> Examples: the id rule, NULL rows dropped and counted, ratings checked."""
    users_name = str(options.get("users") or USER)
    items_name = str(options.get("items") or ITEM)
    feedback = str(options.get("feedback") or "explicit")
    found = {n: _find(frame, n, d) for n, d in ((users_name, USER), (items_name, ITEM))}
    missing = [n for n, c in found.items() if c is None]
    if missing:
        raise InvalidInput(
            f"recommendation needs the columns {users_name} and {items_name} (the users and "
            f"items options); the query returned {', '.join(map(str, frame.columns)) or 'none'}.",
            column=missing[0],
        )
    user_col, item_col = found[users_name], found[items_name]
    rating_col = _find(frame, RATING)
    if feedback == "explicit" and rating_col is None:
        raise InvalidInput(
            "Explicit feedback (the default) learns a rating column: return one (... AS "
            "rating), or set feedback 'implicit'.",
            column=RATING,
        )
    _strings(frame[user_col], users_name)
    _strings(frame[item_col], items_name)
    ratings = None
    if rating_col is not None:
        ratings = pd.to_numeric(frame[rating_col], errors="coerce")
        bad = ratings.isna() & frame[rating_col].notna()
        if bad.any():
            raise InvalidInput(
                f"The rating column must be numeric, got {frame[rating_col][bad].iloc[0]!r}.",
                column=RATING,
            )
    keep = frame[user_col].notna() & frame[item_col].notna()
    if ratings is not None and feedback == "explicit":
        keep &= ratings.notna()
    threshold = options.get("feedback_threshold")
    return Examples(
        users=frame[user_col][keep].tolist(),
        items=frame[item_col][keep].tolist(),
        ratings=None if ratings is None else ratings[keep].astype(float).tolist(),
        feedback=feedback,
        threshold=None if threshold is None else float(threshold),
        dropped_null_rows=int((~keep).sum()),
        user_metadata=metadata.get("user_metadata"),
        item_metadata=metadata.get("item_metadata"),
        columns={"users": users_name, "items": items_name},
    )


def _tokens(name: str, values: pd.Series) -> list[list[str]]:
    """The tokens of each value of one feature column (see the module docstring)."""
    present = values.dropna()
    if present.empty:
        return [[] for _ in range(len(values))]
    if pd.api.types.is_bool_dtype(present) or not pd.api.types.is_numeric_dtype(present):
        text = [None if pd.isna(v) else str(v) for v in values.tolist()]
        given = [v for v in text if v is not None]
        if any("|" in v for v in given):
            return [
                [] if v is None else [f"{name}={p.strip()}" for p in v.split("|") if p.strip()]
                for v in text
            ]
        if np.mean([len(_WORD.findall(v)) for v in given]) >= 2:
            return [
                [] if v is None else [f"{name}~{w}" for w in _WORD.findall(v.lower())] for v in text
            ]
        return [[] if v is None else [f"{name}={v}"] for v in text]
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.nunique() > _FEW:
        ranks = numbers.rank(pct=True)
        buckets = np.minimum((ranks * _BUCKETS).fillna(-1).astype(int), _BUCKETS - 1)
        return [[] if b < 0 else [f"{name}#q{b}"] for b in buckets]
    return [[] if pd.isna(v) else [f"{name}={v:g}"] for v in numbers]


def read_metadata(frame: pd.DataFrame, what: str, id_column: str, default: str) -> Metadata:
    """The tokens of every id in a metadata ``frame``; InvalidInput when its id column is
    missing or not strings. ``id_column`` is the option's name, ``default`` the task's."""
    by_lower = {str(c).lower(): c for c in frame.columns}
    key = next((by_lower[n.lower()] for n in (id_column, default) if n.lower() in by_lower), None)
    if key is None:
        raise InvalidInput(
            f"The {what} table has no '{id_column}' column to join on (its columns: "
            f"{', '.join(map(str, frame.columns)) or 'none'}).",
            column=id_column,
        )
    ids = frame[key]
    bad = ids.dropna().map(lambda v: not isinstance(v, str))
    if bad.any():  # the same rule as the training query's ids
        kind = type(ids.dropna()[bad].iloc[0]).__name__
        raise InvalidInput(
            f"The {what} column {key} must hold strings (as the training query's ids), got "
            f"{kind}: CAST it to a string type.",
            column=str(key),
        )
    rows = frame[ids.notna()].drop_duplicates(subset=[key], keep="first")
    columns = [c for c in rows.columns if c != key]
    per_column = [_tokens(str(c).lower(), rows[c]) for c in columns]
    tokens = {
        str(entity): [t for column in per_column for t in column[i]]
        for i, entity in enumerate(rows[key].tolist())
    }
    return Metadata(what, tokens, [str(c) for c in columns])


def features_for(metadata: Metadata | None, catalog: Sequence[str]) -> Features | None:
    """Feature ids per catalog entity (in catalog order); None without metadata or when no
    token is shared by two entities."""
    if metadata is None:
        return None
    counts = Counter(t for tokens in metadata.tokens.values() for t in set(tokens))
    shared = [t for t, n in counts.most_common(MAX_FEATURES) if n >= 2]
    if not shared:
        return None
    vocab = {t: i for i, t in enumerate(sorted(shared))}
    ids = np.full((len(catalog), MAX_PER_ENTITY), -1, dtype=np.int64)
    width = 0
    for row, entity in enumerate(catalog):
        found = sorted({vocab[t] for t in metadata.tokens.get(entity, ()) if t in vocab})
        found = found[:MAX_PER_ENTITY]
        ids[row, : len(found)] = found
        width = max(width, len(found))
    return Features(ids[:, : max(width, 1)], len(vocab))
