"""The ``USING`` options of a recommendation model, checked when ``CREATE MODEL`` runs.

Light on purpose (the gateway imports it at start-up through ``tasks.py``): no pandas, numpy
or torch. HeatWave's semantics:

* ``users`` / ``items``: the query's user and item id columns (default ``user_id`` and
  ``item_id``); non-empty strings.
* ``feedback``: ``explicit`` (default; the rating column is the target) or ``implicit``.
* ``feedback_threshold``: a number; with implicit feedback, rows whose rating is above it are
  the positives (without it every row is one).
* ``item_metadata`` / ``user_metadata``: ``{"table_name": "schema.table"}`` (a JSON string or
  an object): content features of the items or users.
* ``model_list``: an error - TwoTower is the default and only model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from byom.errors import InvalidOption

__all__ = ["FEEDBACKS", "OPTIONS", "check"]

OPTIONS = (
    "users",
    "items",
    "feedback",
    "feedback_threshold",
    "item_metadata",
    "user_metadata",
    "model_list",
)
FEEDBACKS = ("explicit", "implicit")


def _name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidOption(
            f"{key} must name a column (a non-empty string), got {value!r}.", option=key
        )
    return value.strip()


def _metadata(key: str, value: Any) -> dict[str, Any]:
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("table_name"), str):
        raise InvalidOption(
            f'{key} must be a JSON object with "table_name", e.g. '
            f'{{"table_name": "mydb.movies"}}; got {value!r}.',
            option=key,
        )
    if not parsed["table_name"].strip():
        raise InvalidOption(f"{key}.table_name must not be empty.", option=key)
    return {**parsed, "table_name": parsed["table_name"].strip()}


def _threshold(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidOption(
            f"feedback_threshold must be a number, got {value!r}.", option="feedback_threshold"
        )
    return float(value)


def _model_list(value: Any) -> None:
    names = value
    if isinstance(value, str):
        try:
            names = json.loads(value)  # '["TwoTower"]'
        except ValueError:
            names = value.split(",")
    names = names if isinstance(names, list | tuple) else [names]
    if any(str(n).strip().lower() == "twotower" for n in names):
        raise InvalidOption(
            "TwoTower is the default and only model for recommendation; remove model_list.",
            option="model_list",
        )
    raise InvalidOption(
        f"model_list {value!r}: recommendation trains TwoTower, its only model; remove model_list.",
        option="model_list",
    )


def check(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` normalised (``feedback`` filled in, metadata parsed, threshold a float);
    keys it does not know pass through. InvalidOption for a wrong value."""
    checked = dict(options)
    lower = {str(k).lower(): k for k in checked}
    for key in ("users", "items"):
        if key in lower:
            checked[lower[key]] = _name(key, checked[lower[key]])
    feedback = str(checked.get(lower.get("feedback", "feedback"), "explicit")).strip().lower()
    if feedback not in FEEDBACKS:
        raise InvalidOption(
            f"feedback must be explicit or implicit, got {feedback!r}.", option="feedback"
        )
    checked[lower.get("feedback", "feedback")] = feedback
    if "feedback_threshold" in lower:
        key = lower["feedback_threshold"]
        checked[key] = _threshold(checked[key])
    for key in ("item_metadata", "user_metadata"):
        if key in lower:
            checked[lower[key]] = _metadata(key, checked[lower[key]])
    if "model_list" in lower and checked[lower["model_list"]] not in (None, [], ""):
        _model_list(checked[lower["model_list"]])
    return checked
