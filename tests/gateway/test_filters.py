"""Conditions on model outputs, evaluated in Python with SQL's NULL semantics."""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot

from byom.errors import UnsupportedStatement
from gateway.filters import compile_condition


def check(condition: str, row: dict[str, Any]) -> bool | None:
    tree = sqlglot.parse_one(f"SELECT 1 WHERE {condition}").args["where"].this
    return compile_condition(tree, lambda c: lambda r, n=c.name: r[n])(row)


@pytest.mark.parametrize(
    ("condition", "row", "expected"),
    [
        ("y > 2", {"y": 3}, True),
        ("y > 2", {"y": None}, None),
        ("y = 'cat' OR z = 1", {"y": "dog", "z": 1}, True),
        ("y = 'cat' AND z = 1", {"y": None, "z": 2}, False),
        ("NOT y = 1", {"y": None}, None),
        ("y IS NULL", {"y": None}, True),
        ("y IS NOT NULL", {"y": 0}, True),
        ("y IN (1, 2, 3)", {"y": 2}, True),
        ("y BETWEEN 1 AND 2", {"y": 2.5}, False),
        ("y LIKE 'ca%'", {"y": "Cat"}, True),
        ("y * 2 + 1 >= z", {"y": 2, "z": 5}, True),
        ("y / z > 1", {"y": 1, "z": 0}, None),
        ("y > -1.5", {"y": -1}, True),
    ],
)
def test_conditions(condition: str, row: dict[str, Any], expected: bool | None) -> None:
    assert check(condition, row) is expected


def test_unsupported_function_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedStatement, match="Cannot evaluate UPPER"):
        check("upper(y) = 'A'", {"y": "a"})
