"""The statement timeout: one deadline for a whole statement, a JOIN's rows included.

``BYOM_STATEMENT_TIMEOUT`` (``Settings.statement_timeout``, 0: none) bounds every statement;
a query may set its own with ``USING statement_timeout = N`` (seconds), up to
``BYOM_MAX_STATEMENT_TIMEOUT`` when the admin set one. The JOIN's
``USING timeout = N`` keeps its older meaning: the time one batch may take at its models.

On expiry the statement's task is cancelled (``asyncio.timeout``), so in-flight endpoint
calls and datasource reads stop, and the caller gets ``StatementTimeout`` (504) naming the
limit and how to raise it. A streamed result is read under the same deadline: the limit
covers producing every row, not just the first batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from byom.errors import InvalidOption, StatementTimeout
from gateway import statements as st
from gateway.parse_query import USING_META
from gateway.result import Result, StreamResult

#: The USING option of a query that sets its own limit.
OPTION = "statement_timeout"
SETTING = "BYOM_STATEMENT_TIMEOUT"
CAP = "BYOM_MAX_STATEMENT_TIMEOUT"


@dataclass(frozen=True)
class Limit:
    """A statement's time limit: ``seconds``, and whether the statement set it itself."""

    seconds: float
    own: bool = False

    def error(self) -> StatementTimeout:
        """The error of a statement that ran past this limit."""
        if self.own:
            where = f"its limit of {self.seconds:g}s (USING {OPTION} = {self.seconds:g})"
            how = f"give it more time with a larger USING {OPTION} = <seconds>"
        else:
            where = f"the gateway's limit of {self.seconds:g}s ({SETTING})"
            how = (
                f"give it more time with USING {OPTION} = <seconds> after the statement, "
                f"or raise {SETTING} (byom serve --statement-timeout)"
            )
        return StatementTimeout(
            f"The statement ran longer than {where} and was cancelled; {how}.",
            limit_s=self.seconds,
            option=OPTION if self.own else SETTING,
        )


def statement_limit(
    statement: st.Statement, default: float | None, cap: float | None = None
) -> Limit | None:
    """The limit of ``statement``: its own ``USING statement_timeout`` (taken out of its
    options, so the JOIN does not send it to the models), else ``default`` (None or 0: no
    limit). A value that is not a positive number, or over ``cap`` (``$BYOM_MAX_STATEMENT_
    TIMEOUT``; None or 0: no cap), is ``InvalidOption``: nothing runs."""
    options = statement.tree.meta.get(USING_META) if isinstance(statement, st.Query) else None
    if options and OPTION in options:
        value = options.pop(OPTION)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise InvalidOption(
                f"USING {OPTION} must be a positive number of seconds, got {value!r}.",
                option=OPTION,
                value=value,
            )
        if cap and value > cap:
            raise InvalidOption(
                f"USING {OPTION} = {value:g} is over the gateway's cap of {cap:g}s ({CAP}); "
                f"ask for at most {cap:g} seconds, or have the admin raise {CAP}.",
                option=OPTION,
                value=value,
                cap_s=cap,
            )
        return Limit(float(value), own=True)
    return gateway_limit(default)


def gateway_limit(default: float | None) -> Limit | None:
    """The gateway's own limit (``BYOM_STATEMENT_TIMEOUT``; None or 0: no limit)."""
    return Limit(float(default)) if default else None


async def run_within(
    run: Awaitable[Result | StreamResult], limit: Limit | None
) -> Result | StreamResult:
    """``await run`` within ``limit``; a streamed result's batches stay under the same
    deadline (``StatementTimeout`` from the batch that runs past it)."""
    if limit is None:
        return await run
    deadline = asyncio.get_running_loop().time() + limit.seconds
    timer = asyncio.timeout_at(deadline)
    try:
        async with timer:
            result = await run
    except Exception:
        # TimeoutError when the deadline cancelled the statement; any other error raised
        # while it was being cancelled (a cleanup that failed) is the timeout all the same.
        if timer.expired():
            raise limit.error() from None
        raise
    if isinstance(result, StreamResult):
        batches = _batches_within(result, deadline, limit)
        return StreamResult(result.columns, batches, query_id=result.query_id)
    return result


async def _batches_within(
    stream: StreamResult, deadline: float, limit: Limit
) -> AsyncIterator[list[Sequence[Any]]]:
    """The batches of ``stream``, each awaited under ``deadline``; closing this closes it."""
    batches = aiter(stream.batches)
    try:
        while True:
            timer = asyncio.timeout_at(deadline)
            try:
                async with timer:
                    batch = await anext(batches)
            except StopAsyncIteration:
                return
            except Exception:
                if timer.expired():
                    raise limit.error() from None
                raise
            yield batch
    finally:
        await stream.aclose()
