"""Bounded, ordered, concurrent batch processing for the streaming JOIN.

``ordered_map`` runs an async function over a stream of chunks with at most ``concurrency``
calls in flight and yields the answers in source order: the oldest call is always the one
awaited, so a slow batch holds back the output but never reorders it. The next chunk is read
only when a slot is free, which is the backpressure: the datasource is never read ahead by
more than ``concurrency`` batches.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from byom.errors import GatewayError

T = TypeVar("T")
Chunk = tuple[list[str], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Done(Generic[T]):
    """One finished batch: rows ``first_row`` .. ``first_row + len(rows) - 1`` (0-based)."""

    first_row: int
    columns: list[str]
    rows: list[tuple[Any, ...]]
    answer: T


async def ordered_map(
    chunks: AsyncIterator[Chunk],
    call: Callable[[list[str], list[tuple[Any, ...]]], Awaitable[T]],
    concurrency: int,
) -> AsyncIterator[Done[T]]:
    """Yield ``call(columns, rows)`` for every non-empty chunk, in order, ``concurrency`` wide.

    A failing call cancels the others and re-raises, its message prefixed with the rows
    it covered ("JOIN rows 5001-10000: ..."), keeping the error's class and code; a failing
    read says how many rows had been read.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    pending: deque[tuple[int, list[str], list[tuple[Any, ...]], asyncio.Task[T]]] = deque()
    next_row = 0

    async def oldest() -> Done[T]:
        first, columns, rows, task = pending[0]
        try:
            answer = await task
        except GatewayError as exc:
            raise _annotate(exc, first, len(rows))  # noqa: B904 - same exception, annotated
        pending.popleft()
        return Done(first, columns, rows, answer)

    async def read() -> Chunk | None:
        try:
            return await anext(chunks)
        except StopAsyncIteration:
            return None
        except GatewayError as exc:  # the datasource failed: say where in the stream
            exc.amend(before=f"JOIN reading rows after row {next_row}: ")
            exc.details.update(rows_read=next_row)
            raise

    try:
        while (chunk := await read()) is not None:
            columns, rows = chunk
            if not rows:
                continue
            task = asyncio.ensure_future(call(columns, rows))
            pending.append((next_row, columns, rows, task))
            next_row += len(rows)
            if len(pending) >= concurrency:
                yield await oldest()
        while pending:
            yield await oldest()
    finally:
        for *_, task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*(t for *_, t in pending), return_exceptions=True)


def _annotate(exc: GatewayError, first: int, count: int) -> GatewayError:
    exc.amend(before=f"JOIN rows {first + 1}-{first + count}: ")
    exc.details.update(rows_from=first + 1, rows_to=first + count)
    return exc


async def aiter_thread(iterator: Iterator[T]) -> AsyncIterator[T]:
    """Iterate a blocking iterator from worker threads; closes it even when abandoned."""
    done = object()
    try:
        while True:
            item = await asyncio.to_thread(next, iterator, done)
            if item is done:
                return
            yield item  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
