"""Open datasources, one connection pool each, shared by every statement that uses them."""

from __future__ import annotations

import threading

from catalog.records import DatasourceRecord
from datasources.datasource import Datasource


def open_datasource(record: DatasourceRecord) -> Datasource:
    """A ``Datasource`` for a catalog record (parameters are validated again)."""
    return Datasource(record)


class DatasourcePool:
    """Open datasources by name, each with its own connection pool; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Datasource] = {}

    def get(self, record: DatasourceRecord) -> Datasource:
        """The open datasource for ``record``, reopened if its parameters changed."""
        with self._lock:
            key = record.name.lower()
            current = self._open.get(key)
            if current is not None and current.matches(record):
                return current
            datasource = open_datasource(record)
            if current is not None:
                # Dropped and created again with other parameters: stop using the old pool.
                current.close()
            self._open[key] = datasource
            return datasource

    def drop(self, name: str) -> None:
        """Close and forget the datasource ``name`` (no error when it is not open)."""
        with self._lock:
            datasource = self._open.pop(name.lower(), None)
        if datasource is not None:
            datasource.close()

    def close_all(self) -> None:
        """Close every open datasource."""
        with self._lock:
            open_now, self._open = list(self._open.values()), {}
        for datasource in open_now:
            datasource.close()
