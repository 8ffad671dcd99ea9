"""Unit tests for adapters.wire: rows to JSON/Parquet/Arrow bodies, payload option, dtypes."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import io
import json
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adapters.base import Endpoint
from adapters.wire import (
    ARROW,
    JSON,
    JSON_COLUMNS,
    PARQUET,
    arrow_stream_bytes,
    arrow_table,
    check_dtype,
    columns_json,
    dumps,
    json_string,
    parquet_bytes,
    payload_option,
    records,
    records_json,
)
from byom.errors import EndpointBadResponse, InvalidInput, InvalidOption

URL = "http://models.test:8000/my_model/predict"
COLUMNS = ["i", "f", "s"]
ROWS = [(1, 1.5, "a"), (2, -0.25, 'b,"c"'), (3, 1e300, "é\n\\")]


def frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=COLUMNS)


def read_parquet(body: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(body))


def read_arrow(body: bytes) -> pd.DataFrame:
    with pa.ipc.open_stream(body) as reader:
        return reader.read_pandas()


# ---- JSON bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("encode", [records_json, columns_json])
def test_json_bodies_round_trip_through_pandas(encode: Any) -> None:
    text = encode(COLUMNS, ROWS, model="m")
    pd.testing.assert_frame_equal(pd.DataFrame(json.loads(text)), frame())


def test_records_json_is_a_list_of_row_objects() -> None:
    assert json.loads(records_json(COLUMNS, ROWS, model="m")) == [
        dict(zip(COLUMNS, row, strict=True)) for row in ROWS
    ]
    assert json.loads(columns_json(COLUMNS, ROWS, model="m")) == {
        "i": [1, 2, 3],
        "f": [1.5, -0.25, 1e300],
        "s": ["a", 'b,"c"', "é\n\\"],
    }


def test_json_string_embeds_json_text_exactly() -> None:
    inner = records_json(COLUMNS, ROWS, model="m")
    body = b'{"df":' + json_string(inner) + b"}"
    decoded = json.loads(body)
    assert decoded["df"] == inner.decode()
    pd.testing.assert_frame_equal(pd.DataFrame(json.loads(decoded["df"])), frame())


def test_json_bodies_of_no_rows() -> None:
    assert json.loads(records_json(COLUMNS, [], model="m")) == []
    assert json.loads(columns_json(COLUMNS, [], model="m")) == {"i": [], "f": [], "s": []}


def test_rows_may_be_any_sequence() -> None:
    Row = collections.namedtuple("Row", COLUMNS)
    rows = [Row(*r) for r in ROWS]
    assert json.loads(records_json(COLUMNS, rows, model="m")) == json.loads(
        records_json(COLUMNS, ROWS, model="m")
    )
    # a namedtuple is not a tuple to orjson: the fallback writes it as an array
    assert json.loads(dumps({"data": rows}, model="m")) == {"data": [list(r) for r in ROWS]}


SCALAR_ROW = (
    np.int64(3),
    np.float32(1.5),
    float("nan"),
    np.float64("nan"),
    np.bool_(True),
    decimal.Decimal("2.50"),
    decimal.Decimal("NaN"),
    dt.date(2024, 1, 2),
    dt.datetime(2024, 1, 2, 3, 4, 5),
    pd.Timestamp("2024-01-02 03:04:05"),
    pd.NaT,
    pd.NA,
    None,
    "héllo",
    b"raw",
)
SCALAR_COLUMNS = [
    "i", "f", "nan", "npnan", "b", "dec", "decnan", "d", "ts", "pts", "nat", "na", "none", "s",
    "bytes",
]  # fmt: skip
SCALAR_JSON = {
    "i": 3,
    "f": 1.5,
    "nan": None,
    "npnan": None,
    "b": True,
    "dec": 2.5,
    "decnan": None,
    "d": "2024-01-02",
    "ts": "2024-01-02T03:04:05",
    "pts": "2024-01-02T03:04:05",
    "nat": None,
    "na": None,
    "none": None,
    "s": "héllo",
    "bytes": "raw",
}


def test_dumps_handles_database_and_pandas_scalars() -> None:
    row = dict(zip(SCALAR_COLUMNS, SCALAR_ROW, strict=True))
    assert orjson.loads(dumps(row, model="m")) == SCALAR_JSON


@pytest.mark.parametrize("encode", [records_json, columns_json])
def test_json_bodies_convert_database_and_pandas_scalars(encode: Any) -> None:
    got = pd.DataFrame(json.loads(encode(SCALAR_COLUMNS, [SCALAR_ROW], model="m")))
    assert got.to_dict("records") == [SCALAR_JSON]


def test_dumps_rejects_unserialisable_values_as_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        dumps([{"x": object()}], model="byom")
    assert info.value.code == "INVALID_INPUT"
    assert "byom" in info.value.message and "object" in info.value.message


def test_records_checks_row_width_and_duplicate_columns() -> None:
    assert records(["a", "b"], [(1, 2)], model="m") == [{"a": 1, "b": 2}]
    with pytest.raises(InvalidInput, match="row 1 has 1 values for 2 columns"):
        records(["a", "b"], [(1, 2), (3,)], model="m")
    with pytest.raises(InvalidInput, match="duplicate input column"):
        records(["a", "a"], [(1, 2)], model="m")


# ---- dtype checks -------------------------------------------------------------------------------


def endpoint(dtype: str | None) -> Endpoint:
    dtypes = {"y": dtype} if dtype is not None else {}
    return Endpoint(model="byom", url_predict=URL, target="y", dtype_dict=dtypes)


@pytest.mark.parametrize(
    ("dtype", "good", "bad"),
    [
        ("integer", [1, 2.0, -3, None, float("nan")], ["3", 2.5, True, [1]]),
        ("float", [1, 2.5, None], ["2.5", False, {"a": 1}]),
        ("binary", [True, False, 0, 1, 1.0, "true", "False", "0", "1", None], [2, "yes", 0.5]),
        ("categorical", ["a", 1, 2.5, True, None], [[1], {"a": 1}]),
        ("text", ["some words", 3], [["a"]]),
        ("date", ["2024-01-02", None], [20240102]),
        ("datetime", ["2024-01-02T03:04:05"], [1.5]),
        ("INTEGER", [1], ["x"]),  # dtype names are case-insensitive
    ],
)
def test_check_dtype(dtype: str, good: list[Any], bad: list[Any]) -> None:
    check_dtype(good, endpoint(dtype))
    for value in bad:
        with pytest.raises(EndpointBadResponse) as info:
            check_dtype([*good, value], endpoint(dtype))
        err = info.value
        assert err.details["row"] == len(good)
        assert err.details["dtype"] == dtype
        assert f"row {len(good)}" in err.message
        assert repr(value)[:20] in err.message
        assert URL in err.message and "byom" in err.message


@pytest.mark.parametrize("dtype", [None, "vector", "json"])
def test_unknown_or_missing_dtype_is_not_checked(dtype: str | None) -> None:
    check_dtype([[1, 2], {"a": 1}, "x"], endpoint(dtype))


def test_check_dtype_without_target_is_a_no_op() -> None:
    ep = Endpoint(model="m", url_predict=URL, dtype_dict={"y": "integer"})
    check_dtype(["not an int"], ep)


def test_check_dtype_fast_path_still_finds_one_bad_value_among_many() -> None:
    values: list[Any] = list(range(10_000))
    check_dtype(values, endpoint("integer"))
    values[7_777] = True  # bool is not an integer here, though it is an int to Python
    with pytest.raises(EndpointBadResponse) as info:
        check_dtype(values, endpoint("integer"))
    assert info.value.details["row"] == 7_777
    check_dtype([1.0, 2, None, float("nan")], endpoint("integer"))  # slow path, all fine


# ---- width and name checks, every encoder ----------------------------------------------------

ENCODERS = [records_json, columns_json, parquet_bytes, arrow_stream_bytes]


@pytest.mark.parametrize("encode", ENCODERS)
def test_every_encoder_checks_widths_and_duplicate_columns(encode: Any) -> None:
    with pytest.raises(InvalidInput, match="input row 1 has 1 values for 2 columns") as info:
        encode(["a", "b"], [(1, 2), (3,), (4, 5, 6)], model="byom")
    assert info.value.details["row"] == 1 and "byom" in info.value.message
    with pytest.raises(InvalidInput, match="duplicate input column name.s. a"):
        encode(["a", "a"], [(1, 2)], model="byom")


# ---- Parquet and Arrow ---------------------------------------------------------------------


@pytest.mark.parametrize("read", ["parquet", "arrow"])
def test_binary_bodies_round_trip(read: str) -> None:
    body = (parquet_bytes if read == "parquet" else arrow_stream_bytes)(COLUMNS, ROWS, model="m")
    got = read_parquet(body) if read == "parquet" else read_arrow(body)
    expected = frame()
    assert list(got.columns) == COLUMNS
    assert got["i"].dtype == np.int64 and got["f"].dtype == np.float64
    assert got.to_dict("records") == expected.to_dict("records")
    if read == "parquet":
        assert pq.read_table(io.BytesIO(body)).to_pylist() == [
            dict(zip(COLUMNS, r, strict=True)) for r in ROWS
        ]


def test_arrow_table_types_and_missing_values() -> None:
    columns = ["i", "f", "s", "b", "dec", "d", "ts", "pts", "np", "raw", "none"]
    rows = [
        (1, 1.5, "x", True, decimal.Decimal("2.50"), dt.date(2024, 1, 2),
         dt.datetime(2024, 1, 2, 3, 4, 5), pd.Timestamp("2024-01-02"), np.int64(7), b"r", None),
        (None, float("nan"), None, None, None, None, None, pd.NaT, np.int64(8), None, None),
        (3, np.float64("nan"), "z", False, decimal.Decimal("NaN"), dt.date(2024, 1, 3),
         None, None, pd.NA, b"s", None),
    ]  # fmt: skip
    table = arrow_table(columns, rows, model="m")
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    assert types["i"] == pa.int64() and types["np"] == pa.int64()
    assert types["f"] == pa.float64() and types["dec"] == pa.float64()  # Decimal -> float
    assert types["s"] == pa.string() and types["b"] == pa.bool_()
    assert types["d"] == pa.date32() and pa.types.is_timestamp(types["ts"])
    assert pa.types.is_timestamp(types["pts"]) and types["raw"] == pa.binary()
    assert types["none"] == pa.null()
    assert table.column("f").to_pylist() == [1.5, None, None]  # NaN is a null, as in JSON
    assert table.column("dec").to_pylist() == [2.5, None, None]
    assert table.column("pts").to_pylist()[1:] == [None, None]
    assert table.column("np").to_pylist() == [7, 8, None]
    # and it survives Parquet
    back = pq.read_table(io.BytesIO(parquet_bytes(columns, rows, model="m")))
    assert back.to_pylist() == table.to_pylist()


def test_mixed_type_column_is_invalid_input_naming_it() -> None:
    with pytest.raises(InvalidInput) as info:
        parquet_bytes(["n", "code"], [(1, 10), (2, "A7")], model="byom")
    err = info.value
    assert "column 'code'" in err.message and "int, str" in err.message
    assert "payload='json'" in err.message and "byom" in err.message
    assert err.details["column"] == "code"
    with pytest.raises(InvalidInput, match="column 'big'"):
        arrow_stream_bytes(["big"], [(2**70,)], model="m")


def test_ints_and_floats_in_one_column_are_doubles() -> None:
    assert arrow_table(["x"], [(1,), (2.5,)], model="m").column("x").to_pylist() == [1.0, 2.5]


# ---- the payload option ------------------------------------------------------------------------

ALL = (JSON, JSON_COLUMNS, PARQUET, ARROW)


@pytest.mark.parametrize(
    ("options", "expected"),
    [({}, JSON), ({"payload": "parquet"}, PARQUET), ({"payload": " Arrow "}, ARROW)],
)
def test_payload_option(options: dict[str, Any], expected: str) -> None:
    assert payload_option(options, format="ray_serve", allowed=ALL, model="m") == expected


def test_unknown_payload_suggests_the_closest() -> None:
    with pytest.raises(InvalidOption) as info:
        payload_option({"payload": "parqet"}, format="ray_serve", allowed=ALL, model="byom")
    err = info.value
    assert err.message == (
        "Model 'byom': unknown payload 'parqet' for format 'ray_serve'. Did you mean parquet? "
        "Known: json, json_columns, parquet, arrow."
    )
    assert err.details["suggestion"] == "parquet" and err.details["option"] == "payload"


def test_payload_the_format_cannot_send() -> None:
    with pytest.raises(InvalidOption) as info:
        payload_option({"payload": "parquet"}, format="mlflow", allowed=(JSON,), model="byom2")
    assert info.value.message == (
        "Model 'byom2': format 'mlflow' cannot send payload='parquet'; it supports json."
    )
    with pytest.raises(InvalidOption, match="unknown payload 3 for format 'mlflow'"):
        payload_option({"payload": 3}, format="mlflow", allowed=(JSON,))


def test_decimal_column_is_float64_on_the_fast_path() -> None:
    rows = [(decimal.Decimal("1.50"),), (None,), (decimal.Decimal("100.25"),)]
    column = arrow_table(["price"], rows, model="m").column("price")
    assert column.type == pa.float64() and column.to_pylist() == [1.5, None, 100.25]
    back = read_parquet(parquet_bytes(["price"], rows, model="m"))
    assert back["price"].dtype == np.float64 and back["price"].iloc[2] == 100.25
