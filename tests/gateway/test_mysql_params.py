"""Unit tests of gateway.mysql_params: a prepared statement's values as SQL literals (the
packets themselves: tests/gateway/test_mysql_protocol.py, with a real client)."""

from __future__ import annotations

import math

import pytest

from byom.errors import GatewayError
from gateway.mysql_params import bind, sql_literal
from gateway.parser import parse


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (None, "NULL"),
        (True, "TRUE"),
        (-3, "-3"),
        (0.1, "0.1"),
        ("it's", "'it''s'"),
        ("a\\b", "'a\\b'"),
        ('"q"', "'\"q\"'"),
    ],
)
def test_literals(value: object, literal: str) -> None:
    assert sql_literal(value) == literal


def test_a_bound_string_parses_back_to_itself() -> None:
    value = "it's \\' \"?\" `x` ''"
    (statement,) = parse(bind("SELECT ? AS v FROM t WHERE a = ?", [value, 2]))
    assert statement.tree.expressions[0].this.this == value
    assert statement.tree.args["where"].this.expression.this == "2"


def test_places_are_those_of_the_statement_as_prepared() -> None:
    # A "?" inside quotes is no place; a "?" inside a bound value is never searched for.
    assert bind("SELECT '?', ?, ?", ["?", "'?"]) == "SELECT '?', '?', '''?'"


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_float_without_a_literal_is_refused(value: float) -> None:
    with pytest.raises(GatewayError) as info:
        sql_literal(value)
    assert info.value.code == "INVALID_INPUT" and "send NULL or a number" in info.value.message


def test_values_must_match_the_places() -> None:
    with pytest.raises(GatewayError) as info:
        bind("SELECT ?, ?", [1])
    assert info.value.code == "INVALID_INPUT"
    assert "2 parameters and 1 values" in info.value.message
