"""The answer to every statement: a table, possibly empty, plus an optional note.

Most statements answer a small ``Result``. A prediction JOIN answers a ``StreamResult``: its
column names are known (the executor computes the first batch before handing it out, so
errors in planning or the first batch still become a normal error answer), and its rows
arrive batch by batch so neither the gateway nor a streaming client holds them all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """``columns`` names; ``rows`` lists of values in that order (JSON-ready scalars)."""

    columns: list[str] = field(default_factory=list)
    rows: list[Sequence[Any]] = field(default_factory=list)  # lists or tuples
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"columns": self.columns, "rows": self.rows}
        if self.message:
            body["message"] = self.message
        return body

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name (later duplicate names win)."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass
class StreamResult:
    """Columns now, rows later: ``batches`` yields lists of rows in source order.

    Iterate it exactly once. Closing the iterator early (``aclose``) cancels the statement
    and releases its datasource connection. ``query_id`` names its progress entry.
    """

    columns: list[str]
    batches: AsyncIterator[list[Sequence[Any]]]
    query_id: str | None = None

    async def collect(self) -> Result:
        """Read every batch into one ``Result`` (only for results that fit in memory)."""
        rows: list[Sequence[Any]] = []
        async for batch in self.batches:
            rows.extend(batch)
        return Result(columns=self.columns, rows=rows)

    async def aclose(self) -> None:
        close = getattr(self.batches, "aclose", None)
        if close is not None:
            await close()
