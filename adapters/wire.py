"""Rows to request bodies, and predicted values checked against ``dtype_dict``.

Everything here is pure (no I/O) and format-agnostic; the adapters pick what their wire format
needs. Batches arrive as ``columns`` plus ``rows`` (tuples in ``columns`` order) from the
executor and must leave as bytes with as little per-value Python work as possible, because
serialisation is the gateway's own share of a batch JOIN (``benchmarks/profile_payload.py``
measures it):

* ``records_json`` / ``columns_json``: the batch as records (``[{"col": v}, ...]``) or columnar
  (``{"col": [v, ...]}``) JSON; both are read by ``pd.DataFrame(json.loads(text))``;
* ``json_string``: JSON text as a JSON string literal (the ``ray_serve`` ``df`` field);
* ``parquet_bytes`` / ``arrow_stream_bytes``: the batch as a Parquet file or an Arrow IPC
  stream (pyarrow, imported on first use);
* ``payload_option``: the validated ``payload`` predictor option;
* ``check_dtype``: predictions against the target's dtype.

JSON conventions (all payloads): NaN and missing values are null, Decimal a float, dates and
times ISO strings, bytes UTF-8 text, numpy scalars plain numbers.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import math
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

import orjson

from adapters.base import Endpoint
from adapters.urls import redact_url
from byom.errors import EndpointBadResponse, InvalidInput, InvalidOption, did_you_mean

if TYPE_CHECKING:  # pyarrow is imported lazily: it costs ~0.2 s and only binary payloads use it
    import pyarrow as pa

__all__ = [
    "ARROW",
    "CONTENT_TYPES",
    "JSON",
    "JSON_COLUMNS",
    "PARQUET",
    "PAYLOADS",
    "PAYLOAD_OPTION",
    "arrow_stream_bytes",
    "arrow_table",
    "check_columns",
    "check_dtype",
    "check_widths",
    "columns_json",
    "dumps",
    "json_kind",
    "json_string",
    "parquet_bytes",
    "payload_option",
    "records",
    "records_json",
    "show",
    "snippet",
]

SNIPPET_CHARS = 100  # of an endpoint's answer in an error: enough to debug, not a page

# ---- payload names ---------------------------------------------------------------------------

JSON = "json"  # the SPEC wire format of each adapter
JSON_COLUMNS = "json_columns"  # ray_serve: "df" holds {"col": [...]} instead of records
PARQUET = "parquet"
ARROW = "arrow"
PAYLOADS = (JSON, JSON_COLUMNS, PARQUET, ARROW)
CONTENT_TYPES = {
    JSON: "application/json",
    JSON_COLUMNS: "application/json",
    PARQUET: "application/vnd.apache.parquet",
    ARROW: "application/vnd.apache.arrow.stream",
}
PAYLOAD_OPTION = "payload"


def payload_option(
    options: Mapping[str, Any], *, format: str, allowed: Sequence[str], model: str | None = None
) -> str:
    """The ``payload`` option of a predictor, lower-cased; ``json`` when absent.

    Raises InvalidOption, with a did-you-mean hint, for a value ``format`` does not support.
    """
    raw = options.get(PAYLOAD_OPTION)
    if raw is None:
        return JSON
    value = raw.strip().lower() if isinstance(raw, str) else raw
    if value in allowed:
        return value
    who = f"Model '{model}': " if model else ""
    known = ", ".join(allowed)
    if isinstance(value, str) and value in PAYLOADS:
        message = f"{who}format '{format}' cannot send payload='{value}'; it supports {known}."
        suggestion = None
    else:
        suggestion = did_you_mean(str(value), allowed)
        hint = f" Did you mean {suggestion}?" if suggestion else ""
        message = f"{who}unknown payload {raw!r} for format '{format}'.{hint} Known: {known}."
    raise InvalidOption(
        message, model=model, option=PAYLOAD_OPTION, value=str(raw), suggestion=suggestion
    )


# ---- rendering values for error messages -----------------------------------------------------


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked when cut; used to quote endpoint answers."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def show(value: Any, limit: int = SNIPPET_CHARS) -> str:
    """A parsed JSON answer as compact JSON text, cut to ``limit`` characters (for errors)."""
    try:
        text = orjson.dumps(value, default=_default).decode()
    except (TypeError, orjson.JSONEncodeError):  # NaN-bearing answers from json.loads are fine
        text = repr(value)
    return snippet(text, limit)


def json_kind(value: Any) -> str:
    """The JSON type name of a parsed value: object, array, string, number, boolean, null."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


# ---- rows: checks --------------------------------------------------------------------------


def check_columns(columns: Sequence[str], *, model: str) -> list[str]:
    """``columns`` as a list; InvalidInput when a name repeats (a record would lose a value)."""
    cols = list(columns)
    if len(set(cols)) != len(cols):
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        raise InvalidInput(
            f"Model '{model}': duplicate input column name(s) {', '.join(dupes)}; "
            "alias them so each column has its own name.",
            model=model,
        )
    return cols


