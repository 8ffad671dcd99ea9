"""A real HTTP ``ray_serve`` model that remembers every request: trains (``{"status": "ok"}``)
and predicts ``2 * first column``.

It runs in a uvicorn thread on a free port (as ``bad_endpoint`` does), so the gateway reaches
it over real TCP, and a test can say exactly what reached the model - or that nothing did.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.threaded_server import serving


@dataclass
class Recording:
    url: str
    predicted: list[list[dict[str, Any]]] = field(default_factory=list)  # one list per call
    trained: list[dict[str, Any]] = field(default_factory=list)  # {"rows", "target"} per call

    def clear(self) -> None:
        self.predicted.clear()
        self.trained.clear()


@contextmanager
def running() -> Iterator[Recording]:
    """Serve ``/predict`` and ``/train``; yields the ``Recording`` (``url`` is the base URL)."""
    recording = Recording(url="")

    async def predict(request: Request) -> Response:
        rows = json.loads((await request.json())["df"])
        recording.predicted.append(rows)
        return JSONResponse({"prediction": [2 * next(iter(r.values())) for r in rows]})

    async def train(request: Request) -> Response:
        body = await request.json()
        recording.trained.append({"rows": json.loads(body["df"]), "target": body["target"]})
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/train", train, methods=["POST"]),
        ]
    )
    with serving(app, "recording model server") as url:
        recording.url = url
        yield recording
