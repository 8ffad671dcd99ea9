"""A query to run later, somewhere else: what a training task gets instead of the rows.

``QueryReader`` pickles (it holds the datasource's record, not a connection), so the gateway
hands it to a Ray task, which opens the datasource where it runs and reads the query chunk
by chunk: a large training table never passes through the gateway's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from catalog.records import DatasourceRecord
from datasources.datasource import DEFAULT_CHUNK_ROWS, Datasource

__all__ = ["QueryReader"]


@dataclass(frozen=True)
class QueryReader:
    """Reads ``sql`` from the datasource of ``record``: yields ``(columns, rows)`` chunks."""

    record: DatasourceRecord
    sql: str
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def __call__(self) -> Iterator[tuple[list[str], list[tuple[object, ...]]]]:
        datasource = Datasource(self.record)
        try:
            yield from datasource.stream(self.sql, chunk_rows=self.chunk_rows)
        finally:
            datasource.close()
