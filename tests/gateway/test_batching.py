"""ordered_map: bounded concurrency, source order, errors that say which rows failed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from byom.errors import DatasourceError, EndpointBadResponse
from gateway.batching import aiter_thread, ordered_map


async def chunks(n: int, size: int, fail_at: int | None = None) -> AsyncIterator[Any]:
    for k in range(n):
        if k == fail_at:
            raise DatasourceError("disk on fire")
        yield ["x"], [(k * size + i,) for i in range(size)]


def collect(n: int, size: int, concurrency: int, call: Any, fail_at: int | None = None) -> list:
    async def main() -> list:
        return [d async for d in ordered_map(chunks(n, size, fail_at), call, concurrency)]

    return asyncio.run(main())


def test_order_is_kept_and_in_flight_is_bounded() -> None:
    in_flight = 0
    peak = 0
    rng = random.Random(3)

    async def call(columns: list[str], rows: list[tuple]) -> list[int]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(rng.random() / 200)  # later batches often finish first
        in_flight -= 1
        return [r[0] * 2 for r in rows]

    done = collect(20, 5, 3, call)
    assert [d.first_row for d in done] == list(range(0, 100, 5))
    assert [v for d in done for v in d.answer] == [2 * i for i in range(100)]
    assert peak == 3


def test_failing_call_names_its_rows_and_stops_the_rest() -> None:
    calls = 0
    completed = 0

    async def call(columns: list[str], rows: list[tuple]) -> list[int]:
        nonlocal calls, completed
        calls += 1
        if rows[0][0] == 10:
            raise EndpointBadResponse("Model 'm' returned 4 predictions for 5 rows")
        await asyncio.sleep(0.01)
        completed += 1
        return [0] * len(rows)

    with pytest.raises(EndpointBadResponse, match="JOIN rows 11-15: Model 'm'") as info:
        collect(10, 5, 4, call)
    assert info.value.details["rows_from"] == 11
    assert completed == 3  # only the batches before the failing one finished
    assert calls < 10  # the rest of the source was never read


def test_failing_read_says_how_far_it_got() -> None:
    async def call(columns: list[str], rows: list[tuple]) -> int:
        return len(rows)

    with pytest.raises(DatasourceError, match="after row 15: disk on fire"):
        collect(10, 5, 2, call, fail_at=3)


def test_aiter_thread_closes_an_abandoned_iterator() -> None:
    closed = []

    def source() -> Any:
        try:
            yield from range(100)
        finally:
            closed.append(True)

    async def main() -> list[int]:
        out = []
        it = aiter_thread(source())
        async for v in it:
            out.append(v)
            if v == 2:
                break
        await it.aclose()
        return out

    assert asyncio.run(main()) == [0, 1, 2]
    assert closed == [True]
