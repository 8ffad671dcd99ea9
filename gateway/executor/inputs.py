"""Input values checked against a model's ``dtype_dict`` before anything is sent to it.

A value that does not fit the declared type is the user's mistake, so it is an
``InvalidInput`` (400) naming the model, the column, the value and the expected type, raised
before any request leaves - never a 502 from the endpoint choking on it. What each dtype
accepts (README, "Input types"):

=========== ================================================ ================================
dtype       accepted                                         sent as
=========== ================================================ ================================
integer     int; float or Decimal with no fraction (3000.0); int (3000.0 -> 3000,
            a string of digits with an optional sign         '3000' -> 3000)
            ('3000', ' -7 '). Refused: booleans, 3000.5,
            'abc', '1e3', NaN/inf
float       int, float, Decimal; a decimal number string     numbers as given; strings as
            ('2.5', '-1e3'). Refused: booleans, 'abc',        float ('2.5' -> 2.5)
            'nan', 'inf', inf
binary      TRUE/FALSE; 0/1 (int or float); the strings      as given
            'true', 'false', '0', '1' (any case)
categorical any scalar: string, number, boolean, date.         as given
            Refused: lists, objects
text        a string; a number (not a boolean)               strings as given; numbers as
                                                              text (3000 -> '3000')
date        a date; an ISO 8601 date string ('2024-01-31').   as given
            Refused: datetimes, other strings
datetime    a datetime or a date; an ISO 8601 string          as given
            ('2024-01-31 13:45:00', '2024-01-31T13:45Z',
            '2024-01-31')
=========== ================================================ ================================

Columns the model did not declare (and its target) are not checked; nor are dtypes this
module does not know (dtypes are extendable).

Two strengths of checking:

* ``check_rows`` - the one-row ``SELECT ... FROM model WHERE ...`` and the JSON predict API,
  where the user typed each value: every value is checked, and NULL (or a missing key) for a
  declared feature is refused.
* ``check_batch`` - a JOIN batch, read from the user's table (the hot path): per column and
  batch, the Python type of its first non-NULL value decides. A column of the type the
  database hands out for that dtype (``int`` for integer, ``float``/``int``/``Decimal`` for
  float, ...) is sent without looking at each value; any other column (a TEXT column for an
  integer feature, say) has every value checked and converted as above. NULLs pass: a table
  may have missing values and the model may handle them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import is_not
from typing import Any

from byom.errors import InvalidInput

_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BINARY_TEXT = frozenset({"true", "false", "0", "1"})
_BINARY_VALUES = frozenset({0, 1, None})  # True/False and 0.0/1.0 hash equal to 0/1


class _Refused(Exception):
    """A value that does not fit its dtype (internal: becomes InvalidInput with context)."""


def _integer(v: Any) -> Any:
    if isinstance(v, bool):
        raise _Refused
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, float | decimal.Decimal | numbers.Real):
        if math.isfinite(v) and v == int(v):
            return int(v)
        raise _Refused
    if isinstance(v, str) and _INTEGER_TEXT.fullmatch(v.strip()):
        return int(v.strip())
    raise _Refused


def _float(v: Any) -> Any:
    if isinstance(v, bool):
        raise _Refused
    if isinstance(v, numbers.Real | decimal.Decimal):
        if math.isfinite(v):
            return v
        raise _Refused
    if isinstance(v, str) and _NUMBER_TEXT.fullmatch(v.strip()):
        value = float(v)
        if math.isfinite(value):
            return value
    raise _Refused


def _binary(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Real) and v in (0, 1):
        return v
    if isinstance(v, str) and v.strip().lower() in _BINARY_TEXT:
        return v
    raise _Refused


def _categorical(v: Any) -> Any:
    if isinstance(v, str | numbers.Number | decimal.Decimal | dt.date | dt.time):
        return v
    raise _Refused


def _text(v: Any) -> Any:
    if isinstance(v, str):
        return v
    if isinstance(v, numbers.Real | decimal.Decimal) and not isinstance(v, bool):
        return str(v)
    raise _Refused


def _date(v: Any) -> Any:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v
    if isinstance(v, str):
        try:
            dt.date.fromisoformat(v.strip())
        except ValueError:
            raise _Refused from None
        return v
    raise _Refused


def _datetime(v: Any) -> Any:
    if isinstance(v, dt.date):  # a datetime, or a date (midnight)
        return v
    if isinstance(v, str):
        try:
            dt.datetime.fromisoformat(v.strip())
        except ValueError:
            raise _Refused from None
        return v
    raise _Refused


@dataclass(frozen=True)
class InputType:
    """What one dtype accepts: ``convert`` returns the value to send or raises ``_Refused``."""

    convert: Callable[[Any], Any]
    expected: str  # "expected ..." in error messages
    # Python types a JOIN column may have to pass without a per-value look (the types the
    # databases hand out for this dtype; ``convert`` is the identity on them).
    native: frozenset[type]
    # A C-speed test of a whole column, tried before the per-value look (binary: 0/1 ints).
    bulk_ok: Callable[[Sequence[Any]], bool] | None = None


def _binary_bulk(values: Sequence[Any]) -> bool:
    try:
        return set(values) <= _BINARY_VALUES
    except TypeError:  # unhashable values: look at each
        return False


INPUT_TYPES: dict[str, InputType] = {
    "integer": InputType(
        _integer,
        "an integer (e.g. 3000, '3000' or 3000.0; not 3000.5 or a boolean)",
        frozenset({int}),
    ),
    "float": InputType(
        _float,
        "a number (e.g. 2.5, 3000 or '2.5'; not a boolean, NaN or infinity)",
        frozenset({float, int, decimal.Decimal}),
    ),
    "binary": InputType(
        _binary,
        "a binary value (TRUE/FALSE, 0/1 or 'true'/'false')",
        frozenset({bool}),
        _binary_bulk,
    ),
    "categorical": InputType(
        _categorical,
        "a scalar value (text, number, boolean or date; not a list or an object)",
        frozenset({str, int, float, bool}),
    ),
    "text": InputType(_text, "text (a string or a number)", frozenset({str})),
    "date": InputType(
        _date, "a date (an ISO 8601 date such as '2024-01-31')", frozenset({dt.date})
    ),
    "datetime": InputType(
        _datetime,
        "a datetime (an ISO 8601 timestamp such as '2024-01-31 13:45:00', or a date)",
        frozenset({dt.datetime}),
    ),
}


def is_missing(v: Any) -> bool:
    """NULL: None, or a float/Decimal NaN (how pandas and JSON-from-Python spell it)."""
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    return isinstance(v, decimal.Decimal) and v.is_nan()


def show(v: Any) -> str:
    """A value as a user wrote it: 'text' quoted, NULL, numbers plain (cut when long)."""
    if v is None:
        return "NULL"
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _declared(
    dtype_dict: dict[str, str], target: str | None, columns: Sequence[str]
) -> list[tuple[int, str, str, InputType]]:
    """(index, column, dtype, InputType) of each input column the model declared."""
    found = []
    for i, name in enumerate(columns):
        if name == target:
            continue
        dtype = dtype_dict.get(name)
        kind = INPUT_TYPES.get(dtype.strip().lower()) if isinstance(dtype, str) else None
        if kind is not None:
            found.append((i, name, dtype, kind))
    return found


def check_rows(
    model: str,
    dtype_dict: dict[str, str],
    target: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> list[tuple[Any, ...]]:
    """Every declared input value of ``rows`` checked and converted; a NULL is refused.

    For values a user typed (one-row predict, JSON rows). ``InvalidInput`` names the model,
    the column, the value, the dtype and what it accepts (and ``rows[j]`` when there are
    several rows).
    """
    declared = _declared(dtype_dict, target, columns)
    out = [tuple(r) for r in rows]
    if not declared:
        return out
    several = len(out) > 1
    for j, row in enumerate(out):
        values = list(row)
        for i, name, dtype, kind in declared:
            value = values[i]
            subject = f"input '{name}'" + (f" in rows[{j}]" if several else "")
            if is_missing(value):
                raise InvalidInput(
                    f"Model '{model}': {subject} is NULL or missing, but the model needs it "
                    f"(dtype_dict: {dtype}); give {kind.expected}. {_NOTHING_SENT}",
                    model=model,
                    column=name,
                    dtype=dtype,
                    row=j if several else None,
                )
            try:
                values[i] = kind.convert(value)
            except _Refused:
                raise _refused(model, subject, name, value, dtype, kind) from None
        out[j] = tuple(values)
    return out


def check_batch(
    model: str,
    dtype_dict: dict[str, str],
    target: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> Sequence[Sequence[Any]]:
    """A JOIN batch checked cheaply: ``rows`` itself when every declared column holds its
    dtype's native type (judged by its first non-NULL value), else a copy with the columns
    that needed it checked value by value and converted. NULLs pass."""
    for i, name, dtype, kind in _declared(dtype_dict, target, columns):
        first = next((r[i] for r in rows if r[i] is not None), None)
        if first is None or type(first) in kind.native:
            continue
        values = [r[i] for r in rows]
        if kind.bulk_ok is not None and kind.bulk_ok(values):
            continue
        converted = []
        for value in values:
            if is_missing(value):
                converted.append(value)
                continue
            try:
                converted.append(kind.convert(value))
            except _Refused:
                subject = f"the table's column '{name}'"
                advice = " Cast or filter the column in the query. This batch was not sent."
                raise _refused(model, subject, name, value, dtype, kind, advice) from None
        if any(map(is_not, converted, values)):  # convert returns unchanged values as is
            rows = [(*r[:i], v, *r[i + 1 :]) for r, v in zip(rows, converted, strict=True)]
    return rows


_NOTHING_SENT = "Nothing was sent to the model."


def _refused(
    model: str,
    subject: str,
    name: str,
    value: Any,
    dtype: str,
    kind: InputType,
    advice: str = " " + _NOTHING_SENT,
) -> InvalidInput:
    return InvalidInput(
        f"Model '{model}': {subject} is {show(value)}, which does not fit its dtype "
        f"{dtype}: expected {kind.expected}.{advice}",
        model=model,
        column=name,
        value=show(value),
        dtype=dtype,
    )
