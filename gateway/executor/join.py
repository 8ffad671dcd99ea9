"""The streaming prediction JOIN.

The datasource yields chunks of ``batch_size`` rows from a worker thread, each chunk goes to
every joined model as one batch, at most ``concurrency`` batches are in flight, and results
are emitted in source order (the oldest batch is always awaited first). The first batch is
computed before the statement answers, so early errors are ordinary error answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlglot import exp

from adapters.base import Predictions
from adapters.urls import redact_url
from byom.errors import EndpointTimeout, InvalidInput, did_you_mean
from catalog.records import PredictorRecord
from gateway.batching import aiter_thread, ordered_map
from gateway.executor.predict import AdapterSource, check_ready, output_names, predict_batch
from gateway.executor.services import Services
from gateway.filters import compile_condition
from gateway.plans import MODEL_SIDE, TABLE_SIDE, JoinPlan, OutputColumn
from gateway.progress import ProgressRegistry, QueryProgress
from gateway.result import StreamResult

Batches = AsyncIterator[tuple[list[str], list[Sequence[Any]]]]


async def run_join(
    services: Services, p: JoinPlan, label: str, query_id: str | None
) -> StreamResult:
    """Start a streaming JOIN; its first batch is computed before this returns."""
    entry = services.progress.start(label, "join", query_id)
    stream = engine_batches(services, p, entry)
    return await _first_batch_then_rest(stream, entry, services.progress)


async def engine_batches(services: Services, p: JoinPlan, entry: QueryProgress) -> Batches:
    """The JOIN's batches from the engine it runs on: in this process, or on Ray Data
    (``USING engine='ray'``, or a big source while the gateway is connected to Ray)."""
    from gateway.executor import ray_join  # it imports this module; Ray itself only on use

    engine, total = await ray_join.choose_engine(services, p)
    inner = ray_join.stream_for(services, p, entry, engine, total)
    try:
        async for item in inner:
            yield item
    finally:
        await inner.aclose()


async def join_batches(
    services: Services, p: JoinPlan, entry: QueryProgress, *, total: int | None = None
) -> Batches:
    """Yield (labels, output rows) per batch, in source order; updates ``entry``.

    ``total``: the source's row count when the caller counted it already.
    """
    models = [await services.ensure_served(check_ready(m)) for m in p.models]
    ds = services.datasource(p.datasource)
    settings = services.settings
    batch_size = int(p.options.get("batch_size", settings.batch_size))
    concurrency = int(p.options.get("concurrency", settings.concurrency))
    timeout = p.options.get("timeout", settings.batch_timeout)
    counting: asyncio.Future[int | None] | None = None
    if total is None:
        counting = asyncio.ensure_future(asyncio.to_thread(ds.count, p.source_sql, p.params))
        counting.add_done_callback(lambda f: _set_total(entry, f))
    else:
        entry.rows_total = total

    async def predict_all(columns: list[str], rows: list[tuple[Any, ...]]) -> list[Predictions]:
        return await predict_models(services, models, p, timeout, columns, rows)

    remaining = p.limit
    chunks = aiter_thread(ds.stream(p.source_sql, p.params, chunk_rows=batch_size))
    done = ordered_map(chunks, predict_all, concurrency)
    try:
        async for batch in done:
            # A cancel (Gateway.cancel_query) stops the JOIN here, between batches: the
            # batches in flight are cancelled by the ``finally`` below, nothing is half-sent.
            entry.raise_if_cancelled()
            labels, out = shape_batch(p, models, batch.columns, batch.rows, batch.answer)
            if remaining is not None:
                out = out[:remaining]
                remaining -= len(out)
            entry.rows_done += len(batch.rows)
            yield labels, out
            if remaining == 0:
                return
        if entry.rows_total is None:  # the source ran out before count() answered
            entry.rows_total = entry.rows_done
        # No rows at all: still name the columns, from the source's columns.
        if entry.rows_done == 0:
            yield [c.label for c in p.outputs if c.name != "*"], []
    finally:
        # The row count runs on its own pooled connection in a thread that cannot be
        # cancelled; wait for it so the statement leaves no connection in use behind it.
        if counting is not None and not counting.done():
            await asyncio.wait([counting])
        await done.aclose()
        await chunks.aclose()


async def predict_models(
    services: AdapterSource,
    models: list[PredictorRecord],
    p: JoinPlan,
    timeout: float | None,
    columns: list[str],
    rows: list[tuple[Any, ...]],
) -> list[Predictions]:
    """One batch to every joined model at once, within the JOIN's ``timeout`` (if any)."""
    calls = [predict_batch(services, m, columns, rows, params=p.model_params) for m in models]
    if timeout is None:
        return list(await asyncio.gather(*calls))
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        _, pending = await asyncio.wait(
            tasks, timeout=float(timeout), return_when=asyncio.FIRST_EXCEPTION
        )
        for task in tasks:  # the first failure, in the models' order
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if pending:  # the timeout: name the models that had not answered, and their URLs
            slow = [m for m, task in zip(models, tasks, strict=True) if task in pending]
            raise _join_timeout(slow, len(rows), timeout)
        return [task.result() for task in tasks]
    finally:
        # The calls still running (a timeout, a failure, or this statement cancelled) stop.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _join_timeout(slow: list[PredictorRecord], rows: int, timeout: float) -> EndpointTimeout:
    """The JOIN's ``USING timeout`` ran out: which models (and their URLs) had not answered."""
    named = ", ".join(f"Model '{m.name}' at {redact_url(m.url_predict)}" for m in slow)
    verb = "has" if len(slow) == 1 else "have"
    return EndpointTimeout(
        f"{named} {verb} not answered a batch of {rows} rows within the JOIN's timeout of "
        f"{timeout:g}s; raise USING timeout=... or lower batch_size.",
        model=slow[0].name,
        url=slow[0].url_predict,
        models=[m.name for m in slow],
    )