def check_widths(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, model: str) -> None:
    """Raise InvalidInput when a row does not have one value per column."""
    width = len(columns)
    # set(map(len, ...)) runs in C; the per-row loop only runs to name the bad row.
    if not rows or set(map(len, rows)) == {width}:
        return
    for i, row in enumerate(rows):
        if len(row) != width:
            raise InvalidInput(
                f"Model '{model}': input row {i} has {len(row)} values for {width} columns "
                f"({', '.join(columns)}).",
                model=model,
                row=i,
            )


# ---- JSON ------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    """orjson fallback for the scalar types datasources and pandas hand us.

    orjson calls it only for values it cannot write itself, so batches of plain ints, floats
    and strings never pay for it.
    """
    if isinstance(value, decimal.Decimal):
        return None if value.is_nan() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        # pandas.Timestamp is a datetime subclass that orjson does not take natively.
        if value != value:  # NaT compares unequal to itself
            return None
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    if hasattr(value, "item") and callable(value.item):  # numpy scalars orjson does not know
        return value.item()
    if _is_missing(value):  # pandas.NA, pandas.NaT
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        # A row that is not a plain tuple/list (namedtuple, SQLAlchemy Row): an array.
        return list(value)
    raise TypeError(f"cannot send a value of type {type(value).__name__} as JSON")


def _is_missing(value: Any) -> bool:
    import pandas as pd  # local: needed only for the rare NA/NaT scalars, keeps import light

    return value is pd.NA or value is pd.NaT


_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def dumps(obj: Any, *, model: str) -> bytes:
    """``obj`` as JSON bytes; NaN and missing values become null, dates ISO strings."""
    try:
        return orjson.dumps(obj, default=_default, option=_DUMPS_OPTIONS)
    except (orjson.JSONEncodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"Model '{model}': cannot serialise the input rows to JSON: {exc}", model=model
        ) from exc


def records(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, model: str
) -> list[dict[str, Any]]:
    """Rows (tuples in ``columns`` order) as a list of dicts, checking widths and names."""
    cols = check_columns(columns, model=model)
    check_widths(cols, rows, model=model)
    # map/zip instead of a comprehension with zip(strict=True): the widths are checked above,
    # and this is the one per-row step of the JSON path (about half of its cost).
    return list(map(dict, map(zip, repeat(cols), rows)))


def records_json(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, model: str) -> bytes:
    """The batch as records JSON, ``[{"col": value, ...}, ...]`` (the SPEC's ``df``)."""
    return dumps(records(columns, rows, model=model), model=model)


def columns_json(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, model: str) -> bytes:
    """The batch as columnar JSON, ``{"col": [value, ...], ...}``, in ``columns`` order.

    About 2-3x cheaper than records (no dict per row, each key written once) and still read
    by ``pd.DataFrame(json.loads(text))``.
    """
    cols = check_columns(columns, model=model)
    check_widths(cols, rows, model=model)
    values = zip(*rows, strict=True) if rows else repeat((), len(cols))
    # Tuples are JSON arrays to orjson: no list() copy of each column needed.
    return dumps(dict(zip(cols, values, strict=True)), model=model)


def json_string(text: bytes) -> bytes:
    """``text`` (UTF-8 JSON) as a JSON string literal, for JSON-inside-JSON fields.

    One orjson pass over the string (it escapes with SIMD) is cheaper than building the outer
    object as a dict and dumping it; measured faster than escaping with ``bytes.replace`` too.
    """
    return orjson.dumps(text.decode())


# ---- Arrow / Parquet -----------------------------------------------------------------------

_NONE = type(None)


def _arrow_column(name: str, values: Sequence[Any], *, model: str) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        # Plain inference first: it is the fastest conversion (a per-value type scan in
        # Python would cost as much again) and succeeds for the usual columns.
        array = pa.array(values)
    except (ValueError, TypeError, OverflowError):  # ArrowInvalid/ArrowTypeError subclass these
        array = _arrow_column_slow(name, values, model=model)
    if pa.types.is_floating(array.type):
        nan = pc.is_nan(array)
        if pc.any(nan).as_py():  # NaN is a null, as in JSON
            array = pc.if_else(nan, pa.scalar(None, array.type), array)
    elif pa.types.is_decimal(array.type):
        # Decimal -> float64, as in JSON: pandas reads decimal128 as object columns of
        # Decimal, which most model code (and scikit-learn's scalers) does not expect.
        array = array.cast(pa.float64())
    return array


def _arrow_column_slow(name: str, values: Sequence[Any], *, model: str) -> pa.Array:
    """pandas NA/NaT, Decimal('NaN'), or a column pyarrow cannot type (InvalidInput)."""
    import pyarrow as pa

    converted = [float(v) if isinstance(v, decimal.Decimal) else v for v in values]
    try:
        # from_pandas=True: float NaN, pandas.NA and NaT become nulls.
        return pa.array(converted, from_pandas=True)
    except (ValueError, TypeError, OverflowError) as exc:
        kinds = ", ".join(sorted({type(v).__name__ for v in values if v is not None}))
        raise InvalidInput(
            f"Model '{model}': column '{name}' cannot be sent as Arrow/Parquet ({exc}); its "
            f"values are of types {kinds}, and a columnar payload needs one type per column. "
            "Cast the column in the query, or use payload='json'.",
            model=model,
            column=name,
        ) from exc


def arrow_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, model: str) -> pa.Table:
    """The batch as a ``pyarrow.Table``, one typed column per input column.

    Types are inferred per column (int64, double, string, bool, date32, timestamp, binary...);
    Decimal becomes float64 and NaN/NA/NaT become nulls. A column mixing types (an int and a
    string) is InvalidInput naming the column.
    """
    import pyarrow as pa

    cols = check_columns(columns, model=model)
    check_widths(cols, rows, model=model)
    transposed = zip(*rows, strict=True) if rows else repeat((), len(cols))
    arrays = [
        _arrow_column(name, values, model=model)
        for name, values in zip(cols, transposed, strict=True)
    ]
    return pa.Table.from_arrays(arrays, names=cols)


