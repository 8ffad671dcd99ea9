"""Open datasources, one connection pool each, shared by every statement that uses them."""

from __future__ import annotations

import threading

from catalog.records import DatasourceRecord
from datasources.datasource import Datasource
from datasources.embedded import is_embedded
from datasources.files import FilePolicy
from datasources.parameters import validate


def open_datasource(record: DatasourceRecord) -> Datasource:
    """A ``Datasource`` for a catalog record (parameters are validated again; the file
    policy is the caller's: the gateway checks it before it hands a record out)."""
    return Datasource(record)


def check_files(record: DatasourceRecord, policy: FilePolicy) -> None:
    """Refuse ``record`` when its files break ``policy`` (``PATH_NOT_ALLOWED``,
    ``CATALOG_NOT_A_DATASOURCE``, ``PATH_NOT_FOUND``)."""
    engine, parameters = validate(record.engine, record.parameters)
    policy.check_record(record, parameters)


class DatasourcePool:
    """Open datasources by name, each with its own connection pool; thread-safe.

    Every datasource is checked against the file policy when it is opened, so a catalog
    written before the policy existed cannot open a file it now forbids. ``policy`` is the
    gateway's (``FilePolicy.for_gateway``); without one, the environment's is read at each
    open (``$BYOM_HOME``, ``$BYOM_CATALOG_URL``, ``$BYOM_DATA_DIRS``).
    """

    def __init__(self, policy: FilePolicy | None = None) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Datasource] = {}
        self.policy = policy

    def get(self, record: DatasourceRecord) -> Datasource:
        """The open datasource for ``record``, reopened if its parameters changed."""
        with self._lock:
            key = record.name.lower()
            current = self._open.get(key)
            if current is not None and current.matches(record):
                return current
            if not is_embedded(record):  # the product's own layout, under its own home
                check_files(record, self.policy or FilePolicy.from_environment())
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
