"""The tables a built-in model leaves next to the catalog (HeatWave's recommender tables:
``<model>_users``, ``<model>_items``, ``<model>_interactions``), in the embedded datasource
``local``, where ``SELECT * FROM local.<model>_users`` (or ``ML_SCHEMA_<user>.<model>_users``)
reads them. Each training replaces them; DROP MODEL drops them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import datasources as dsmod
from gateway.executor.services import Services

#: The kinds of tables a task may leave, as ``<model>_<kind>``.
TABLE_KINDS = ("users", "items", "interactions")
CHUNK_ROWS = 5000


def table_name(model: str, kind: str) -> str:
    return f"{model}_{kind}"


def write_tables(services: Services, model: str, tables: Mapping[str, Any]) -> list[str]:
    """Replace the model's tables with ``tables`` (kind -> DataFrame); the names written."""
    ds = services.datasource(dsmod.EMBEDDED_NAME)
    written = []
    for kind, frame in tables.items():
        name = table_name(model, kind)
        ds.query(f'DROP TABLE IF EXISTS "{name}"')
        columns = [str(c) for c in frame.columns]
        rows = [tuple(_plain(v) for v in row) for row in frame.itertuples(index=False, name=None)]
        with ds.open_writer(name, columns, mode="create") as writer:
            for start in range(0, len(rows), CHUNK_ROWS):
                writer.write(rows[start : start + CHUNK_ROWS])
        written.append(name)
    return written


def drop_tables(services: Services, model: str) -> None:
    """Drop every table the model may have left (none is fine)."""
    ds = services.datasource(dsmod.EMBEDDED_NAME)
    for kind in TABLE_KINDS:
        ds.query(f'DROP TABLE IF EXISTS "{table_name(model, kind)}"')


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (the drivers take those)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, bytes) else value