def parquet_bytes(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, model: str) -> bytes:
    """The batch as one Parquet file, written for speed rather than size.

    A batch is read once, whole, by an endpoint that is usually CPU-bound rather than
    network-bound: no compression (snappy costs ~50% more time), no dictionary encoding and
    no column statistics (they are for readers that skip data). Together 3x faster to write
    than pyarrow's defaults, for bodies ~30% larger (measured, benchmarks/profile_payload.py).
    """
    import pyarrow.parquet as pq

    table = arrow_table(columns, rows, model=model)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="none", use_dictionary=False, write_statistics=False)
    return sink.getvalue()


def arrow_stream_bytes(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, model: str
) -> bytes:
    """The batch as an Arrow IPC stream (schema + one record batch per table chunk)."""
    import pyarrow as pa

    table = arrow_table(columns, rows, model=model)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# ---- answer validation ----------------------------------------------------------------------

_SCALARS = (str, int, float, bool)
_BOOL_STRINGS = frozenset({"true", "false", "0", "1"})


def _integer_ok(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, float) and math.isfinite(v) and v.is_integer()


def _float_ok(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _binary_ok(v: Any) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, int | float):
        return v in (0, 1)
    return isinstance(v, str) and v.strip().lower() in _BOOL_STRINGS


def _scalar_ok(v: Any) -> bool:
    return isinstance(v, _SCALARS)


def _string_ok(v: Any) -> bool:
    return isinstance(v, str)


# dtype name -> (test, words for "expected ...", value types that always pass). None is always
# allowed (a missing prediction). The last member is the fast path: parsed JSON holds only
# exact builtin types, so when every value's type is in it no value needs its own test.
_DTYPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str, frozenset[type]]] = {
    "integer": (_integer_ok, "an integer", frozenset({int, _NONE})),
    "float": (_float_ok, "a number", frozenset({int, float, _NONE})),
    "binary": (_binary_ok, "a binary value (true/false, 0/1)", frozenset({bool, _NONE})),
    "categorical": (
        _scalar_ok,
        "a scalar (string, number or boolean)",
        frozenset({str, int, float, bool, _NONE}),
    ),
    "text": (
        _scalar_ok,
        "a scalar (string, number or boolean)",
        frozenset({str, int, float, bool, _NONE}),
    ),
    "date": (_string_ok, "a date string", frozenset({str, _NONE})),
    "datetime": (_string_ok, "a datetime string", frozenset({str, _NONE})),
}


def check_dtype(values: Sequence[Any], endpoint: Endpoint) -> None:
    """Raise EndpointBadResponse when a prediction does not fit ``dtype_dict[target]``.

    Nothing is checked when the target has no dtype or an unknown one (dtypes are extendable).
    """
    if endpoint.target is None:
        return
    dtype = endpoint.dtype_dict.get(endpoint.target)
    if not isinstance(dtype, str):
        return
    check = _DTYPE_CHECKS.get(dtype.strip().lower())
    if check is None:
        return
    ok, expected, fast_types = check
    if set(map(type, values)) <= fast_types:  # one C-level pass; the usual case
        return
    for i, value in enumerate(values):
        # None (and NaN, which is how JSON-from-Python spells a missing float) is "no value".
        if value is None or (isinstance(value, float) and math.isnan(value)) or ok(value):
            continue
        shown = snippet(repr(value), 80)
        url = redact_url(endpoint.url_predict)
        raise EndpointBadResponse(
            f"Model '{endpoint.model}': {url} returned {shown} for row {i}, "
            f"but column '{endpoint.target}' has dtype '{dtype}' and needs {expected}.",
            model=endpoint.model,
            url=url,
            row=i,
            value=shown,
            dtype=dtype,
        )
