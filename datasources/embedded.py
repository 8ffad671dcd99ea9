"""The embedded default datasource ``local``: a SQLite file under the gateway's home.

Its ``attach_dir`` is ``<home>/local``, so ``test_data.home_rentals`` lives in
``<home>/local/test_data.sqlite``. These are the only database files the gateway creates
itself: a user's datasource must name files that exist (``files``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from catalog.records import DatasourceRecord
from datasources.parameters import schema_name

EMBEDDED_NAME = "local"


def _embedded_parameters(home: Path) -> dict[str, Any]:
    return {
        "path": str(home / f"{EMBEDDED_NAME}.sqlite"),
        "attach_dir": str(home / EMBEDDED_NAME),
        "read_only": False,
    }


def embedded_record(home: Path) -> DatasourceRecord:
    """The embedded ``local`` datasource: ``<home>/local.sqlite`` with every
    ``<home>/local/<schema>.sqlite`` attached as ``<schema>``. Creates the directory and an
    empty ``local.sqlite`` (datasource files are opened without creating them)."""
    home = Path(home).expanduser().absolute()
    (home / EMBEDDED_NAME).mkdir(parents=True, exist_ok=True)
    (home / f"{EMBEDDED_NAME}.sqlite").touch(exist_ok=True)  # an empty file is a database
    return DatasourceRecord(
        name=EMBEDDED_NAME,
        engine="sqlite",
        parameters=_embedded_parameters(home),
        created_at=datetime.fromtimestamp(0, UTC),
    )


def is_embedded(record: DatasourceRecord) -> bool:
    """True for the record ``embedded_record`` makes (for any home): the product's own
    files, which need no file policy check."""
    path = record.parameters.get("path")
    if record.name != EMBEDDED_NAME or record.engine != "sqlite" or not isinstance(path, str):
        return False
    home = Path(path).parent
    return dict(record.parameters) == _embedded_parameters(home)


def embedded_schema_path(home: Path, schema: str) -> Path:
    """The file backing schema ``schema`` of the embedded datasource, created (empty) when
    missing so the schema is attached from the next query on, ready for a write-back."""
    name = schema_name("sqlite", schema)
    directory = Path(home).expanduser().absolute() / EMBEDDED_NAME
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.sqlite"
    path.touch(exist_ok=True)  # an empty file is a valid, empty SQLite database
    return path
