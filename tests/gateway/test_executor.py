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

from byom.errors import (
    DatasourceError,
    EndpointBadResponse,
    EndpointHTTPError,
    InvalidInput,
    InvalidOption,
    ModelNotFound,
    ModelNotReady,
)
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
            # every call takes a while, so the allowed batches really overlap
            await asyncio.sleep(self.slow_first if call == 1 else 0.05)
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
            jobs = await gw.sql("SELECT model, status, rows, owner FROM mindsdb.jobs")
            assert jobs.rows == [["tr", "complete", 4, gw.owner]]  # who ran it

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


# ---------------------------------------------------------------- inputs vs dtype_dict (issue 7)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("a = 'abc'", "Model 'm': input 'a' is 'abc', which does not fit its dtype integer"),
        ("a = 30.5", "Model 'm': input 'a' is 30.5, which does not fit its dtype integer"),
        ("a = TRUE", "Model 'm': input 'a' is True, which does not fit its dtype integer"),
        ("a = NULL", "Model 'm': input 'a' is NULL or missing, but the model needs it"),
    ],
)
def test_one_row_input_that_does_not_fit_is_refused_before_any_call(
    tmp_path: Path, where: str, message: str
) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            with pytest.raises(InvalidInput) as caught:
                await gw.sql(f"SELECT * FROM m WHERE {where}")
            assert caught.value.message.startswith(message)
            assert caught.value.status == 400 and caught.value.code == "INVALID_INPUT"

    asyncio.run(go())
    assert model.batches == []  # nothing reached the endpoint


def test_one_row_integer_given_as_text_or_whole_float_is_sent_as_an_integer(
    tmp_path: Path,
) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            text = await gw.sql("SELECT * FROM m WHERE a = '21'")
            assert text.records() == [{"a": 21, "y": 42, "half": 10.5}]
            whole = await gw.sql("SELECT a, y FROM m WHERE a = 4.0")
            assert whole.rows == [[4, 8]]

    asyncio.run(go())
    assert model.batches == [[{"a": 21}], [{"a": 4}]]


def test_json_rows_are_checked_row_by_row_before_any_call(tmp_path: Path) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            with pytest.raises(InvalidInput, match=r"input 'a' in rows\[1\] is 'x', which"):
                await gw.predict("m", [{"a": 1}, {"a": "x"}])
            with pytest.raises(InvalidInput, match=r"input 'a' in rows\[0\] is NULL or missing"):
                await gw.predict("m", [{"b": 1}, {"a": 2}])
            assert model.batches == []
            ok = await gw.predict("m", [{"a": "3"}, {"a": 4}])
            assert ok.records() == [{"a": 3, "y": 6, "half": 1.5}, {"a": 4, "y": 8, "half": 2.0}]

    asyncio.run(go())
    assert model.batches == [[{"a": 3}, {"a": 4}]]


def test_join_batch_of_a_text_column_is_converted_or_refused(tmp_path: Path) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model, batch_size=2) as gw:
            await gw.sql("CREATE TABLE s (id INTEGER, a TEXT)")
            await gw.sql("INSERT INTO s VALUES (1, '5'), (2, ' 6'), (3, 7), (4, 'eight')")
            result = await gw.sql("SELECT s.id, p.y FROM local.s AS s JOIN m AS p WHERE s.id < 4")
            assert model.batches == [[{"a": 5}, {"a": 6}], [{"a": 7}]]
            assert result.rows == [(1, 10), (2, 12), (3, 14)]
            model.batches.clear()
            with pytest.raises(InvalidInput) as caught:
                await gw.sql("SELECT s.id, p.y FROM local.s AS s JOIN m AS p WHERE s.id > 2")
            assert caught.value.message.startswith(  # the JOIN names the rows of the batch
                "JOIN rows 1-2: Model 'm': the table's column 'a' is 'eight', which does not "
                "fit its dtype integer"
            )
            assert caught.value.message.endswith("This batch was not sent.")
            assert model.batches == []

    asyncio.run(go())


# ---------------------------------------------------------------- CREATE-time checks (issue 7)


def test_create_probes_the_training_query_before_storing_anything(tmp_path: Path) -> None:
    model = FakeModel()
    using = f"USING url.train='{URL}/train', url.predict='{URL}/predict', format='ray_serve'"

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            with pytest.raises(DatasourceError) as caught:
                await gw.sql(
                    f"CREATE PREDICTOR tr FROM local (SELECT a, y FROM nope) PREDICT y {using}"
                )
            assert caught.value.message.startswith("Model 'tr': the training query cannot run:")
            assert "no such table: nope" in caught.value.message
            with pytest.raises(InvalidInput) as missing:
                await gw.sql(
                    f"CREATE PREDICTOR tr FROM local (SELECT a, id AS Y FROM t) PREDICT y {using}, "
                    'dtype_dict={"a": "integer", "b2": "text", "y": "integer"}'
                )
            assert missing.value.message.startswith(
                "Model 'tr': the training query returns a, Y but not y (did you mean Y?), b2,"
            )
            with pytest.raises(InvalidOption, match="format 'mlflow' is predict-only"):
                await gw.sql(
                    f"CREATE PREDICTOR tr FROM local (SELECT a, id AS y FROM t) PREDICT y "
                    f"USING url.train='{URL}/train', url.predict='{URL}/p', format='mlflow'"
                )
            assert gw.catalog.find_predictor("tr") is None
            assert (await gw.sql("SELECT count(*) FROM mindsdb.jobs")).rows == [[0]]

    asyncio.run(go())
    assert model.trained == [] and model.batches == []


def test_training_query_naming_its_own_datasource_is_rewritten_and_trains(
    tmp_path: Path,
) -> None:
    model = FakeModel()

    async def go() -> None:
        async with gateway(tmp_path, model) as gw:
            await gw.sql(
                "CREATE PREDICTOR tr FROM local (SELECT local.t.a, local.t.id AS y FROM local.t "
                "WHERE local.t.id <= 2) PREDICT y "
                f"USING url.train='{URL}/train', url.predict='{URL}/predict', format='ray_serve'"
            )
            await gw.wait_idle()
            row = (await gw.describe_predictor("tr")).records()[0]
            assert (row["status"], row["error"]) == ("complete", None)
            assert row["training_query"] == "SELECT t.a, t.id AS y FROM t WHERE t.id <= 2"

    asyncio.run(go())
    assert model.trained == [{"rows": [{"a": 10, "y": 1}, {"a": 20, "y": 2}], "target": "y"}]
