"""The Ray side of an ``engine='ray'`` JOIN: shard readers and the model-calling workers.

Both run in Ray worker processes and get a ``JoinJob`` - records and settings, never a
connection or a client - from which each rebuilds what it needs: its own SQLAlchemy engine
from the datasource record, its own ``httpx.AsyncClient`` and adapter registry. A model is
reached through the same ``predict_models``/``predict_batch``/adapter code as the local JOIN.

The source is split into windows of row numbers: ``row_number() OVER ()`` over the JOIN's
own source query (its WHERE, ORDER BY and LIMIT inside), so every shard numbers the rows
exactly as the single-process JOIN reads them and together the windows cover each row
once. A dataset row is one source chunk (``batch_size`` rows, pickled): the values reach
the models exactly as the DBAPI returned them, with no Arrow/pandas type conversion.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import event

from adapters.base import Adapter, AdapterContext, Endpoint
from adapters.http import HttpSettings, make_client
from adapters.registry import AdapterRegistry
from byom.errors import GatewayError
from catalog.records import DatasourceRecord, PredictorRecord
from datasources import Datasource, TableWriter
from gateway.executor.join import predict_models, shape_batch
from gateway.executor.predict import AdapterSource
from gateway.executor.services import endpoint_for
from gateway.plans import JoinPlan

ROW_NUMBER = "__byom_rn"  # the window column added to the source query, dropped on read
TO_THE_END = -1  # a window's ``hi`` when it runs to the end of the source

Chunk = tuple[int, list[str], list[tuple[Any, ...]]]  # (index of its first row, columns, rows)


@dataclass(frozen=True)
class WriteTarget:
    """Where workers append their rows: the table exists already (the gateway made it)."""

    record: DatasourceRecord
    table: str
    schema: str | None
    columns: list[str]


@dataclass(frozen=True)
class JoinJob:
    """What a Ray worker needs to run its part of a JOIN; pickled to every worker."""

    plan: JoinPlan
    models: list[PredictorRecord]  # ready and served: their URLs are known
    source: DatasourceRecord
    batch_size: int
    concurrency: int  # chunks in flight per worker
    timeout: float | None
    http: HttpSettings
    write: WriteTarget | None = None


def open_datasource(record: DatasourceRecord) -> Datasource:
    """A private ``Datasource`` for ``record`` whose reads number rows the same way in
    every connection.

    PostgreSQL may read a table with parallel workers or join a scan already running
    elsewhere in the table (synchronized scans): either would give each shard its own row
    order, so both are switched off for these connections.
    """
    ds = Datasource(record)
    if ds.engine_name == "postgres":

        def _deterministic(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SET max_parallel_workers_per_gather = 0")
                cursor.execute("SET synchronize_seqscans = off")
            finally:
                cursor.close()
            dbapi_connection.commit()

        event.listen(ds.sa_engine, "connect", _deterministic)
    return ds


def window_query(plan: JoinPlan, lo: int, hi: int) -> tuple[str, dict[str, Any]]:
    """The source query restricted to rows ``lo + 1 .. hi`` (1-based; ``hi`` may be
    ``TO_THE_END``), with its row number as the last column."""
    inner = plan.source_sql.strip().rstrip(";").rstrip()
    # The inner query on lines of its own: a trailing "-- comment" must not eat the ")".
    sql = (
        f"SELECT * FROM (SELECT q.*, row_number() OVER () AS {ROW_NUMBER} FROM (\n{inner}\n) "
        f"AS q) AS w WHERE {ROW_NUMBER} > :byom_lo"
    )
    params = {**plan.params, "byom_lo": lo}
    if hi != TO_THE_END:
        sql += f" AND {ROW_NUMBER} <= :byom_hi"
        params["byom_hi"] = hi
    return sql, params


def read_window(job: JoinJob, lo: int, hi: int) -> Iterator[Chunk]:
    """Chunks of ``batch_size`` rows of the source's rows ``lo + 1 .. hi``, each with the
    0-based index of its first row (its place in the single-process JOIN's order)."""
    ds = open_datasource(job.source)
    sql, params = window_query(job.plan, lo, hi)
    drop_number = itemgetter(slice(0, -1))
    first = lo
    try:
        for columns, rows in ds.stream(sql, params, chunk_rows=job.batch_size):
            yield first, columns[:-1], list(map(drop_number, rows))
            first += len(rows)
    finally:
        ds.close()


def read_shards(batch: dict[str, Any], job: JoinJob) -> Iterator[dict[str, Any]]:
    """Ray Data ``map_batches`` function: each input row is a window (``lo``, ``hi``); one
    output row per source chunk: ``seq`` (its first row's index) and the pickled chunk (or
    the ``GatewayError`` that stopped the read)."""
    for lo, hi in zip(batch["lo"].tolist(), batch["hi"].tolist(), strict=True):
        first = int(lo)
        try:
            for first, columns, rows in read_window(job, int(lo), int(hi)):
                yield _row(first, (columns, rows))
        except GatewayError as exc:
            # Travels as data: Ray would keep only its text (a pickled exception loses the
            # chain Ray Data wraps it in), and the gateway raises it in source order.
            exc.amend(before=f"JOIN reading rows after row {first}: ")
            exc.details.update(rows_read=first)
            yield _row(first, exc)


def _row(seq: int, payload: object) -> dict[str, Any]:
    import numpy as np

    blob = np.empty(1, dtype=object)
    blob[0] = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return {"seq": np.array([seq], dtype=np.int64), "chunk": blob}


@dataclass(frozen=True)
class ChunkResult:
    """One source chunk, joined: ``labels`` is None for an empty chunk (nothing predicted);
    ``rows`` is empty when the worker wrote them itself (``written`` says how many).
    ``error``: why this chunk failed; the gateway raises it when it reaches the chunk."""

    seq: int
    rows_in: int
    labels: list[str] | None
    rows: list[tuple[Any, ...]]
    written: int = 0
    error: GatewayError | None = None


class WorkerAdapters:
    """A worker's own adapter registry over its own HTTP client (``AdapterSource``)."""

    def __init__(self, settings: HttpSettings) -> None:
        self.registry = AdapterRegistry(
            AdapterContext(http=make_client(settings), settings=settings)
        )

    def adapter_for(self, record: PredictorRecord) -> tuple[Adapter, Endpoint]:
        return self.registry.get(record.format), endpoint_for(record)


class ChunkJoiner:
    """Predicts and shapes source chunks the way the local JOIN does its batches."""

    def __init__(self, adapters: AdapterSource, job: JoinJob) -> None:
        self.adapters = adapters
        self.job = job

    async def join(self, seq: int, columns: list[str], rows: list[tuple[Any, ...]]) -> ChunkResult:
        """One chunk through every model; errors say which rows, as the local JOIN's do."""
        if not rows:
            return ChunkResult(seq, 0, None, [])
        job = self.job
        try:
            answers = await predict_models(
                self.adapters, job.models, job.plan, job.timeout, columns, rows
            )
            labels, out = shape_batch(job.plan, job.models, columns, rows, answers)
        except GatewayError as exc:
            exc.amend(before=f"JOIN rows {seq + 1}-{seq + len(rows)}: ")
            exc.details.update(rows_from=seq + 1, rows_to=seq + len(rows))
            raise
        return ChunkResult(seq, len(rows), labels, out)

    async def join_all(self, chunks: list[Chunk]) -> list[ChunkResult]:
        """Several chunks at once (the worker's in-flight calls); the first error cancels
        the others."""
        tasks = [asyncio.ensure_future(self.join(*chunk)) for chunk in chunks]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class ModelCaller:
    """Ray Data ``map_batches`` class: one Ray worker calling the models.

    Each call gets up to ``concurrency`` chunks and has them all in flight at once on the
    worker's own event loop and pooled client (kept across calls). With a write target it
    appends its rows to the table itself, one transaction per chunk.
    """

    def __init__(self, job: JoinJob) -> None:
        self.job = job
        self.loop = asyncio.new_event_loop()
        self.joiner = ChunkJoiner(WorkerAdapters(job.http), job)
        self.writer: TableWriter | None = None
        self.failed: GatewayError | None = None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        payloads = [
            (int(seq), pickle.loads(blob))
            for seq, blob in zip(batch["seq"].tolist(), batch["chunk"], strict=True)
        ]
        results: list[ChunkResult] = []
        if self.failed is None:
            chunks: list[Chunk] = []
            for seq, payload in payloads:
                if isinstance(payload, GatewayError):
                    self.failed = payload
                    break
                chunks.append((seq, *payload))
            try:
                results = self.loop.run_until_complete(self.joiner.join_all(chunks))
                if self.job.write is not None:
                    results = [self._write(r) for r in results]
            except GatewayError as exc:
                # Returned, not raised: Ray would keep only the text (see read_shards).
                self.failed = exc
        if self.failed is not None:  # this worker stops working; the gateway raises it
            seq = payloads[0][0] if payloads else 0
            results = [ChunkResult(seq, 0, None, [], error=self.failed)]
        out = np.empty(len(results), dtype=object)
        for i, result in enumerate(results):
            out[i] = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        return {"seq": np.array([r.seq for r in results], dtype=np.int64), "result": out}

    def _write(self, result: ChunkResult) -> ChunkResult:
        target = self.job.write
        if not result.rows or target is None:
            return result
        if self.writer is None:
            self.writer = open_datasource(target.record).open_writer(
                target.table, target.columns, schema=target.schema, mode="append"
            )
        written = self.writer.write(result.rows)
        return ChunkResult(result.seq, result.rows_in, result.labels, [], written)
