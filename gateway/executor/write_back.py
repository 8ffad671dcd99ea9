"""Write-back: a prediction JOIN's rows streamed into a datasource table.

``CREATE TABLE ds.t AS <JOIN>`` creates the table; ``INSERT INTO ds.t [(cols)] <JOIN>``
appends. Each batch is its own transaction: when one fails, the batches before it stay
written and the error says how many rows that was. On Ray (``USING engine='ray'``) without
a LIMIT the workers write their batches themselves, in parallel (``ray_join``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from byom.errors import GatewayError, InvalidInput
from datasources import Datasource, TableWriter
from gateway.executor import ray_join
from gateway.executor.services import Services
from gateway.plans import WriteBackPlan
from gateway.progress import QueryProgress
from gateway.result import Result


@dataclass
class WriteState:
    """The write-back's table writer (opened on the first batch) and rows written so far."""

    target: Datasource
    plan: WriteBackPlan
    writer: TableWriter | None = None
    written: int = 0
    parallel: bool = False  # Ray workers write too: ``written`` lags what they committed

    def open(self, labels: list[str]) -> TableWriter:
        """The writer, opened for ``labels`` (the JOIN's column names) on first use."""
        if self.writer is None:
            self.writer = _open_writer(self.target, self.plan, labels)
        return self.writer

    async def write(self, rows: list[tuple[object, ...]]) -> None:
        writer = self.writer
        assert writer is not None, "open() comes first"
        self.written += await asyncio.to_thread(writer.write, rows)


async def write_back(
    services: Services, p: WriteBackPlan, label: str, query_id: str | None
) -> Result:
    """Stream a JOIN's rows into a datasource table, one transaction per batch."""
    target = services.datasource(p.datasource)
    where = f"{p.datasource}.{p.schema + '.' if p.schema else ''}{p.table}"
    # Before the JOIN reads a row or a model sees one (the database would refuse anyway).
    target.refuse_writes(f"{'CREATE TABLE' if p.mode == 'create' else 'INSERT INTO'} {where}")
    progress = services.progress
    entry = progress.start(label, "write", query_id)
    state = WriteState(target, p)
    try:
        with progress.failing(entry):
            try:
                engine, total = await ray_join.choose_engine(services, p.join)
                if engine == "ray" and p.join.limit is None:
                    await ray_join.write_parallel(services, p, entry, total, state)
                else:  # the LIMIT counts rows across batches: one writer, here
                    # The JOIN counts rows as it yields them; the statement's progress counts
                    # rows committed, so an interrupted write-back's "at least N rows were
                    # written" (catalog.liveness) is never a batch ahead of the table.
                    read = QueryProgress(id=entry.id, statement=label, kind="join")
                    stream = ray_join.stream_for(services, p.join, read, engine, total)
                    try:
                        async for labels, rows in stream:
                            state.open(labels)
                            if rows:
                                await state.write(rows)
                            entry.rows_total = read.rows_total
                            entry.rows_done = state.written
                            # A cancel stops here, after a committed batch: those stay.
                            entry.raise_if_cancelled(
                                f"{state.written} rows were written to {p.table} and stay "
                                "there (each batch is its own transaction)",
                                rows_written=state.written,
                            )
                    finally:
                        await stream.aclose()
                    entry.rows_total = read.rows_total
                if state.writer is not None:
                    # an empty result still makes its table
                    await asyncio.to_thread(state.writer.finish)
            except GatewayError as exc:
                written = state.written
                if written and "rows_written" not in exc.details:  # the writer says so itself
                    exc.amend(
                        after=f" ({'at least ' if state.parallel else ''}{written} rows were "
                        f"already written to {p.table} and stay there: each batch is its "
                        "own transaction)"
                    )
                raise
    finally:
        if state.writer is not None:
            state.writer.close()
    progress.finish(entry, "done")
    written = state.written
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
