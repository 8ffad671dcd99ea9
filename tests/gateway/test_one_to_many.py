"""Per-query model parameters (``USING topk = 3``) and one-to-many answers (a recommender's
top-k per user) through the real gateway, the network replaced by ``httpx.MockTransport``.

The fake ray_serve model answers ``topk`` items per user (``<user>-<rank>``) with a ``row``
index, none for user ``nobody``; it records every body it got, params included.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from byom.errors import EndpointBadResponse, InvalidInput, InvalidOption
from gateway.core import Gateway
from gateway.settings import Settings

URL = "http://recommender.test"


class TopK:
    def __init__(self, broken: str | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.broken = broken

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        users = [r["user_id"] for r in json.loads(body["df"])]
        k = int(body.get("params", {}).get("topk", 3))
        out = [(i, f"{u}-{r}", 1.0 / r, r) for i, u in enumerate(users) if u != "nobody"
               for r in range(1, k + 1)]  # fmt: skip
        answer = {
            "row": [o[0] for o in out],
            "prediction": [o[1] for o in out],
            "score": [o[2] for o in out],
            "rank": [o[3] for o in out],
        }
        if self.broken == "descending":
            answer["row"] = list(reversed(answer["row"]))
        return httpx.Response(200, json=answer)


@asynccontextmanager
async def gateway(tmp_path: Path, model: TopK, **settings: Any) -> AsyncIterator[Gateway]:
    gw = await Gateway.start(
        home=tmp_path,
        catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}",
        settings=Settings(**settings),
        transport=httpx.MockTransport(model),
    )
    try:
        await gw.sql("CREATE TABLE users (user_id TEXT, name TEXT)")
        await gw.sql(
            "INSERT INTO users VALUES ('u1', 'Ann'), ('nobody', 'Nil'), ('u2', 'Bo'), ('u3', 'Cy')"
        )
        await gw.sql(f"CREATE MODEL rec USING url.predict = '{URL}/predict', format = 'ray_serve'")
        yield gw
    finally:
        await gw.close()


def run(coro_fn: Any) -> None:
    asyncio.run(coro_fn())


def test_one_row_answers_k_rows_and_the_params_reach_the_model(tmp_path: Path) -> None:
    model = TopK()

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            result = await gw.sql(
                "SELECT user_id, prediction, rank FROM rec WHERE user_id = 'u1' "
                "USING recommend = 'items', topk = 2"
            )
            assert result.columns == ["user_id", "prediction", "rank"]
            assert [list(r) for r in result.rows] == [["u1", "u1-1", 1], ["u1", "u1-2", 2]]
            none = await gw.sql("SELECT prediction FROM rec WHERE user_id = 'nobody'")
            assert none.columns == ["prediction"] and none.rows == []

    run(go)
    assert model.bodies[0]["params"] == {"recommend": "items", "topk": 2}
    assert "params" not in model.bodies[1]  # no USING: no params key at all


def test_join_repeats_each_user_for_its_items_across_batches(tmp_path: Path) -> None:
    model = TopK()

    async def go() -> None:
        async with gateway(tmp_path, model, batch_size=2) as gw:
            result = await gw.sql(
                "SELECT u.name, p.prediction, p.score FROM local.users AS u JOIN rec AS p "
                "USING topk = 2, batch_size = 3"
            )
            assert [list(r) for r in result.rows] == [
                ["Ann", "u1-1", 1.0], ["Ann", "u1-2", 0.5],
                ["Bo", "u2-1", 1.0], ["Bo", "u2-2", 0.5],
                ["Cy", "u3-1", 1.0], ["Cy", "u3-2", 0.5],
            ]  # fmt: skip
            limited = await gw.sql(
                "SELECT u.user_id, p.prediction FROM local.users AS u JOIN rec AS p LIMIT 4"
            )
            assert [r[1] for r in limited.rows] == ["u1-1", "u1-2", "u1-3", "u2-1"]
            filtered = await gw.sql(
                "SELECT u.user_id, p.prediction FROM local.users AS u JOIN rec AS p "
                "WHERE p.rank = 1"
            )
            assert [r[1] for r in filtered.rows] == ["u1-1", "u2-1", "u3-1"]

    run(go)
    assert [len(json.loads(b["df"])) for b in model.bodies[:2]] == [3, 1]  # batch_size=3
    assert model.bodies[0]["params"] == {"topk": 2}  # batch_size is the gateway's, not sent


def test_write_back_of_one_to_many_rows(tmp_path: Path) -> None:
    async def go() -> None:
        async with gateway(tmp_path, TopK()) as gw:
            await gw.sql(
                "CREATE TABLE local.recs AS SELECT u.user_id, p.prediction AS item, p.rank "
                "FROM local.users AS u JOIN rec AS p USING topk = 1"
            )
            stored = await gw.sql("SELECT user_id, item, rank FROM recs ORDER BY user_id")
            assert [list(r) for r in stored.rows] == [
                ["u1", "u1-1", 1], ["u2", "u2-1", 1], ["u3", "u3-1", 1]
            ]  # fmt: skip

    run(go)


def test_bad_row_index_and_misspelt_knob(tmp_path: Path) -> None:
    async def go() -> None:
        async with gateway(tmp_path, TopK(broken="descending")) as gw:
            with pytest.raises(EndpointBadResponse, match="ascending input row numbers"):
                await gw.sql("SELECT u.user_id, p.prediction FROM local.users AS u JOIN rec AS p")
            with pytest.raises(InvalidOption, match="Did you mean batch_size"):
                await gw.sql(
                    "SELECT u.user_id, p.prediction FROM local.users AS u JOIN rec AS p "
                    "USING batch_sise = 2"
                )

    run(go)


def test_two_one_to_many_models_in_one_join_are_refused(tmp_path: Path) -> None:
    async def go() -> None:
        async with gateway(tmp_path, TopK()) as gw:
            await gw.sql(
                f"CREATE MODEL rec2 USING url.predict = '{URL}/predict', format = 'ray_serve'"
            )
            with pytest.raises(InvalidInput, match="JOIN one of them at a time"):
                await gw.sql(
                    "SELECT u.user_id, a.prediction, b.prediction FROM local.users AS u "
                    "JOIN rec AS a JOIN rec2 AS b"
                )

    run(go)
