"""A prediction JOIN on Ray Data (``USING engine='ray'``): the same plan, many workers.

The gateway plans as always; here the source is read in parallel windows of row numbers
(``ray_join_worker.read_shards``, Ray tasks), and ``workers`` Ray actors
(``ray_join_worker.ModelCaller``) call the models, each with ``concurrency`` chunks in
flight through its own HTTP client and the gateway's adapters. The dataset keeps its input
order (``preserve_order``), so a SELECT streams its rows back in source order - ORDER BY
and LIMIT mean what they mean in the single-process JOIN. A write-back without LIMIT
writes from the workers in parallel, after the gateway wrote the first rows itself (so the
table is created, and typed, from the same first rows as a single-process write-back).

Which engine: ``USING engine='local'|'ray'``; without it, Ray when the gateway is already
connected to a Ray cluster and the source counts more than ``settings.ray_join_rows`` rows.
A plain gateway never imports Ray here. Workers open the datasource from its catalog
record, so every Ray node must reach it (a SQLite file only when all nodes share it), and
every node must reach the model endpoints.
"""

from __future__ import annotations

import asyncio
import math
import pickle
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from byom.errors import GatewayError
from gateway.batching import aiter_thread
from gateway.executor.join import Batches, join_batches
from gateway.executor.predict import check_ready
from gateway.executor.ray_join_worker import (
    TO_THE_END,
    ChunkJoiner,
    ChunkResult,
    JoinJob,
    ModelCaller,
    WriteTarget,
    read_shards,
    read_window,
)
from gateway.executor.services import Services
from gateway.plans import JoinPlan, WriteBackPlan
from gateway.progress import QueryProgress

if TYPE_CHECKING:
    from gateway.executor.write_back import WriteState

# Ray resources: a worker waits on HTTP most of the time, so it reserves a quarter of a
# CPU (4 workers fit on one core); a shard reader decodes rows and pickles them.
WORKER_CPUS = 0.25
READER_CPUS = 0.5
# Ray Data block size for this pipeline: a few pickled chunks each.
BLOCK_BYTES = 256 * 1024


