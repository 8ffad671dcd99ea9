"""Scripts of several statements: how the failure of one of them is reported.

A script runs its statements in order, one at a time. When statement ``k`` fails, the
statements before it have taken effect and the ones after it have not run; the error says
so in its message (``Statement k: ... (statements 1-2 took effect; 4-5 did not run)``) and
in its details (``"statement": k, "done": [1, ..., k-1]``), the same whether it is answered
over HTTP, raised by ``Gateway.run_script`` or printed by ``byom sql``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from byom.errors import GatewayError, ParseError
from gateway.parser import DEFAULT_LIMITS, ParseLimits, ScriptStatement, parse_script
from gateway.result import Result, StreamResult

__all__ = [
    "INLINE_PARSE_CHARS",
    "MarkedBatches",
    "parse_for_run",
    "parse_off_loop",
    "run_statements",
    "script_error",
    "script_failure",
    "took_effect",
]

log = logging.getLogger("byom.gateway")

#: SQL up to this many characters is parsed on the event loop (well under a millisecond);
#: longer text in a worker thread, so that one big statement does not stall every other
#: request. A thread hop costs ~50-100 us, which a one-row prediction should not pay.
INLINE_PARSE_CHARS = 4096


def parse_for_run(text: str, limits: ParseLimits = DEFAULT_LIMITS) -> list[ScriptStatement]:
    """``parse_script``, with a syntax error of a script of several statements saying that
    nothing ran (``"done": []``): the whole script is parsed before any statement runs."""
    try:
        return parse_script(text, limits)
    except ParseError as exc:
        if "statement" in exc.details:
            exc.details["done"] = []
        raise


async def parse_off_loop(text: str, limits: ParseLimits = DEFAULT_LIMITS) -> list[ScriptStatement]:
    """``parse_for_run``, in a worker thread when ``text`` is long (``INLINE_PARSE_CHARS``)."""
    if len(text) <= INLINE_PARSE_CHARS:
        return parse_for_run(text, limits)
    return await asyncio.to_thread(parse_for_run, text, limits)


def took_effect(done: list[int]) -> str:
    """``statements 1-3 took effect`` (``done`` is always 1..k-1)."""
    if not done:
        return "no statement took effect"
    if len(done) == 1:
        return f"statement {done[0]} took effect"
    return f"statements {done[0]}-{done[-1]} took effect"


def script_failure(exc: GatewayError, index: int, total: int) -> GatewayError:
    """``exc`` (the failure of statement ``index`` of ``total``), marked as such in place:
    its message starts with ``Statement k:`` and says what took effect and what did not run.
    Marking an error twice changes nothing."""
    if exc.details.get("statement") is not None:
        return exc
    done = list(range(1, index))
    note = took_effect(done)
    if index < total:
        later = f"statement {total}" if index + 1 == total else f"statements {index + 1}-{total}"
        note += f"; {later} did not run"
    exc.amend(before=f"Statement {index}: ", after=f" ({note})")
    exc.details["statement"] = index
    exc.details["done"] = done
    return exc


def script_error(exc: Exception, index: int, total: int) -> GatewayError:
    """The error to raise for ``exc`` failing statement ``index`` of ``total``: marked with
    ``script_failure`` (an unexpected exception first becomes an INTERNAL_ERROR, logged)."""
    if not isinstance(exc, GatewayError):
        log.error("statement %d of a script failed", index, exc_info=exc)
        exc = GatewayError(
            f"internal gateway error: {type(exc).__name__}: {exc}; see the gateway log",
            code="INTERNAL_ERROR",
        )
    return script_failure(exc, index, total)


class MarkedBatches:
    """The batches of statement ``index``'s stream, with a failure marked by
    ``script_error``. ``aclose`` always closes the statement's stream, even before the
    first batch was asked for."""

    def __init__(self, stream: StreamResult, index: int, total: int) -> None:
        self._stream = stream
        self._batches = aiter(stream.batches)
        self._index = index
        self._total = total

    def __aiter__(self) -> MarkedBatches:
        return self

    async def __anext__(self) -> list[Sequence[Any]]:
        try:
            return await anext(self._batches)
        except StopAsyncIteration:
            raise
        except Exception as exc:
            error = script_error(exc, self._index, self._total)
            if error is exc:
                raise
            raise error from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


async def run_statements(
    items: list[ScriptStatement],
    execute: Callable[[ScriptStatement], Awaitable[Result | StreamResult]],
) -> AsyncIterator[tuple[ScriptStatement, Result | StreamResult]]:
    """Run ``items`` in order with ``execute``, yielding each with its result.

    One statement runs at a time: what the caller left unread of a stream is read and
    dropped before the next statement starts. In a script of several statements every
    error, raised by ``execute`` or by a stream's batches, is marked by ``script_error``.
    """
    total = len(items)
    for item in items:
        try:
            result = await execute(item)
        except Exception as exc:
            if total == 1:
                raise
            error = script_error(exc, item.index, total)
            if error is exc:
                raise
            raise error from exc
        if isinstance(result, StreamResult) and total > 1:
            marked = MarkedBatches(result, item.index, total)
            result = StreamResult(result.columns, marked, query_id=result.query_id)
        yield item, result
        if isinstance(result, StreamResult):
            async for _ in result.batches:  # whatever the caller left unread
                pass
