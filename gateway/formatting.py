"""Turn results into text for people (ASCII tables) and into JSON bytes for programs.

The server, the client and the CLI all encode JSON here, so a value that one of them can
send (a numpy scalar, a datetime, a NaN from pandas) is one that all of them can.

The ``*Writer`` classes print a result that arrives batch by batch (a JOIN's stream):
CSV and JSON are written as the rows come, with flat memory; a table needs its column
widths first, so it keeps at most ``max_rows`` rows and counts the rest.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import math
import numbers
import sys
import unicodedata
from collections.abc import Mapping
from typing import Any, TextIO

import orjson

from gateway.result import Result

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json_default(value: Any) -> Any:
    """Values orjson does not know natively; raising TypeError makes orjson fail loudly."""
    pandas = sys.modules.get("pandas")
    # Checked before anything else: NaT passes isinstance(datetime) and would print as "NaT".
    if pandas is not None and (value is pandas.NaT or value is pandas.NA):
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()  # pandas.Timestamp is a datetime orjson refuses (a subclass)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "tolist"):  # numpy arrays orjson refuses (non-contiguous, object dtype)
        return value.tolist()
    if hasattr(value, "item"):  # numpy scalars of dtypes orjson does not serialize
        return value.item()
    raise TypeError(f"cannot encode a value of type {type(value).__name__} as JSON")


def dumps_json(value: Any) -> bytes:
    """JSON bytes for ``value``: datetimes as ISO text, numpy scalars as numbers, NaN as null."""
    return orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)


def format_value(value: Any) -> str:
    """One cell as text: ``NULL`` for None, compact floats, ISO dates, JSON for containers."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, int | str):
        text = str(value)
    elif isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, dict | list | tuple):
        text = dumps_json(value).decode()
    elif hasattr(value, "item") and not hasattr(value, "__len__"):
        return format_value(value.item())  # a numpy scalar
    else:
        pandas = sys.modules.get("pandas")
        if pandas is not None and (value is pandas.NaT or value is pandas.NA):
            return "NULL"
        text = str(value)
    # One table line per row: control characters would break the grid.
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    # 10 significant digits: short for 0.1 or 3000.0, exact enough for probabilities.
    return f"{value:.10g}"


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _width(text: str) -> int:
    """Columns a terminal uses for ``text`` (CJK characters take two)."""
    return sum(_char_width(c) for c in text)


def _truncate(text: str, max_width: int) -> str:
    if _width(text) <= max_width:
        return text
    kept: list[str] = []
    used = 0
    for char in text:
        w = _char_width(char)
        if used + w > max_width - 1:  # keep one column for the ellipsis
            break
        kept.append(char)
        used += w
    return "".join(kept) + "…"


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def format_table(result: Result, max_width: int = 40, total_rows: int | None = None) -> str:
    """``result`` as a psql/MySQL-style ASCII table followed by ``(N rows)``.

    Cells longer than ``max_width`` columns are cut with ``…``; numbers are right-aligned.
    A result without columns prints its message (or ``OK``). ``total_rows`` larger than
    the rows given (a cut-off stream) ends the table with ``... N rows in all`` instead.
    """
    if max_width < 2:
        raise ValueError(f"max_width must be at least 2, got {max_width}")
    if not result.columns:
        return result.message or "OK"

    header = [_truncate(format_value(c), max_width) for c in result.columns]
    body = [[_truncate(format_value(v), max_width) for v in row] for row in result.rows]
    numeric = [
        [isinstance(v, numbers.Number) and not isinstance(v, bool) for v in row]
        for row in result.rows
    ]
    widths = [_width(h) for h in header]
    for cells in body:
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], _width(cell))

    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str], right: list[bool]) -> str:
        padded = (_pad(c, w, r) for c, w, r in zip(cells, widths, right, strict=True))
        return "| " + " | ".join(padded) + " |"

    lines = [border, line(header, [False] * len(header)), border]
    lines.extend(line(cells, right) for cells, right in zip(body, numeric, strict=True))
    if body:
        lines.append(border)
    count = len(result.rows)
    if total_rows is not None and total_rows > count:
        lines.append(f"... {total_rows:,} rows in all (the first {count:,} shown)")
    else:
        lines.append(f"({count} row{'' if count == 1 else 's'})")
    if result.message:
        lines.append(result.message)
    return "\n".join(lines)