def ray_connected() -> bool:
    """Whether this process is connected to a Ray cluster (never imports Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


async def choose_engine(services: Services, p: JoinPlan) -> tuple[str, int | None]:
    """(engine, the source's row count when it was counted to choose)."""
    engine = p.options.get("engine")
    if engine is not None:
        return str(engine), None
    threshold = services.settings.ray_join_rows
    if threshold <= 0 or not ray_connected():
        return "local", None
    ds = services.datasource(p.datasource)
    total = await asyncio.to_thread(ds.count, p.source_sql, p.params)
    return ("ray" if total is not None and total > threshold else "local"), total


async def ensure_ray(services: Services) -> None:
    """Connect to Ray as built-in models do (a local Ray, or RAY_ADDRESS) unless it is."""
    if ray_connected():
        return
    if services.host is not None:
        await services.host.serve_url()  # the gateway then also leaves Ray when it closes
        return
    from builtin_models import cluster

    options = cluster.RayOptions(serve_port=services.settings.serve_port)
    await asyncio.to_thread(cluster.connect, options)


async def _prepare(services: Services, p: JoinPlan, total: int | None) -> tuple[JoinJob, int]:
    """The workers' job (models checked and served, Ray connected) and the row count."""
    models = [await services.ensure_served(check_ready(m)) for m in p.models]
    await ensure_ray(services)
    if total is None:
        ds = services.datasource(p.datasource)
        total = await asyncio.to_thread(ds.count, p.source_sql, p.params)
    settings = services.settings
    timeout = p.options.get("timeout", settings.batch_timeout)
    job = JoinJob(
        plan=p,
        models=models,
        source=services.datasource_record(p.datasource),
        batch_size=int(p.options.get("batch_size", settings.batch_size)),
        concurrency=int(p.options.get("concurrency", settings.concurrency)),
        timeout=None if timeout is None else float(timeout),
        http=settings.http(),
    )
    return job, -1 if total is None else total


def windows(lo: int, total: int, shards: int, batch_size: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` row-number windows over rows ``lo + 1 ..``: at most ``shards``, whole
    batches each, the last open-ended (rows added after the count are still read)."""
    if total < 0 or shards <= 1 or total - lo <= batch_size:
        return [(lo, TO_THE_END)]
    batches = math.ceil((total - lo) / batch_size)
    per_shard = math.ceil(batches / min(shards, batches)) * batch_size
    bounds = list(range(lo, total, per_shard))
    return [(a, a + per_shard) for a in bounds[:-1]] + [(bounds[-1], TO_THE_END)]


def build_dataset(job: JoinJob, spans: list[tuple[int, int]], workers: int) -> Any:
    """The Ray Data pipeline: windows -> shard readers (tasks) -> model callers (actors)."""
    import ray.data

    ds = ray.data.from_items([{"lo": a, "hi": b} for a, b in spans], override_num_blocks=len(spans))
    # The dataset keeps a copy of the context: these settings are this JOIN's only.
    ctx = ds.context
    ctx.execution_options.preserve_order = True  # source order, as the local JOIN
    ctx.enable_progress_bars = False  # the gateway reports progress itself
    ctx.print_on_execution_start = False
    # A shard reader yields one small row per source chunk; Ray Data would gather a whole
    # window into one block (default target 128 MiB) and release nothing before the
    # window's end. Small blocks let chunks flow to the model callers as they are read.
    ctx.target_max_block_size = BLOCK_BYTES
    chunks = ds.map_batches(read_shards, fn_kwargs={"job": job}, batch_size=1, num_cpus=READER_CPUS)
    return chunks.map_batches(
        ModelCaller,
        fn_constructor_kwargs={"job": job},
        batch_size=job.concurrency,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=WORKER_CPUS,
    )


async def _results(dataset: Any) -> AsyncIterator[ChunkResult]:
    """The dataset's chunk results in order; Ray's errors as the gateway's own."""
    rows = aiter_thread(iter(dataset.iter_rows()))
    last = -1
    try:
        async for row in rows:
            result: ChunkResult = pickle.loads(row["result"])
            if result.error is not None:
                raise result.error
            if result.seq < last:  # preserve_order is what keeps ORDER BY true: check it
                raise GatewayError(f"Ray JOIN results out of order at row {result.seq + 1}.")
            last = result.seq
            yield result
    except GatewayError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray wraps the workers' errors; unwrap them
        raise gateway_error(exc) from exc
    finally:
        await rows.aclose()


def gateway_error(exc: BaseException) -> BaseException:
    """The ``GatewayError`` a Ray worker raised, from inside Ray's wrappers; ``exc`` itself
    when it is not Ray's; else a GatewayError naming what Ray said."""
    seen: set[int] = set()
    found: GatewayError | None = None
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, GatewayError) and type(current).__module__ == "byom.errors":
            found = current  # the innermost one wins: it is the worker's own, unwrapped
        todo += [getattr(current, "cause", None), current.__cause__, current.__context__]
    if found is not None:
        return found
    if type(exc).__module__.startswith("ray"):
        first = str(exc).strip().splitlines()
        return GatewayError(
            f"The Ray JOIN failed: {type(exc).__name__}: {first[-1] if first else ''}",
            code="RAY_JOIN_FAILED",
        )
    return exc


async def ray_batches(
    services: Services, p: JoinPlan, entry: QueryProgress, total: int | None = None
) -> Batches:
    """``join_batches`` on Ray Data: (labels, output rows) per source chunk, in order."""
    job, count = await _prepare(services, p, total)
    entry.rows_total = count if count >= 0 else None
    workers = int(p.options.get("workers", services.settings.ray_join_workers))
    spans = windows(0, count, workers, job.batch_size)
    dataset = await asyncio.to_thread(build_dataset, job, spans, workers)
    remaining = p.limit
    named = False
    results = _results(dataset)
    try:
        async for result in results:
            entry.raise_if_cancelled()  # a cancel: closing ``results`` stops the dataset
            entry.rows_done += result.rows_in
            if result.labels is None:
                continue
            out = result.rows
            if remaining is not None:
                out = out[:remaining]
                remaining -= len(out)
            named = True
            yield result.labels, out
            if remaining == 0:
                return
    finally:
        await results.aclose()
    if entry.rows_total is None:
        entry.rows_total = entry.rows_done
    if not named:  # no rows at all: still name the columns
        yield [c.label for c in p.outputs if c.name != "*"], []


async def write_parallel(
    services: Services, p: WriteBackPlan, entry: QueryProgress, total: int | None, state: WriteState
) -> None:
    """Write-back on Ray, the workers writing: the gateway joins and writes chunks itself
    until its first row is written (creating the table from it), then the rest of the
    source goes to the workers, each appending its chunks (one transaction each)."""
    job, count = await _prepare(services, p.join, total)
    entry.rows_total = count if count >= 0 else None
    joiner = ChunkJoiner(services, job)
    lo = 0
    more = False
    chunks = aiter_thread(read_window(job, 0, TO_THE_END))
    try:
        async for seq, columns, rows in chunks:
            result = await joiner.join(seq, columns, rows)
            entry.rows_done += result.rows_in
            lo = seq + len(rows)
            if result.labels is not None:
                state.open(result.labels)
            if result.rows:
                await state.write(result.rows)
                more = True
                break
    finally:
        await chunks.aclose()
    if not more:  # the gateway joined the whole source
        if entry.rows_total is None:
            entry.rows_total = entry.rows_done
        return
    writer = state.open([])
    target = WriteTarget(
        record=services.datasource_record(p.datasource),
        table=p.table,
        schema=p.schema,
        columns=list(writer.columns),
    )
    job = replace(job, write=target)
    workers = int(p.join.options.get("workers", services.settings.ray_join_workers))
    spans = windows(lo, count, workers, job.batch_size)
    dataset = await asyncio.to_thread(build_dataset, job, spans, workers)
    state.parallel = True
    results = _results(dataset)
    try:
        async for result in results:
            entry.rows_done += result.rows_in
            state.written += result.written
            # A cancel: the chunks the workers committed stay (each its own transaction).
            entry.raise_if_cancelled(
                f"at least {state.written} rows were written to {p.table} and stay there",
                rows_written=state.written,
            )
    finally:
        await results.aclose()
    if entry.rows_total is None:
        entry.rows_total = entry.rows_done


def stream_for(
    services: Services, p: JoinPlan, entry: QueryProgress, engine: str, total: int | None
) -> Batches:
    """The JOIN's batches on ``engine`` (a write-back that the gateway itself writes)."""
    if engine == "ray":
        return ray_batches(services, p, entry, total)
    return join_batches(services, p, entry, total=total)
