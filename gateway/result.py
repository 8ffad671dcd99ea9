"""The answer to every statement: a table, possibly empty, plus an optional note."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """``columns`` names; ``rows`` lists of values in that order (JSON-ready scalars)."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"columns": self.columns, "rows": self.rows}
        if self.message:
            body["message"] = self.message
        return body

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name (later duplicate names win)."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]