def format_progress(rows_done: int, rows_total: int | None, width: int = 20) -> str:
    """A one-line progress bar: ``[########............] 41% 410,000/1,000,000 rows``,
    or just ``410,000 rows`` when the total is unknown."""
    if not rows_total:
        return f"{rows_done:,} rows"
    fraction = min(1.0, max(0.0, rows_done / rows_total))
    filled = int(fraction * width)
    bar = "#" * filled + "." * (width - filled)
    return f"[{bar}] {int(fraction * 100):3d}% {rows_done:,}/{rows_total:,} rows"


def format_training(row: Mapping[str, Any], width: int = 20) -> str:
    """A one-line training bar from a version row of DESCRIBE:
    ``sentiment v2 training [#######.............] 35% epoch 1.05 step 120/340``."""
    percent = float(row.get("percent") or 0.0)
    filled = int(min(100.0, max(0.0, percent)) / 100 * width)
    phase = row.get("phase") or row.get("status") or ""
    text = f"{row.get('name')} v{row.get('version')} {phase} "
    text += f"[{'#' * filled}{'.' * (width - filled)}] {int(percent):3d}%"
    if row.get("epoch") is not None:
        text += f" epoch {float(row['epoch']):.2f}"
    if row.get("step") and row.get("total_steps"):
        text += f" step {row['step']}/{row['total_steps']}"
    return text


class ResultWriter:
    """Prints one result given as ``start`` (columns, message), ``write`` per batch of rows,
    then ``finish`` - or ``fail`` when the statement broke off part-way."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.columns: list[str] = []
        self.message: str | None = None
        self.rows = 0

    def start(self, columns: list[str], message: str | None = None) -> None:
        self.columns = list(columns)
        self.message = message

    def write(self, rows: list[list[Any]]) -> None:
        self.rows += len(rows)

    def finish(self) -> None:
        """Called once after the last batch."""

    def fail(self, error: dict[str, Any]) -> None:
        """Called instead of ``finish`` with the error's ``{"code", "message"}``."""


class TableWriter(ResultWriter):
    """An ASCII table of the first ``max_rows`` rows (None: all); later rows are counted."""

    def __init__(self, out: TextIO, max_rows: int | None = 1000, max_width: int = 40) -> None:
        super().__init__(out)
        self.max_rows = max_rows
        self.max_width = max_width
        self._kept: list[list[Any]] = []

    def write(self, rows: list[list[Any]]) -> None:
        room = len(rows) if self.max_rows is None else max(0, self.max_rows - len(self._kept))
        self._kept.extend(rows[:room])
        super().write(rows)

    def finish(self) -> None:
        shown = Result(columns=self.columns, rows=self._kept, message=self.message)
        print(format_table(shown, self.max_width, total_rows=self.rows), file=self.out)


class JsonWriter(ResultWriter):
    """The ``POST /api/sql`` document, ``{"columns": [...], "rows": [...]}``, written as
    the rows come; a failure ends it with an ``"error"`` member, as the server does."""

    def start(self, columns: list[str], message: str | None = None) -> None:
        super().start(columns, message)
        self._raw(b'{"columns":' + dumps_json(self.columns) + b',"rows":[')

    def write(self, rows: list[list[Any]]) -> None:
        if rows:
            self._raw((b"," if self.rows else b"") + dumps_json(rows)[1:-1])
        super().write(rows)

    def finish(self) -> None:
        tail = b"]"
        if self.message:
            tail += b',"message":' + dumps_json(self.message)
        self._raw(tail + b"}\n")

    def fail(self, error: dict[str, Any]) -> None:
        self._raw(b'],"error":' + dumps_json(error) + b"}\n")

    def _raw(self, data: bytes) -> None:
        self.out.write(data.decode())


def csv_value(value: Any) -> Any:
    """One CSV cell: empty for NULL, ISO dates, JSON for containers, numbers as Python
    writes them (full precision, unlike the table's 10 digits)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return dumps_json(value).decode()
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        return csv_value(value.item())  # a numpy scalar
    return format_value(value)


class CsvWriter(ResultWriter):
    """RFC 4180 CSV with a header line, written as the rows come (flat memory)."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self._csv = csv.writer(out, lineterminator="\n")

    def start(self, columns: list[str], message: str | None = None) -> None:
        super().start(columns, message)
        if self.columns:
            self._csv.writerow(self.columns)

    def write(self, rows: list[list[Any]]) -> None:
        self._csv.writerows([csv_value(v) for v in row] for row in rows)
        super().write(rows)
