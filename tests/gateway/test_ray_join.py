"""``USING engine='ray'``: the same JOINs and write-backs on Ray Data, the same answers.

The session's Ray (``ray_cluster``, 2 CPUs) runs the shard readers and the model-calling
workers; the model is a real HTTP server in a thread of this process (a mock transport
would not reach the Ray workers, which are other processes with their own HTTP clients).
Every Ray answer is compared with the single-process JOIN of the same statement.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from byom.errors import EndpointHTTPError, InvalidOption
from gateway.core import Gateway
from gateway.executor import ray_join
from gateway.settings import Settings
from tests.conftest import RayCluster
from tests.threaded_server import serving

pytestmark = pytest.mark.slow

N = 230  # rows of t: id 1..N, a = id * 10 (every 7th NULL), g = 'g' || id % 4


async def _double(request: Request) -> Response:
    rows = json.loads((await request.json())["df"])
    a = [r["a"] for r in rows]
    return JSONResponse(
        {
            "prediction": [None if v is None else 2 * v for v in a],
            "half": [None if v is None else v / 2 for v in a],
        }
    )


async def _fail(request: Request) -> Response:
    return JSONResponse({"detail": "model exploded"}, status_code=500)


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/double", _double, methods=["POST"]),
            Route("/fail", _fail, methods=["POST"]),
        ]
    )
    with serving(app, "ray join model") as url:
        yield url


@asynccontextmanager
async def gateway(home: Path, model_url: str, **settings: Any) -> AsyncIterator[Gateway]:
    """A gateway with table ``t`` and models ``m`` (doubles ``a``) and ``bad`` (HTTP 500)."""
    gw = await Gateway.start(
        home=home,
        catalog_url=f"sqlite:///{home / 'catalog.sqlite'}",
        settings=Settings(**settings),
    )
    try:
        await gw.sql("CREATE TABLE t (id INTEGER, a INTEGER, g TEXT)")
        values = ", ".join(
            f"({i}, {'NULL' if i % 7 == 0 else i * 10}, 'g{i % 4}')" for i in range(1, N + 1)
        )
        await gw.sql(f"INSERT INTO t VALUES {values}")
        for name, route in (("m", "double"), ("bad", "fail")):
            await gw.sql(
                f"CREATE MODEL {name} PREDICT y USING url.predict='{model_url}/{route}', "
                'format=\'ray_serve\', dtype_dict={"a": "integer", "y": "integer"}'
            )
        yield gw
    finally:
        await gw.close()


RAY = "USING engine = 'ray', workers = 2, batch_size = 16, concurrency = 2"
LOCAL = "USING batch_size = 16"

SELECTS = [
    "SELECT t.id, t.g, p.y, p.half FROM local.t AS t JOIN m AS p ORDER BY t.id DESC",
    "SELECT * FROM local.t AS t JOIN m AS p ORDER BY t.g, t.id",
    "SELECT t.id, p.y FROM local.t AS t JOIN m AS p WHERE t.g = 'g1' ORDER BY t.id LIMIT 20",
    "SELECT t.id, p.y FROM local.t AS t JOIN m AS p WHERE p.y > 3000 ORDER BY t.id LIMIT 25",
    "SELECT t.id, p.y FROM local.t AS t JOIN m AS p WHERE t.id > 1000",  # no rows
]


def test_select_gives_the_rows_of_the_local_join(
    ray_cluster: RayCluster, model_url: str, tmp_path: Path
) -> None:
    async def go() -> None:
        async with gateway(tmp_path, model_url) as gw:
            for sql in SELECTS:
                local = await gw.sql(f"{sql} {LOCAL}")
                ray = await gw.sql(f"{sql} {RAY}")
                assert ray.columns == local.columns, sql
                assert list(ray.rows) == list(local.rows), sql
            entry = gw.services.progress.list()[-1]
            assert entry.status == "done"
            assert entry.rows_total == entry.rows_done == 0  # the last one reads no rows
            first_ray = gw.services.progress.list()[1]
            assert first_ray.rows_done == first_ray.rows_total == N

    asyncio.run(go())


def test_write_back_gives_the_table_of_the_local_one(
    ray_cluster: RayCluster, model_url: str, tmp_path: Path
) -> None:
    join = "SELECT t.id, t.g, p.y, p.half FROM local.t AS t JOIN m AS p"
    filtered = "SELECT t.id AS id, p.y AS y FROM local.t AS t JOIN m AS p WHERE p.y > 4000"

    async def table(gw: Gateway, name: str) -> tuple[list[Any], list[Any]]:
        rows = (await gw.sql(f"SELECT * FROM {name} ORDER BY id")).rows
        types = (await gw.sql(f"SELECT name, type FROM pragma_table_info('{name}')")).rows
        return list(rows), list(types)

    async def go() -> None:
        async with gateway(tmp_path, model_url) as gw:
            for suffix, using in (("local", LOCAL), ("ray", RAY)):
                made = await gw.sql(f"CREATE TABLE local.out_{suffix} AS {join} {using}")
                assert made.rows[0][0] == N
                await gw.sql(f"CREATE TABLE local.few_{suffix} (id INTEGER, y INTEGER)")
                added = await gw.sql(f"INSERT INTO local.few_{suffix} {filtered} {using}")
                assert added.rows[0][0] == sum(1 for i in range(201, N + 1) if i % 7)
            assert await table(gw, "out_ray") == await table(gw, "out_local")
            assert await table(gw, "few_ray") == await table(gw, "few_local")
            # a LIMIT counts rows across batches: the gateway writes, the rows stay the same
            for suffix, using in (("local", LOCAL), ("ray", RAY)):
                await gw.sql(f"CREATE TABLE local.lim_{suffix} AS {filtered} LIMIT 9 {using}")
            assert await table(gw, "lim_ray") == await table(gw, "lim_local")
            assert len((await table(gw, "lim_ray"))[0]) == 9

    asyncio.run(go())


def test_a_bad_engine_or_worker_count_is_refused(tmp_path: Path, model_url: str) -> None:
    async def go() -> None:
        async with gateway(tmp_path, model_url) as gw:
            with pytest.raises(InvalidOption, match="Unknown JOIN engine 'rey'. Did you mean ray"):
                await gw.sql("SELECT t.id, p.y FROM local.t AS t JOIN m AS p USING engine='rey'")
            with pytest.raises(InvalidOption, match="workers must be a positive number"):
                await gw.sql("SELECT t.id, p.y FROM local.t AS t JOIN m AS p USING workers=0")
            with pytest.raises(InvalidOption, match="Did you mean engine"):
                await gw.sql("SELECT t.id, p.y FROM local.t AS t JOIN m AS p USING engin='ray'")

    asyncio.run(go())


def test_a_failing_endpoint_is_the_gateways_error(
    ray_cluster: RayCluster, model_url: str, tmp_path: Path
) -> None:
    async def go() -> None:
        async with gateway(tmp_path, model_url) as gw:
            sql = f"SELECT t.id, p.y FROM local.t AS t JOIN bad AS p {RAY}"
            with pytest.raises(EndpointHTTPError, match="model exploded") as caught:
                await gw.sql(sql)
            assert caught.value.details["model"] == "bad"
            assert "JOIN rows" in caught.value.message
            with pytest.raises(EndpointHTTPError, match="model exploded"):
                await gw.sql(f"CREATE TABLE local.never AS {sql.split(' USING')[0]} {RAY}")
            assert gw.services.progress.list()[-1].status == "error"

    asyncio.run(go())


def test_a_connected_gateway_switches_to_ray_for_big_sources(
    ray_cluster: RayCluster, model_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    real = ray_join.build_dataset

    def spy(job: Any, spans: list[tuple[int, int]], workers: int) -> Any:
        built.append(workers)
        return real(job, spans, workers)

    monkeypatch.setattr(ray_join, "build_dataset", spy)
    sql = "SELECT t.id, p.y FROM local.t AS t JOIN m AS p ORDER BY t.id"

    async def go() -> None:
        async with gateway(tmp_path, model_url, ray_join_rows=100, ray_join_workers=2) as gw:
            auto = await gw.sql(sql)  # 230 rows > 100: Ray
            assert built == [2]
            local = await gw.sql(f"{sql} USING engine = 'local'")
            small = await gw.sql(f"{sql} LIMIT 50")  # the source counts 50 rows: local
            assert built == [2]
            assert list(auto.rows) == list(local.rows)
            assert list(small.rows) == list(local.rows)[:50]

    asyncio.run(go())
