"""A real HTTP model endpoint that misbehaves on purpose, one route per failure mode.

It runs in a uvicorn thread on a free port, so the gateway reaches it over real TCP just like
a user's broken model server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.threaded_server import serving


async def _rows(request: Request) -> int:
    body = await request.json()
    return len(pd.DataFrame(json.loads(body["df"])))


async def not_json(request: Request) -> Response:
    return PlainTextResponse("<html>proxy error page</html>")


async def missing_key(request: Request) -> Response:
    return JSONResponse({"predictions_typo": [1] * await _rows(request)})


async def wrong_count(request: Request) -> Response:
    return JSONResponse({"prediction": [1] * (await _rows(request) + 1)})


async def slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return JSONResponse({"prediction": [1] * await _rows(request)})


async def server_error(request: Request) -> Response:
    return JSONResponse({"detail": "model exploded: division by zero"}, status_code=500)


async def train_refused(request: Request) -> Response:
    return JSONResponse({"status": "error", "message": "target column has one class only"})


async def train_hangs(request: Request) -> Response:
    await asyncio.sleep(120)
    return JSONResponse({"status": "ok"})


async def slow_doubler(request: Request) -> Response:
    """``doubler`` taking 50 ms a batch: a JOIN over it lasts long enough to be interrupted."""
    await asyncio.sleep(0.05)
    return await doubler(request)


async def doubler(request: Request) -> Response:
    """A working model for tests that only need something that answers: 2 * first column."""
    body = await request.json()
    frame = pd.DataFrame(json.loads(body["df"]))
    return JSONResponse({"prediction": [2 * v for v in frame.iloc[:, 0].tolist()]})


ROUTES = [
    Route("/not_json", not_json, methods=["POST"]),
    Route("/missing_key", missing_key, methods=["POST"]),
    Route("/wrong_count", wrong_count, methods=["POST"]),
    Route("/slow", slow, methods=["POST"]),
    Route("/server_error", server_error, methods=["POST"]),
    Route("/train_refused", train_refused, methods=["POST"]),
    Route("/train_hangs", train_hangs, methods=["POST"]),
    Route("/doubler", doubler, methods=["POST"]),
    Route("/slow_doubler", slow_doubler, methods=["POST"]),
]


@contextmanager
def running() -> Iterator[str]:
    """Serve the routes; yields the base URL ``http://127.0.0.1:<port>``."""
    with serving(Starlette(routes=ROUTES), "bad endpoint server") as url:
        yield url
