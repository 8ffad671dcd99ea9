"""The global knobs (``BYOM_*`` variables and ``byom serve`` flags) reach a real ``byom serve``.

A recording model endpoint (a real HTTP server in a thread) sees what the gateway sends:
batch sizes, how many batches are in flight at once, how many attempts a failing call gets;
the gateway's error messages name the timeout that fired. Bad values stop ``byom serve``
before it serves, with a message naming the variable or flag.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from byom.errors import EndpointHTTPError, EndpointTimeout
from gateway.client import Client
from gateway.processes import Service, free_port, start_gateway
from tests.threaded_server import serving

pytestmark = pytest.mark.slow

ROWS = 50


@dataclass
class Recorder:
    """What the endpoint saw: rows per predict call, peak calls in flight, 503 attempts."""

    batch_sizes: list[int] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    unavailable_calls: int = 0
    delay_s: float = 0.0


@contextmanager
def recording_endpoint() -> Iterator[tuple[str, Recorder]]:
    """A model server in a thread; yields its base URL and its ``Recorder``."""
    rec = Recorder()

    async def predict(request: Request) -> Response:
        rows = json.loads((await request.json())["df"])
        rec.batch_sizes.append(len(rows))
        rec.in_flight += 1
        rec.peak_in_flight = max(rec.peak_in_flight, rec.in_flight)
        try:
            await asyncio.sleep(rec.delay_s)
        finally:
            rec.in_flight -= 1
        return JSONResponse({"prediction": [2 * r["x"] for r in rows]})

    async def slow(request: Request) -> Response:
        await asyncio.sleep(3)
        return JSONResponse({"prediction": [0], "status": "ok"})

    async def unavailable(request: Request) -> Response:
        rec.unavailable_calls += 1
        return JSONResponse({"detail": "busy"}, status_code=503)

    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/slow", slow, methods=["POST"]),
            Route("/unavailable", unavailable, methods=["POST"]),
        ]
    )
    with serving(app, "recording endpoint") as url:
        yield url, rec


@contextmanager
def unaccepting_port() -> Iterator[int]:
    """A port whose listen backlog is full: a new connection hangs until its connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    try:
        yield port
    finally:
        for s in [*fillers, listener]:
            s.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BYOM_CATALOG_URL", "BYOM_URL", "BYOM_HOME"):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def gateway(tmp_path: Path, env: dict[str, str], *flags: str) -> Iterator[Client]:
    home = tmp_path / "home"
    service: Service = start_gateway(home, log_dir=tmp_path / "logs", env=env, extra_args=flags)
    try:
        with Client(service.url) as client:
            client.sql("CREATE TABLE pts (x INTEGER)")
            values = ", ".join(f"({i})" for i in range(ROWS))
            client.sql(f"INSERT INTO pts VALUES {values}")
            yield client
    finally:
        service.stop()


def register(client: Client, name: str, url: str) -> None:
    client.sql(
        f"""CREATE PREDICTOR {name} PREDICT y
        USING url.predict='{url}', format='ray_serve', dtype_dict={{"x": "integer"}}"""
    )


