"""The executor's unit tier: the real Gateway (catalog, embedded SQLite, planner, executor,
adapters) with the network replaced by ``httpx.MockTransport``.

The same features run against real Ray Serve and MLflow endpoints in tests/e2e; here they
run in milliseconds, and the fake model can do what a real one rarely does on cue: answer
out of order, fail on the third batch, or never finish training.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from byom.errors import EndpointBadResponse, EndpointHTTPError, ModelNotFound, ModelNotReady
from gateway.core import Gateway
from gateway.settings import Settings

URL = "http://model.test"


@dataclass
class FakeModel:
    """A ray_serve model behind MockTransport: predicts ``2 * a``; records what it got."""

    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    trained: list[dict[str, Any]] = field(default_factory=list)
    fail_on_batch: int | None = None  # 1-based predict call that answers HTTP 500
    wrong_count: bool = False
    train_forever: bool = False
    slow_first: float = 0.0  # the first batch answers last, by this many seconds
    in_flight: int = 0
    peak_in_flight: int = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        rows = json.loads(body["df"])
        if request.url.path == "/train":
            if self.train_forever:
                await asyncio.sleep(3600)
            self.trained.append({"rows": rows, "target": body["target"]})
            return httpx.Response(200, json={"status": "ok"})
        self.batches.append(rows)
        call = len(self.batches)
        if call == self.fail_on_batch:
            return httpx.Response(500, json={"detail": "model exploded"})
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.slow_first if call == 1 else 0.001)
        finally:
            self.in_flight -= 1
        values = [2 * r["a"] for r in rows] + ([0] if self.wrong_count else [])
        return httpx.Response(200, json={"prediction": values, "half": [r["a"] / 2 for r in rows]})


@asynccontextmanager
async def gateway(tmp_path: Path, model: FakeModel, **settings: Any) -> AsyncIterator[Gateway]:
    """A gateway on ``tmp_path`` with table ``t(id, a, b)`` of 10 rows and model ``m``."""
    gw = await Gateway.start(
        home=tmp_path,
        catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}",
        settings=Settings(**settings),
        transport=httpx.MockTransport(model),
    )
    try:
        await gw.sql("CREATE TABLE t (id INTEGER, a INTEGER, b TEXT)")
        values = ", ".join(f"({i}, {i * 10}, 'b{i}')" for i in range(1, 11))
        await gw.sql(f"INSERT INTO t VALUES {values}")
        await gw.sql(
            f"CREATE MODEL m PREDICT y USING url.predict='{URL}/predict', format='ray_serve', "
            'dtype_dict={"a": "integer", "y": "integer"}'
        )
        yield gw
    finally:
        await gw.close()


def test_join_sends_batches_of_the_setting_with_only_the_features(tmp_path: Path) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model, batch_size=3) as gw:
            result = await gw.sql("SELECT t.id, p.y, p.half FROM local.t AS t JOIN m AS p")
            assert result.columns == ["id", "y", "half"]
            assert result.rows == [(i, 20 * i, 5.0 * i) for i in range(1, 11)]

    asyncio.run(go())
    assert [len(b) for b in model.batches] == [3, 3, 3, 1]
    assert model.batches[0] == [{"a": 10}, {"a": 20}, {"a": 30}]  # id and b are not sent


def test_join_keeps_source_order_and_the_concurrency_limit(tmp_path: Path) -> None:
    model = FakeModel(slow_first=0.2)  # batch 1 answers after batches 2..4

    async def go() -> None:
        async with gateway(tmp_path, model, batch_size=2, concurrency=3) as gw:
            rows = (await gw.sql("SELECT t.id, p.y FROM local.t AS t JOIN m AS p")).rows
            assert [r[0] for r in rows] == list(range(1, 11))

    asyncio.run(go())
    assert model.peak_in_flight == 3


def test_per_statement_knobs_override_the_settings(tmp_path: Path) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model, batch_size=3) as gw:
            await gw.sql("SELECT t.id, p.y FROM local.t AS t JOIN m AS p USING batch_size = 4")

    asyncio.run(go())
    assert [len(b) for b in model.batches] == [4, 4, 2]


def test_post_filter_and_exact_limit(tmp_path: Path) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model, batch_size=3) as gw:
            result = await gw.sql(
                "SELECT t.id, p.y FROM local.t AS t JOIN m AS p WHERE p.y > 70 LIMIT 2"
            )
            assert result.rows == [(4, 80), (5, 100)]

    asyncio.run(go())


def test_wrong_row_count_is_a_bad_response(tmp_path: Path) -> None:
    model = FakeModel(wrong_count=True)

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            with pytest.raises(EndpointBadResponse, match="m"):
                await gw.sql("SELECT * FROM m WHERE a = 1")

    asyncio.run(go())


def test_write_back_keeps_finished_batches_and_says_how_many(tmp_path: Path) -> None:
    model = FakeModel(fail_on_batch=3)

    async def go() -> None:
        async with gateway(tmp_path, model, batch_size=3, concurrency=1) as gw:
            with pytest.raises(EndpointHTTPError) as caught:
                await gw.sql("CREATE TABLE local.preds AS SELECT t.id, p.y FROM t AS t JOIN m AS p")
            assert "6 rows were already written to preds" in caught.value.message
            kept = await gw.sql("SELECT id, y FROM preds ORDER BY id")
            assert kept.rows == [[i, 20 * i] for i in range(1, 7)]

            model.fail_on_batch = None
            done = await gw.sql(
                "INSERT INTO local.preds (id, y) SELECT t.id, p.y FROM t AS t JOIN m AS p "
                "WHERE t.id > 6"
            )
            assert done.rows == [[4, "local.preds"]]
            assert (await gw.sql("SELECT count(*) FROM preds")).rows == [[10]]

    asyncio.run(go())


def test_training_reads_rows_calls_train_and_completes(tmp_path: Path) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            created = await gw.sql(
                f"CREATE PREDICTOR tr FROM local (SELECT a, id AS y FROM t WHERE id <= 4) "
                f"PREDICT y USING url.train='{URL}/train', url.predict='{URL}/predict', "
                "format='ray_serve'"
            )
            assert created.records()[0]["status"] == "generating"
            assert await gw.wait_idle() == ["tr"]
            row = (await gw.describe_predictor("tr")).records()[0]
            assert (row["status"], row["error"], row["kind"]) == ("complete", None, "external")
            jobs = await gw.sql("SELECT model, status, rows FROM mindsdb.jobs")
            assert jobs.rows == [["tr", "complete", 4]]

    asyncio.run(go())
    assert model.trained == [{"rows": [{"a": 10 * i, "y": i} for i in range(1, 5)], "target": "y"}]


def test_drop_model_cancels_its_training(tmp_path: Path) -> None:
    model = FakeModel(train_forever=True)

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            await gw.sql(
                f"CREATE PREDICTOR tr FROM local (SELECT a, id AS y FROM t) PREDICT y "
                f"USING url.train='{URL}/train', url.predict='{URL}/predict', format='ray_serve'"
            )
            for _ in range(200):  # until the train call is on the wire
                if (await gw.describe_predictor("tr")).records()[0]["status"] == "training":
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(ModelNotReady):
                await gw.sql("SELECT * FROM tr WHERE a = 1")
            await gw.sql("DROP MODEL tr")
            await asyncio.wait_for(gw.wait_idle(), 5)  # the task ended
            assert gw.health()["training_in_flight"] == []
            assert (await gw.sql("SELECT count(*) FROM mindsdb.jobs")).rows == [[0]]

    asyncio.run(go())


def test_each_model_is_looked_up_once_per_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            lookups: list[str] = []
            find = gw.catalog.find_predictor

            def counting(name: str) -> Any:
                lookups.append(name)
                return find(name)

            monkeypatch.setattr(gw.catalog, "find_predictor", counting)
            await gw.sql("SELECT * FROM m WHERE a = 1")
            assert lookups == ["m"]
            lookups.clear()
            await gw.sql("SELECT t.id, p.y, q.y AS y2 FROM local.t AS t JOIN m AS p JOIN m AS q")
            assert lookups.count("m") == 1
            # and a change is seen by the very next statement (no cache between statements)
            await gw.sql("DROP MODEL m")
            with pytest.raises(ModelNotFound):
                await gw.sql("SELECT * FROM mindsdb.m WHERE a = 1")

    asyncio.run(go())
