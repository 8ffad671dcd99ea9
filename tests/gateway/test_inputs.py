"""What each dtype accepts as a model input (gateway.executor.inputs), one type at a time."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest

from byom.errors import InvalidInput
from gateway.executor.inputs import INPUT_TYPES, check_batch, check_rows
from gateway.planner import DTYPES


def one(dtype: str, value: Any) -> Any:
    """``value`` as it would be sent for an input of ``dtype`` (or InvalidInput)."""
    ((sent,),) = check_rows("m", {"x": dtype}, None, ["x"], [(value,)])
    return sent


def test_every_planner_dtype_has_an_input_rule() -> None:
    assert set(INPUT_TYPES) == set(DTYPES)


# (dtype, accepted value, value sent) - the README's "Input types" table, row by row.
ACCEPTED = [
    ("integer", 3000, 3000),
    ("integer", -7, -7),
    ("integer", 3000.0, 3000),
    ("integer", decimal.Decimal("12"), 12),
    ("integer", "3000", 3000),
    ("integer", " -7 ", -7),
    ("integer", "+5", 5),
    ("float", 2.5, 2.5),
    ("float", 3000, 3000),
    ("float", decimal.Decimal("1.25"), decimal.Decimal("1.25")),
    ("float", "2.5", 2.5),
    ("float", "-1e3", -1000.0),
    ("float", ".5", 0.5),
    ("binary", True, True),
    ("binary", False, False),
    ("binary", 0, 0),
    ("binary", 1, 1),
    ("binary", 1.0, 1.0),
    ("binary", "TRUE", "TRUE"),
    ("binary", "0", "0"),
    ("categorical", "red", "red"),
    ("categorical", 3, 3),
    ("categorical", 2.5, 2.5),
    ("categorical", True, True),
    ("categorical", dt.date(2024, 1, 31), dt.date(2024, 1, 31)),
    ("text", "hello", "hello"),
    ("text", "", ""),
    ("text", 3000, "3000"),
    ("text", 2.5, "2.5"),
    ("date", "2024-01-31", "2024-01-31"),
    ("date", dt.date(2024, 1, 31), dt.date(2024, 1, 31)),
    ("datetime", "2024-01-31 13:45:00", "2024-01-31 13:45:00"),
    ("datetime", "2024-01-31T13:45:00+02:00", "2024-01-31T13:45:00+02:00"),
    ("datetime", "2024-01-31", "2024-01-31"),
    ("datetime", dt.datetime(2024, 1, 31, 13, 45), dt.datetime(2024, 1, 31, 13, 45)),
    ("datetime", dt.date(2024, 1, 31), dt.date(2024, 1, 31)),
]


@pytest.mark.parametrize(("dtype", "value", "sent"), ACCEPTED)
def test_accepted_values_and_what_is_sent(dtype: str, value: Any, sent: Any) -> None:
    result = one(dtype, value)
    assert result == sent
    assert type(result) is type(sent)


REFUSED = [
    ("integer", "abc"),
    ("integer", 3000.5),
    ("integer", True),
    ("integer", "1e3"),
    ("integer", "3000.0"),
    ("integer", float("inf")),
    ("integer", [1]),
    ("float", "abc"),
    ("float", False),
    ("float", "nan"),
    ("float", "inf"),
    ("float", float("inf")),
    ("float", "1_000"),
    ("binary", 2),
    ("binary", "yes"),
    ("binary", 0.5),
    ("categorical", [1, 2]),
    ("categorical", {"a": 1}),
    ("text", True),
    ("text", ["a"]),
    ("date", "31/01/2024"),
    ("date", "2024-01-31 13:45:00"),
    ("date", dt.datetime(2024, 1, 31, 13, 45)),
    ("date", 20240131),
    ("datetime", "yesterday"),
    ("datetime", 1706700000),
]


@pytest.mark.parametrize(("dtype", "value"), REFUSED)
def test_refused_values_name_model_column_value_and_type(dtype: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        one(dtype, value)
    message = caught.value.message
    assert message.startswith("Model 'm': input 'x' is ")
    assert f"does not fit its dtype {dtype}: expected " in message
    assert "Nothing was sent" in message
    assert caught.value.details["column"] == "x"
    assert caught.value.details["dtype"] == dtype


def test_refused_value_is_shown_as_written() -> None:
    with pytest.raises(InvalidInput, match=r"input 'x' is 'abc', which does not fit its dtype"):
        one("integer", "abc")
    with pytest.raises(InvalidInput, match=r"is 3000\.5, which .* expected an integer"):
        one("integer", 3000.5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("missing", [None, float("nan"), decimal.Decimal("NaN")])
def test_null_for_a_declared_input_is_refused(dtype: str, missing: Any) -> None:
    with pytest.raises(InvalidInput, match="input 'x' is NULL or missing, but the model needs it"):
        one(dtype, missing)


def test_several_rows_name_the_row_and_undeclared_columns_pass() -> None:
    dtypes = {"a": "integer", "y": "integer"}
    rows = check_rows("m", dtypes, "y", ["a", "free", "y"], [("1", object, None), (2, [], "z")])
    assert rows == [(1, object, None), (2, [], "z")]  # 'free' and the target are not checked
    with pytest.raises(InvalidInput, match=r"input 'a' in rows\[1\] is NULL or missing"):
        check_rows("m", dtypes, "y", ["a"], [(1,), (None,)])
    with pytest.raises(InvalidInput, match=r"input 'a' in rows\[2\] is 'x'"):
        check_rows("m", dtypes, "y", ["a"], [(1,), (2,), ("x",)])


def test_unknown_dtypes_are_not_checked() -> None:
    assert check_rows("m", {"x": "vector"}, None, ["x"], [([1, 2],)]) == [([1, 2],)]


def test_batch_of_native_types_is_passed_through_untouched() -> None:
    rows = [(1, 2.5, "a"), (2, None, "b"), (None, 3, "c")]
    dtypes = {"i": "integer", "f": "float", "t": "text"}
    assert check_batch("m", dtypes, None, ["i", "f", "t"], rows) is rows  # no copy, no scan


def test_batch_column_of_another_type_is_checked_and_converted() -> None:
    rows = [(1, "10"), (2, None), (3, "30")]
    out = check_batch("m", {"a": "integer"}, None, ["id", "a"], rows)
    assert out == [(1, 10), (2, None), (3, 30)]  # NULLs pass in a JOIN batch
    with pytest.raises(InvalidInput) as caught:
        check_batch("m", {"a": "integer"}, None, ["id", "a"], [(1, "10"), (2, "ten")])
    assert caught.value.message.startswith(
        "Model 'm': the table's column 'a' is 'ten', which does not fit its dtype integer"
    )
    assert caught.value.message.endswith(
        "Cast or filter the column in the query. This batch was not sent."
    )


def test_batch_binary_ints_pass_when_all_zero_or_one() -> None:
    rows = [(0,), (1,), (None,), (True,)]
    assert check_batch("m", {"b": "binary"}, None, ["b"], rows) is rows
    with pytest.raises(InvalidInput, match="is 2, which does not fit its dtype binary"):
        check_batch("m", {"b": "binary"}, None, ["b"], [(0,), (2,)])


def test_batch_judges_a_column_by_its_first_non_null_value() -> None:
    """The documented limit of the cheap check: a later odd value in a column whose first
    value has the native type is not looked at (the model gets it as it is)."""
    rows = [(None,), (1,), ("x",)]
    assert check_batch("m", {"a": "integer"}, None, ["a"], rows) is rows
    with pytest.raises(InvalidInput, match="is 'x'"):
        check_batch("m", {"a": "integer"}, None, ["a"], [(None,), ("x",), (1,)])
