"""Python values on their way into a table: the SQL type a new column gets from its first
values (``infer_column_type``), and the form each driver can bind (``bindable``)."""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    DOUBLE_PRECISION,
    REAL,
    TIMESTAMP,
    BigInteger,
    Boolean,
    Date,
    LargeBinary,
    Numeric,
    Text,
)
from sqlalchemy.types import TypeEngine


def _kind(value: Any) -> str | None:
    """The write-back type family of one value (None for NULL)."""
    if value is None:
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # numpy scalars classify as the Python value they hold
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, numbers.Real):  # float, numpy floats
        return "float"
    if isinstance(value, datetime):
        return "timestamptz" if value.utcoffset() is not None else "timestamp"
    if isinstance(value, date):
        return "date"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    return "text"


# Mixes of kinds that widen to one type (the first family holding the mix wins).
_WIDENINGS = (
    ({"int", "float"}, "float"),
    ({"int", "decimal"}, "decimal"),
    ({"int", "float", "decimal"}, "float"),
    ({"date", "timestamp"}, "timestamp"),
)


def infer_column_type(values: Sequence[Any], dialect: str) -> TypeEngine[Any]:
    """The SQL type a new table's column gets from its first values.

    bool -> BOOLEAN, int -> BIGINT, float -> DOUBLE PRECISION (REAL on SQLite),
    Decimal -> NUMERIC, str -> TEXT, date -> DATE, datetime -> TIMESTAMP (WITH TIME ZONE on
    PostgreSQL when the values carry one), bytes -> BYTEA/BLOB, only NULLs -> TEXT. Mixed
    ints and floats widen to the float type, dates and datetimes to TIMESTAMP; any other
    mix becomes TEXT.
    """
    # One value per Python type is enough to classify, except timezones, which vary.
    samples = {type(v): v for v in values if v is not None and not isinstance(v, datetime)}
    kinds = {_kind(v) for v in samples.values()}
    kinds |= {_kind(v) for v in values if isinstance(v, datetime)}
    kinds.discard(None)
    kind = "text"
    if len(kinds) == 1:
        kind = next(iter(kinds))
    elif kinds:  # only NULLs (no kinds) stay TEXT
        for family, widened in _WIDENINGS:
            if kinds <= family:
                kind = widened
                break
    sqlite = dialect == "sqlite"
    if kind == "bool":
        return Boolean()
    if kind == "int":
        return BigInteger()
    if kind == "float":
        return REAL() if sqlite else DOUBLE_PRECISION()
    if kind == "decimal":
        return Numeric()
    if kind == "date":
        return Date()
    if kind in ("timestamp", "timestamptz"):
        return TIMESTAMP(timezone=kind == "timestamptz" and not sqlite)
    if kind == "bytes":
        return LargeBinary()
    return Text()


# Types each driver binds as they are; anything else goes through bindable first.
SQLITE_NATIVE = (type(None), bool, int, float, str, bytes, bytearray, memoryview)
POSTGRES_NATIVE = (
    type(None),
    bool,
    int,
    float,
    str,
    bytes,
    bytearray,
    memoryview,
    Decimal,
    date,
    datetime,
    time,
    timedelta,
)


def bindable(value: Any, sqlite: bool) -> Any:
    """``value`` in a form the driver can bind; the database converts it from there."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # numpy scalars: neither driver adapts them
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    if sqlite:
        # sqlite3's own date adapters are deprecated (Python 3.12); write what they wrote.
        if isinstance(value, datetime):
            return value.isoformat(" ")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)  # a NUMERIC column turns the text into a number
        native = SQLITE_NATIVE
    else:
        native = POSTGRES_NATIVE
    if value is None or isinstance(value, native):
        return value
    return str(value)
