"""The embedded default datasource ``local``: a SQLite file under the gateway's home.

Its ``attach_dir`` is ``<home>/local``, so ``test_data.home_rentals`` lives in
``<home>/local/test_data.sqlite``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from catalog.records import DatasourceRecord
from datasources.parameters import schema_name

EMBEDDED_NAME = "local"


def embedded_record(home: Path) -> DatasourceRecord:
    """The embedded ``local`` datasource: ``<home>/local.sqlite`` with every
    ``<home>/local/<schema>.sqlite`` attached as ``<schema>``. Creates the directories."""
    home = Path(home).expanduser().absolute()
    (home / EMBEDDED_NAME).mkdir(parents=True, exist_ok=True)
    return DatasourceRecord(
        name=EMBEDDED_NAME,
        engine="sqlite",
        parameters={
            "path": str(home / f"{EMBEDDED_NAME}.sqlite"),
            "attach_dir": str(home / EMBEDDED_NAME),
        },
        created_at=datetime.fromtimestamp(0, UTC),
    )


def embedded_schema_path(home: Path, schema: str) -> Path:
    """The file backing schema ``schema`` of the embedded datasource, created (empty) when
    missing so the schema is attached from the next query on, ready for a write-back."""
    name = schema_name("sqlite", schema)
    directory = Path(home).expanduser().absolute() / EMBEDDED_NAME
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.sqlite"
    path.touch(exist_ok=True)  # an empty file is a valid, empty SQLite database
    return path
