"""Evaluate a SQL condition in Python, for the part of a JOIN's WHERE the datasource can't see.

Conditions on model outputs (``WHERE p.score > 0.9``) can only be checked after prediction.
``compile_condition`` turns such a sqlglot expression into a Python predicate once per
statement, so each row costs a few closure calls. SQL's three-valued logic is kept: a
comparison with NULL is unknown, and unknown rows are dropped, as in SQL.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from sqlglot import exp

from byom.errors import UnsupportedStatement
from gateway.sql_tree import literal_value

Row = Any  # whatever the column getters understand
Getter = Callable[[Row], Any]

_COMPARE: dict[type[exp.Expression], Callable[[Any, Any], bool]] = {
    exp.EQ: operator.eq,
    exp.NEQ: operator.ne,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
}
_ARITH: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.Add: operator.add,
    exp.Sub: operator.sub,
    exp.Mul: operator.mul,
    exp.Div: operator.truediv,
}


def compile_condition(node: exp.Expression, column: Callable[[exp.Column], Getter]) -> Getter:
    """A function ``row -> True | False | None`` for the condition ``node``.

    ``column`` maps each column reference to a getter ``row -> value``; the caller resolves
    names (table side or model side) once, here.
    """
    if isinstance(node, exp.Paren):
        return compile_condition(node.this, column)
    if isinstance(node, exp.And):
        left, right = (
            compile_condition(node.this, column),
            compile_condition(node.expression, column),
        )
        return lambda row: _and(left(row), right(row))
    if isinstance(node, exp.Or):
        left, right = (
            compile_condition(node.this, column),
            compile_condition(node.expression, column),
        )
        return lambda row: _or(left(row), right(row))
    if isinstance(node, exp.Not):
        inner = compile_condition(node.this, column)
        return lambda row: None if (v := inner(row)) is None else not v
    if type(node) in _COMPARE:
        op = _COMPARE[type(node)]
        left, right = _value(node.this, column), _value(node.expression, column)
        return lambda row: _compare(op, left(row), right(row))
    if isinstance(node, exp.Is):
        left = _value(node.this, column)
        if not isinstance(node.expression, exp.Null):
            raise UnsupportedStatement(f"Only IS [NOT] NULL is supported here: {node.sql()}")
        return lambda row: left(row) is None
    if isinstance(node, exp.In):
        left = _value(node.this, column)
        if not node.expressions:
            raise UnsupportedStatement(f"IN needs a list of values here: {node.sql()}")
        constants = _constants(node.expressions)
        if constants is not None:  # one set lookup a row, not a call per listed value
            return lambda row: _in(left(row), constants)
        options = [_value(v, column) for v in node.expressions]
        return lambda row: _in(left(row), [o(row) for o in options])
    if isinstance(node, exp.Between):
        value, low, high = (_value(node.args[k], column) for k in ("this", "low", "high"))
        return lambda row: _and(
            _compare(operator.ge, value(row), low(row)),
            _compare(operator.le, value(row), high(row)),
        )
    if isinstance(node, exp.Like):
        left, pattern = _value(node.this, column), _value(node.expression, column)
        return lambda row: _like(left(row), pattern(row))
    if isinstance(node, exp.Boolean | exp.Column):
        value = _value(node, column)
        return lambda row: None if (v := value(row)) is None else bool(v)
    raise UnsupportedStatement(
        f"This condition on model outputs cannot be evaluated by the gateway: {node.sql()}. "
        "Supported: comparisons, AND/OR/NOT, IS NULL, IN, BETWEEN, LIKE, + - * /."
    )


def _constants(nodes: list[exp.Expression]) -> frozenset[Any] | None:
    """The values of an IN list made only of literals, as a set; None when any item is not
    a literal. ``x IN (...)`` keeps its meaning: ``in`` compares with ``==`` either way."""
    values: list[Any] = []
    for node in nodes:
        if isinstance(node, exp.Paren):
            node = node.this
        if not isinstance(node, exp.Literal | exp.Boolean | exp.Null | exp.Neg) or node.find(
            exp.Column
        ):
            return None
        values.append(literal_value(node))
    try:
        return frozenset(values)
    except TypeError:  # never for literals; a list then, as before
        return None


def _value(node: exp.Expression, column: Callable[[exp.Column], Getter]) -> Getter:
    if isinstance(node, exp.Paren):
        return _value(node.this, column)
    if isinstance(node, exp.Column):
        return column(node)
    if isinstance(node, exp.Literal | exp.Boolean | exp.Null | exp.Neg) and not node.find(
        exp.Column
    ):
        constant = literal_value(node)
        return lambda row: constant
    if type(node) in _ARITH:
        op = _ARITH[type(node)]
        left, right = _value(node.this, column), _value(node.expression, column)

        def arith(row: Row) -> Any:
            a, b = left(row), right(row)
            if a is None or b is None:
                return None
            try:
                return op(a, b)
            except (TypeError, ZeroDivisionError):
                return None  # as SQLite does: NULL rather than an error mid-stream

        return arith
    raise UnsupportedStatement(f"Cannot evaluate {node.sql()} on model outputs.")


def _compare(op: Callable[[Any, Any], bool], a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    try:
        return op(a, b)
    except TypeError:  # e.g. '3' > 2: compare as text, the way a lenient database would
        return op(str(a), str(b))


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _in(value: Any, options: list[Any] | frozenset[Any]) -> bool | None:
    if value is None:
        return None
    try:
        return value in options
    except TypeError:  # an unhashable output (a list) against the set: equal to no literal
        return False


def _like(value: Any, pattern: Any) -> bool | None:
    if value is None or pattern is None:
        return None
    regex = "".join(
        ".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in str(pattern)
    )
    return re.fullmatch(regex, str(value), flags=re.IGNORECASE | re.DOTALL) is not None
