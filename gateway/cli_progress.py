"""What ``byom sql`` shows while a statement runs: a progress bar, and streamed rows.

The bar is drawn from ``GET /api/queries/{id}`` (against ``--url``) or from the embedded
gateway's progress registry, every ``PROGRESS_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from byom.errors import GatewayError
from gateway.formatting import ResultWriter, format_progress, format_training
from gateway.result import Result, StreamResult

if TYPE_CHECKING:
    from gateway.client import Client
    from gateway.core import Gateway

PROGRESS_INTERVAL_S = 0.5


class ProgressBar:
    """One line on ``out`` redrawn in place; ``clear`` erases it and ends all drawing (a
    poll that answers after the statement finished must not leave a stale bar)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._width = 0
        self._closed = False

    def draw(self, progress: dict[str, Any]) -> None:
        """Draw a ``QueryProgress.to_dict()``."""
        self.draw_text(
            format_progress(int(progress.get("rows_done") or 0), progress.get("rows_total"))
        )

    def draw_text(self, text: str) -> None:
        """Draw one line of text (a training bar, ``format_training``)."""
        with self._lock:
            if self._closed:
                return
            # Pad with spaces so a shorter line fully covers the previous one.
            self.out.write("\r" + text.ljust(self._width))
            self.out.flush()
            self._width = max(self._width, len(text))

    def clear(self) -> None:
        with self._lock:
            if self._width and not self._closed:
                self.out.write("\r" + " " * self._width + "\r")
                self.out.flush()
            self._closed = True


@contextlib.contextmanager
def remote_progress(client: Client, query_id: str, bar: ProgressBar | None) -> Iterator[None]:
    """Poll ``GET /api/queries/{query_id}`` from a thread and draw it while the body runs."""
    if bar is None:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        # Its own client: the main thread's connection is busy reading the answer.
        with client.fork(timeout=10) as poller:
            while not stop.wait(PROGRESS_INTERVAL_S):
                try:
                    bar.draw(poller.query_progress(query_id))
                except GatewayError:
                    continue  # not registered yet (or a plain statement): nothing to draw

    thread = threading.Thread(target=poll, name="byom-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        bar.clear()
        # Bounded: a poll stuck on a dead gateway must not hold up the exit (the bar is
        # closed, so a late answer draws nothing).
        thread.join(timeout=2)


@contextlib.asynccontextmanager
async def embedded_progress(
    gateway: Gateway, query_id: str | None, bar: ProgressBar | None
) -> AsyncIterator[None]:
    """Draw an embedded gateway's progress of ``query_id`` while the body runs."""
    if bar is None or query_id is None:
        yield
        return

    async def poll() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            try:
                bar.draw(gateway.query_progress(query_id).to_dict())
            except GatewayError:
                continue  # not registered yet (or a plain statement): nothing to draw

    poller = asyncio.create_task(poll())
    try:
        yield
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        bar.clear()  # before a table is printed on the same terminal


async def write_batches(result: StreamResult, writer: ResultWriter) -> None:
    """Write a streamed result batch by batch; a failure is written too, then raised."""
    writer.start(result.columns)
    try:
        async for batch in result.batches:
            writer.write(batch)
    except GatewayError as exc:
        writer.fail(exc.to_dict()["error"])
        raise
    finally:
        await result.aclose()


def stream_remote(client: Client, sql: str, writer: ResultWriter, bar: ProgressBar | None) -> None:
    """Run one statement on ``client``'s gateway; write its rows as they arrive, with a
    progress bar when ``bar`` is given."""
    query_id = uuid.uuid4().hex if bar is not None else None
    with remote_progress(client, query_id or "", bar):
        with client.iter_sql(sql, query_id=query_id) as stream:
            writer.start(stream.columns, stream.message)
            try:
                for batch in stream:
                    writer.write(batch)
            except GatewayError as exc:
                writer.fail(exc.to_dict()["error"])
                raise
    writer.finish()  # after the bar is cleared: a table goes to the same terminal


def latest_version(describe: Result) -> dict[str, Any] | None:
    """The newest version's row of a built-in model's DESCRIBE (None for other models)."""
    if "version" not in describe.columns or "phase" not in describe.columns:
        return None
    rows = describe.records()
    return max(rows, key=lambda r: r["version"]) if rows else None


async def follow_training(gateway: Gateway, names: list[str], bar: ProgressBar | None) -> None:
    """Wait for the embedded gateway's training of ``names``, drawing each model's newest
    version on ``bar`` (phase, percent, epoch, step) meanwhile."""
    bar = ProgressBar(bar.out) if bar is not None else None  # a cleared bar draws no more
    while any(gateway.training(name) for name in names):
        if bar is not None:
            for name in names:
                row = latest_version(await gateway.describe_predictor(name))
                if row is not None and gateway.training(name):
                    bar.draw_text(format_training(row))
        await asyncio.sleep(PROGRESS_INTERVAL_S)
    if bar is not None:
        bar.clear()


def follow_remote_training(client: Client, name: str, bar: ProgressBar | None) -> Result:
    """Poll DESCRIBE of a built-in model on a remote gateway until its newest version
    leaves generating/training, drawing it; the final DESCRIBE."""
    import time

    while True:
        result = client.sql(f"DESCRIBE `{name}`")
        row = latest_version(result)
        if row is None or row["status"] not in ("generating", "training"):
            if bar is not None:
                bar.clear()
            return result
        if bar is not None:
            bar.draw_text(format_training(row))
        time.sleep(PROGRESS_INTERVAL_S)