def shape_batch(
    p: JoinPlan,
    models: list[PredictorRecord],
    columns: list[str],
    rows: list[tuple[Any, ...]],
    answers: list[Predictions],
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """A predicted batch as the JOIN's output: (labels, row tuples), the WHERE on model
    outputs applied (not the LIMIT: the caller counts rows across batches)."""
    rows, answers = one_row_per_answer(rows, answers, models)
    values, labels = _projection(p.outputs, columns, rows, models, answers)
    out = list(zip(*values, strict=True))  # column lists -> row tuples (JSON arrays)
    keep = _post_filter(p, models, columns, answers)
    if keep is not None:
        out = [r for j, (r, row) in enumerate(zip(out, rows, strict=True)) if keep(row, j)]
    return labels, out


RowCheck = Callable[[Sequence[Any], int], bool]


def one_row_per_answer(
    rows: list[tuple[Any, ...]], answers: list[Predictions], models: list[PredictorRecord]
) -> tuple[list[tuple[Any, ...]], list[Predictions]]:
    """The batch with one row per output row: a one-to-many answer (top-k items per user)
    repeats its input rows (an input row with no answer is left out, as an inner join); the
    other models' answers are repeated alike. One such model per JOIN."""
    many = [i for i, a in enumerate(answers) if a.rows is not None]
    if not many:
        return rows, answers
    if len(many) > 1:
        names = ", ".join(models[i].name for i in many)
        raise InvalidInput(
            f"Models {names} each answer several rows per input row; JOIN one of them at a time.",
        )
    index = answers[many[0]].rows or []
    expanded = [
        Predictions(values=a.values, extra=a.extra) if a.rows is not None else a.expanded(index)
        for a in answers
    ]
    return [rows[i] for i in index], expanded


def _post_filter(
    p: JoinPlan, models: list[PredictorRecord], columns: list[str], answers: list[Predictions]
) -> RowCheck | None:
    """The WHERE part on model outputs as ``(row, j) -> bool``, or None when there is none."""
    if p.post_filter is None:
        return None

    def column(node: exp.Column) -> Any:
        if node.table == TABLE_SIDE:
            if node.name not in columns:
                raise InvalidInput(f"Column '{node.name}' is not in the table's rows.")
            i = columns.index(node.name)
            return lambda rj: rj[0][i]
        index = int(node.table[len(MODEL_SIDE) :])
        record, answer = models[index], answers[index]
        names = output_names(record, answer)
        if node.name == names[0]:
            return lambda rj: answer.values[rj[1]]
        if node.name in answer.extra:
            values = answer.extra[node.name]
            return lambda rj: values[rj[1]]
        raise InvalidInput(
            f"Model '{record.name}' has no output column '{node.name}' to filter on; "
            f"its outputs: {', '.join(names)}.",
            model=record.name,
        )

    check = compile_condition(p.post_filter, column)
    return lambda row, j: check((row, j)) is True


def _projection(
    outputs: list[OutputColumn],
    columns: list[str],
    rows: list[tuple[Any, ...]],
    models: list[PredictorRecord],
    answers: list[Predictions],
) -> tuple[list[list[Any]], list[str]]:
    """Per output column, its values for the batch (a list per column) and its label.

    Working column by column keeps the per-row cost to one C-level zip at the end.
    """
    values: list[list[Any]] = []
    labels: list[str] = []
    for col in outputs:
        if col.side == "table":
            names = columns if col.name == "*" else [col.name]
            for name in names:
                if name not in columns:
                    raise InvalidInput(f"Column '{name}' is not in the table's rows.")
                values.append(list(map(itemgetter(columns.index(name)), rows)))
                labels.append(name if col.name == "*" else col.label)
            continue
        record, answer = models[col.model], answers[col.model]
        out_names = output_names(record, answer)
        names = out_names if col.name == "*" else [col.name]
        for name in names:
            if name not in out_names:
                hint = did_you_mean(name, out_names)
                raise InvalidInput(
                    f"Model '{record.name}' has no output column '{name}'."
                    + (f" Did you mean {hint}?" if hint else "")
                    + f" Its outputs: {', '.join(out_names)}.",
                    model=record.name,
                )
            values.append(answer.values if name == out_names[0] else answer.extra[name])
            labels.append(name if col.name == "*" else col.label)
    return values, labels


async def _first_batch_then_rest(
    stream: Batches, entry: QueryProgress, progress: ProgressRegistry
) -> StreamResult:
    """Run the stream up to its first batch, so early errors are ordinary errors and the
    column names are known; the rest is read when the caller iterates."""
    try:
        labels, first = await anext(stream)
    except BaseException as exc:
        await stream.aclose()
        progress.fail(entry, exc)
        raise

    async def rows() -> AsyncIterator[list[Sequence[Any]]]:
        try:
            with progress.failing(entry):
                if first:
                    yield first
                async for _, batch in stream:
                    yield batch
        finally:
            await stream.aclose()
        progress.finish(entry, "done")

    return StreamResult(columns=labels, batches=rows(), query_id=entry.id)


def _set_total(entry: QueryProgress, future: asyncio.Future[int | None]) -> None:
    if not future.cancelled() and future.exception() is None:
        entry.rows_total = future.result()
