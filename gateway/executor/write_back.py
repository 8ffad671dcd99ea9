"""Write-back: a prediction JOIN's rows streamed into a datasource table.

``CREATE TABLE ds.t AS <JOIN>`` creates the table; ``INSERT INTO ds.t [(cols)] <JOIN>``
appends. Each batch is its own transaction: when one fails, the batches before it stay
written and the error says how many rows that was.
"""

from __future__ import annotations

import asyncio

from byom.errors import GatewayError, InvalidInput
from datasources import Datasource, TableWriter
from gateway.executor.join import join_batches
from gateway.executor.services import Services
from gateway.plans import WriteBackPlan
from gateway.result import Result


async def write_back(
    services: Services, p: WriteBackPlan, label: str, query_id: str | None
) -> Result:
    """Stream a JOIN's rows into a datasource table, one transaction per batch."""
    progress = services.progress
    entry = progress.start(label, "write", query_id)
    target = services.datasource(p.datasource)
    writer = None
    written = 0
    stream = join_batches(services, p.join, entry)
    try:
        with progress.failing(entry):
            try:
                async for labels, rows in stream:
                    if writer is None:
                        writer = _open_writer(target, p, labels)
                    if rows:
                        written += await asyncio.to_thread(writer.write, rows)
                if writer is not None:
                    # an empty result still makes its table
                    await asyncio.to_thread(writer.finish)
            except GatewayError as exc:
                if written and "rows_written" not in exc.details:  # the writer says so itself
                    exc.amend(
                        after=f" ({written} rows were already written to {p.table} and stay "
                        "there: each batch is its own transaction)"
                    )
                raise
    finally:
        await stream.aclose()
        if writer is not None:
            writer.close()
    progress.finish(entry, "done")
    where = f"{p.datasource}.{p.schema + '.' if p.schema else ''}{p.table}"
    return Result(
        columns=["rows_written", "table"],
        rows=[[written, where]],
        message=f"{written} rows written to {where}",
    )


def _open_writer(target: Datasource, p: WriteBackPlan, labels: list[str]) -> TableWriter:
    names = p.columns or labels
    if len(set(names)) != len(names):
        raise InvalidInput(
            "Write-back needs distinct column names; rename with AS: " + ", ".join(names)
        )
    return target.open_writer(p.table, names, schema=p.schema, mode=p.mode)
