"""Scripted HTTP for the adapter tests: a MockTransport handler and a one-call client runner.

``Recorder`` stands in for a model endpoint; ``with_client`` runs one coroutine against the
gateway's own pooled client (``adapters.http.make_client``) talking to it, so the client's
settings, headers and redirects are the ones the gateway uses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from adapters.http import HttpSettings, make_client
from gateway.processes import free_port

__all__ = ["Handler", "Recorder", "free_port", "with_client"]

T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a script and keeps the requests.

    The n-th request gets the n-th answer; past the end of the script the last answer
    repeats (so ``Recorder(httpx.ConnectError(...))`` fails every retry). An exception in
    the script is raised, as a transport raises it.
    """

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        if not answers:
            raise ValueError("Recorder needs at least one answer")
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def body(self, i: int = 0) -> Any:
        """The JSON body of the ``i``-th request, decoded."""
        return json.loads(self.requests[i].content)


def with_client(
    settings: HttpSettings,
    handler: Handler | None,
    action: Callable[[httpx.AsyncClient], Awaitable[T]],
) -> T:
    """``await action(client)`` in a fresh event loop, on a fresh ``make_client(settings)``
    whose requests go to ``handler`` (through ``httpx.MockTransport``), or to the real
    network when ``handler`` is None. The client is closed before this returns."""
    transport = httpx.MockTransport(handler) if handler is not None else None

    async def go() -> T:
        async with make_client(settings, transport=transport) as client:
            return await action(client)

    return asyncio.run(go())
