"""A 1,000,000-row write-back on Ray Data gives exactly the single-process write-back's rows.

The source is a SQLite file attached to the embedded datasource (every Ray worker of the
session's local Ray shares this machine's files); the model is a real HTTP endpoint in a
thread of this process that sleeps 20 ms per batch, as a latency-bound model would.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.core import Gateway
from gateway.settings import Settings
from tests.conftest import RayCluster
from tests.threaded_server import serving

pytestmark = pytest.mark.slow

ROWS = 1_000_000


async def _slow_double(request: Request) -> Response:
    rows = json.loads((await request.json())["df"])
    await asyncio.sleep(0.02)
    return JSONResponse({"prediction": [None if r["a"] is None else 2 * r["a"] for r in rows]})


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    app = Starlette(routes=[Route("/predict", _slow_double, methods=["POST"])])
    with serving(app, "20 ms model") as url:
        yield url


def _source(home: Path) -> None:
    """``local.big.t(id, a, g)``: a = id % 1000 (NULL every 97th row), g a short text."""
    (home / "local").mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(home / "local" / "big.sqlite")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, g TEXT)")
    # Generated inside SQLite (half the time of a Python executemany, same rows and types).
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO t SELECT i, CASE WHEN i % 97 = 0 THEN NULL ELSE i % 1000 END, "
        "'g' || (i % 13) FROM n",
        (ROWS,),
    )
    conn.commit()
    conn.close()


def test_a_million_row_write_back_on_ray_matches_the_local_one(
    ray_cluster: RayCluster, model_url: str, tmp_path: Path
) -> None:
    _source(tmp_path)
    join = "SELECT t.id, t.g, p.y FROM local.big.t AS t JOIN m AS p"

    async def go() -> list[tuple[object, ...]]:
        gw = await Gateway.start(
            home=tmp_path,
            catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}",
            settings=Settings(batch_size=5000),
        )
        try:
            await gw.sql(
                f"CREATE MODEL m PREDICT y USING url.predict='{model_url}/predict', "
                'format=\'ray_serve\', dtype_dict={"a": "integer", "y": "integer"}'
            )
            local = await gw.sql(f"CREATE TABLE local.out_local AS {join}")
            ray = await gw.sql(f"CREATE TABLE local.out_ray AS {join} USING engine='ray'")
            assert local.rows[0][0] == ray.rows[0][0] == ROWS
            answers = []
            for table in ("out_local", "out_ray"):
                answer = await gw.sql(
                    "SELECT count(*), count(DISTINCT id), sum(id), sum(y), count(y), "
                    f"sum(id * coalesce(y, 7)), group_concat(DISTINCT g) FROM {table}"
                )
                answers.append(tuple(answer.rows[0]))
            # every row of one is in the other, value for value
            same = await gw.sql(
                "SELECT count(*) FROM out_local AS l JOIN out_ray AS r "
                "ON r.id = l.id AND r.g = l.g AND r.y IS l.y"
            )
            answers.append(tuple(same.rows[0]))
            types = await gw.sql(
                "SELECT (SELECT group_concat(type) FROM pragma_table_info('out_local')), "
                "(SELECT group_concat(type) FROM pragma_table_info('out_ray'))"
            )
            answers.append(tuple(types.rows[0]))
            (progress,) = [e for e in gw.services.progress.list() if "'ray'" in e.statement]
            assert progress.rows_done == progress.rows_total == ROWS
            return answers
        finally:
            await gw.close()

    local, ray, same, types = asyncio.run(go())
    assert local == ray
    assert local[:2] == (ROWS, ROWS)
    assert same == (ROWS,)
    assert types[0] == types[1]