def test_environment_knobs_change_what_the_endpoint_sees(tmp_path: Path) -> None:
    with recording_endpoint() as (url, rec), unaccepting_port() as dead_port:
        env = {
            "BYOM_BATCH_SIZE": "7",
            "BYOM_CONCURRENCY": "2",
            "BYOM_PREDICT_TIMEOUT": "1.5",
            "BYOM_PREDICT_RETRIES": "0",
            "BYOM_CONNECT_TIMEOUT": "0.25",
            "BYOM_TRAIN_TIMEOUT": "0.75",
        }
        with gateway(tmp_path, env) as client:
            register(client, "m", f"{url}/predict")
            rec.delay_s = 0.3  # long enough for every allowed batch to be in flight together
            rows = client.sql("SELECT t.x, p.y FROM local.pts AS t JOIN m AS p").rows
            assert rows == [[i, 2 * i] for i in range(ROWS)]
            # BYOM_BATCH_SIZE: batches of 7 (the last one has the remainder)
            assert rec.batch_sizes == [7] * (ROWS // 7) + [ROWS % 7]
            # BYOM_CONCURRENCY: never more than 2 batches in flight (the default is 4)
            assert rec.peak_in_flight == 2

            # BYOM_PREDICT_TIMEOUT and BYOM_PREDICT_RETRIES=0: one attempt, 1.5 s
            register(client, "slow", f"{url}/slow")
            with pytest.raises(EndpointTimeout, match=r"within 1\.5s"):
                client.sql("SELECT * FROM slow WHERE x = 1")
            register(client, "busy", f"{url}/unavailable")
            with pytest.raises(EndpointHTTPError, match="503"):
                client.sql("SELECT * FROM busy WHERE x = 1")
            assert rec.unavailable_calls == 1

            # BYOM_CONNECT_TIMEOUT
            register(client, "dead", f"http://127.0.0.1:{dead_port}/predict")
            with pytest.raises(EndpointTimeout, match=r"could not connect .* within 0\.25s"):
                client.sql("SELECT * FROM dead WHERE x = 1")

            # BYOM_TRAIN_TIMEOUT: the training call is cut after 0.75 s; the model says why
            client.sql(
                f"""CREATE PREDICTOR trained FROM local (SELECT x, x AS y FROM pts) PREDICT y
                USING url.train='{url}/slow', url.predict='{url}/predict', format='ray_serve'"""
            )
            deadline = time.monotonic() + 30
            while (row := client.sql("DESCRIBE trained").records()[0])["status"] != "error":
                assert time.monotonic() < deadline, row
                time.sleep(0.1)
            assert "within 0.75s" in row["error"]


def test_flags_override_the_environment_and_batch_timeout(tmp_path: Path) -> None:
    with recording_endpoint() as (url, rec):
        env = {"BYOM_BATCH_SIZE": "9", "BYOM_PREDICT_RETRIES": "0", "BYOM_BATCH_TIMEOUT": "0.5"}
        flags = ("--batch-size", "5", "--predict-retries", "2")
        with gateway(tmp_path, env, *flags) as client:
            register(client, "m", f"{url}/predict")
            client.sql("SELECT t.x, p.y FROM local.pts AS t JOIN m AS p")
            assert rec.batch_sizes == [5] * (ROWS // 5)  # the flag, not the variable
            register(client, "busy", f"{url}/unavailable")
            with pytest.raises(EndpointHTTPError, match="after 3 attempts"):
                client.sql("SELECT * FROM busy WHERE x = 1")
            assert rec.unavailable_calls == 3  # --predict-retries 2: three attempts
            # BYOM_BATCH_TIMEOUT: a JOIN batch may take 0.5 s, the endpoint takes 3 s
            register(client, "slow", f"{url}/slow")
            with pytest.raises(EndpointTimeout, match=r"JOIN's timeout of 0\.5s"):
                client.sql("SELECT t.x, p.y FROM local.pts AS t JOIN slow AS p")


def _serve_refuses(tmp_path: Path, env: dict[str, str], *flags: str) -> str:
    """Run ``byom serve`` that must exit at once with status 2; its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--home", str(tmp_path / "h"),
         "--port", str(free_port()), *flags],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    return done.stderr


@pytest.mark.parametrize(
    ("env", "flags", "named"),
    [
        ({"BYOM_BATCH_SIZE": "-3"}, (), "BYOM_BATCH_SIZE must be positive, got '-3'"),
        ({"BYOM_CONCURRENCY": "four"}, (), "BYOM_CONCURRENCY must be an integer"),
        ({"BYOM_BATCH_TIMEOUT": "0"}, (), "BYOM_BATCH_TIMEOUT must be positive"),
        ({"BYOM_PREDICT_RETRIES": "-1"}, (), "BYOM_PREDICT_RETRIES must be 0 or more"),
        ({}, ("--concurrency", "abc"), "--concurrency must be an integer"),
    ],
)
def test_bad_values_stop_serve_with_the_name(
    tmp_path: Path, env: dict[str, str], flags: tuple[str, ...], named: str
) -> None:
    stderr = _serve_refuses(tmp_path, env, *flags)
    assert "ERROR [INVALID_OPTION]" in stderr
    assert named in stderr
