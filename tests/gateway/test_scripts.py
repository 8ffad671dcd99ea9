"""Scripts of several statements on the real Gateway (over a temporary home): the order and
shape of the answers (``Gateway.run_script``, ``POST /api/sql``, the client, ``byom sql -f``),
what a failure says, streams read one statement at a time, and waiting for training."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from byom.errors import DatasourceError, GatewayError, ModelNotReady, ParseError
from gateway import statements as st
from gateway.cli import main
from gateway.client import Client
from gateway.core import Gateway
from gateway.result import Result, StreamResult
from gateway.server import create_app
from tests.threaded_server import serving

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient deprecation notice
    from fastapi.testclient import TestClient

STREAMED = "SELECT 'stream' AS s"  # the statement the patched gateway answers with a stream
ONE_DONE = "statement 1 took effect; statement 3 did not run"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def on_gateway(home: Path, action: Callable[[Gateway], Any]) -> Any:
    """``await action(gateway)`` on a fresh Gateway over ``home``, closed afterwards."""

    async def go() -> Any:
        async with await Gateway.start(home=home, catalog_url=f"sqlite:///{home}/c.sqlite") as gw:
            return await action(gw)

    return run(go())


async def collect(gw: Gateway, script: Any) -> list[tuple[int, str, Any]]:
    """``(index, sql, rows or message)`` of each statement of ``script``."""
    out = []
    async for item, result in gw.run_script(script):
        if isinstance(result, StreamResult):
            result = await result.collect()
        out.append((item.index, item.sql, result.rows or result.message))
    return out


# --- Gateway.run_script ------------------------------------------------------------------


def test_run_script_answers_each_statement_in_order(tmp_path: Path) -> None:
    script = (
        "CREATE TABLE t (x INTEGER, s TEXT);\n"
        "INSERT INTO t VALUES (1, 'a;b'), (2, 'c');  -- two rows\n"
        "SELECT x, s FROM t ORDER BY x;\n"
        "DROP DATABASE IF EXISTS nope"
    )
    got = on_gateway(tmp_path, lambda gw: collect(gw, script))
    assert [(i, sql) for i, sql, _ in got] == [
        (1, "CREATE TABLE t (x INTEGER, s TEXT)"),
        (2, "INSERT INTO t VALUES (1, 'a;b'), (2, 'c')"),
        (3, "SELECT x, s FROM t ORDER BY x"),
        (4, "DROP DATABASE IF EXISTS nope"),
    ]
    assert got[2][2] == [[1, "a;b"], [2, "c"]]
    assert "does not exist" in got[3][2]


def test_a_compound_statement_runs_on_the_datasource(tmp_path: Path) -> None:
    script = (
        "CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER);\n"
        "CREATE TRIGGER tr AFTER INSERT ON a BEGIN\n"
        "  INSERT INTO b VALUES (new.x * 10);\n"
        "  INSERT INTO b VALUES (new.x * 100);\n"
        "END;\n"
        "INSERT INTO a VALUES (1);\n"
        "SELECT y FROM b ORDER BY y"
    )
    got = on_gateway(tmp_path, lambda gw: collect(gw, script))
    assert len(got) == 5
    assert got[-1][2] == [[10], [100]]


def test_a_syntax_error_anywhere_runs_nothing(tmp_path: Path) -> None:
    async def go(gw: Gateway) -> Any:
        with pytest.raises(ParseError) as info:
            await collect(gw, "CREATE TABLE t (x INTEGER);\nSELECT 2;\nSELEC 3")
        tables = await gw.sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        return info.value, tables.rows

    error, tables = on_gateway(tmp_path, go)
    assert error.message.startswith("Statement 3: Unknown statement starting with 'SELEC'.")
    assert (error.line, error.col) == (3, 1)
    assert error.details["statement"] == 3 and error.details["done"] == []
    assert tables == []


def test_a_failure_names_the_statement_and_what_took_effect(tmp_path: Path) -> None:
    script = (
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);\n"
        "SELECT * FROM nope;\n"
        "INSERT INTO t VALUES (2); INSERT INTO t VALUES (3)"
    )

    async def go(gw: Gateway) -> Any:
        with pytest.raises(DatasourceError) as info:
            await collect(gw, script)
        return info.value, (await gw.sql("SELECT x FROM t")).rows

    error, rows = on_gateway(tmp_path, go)
    assert error.message.startswith("Statement 3: ")
    assert error.message.endswith("(statements 1-2 took effect; statements 4-5 did not run).")
    assert error.to_dict()["error"]["statement"] == 3
    assert error.to_dict()["error"]["done"] == [1, 2]
    assert rows == [[1]]


def test_a_single_statement_error_is_not_renamed(tmp_path: Path) -> None:
    async def go(gw: Gateway) -> GatewayError:
        with pytest.raises(DatasourceError) as info:
            await collect(gw, "SELECT * FROM nope")
        return info.value

    error = on_gateway(tmp_path, go)
    assert not error.message.startswith("Statement")
    assert "statement" not in error.details


def test_gateway_sql_still_answers_the_last_statement(tmp_path: Path) -> None:
    result = on_gateway(tmp_path, lambda gw: gw.sql("SELECT 1 AS a; SELECT 2 AS b"))
    assert result == Result(columns=["b"], rows=[[2]])


# --- streams, one statement at a time ------------------------------------------------------


class Streams:
    """Patches a Gateway so ``STREAMED`` answers a StreamResult of ``batches`` (raising
    ``fail`` after them when set), and records what ran and what was read, in order."""

    def __init__(self, batches: list[list[list[Any]]], fail: Exception | None = None) -> None:
        self.batches = batches
        self.fail = fail
        self.events: list[str] = []
        self.closed = 0
        self.gate: threading.Event | None = None  # the 2nd batch waits for it when set
        self.gate_was_open: bool | None = None

    def install(self, gw: Gateway) -> None:
        real = gw._execute

        async def execute(
            statement: st.Statement, query_id: str | None = None, session: Any = None
        ) -> Any:
            sql = statement.sql if isinstance(statement, st.Query) else type(statement).__name__
            self.events.append(f"run {sql}")
            if sql == STREAMED:
                return StreamResult(columns=["s"], batches=self._rows(), query_id=query_id)
            return await real(statement, query_id=query_id, session=session)

        gw._execute = execute  # type: ignore[method-assign]

    async def _rows(self) -> AsyncIterator[list[list[Any]]]:
        try:
            for i, batch in enumerate(self.batches):
                if i == 1 and self.gate is not None:
                    self.gate_was_open = await asyncio.to_thread(self.gate.wait, 10)
                self.events.append(f"batch {i}")
                yield batch
            if self.fail is not None:
                raise self.fail
            self.events.append("stream end")
        finally:
            self.closed += 1


def test_a_stream_is_read_to_its_end_before_the_next_statement_runs(tmp_path: Path) -> None:
    streams = Streams([[["a"]], [["b"]]])

    async def go(gw: Gateway) -> list[Any]:
        streams.install(gw)
        return await collect(gw, f"SELECT 1; {STREAMED}; SELECT 3")

    got = on_gateway(tmp_path, go)
    assert [rows for _, _, rows in got] == [[[1]], [["a"], ["b"]], [[3]]]
    assert streams.events == [
        "run SELECT 1",
        f"run {STREAMED}",
        "batch 0",
        "batch 1",
        "stream end",
        "run SELECT 3",
    ]


def test_what_the_caller_left_unread_is_read_before_the_next_statement(tmp_path: Path) -> None:
    streams = Streams([[["a"]], [["b"]]])

    async def go(gw: Gateway) -> list[int]:
        streams.install(gw)
        return [item.index async for item, _ in gw.run_script(f"{STREAMED}; SELECT 2")]

    assert on_gateway(tmp_path, go) == [1, 2]
    assert streams.events.index("stream end") < streams.events.index("run SELECT 2")


def test_a_stream_failing_part_way_names_its_statement(tmp_path: Path) -> None:
    streams = Streams([[["a"]]], fail=GatewayError("the model broke", code="BROKE"))

    async def go(gw: Gateway) -> tuple[list[Any], GatewayError]:
        streams.install(gw)
        rows: list[Any] = []
        with pytest.raises(GatewayError) as info:
            async for _, result in gw.run_script(f"SELECT 1; {STREAMED}; SELECT 3"):
                if isinstance(result, StreamResult):
                    async for batch in result.batches:
                        rows.extend(batch)
        return rows, info.value

    rows, error = on_gateway(tmp_path, go)
    assert rows == [["a"]]
    assert error.code == "BROKE"
    assert error.message == f"Statement 2: the model broke ({ONE_DONE})."
    assert (error.details["statement"], error.details["done"]) == (2, [1])
    assert "run SELECT 3" not in streams.events


def test_closing_the_script_closes_the_stream_not_yet_read(tmp_path: Path) -> None:
    streams = Streams([[["a"]], [["b"]]])

    async def go(gw: Gateway) -> None:
        streams.install(gw)
        results = gw.run_script(f"SELECT 1; {STREAMED}; SELECT 3")
        async for _, result in results:
            if isinstance(result, StreamResult):
                await result.aclose()  # what the server does when the client goes away
                break
        await results.aclose()

    on_gateway(tmp_path, go)
    assert "run SELECT 3" not in streams.events
    assert streams.events[-1] == f"run {STREAMED}"  # not a batch was read


# --- POST /api/sql ---------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/c.sqlite")
    with TestClient(app) as client:
        yield client


def post(api: TestClient, query: str, **extra: Any) -> httpx.Response:
    return api.post("/api/sql", json={"query": query, **extra})


SCRIPT = (
    "CREATE TABLE t (x INTEGER);\n"
    "INSERT INTO t VALUES (1), (2);\n"
    "SELECT x FROM t ORDER BY x;\n"
    "DROP DATABASE IF EXISTS nope;"
)
NOPE = "Datasource 'nope' does not exist; nothing dropped."


def test_http_answers_each_statement_of_a_script(api: TestClient) -> None:
    response = post(api, SCRIPT)
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {"statement": 1, "sql": "CREATE TABLE t (x INTEGER)", "columns": [], "rows": []},
            {"statement": 2, "sql": "INSERT INTO t VALUES (1), (2)", "columns": [], "rows": []},
            {
                "statement": 3,
                "sql": "SELECT x FROM t ORDER BY x",
                "columns": ["x"],
                "rows": [[1], [2]],
            },
            {
                "statement": 4,
                "sql": "DROP DATABASE IF EXISTS nope",
                "columns": [],
                "rows": [],
                "message": NOPE,
            },
        ]
    }


def test_http_ndjson_answers_each_statement_of_a_script(api: TestClient) -> None:
    response = post(api, SCRIPT, format="ndjson")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines == [
        {"statement": 1, "sql": "CREATE TABLE t (x INTEGER)", "columns": []},
        {"statement": 2, "sql": "INSERT INTO t VALUES (1), (2)", "columns": []},
        {"statement": 3, "sql": "SELECT x FROM t ORDER BY x", "columns": ["x"]},
        {"rows": [[1], [2]]},
        {"statement": 4, "sql": "DROP DATABASE IF EXISTS nope", "columns": [], "message": NOPE},
        {"done": True, "statements": 4, "rows": 2},
    ]


@pytest.mark.parametrize("query", ["SELECT 1 AS a", "SELECT 1 AS a;", " SELECT 1 AS a ; ;\n"])
def test_http_single_statement_answer_is_unchanged(api: TestClient, query: str) -> None:
    assert post(api, query).json() == {"columns": ["a"], "rows": [[1]]}
    lines = [json.loads(line) for line in post(api, query, format="ndjson").text.splitlines()]
    assert lines == [{"columns": ["a"]}, {"rows": [[1]]}, {"done": True, "rows": 1}]


def test_http_one_statement_with_a_semicolon_in_a_string(api: TestClient) -> None:
    assert post(api, "SELECT 'a;b' AS s").json() == {"columns": ["s"], "rows": [["a;b"]]}


def test_http_failure_before_anything_was_sent_is_an_error_answer(api: TestClient) -> None:
    response = post(api, "CREATE TABLE t (x INTEGER); SELECT * FROM nope; SELECT 3")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "DATASOURCE_ERROR"
    assert error["statement"] == 2 and error["done"] == [1]
    assert error["message"].startswith("Statement 2: ")
    assert "(statement 1 took effect; statement 3 did not run)" in error["message"]
    # statement 1 did take effect
    assert post(api, "SELECT count(*) AS n FROM t").json()["rows"] == [[0]]


def test_http_syntax_error_runs_nothing(api: TestClient) -> None:
    for fmt in ("json", "ndjson"):
        response = post(
            api, "CREATE TABLE t (x INTEGER);\nSELECT 2;\n  SELECT * FORM t", format=fmt
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "PARSE_ERROR"
        assert (error["statement"], error["done"], error["line"], error["col"]) == (3, [], 3, 12)
        assert error["message"].startswith("Statement 3: Unexpected 'FORM'.")
    tables = post(api, "SELECT name FROM sqlite_master WHERE type = 'table'").json()
    assert tables["rows"] == []


def gateway_of(api: TestClient) -> Gateway:
    return api.app.state.gateway  # type: ignore[attr-defined]


def test_http_failure_after_a_stream_started_ends_the_document(api: TestClient) -> None:
    streams = Streams([[["a"]], [["b"]]])
    streams.install(gateway_of(api))
    response = post(api, f"SELECT 1 AS one; {STREAMED}; SELECT * FROM nope; SELECT 4")
    assert response.status_code == 200  # sent before statement 3 failed
    body = response.json()
    assert body["results"] == [
        {"statement": 1, "sql": "SELECT 1 AS one", "columns": ["one"], "rows": [[1]]},
        {"statement": 2, "sql": STREAMED, "columns": ["s"], "rows": [["a"], ["b"]]},
    ]
    assert body["error"]["code"] == "DATASOURCE_ERROR"
    assert (body["error"]["statement"], body["error"]["done"]) == (3, [1, 2])
    assert "run SELECT 4" not in streams.events


def test_http_stream_failing_part_way_ends_the_document(api: TestClient) -> None:
    streams = Streams([[["a"]], [["b"]]], fail=GatewayError("the model broke", code="BROKE"))
    streams.install(gateway_of(api))
    body = post(api, f"SELECT 1 AS one; {STREAMED}; SELECT 3").json()
    assert body["results"][1] == {
        "statement": 2,
        "sql": STREAMED,
        "columns": ["s"],
        "rows": [["a"], ["b"]],
    }
    assert body["error"] == {
        "code": "BROKE",
        "message": f"Statement 2: the model broke ({ONE_DONE}).",
        "statement": 2,
        "done": [1],
    }
    lines = post(api, f"SELECT 1 AS one; {STREAMED}", format="ndjson").text.splitlines()
    assert json.loads(lines[-1])["error"]["statement"] == 2
    assert json.loads(lines[2]) == {"statement": 2, "sql": STREAMED, "columns": ["s"]}
    assert streams.closed == 2


def test_http_streams_the_rows_of_a_script_as_they_come(tmp_path: Path) -> None:
    """The first batch reaches the client while the second is not computed yet: the rows
    of a statement in a script are written as they come, never held."""
    streams = Streams([[["first"]], [["second"]]])
    streams.gate = threading.Event()
    app = create_app(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/c.sqlite")
    with serving(app) as url:
        streams.install(app.state.gateway)
        body = {"query": f"SELECT 1 AS one; {STREAMED}; SELECT 3 AS three"}
        received = b""
        with httpx.stream("POST", f"{url}/api/sql", json=body, timeout=30) as response:
            for chunk in response.iter_bytes():
                received += chunk
                if b'"first"' in received:
                    streams.gate.set()
    assert streams.gate_was_open is True
    document = json.loads(received)
    assert [r["rows"] for r in document["results"]] == [[[1]], [["first"], ["second"]], [[3]]]


# --- the Python client ------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    with serving(create_app(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/c.sqlite")) as url:
        yield url


def test_client_sql_script_returns_each_result(served: str) -> None:
    with Client(served) as client:
        results = client.sql_script(SCRIPT)
        assert [r.rows for r in results] == [[], [], [[1], [2]], []]
        assert results[3].message == NOPE
        assert client.sql("SELECT 1 AS a; SELECT 2 AS b") == Result(columns=["b"], rows=[[2]])
        assert client.sql_script("SELECT 5 AS five") == [Result(columns=["five"], rows=[[5]])]
        with pytest.raises(DatasourceError) as info:
            client.sql_script("SELECT 1; SELECT * FROM nope")
        assert (info.value.details["statement"], info.value.details["done"]) == (2, [1])


# --- waiting for training --------------------------------------------------------------------


class SlowModel:
    """A ray_serve model behind ``httpx.MockTransport``: training takes ``train_s`` seconds
    (or until ``gate`` is set), predicting answers ``x * 2`` per row."""

    def __init__(self, train_s: float = 0.5) -> None:
        self.train_s = train_s
        self.gate: threading.Event | None = None
        self.calls: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        rows = json.loads(body["df"])
        if request.url.path.endswith("/train"):
            self.calls.append("train")
            if self.gate is not None:
                await asyncio.to_thread(self.gate.wait, 10)
            else:
                await asyncio.sleep(self.train_s)
            self.calls.append("trained")
            return httpx.Response(200, json={"status": "ok"})
        self.calls.append("predict")
        return httpx.Response(200, json={"prediction": [row["x"] * 2 for row in rows]})

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every ``Gateway.start`` (the CLI's, the app's) talks to this model."""
        original = Gateway.start.__func__  # type: ignore[attr-defined]
        transport = httpx.MockTransport(self)

        async def start(cls: type[Gateway], *args: Any, **kwargs: Any) -> Gateway:
            kwargs["transport"] = transport
            return await original(cls, *args, **kwargs)

        monkeypatch.setattr(Gateway, "start", classmethod(start))


TRAIN_SCRIPT = """
CREATE TABLE pts (x INTEGER, y INTEGER);
INSERT INTO pts VALUES (1, 2), (2, 4), (3, 6);
CREATE PREDICTOR m FROM local (SELECT x, y FROM pts) PREDICT y
USING url.train = 'http://model/train', url.predict = 'http://model/predict',
      format = 'ray_serve';
SELECT * FROM m WHERE x = 21;
"""


def test_client_wait_for_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = SlowModel()
    model.gate = threading.Event()
    model.install(monkeypatch)
    app = create_app(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/c.sqlite")
    with serving(app) as url, Client(url) as client:
        client.sql_script(TRAIN_SCRIPT.split("SELECT * FROM m")[0])
        with pytest.raises(ModelNotReady):
            client.sql("SELECT * FROM m WHERE x = 21")  # what a script without waiting hits
        model.gate.set()
        described = client.wait_for_training("m", timeout=30, interval=0.05)
        assert described.records()[0]["status"] == "complete"
        assert client.sql("SELECT * FROM m WHERE x = 21").records()[0]["y"] == 42


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "script.sql"
    path.write_text(text)
    return str(path)


def test_cli_file_embedded_waits_for_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BYOM_URL", raising=False)
    monkeypatch.delenv("BYOM_CATALOG_URL", raising=False)
    model = SlowModel(train_s=0.5)
    model.install(monkeypatch)
    path = _write(tmp_path, TRAIN_SCRIPT)
    assert main(["sql", "-f", path, "--home", str(tmp_path / "home"), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    created, predicted = document["results"][2], document["results"][3]
    assert dict(zip(created["columns"], created["rows"][0], strict=True))["status"] == "complete"
    assert predicted["rows"] == [[21, 42]]
    assert model.calls == ["train", "trained", "predict"]


def test_cli_file_remote_waits_for_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = SlowModel(train_s=0.5)
    model.install(monkeypatch)
    path = _write(tmp_path, TRAIN_SCRIPT)
    app = create_app(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/c.sqlite")
    with serving(app) as url:
        assert main(["sql", "-f", path, "--url", url]) == 0
    out = capsys.readouterr().out
    assert "-- [3] CREATE PREDICTOR m FROM local (SELECT x, y FROM pts) PREDICT y USING" in out
    assert "complete" in out.split("-- [3]")[1].split("-- [4]")[0]
    assert "| 21 | 42 |" in out.split("-- [4] SELECT * FROM m WHERE x = 21")[1]
    assert model.calls == ["train", "trained", "predict"]


# --- byom sql -f -----------------------------------------------------------------------------


CLI_SCRIPT = (
    "CREATE TABLE t (x INTEGER, s TEXT);\n"
    "INSERT INTO t VALUES (1, 'a;b'), (2, 'c');\n"
    "SELECT x, s FROM t ORDER BY x;\n"
    "DROP DATABASE IF EXISTS nope;\n"
    "SELECT count(*) AS n FROM t"
)


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """``byom sql`` arguments for an embedded gateway over a temporary home."""
    monkeypatch.delenv("BYOM_URL", raising=False)
    monkeypatch.delenv("BYOM_CATALOG_URL", raising=False)
    return ["--home", str(tmp_path / "home")]


def test_cli_file_table(
    embedded: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "-f", _write(tmp_path, CLI_SCRIPT), *embedded]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:4] == [
        "-- [1] CREATE TABLE t (x INTEGER, s TEXT)",
        "OK",
        "",
        "-- [2] INSERT INTO t VALUES (1, 'a;b'), (2, 'c')",
    ]
    assert "-- [3] SELECT x, s FROM t ORDER BY x\n+---+-----+\n| x | s   |" in out
    assert f"-- [4] DROP DATABASE IF EXISTS nope\n{NOPE}\n" in out
    assert out.endswith(
        "-- [5] SELECT count(*) AS n FROM t\n+---+\n| n |\n+---+\n| 2 |\n+---+\n(1 row)\n"
    )


def test_cli_file_csv_keeps_stdout_csv(
    embedded: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "-f", _write(tmp_path, CLI_SCRIPT), "--format", "csv", *embedded]) == 0
    captured = capsys.readouterr()
    assert captured.out == "x,s\n1,a;b\n2,c\n\nn\n2\n"
    assert captured.err.splitlines() == [
        "-- [1] CREATE TABLE t (x INTEGER, s TEXT)",
        "-- [2] INSERT INTO t VALUES (1, 'a;b'), (2, 'c')",
        "-- [3] SELECT x, s FROM t ORDER BY x",
        "-- [4] DROP DATABASE IF EXISTS nope",
        NOPE,
        "-- [5] SELECT count(*) AS n FROM t",
    ]


def test_cli_file_json_is_the_http_document(
    embedded: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], api: TestClient
) -> None:
    assert main(["sql", "-f", _write(tmp_path, CLI_SCRIPT), "--json", *embedded]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == post(api, CLI_SCRIPT).json()  # same statements on a fresh home
    assert printed["results"][3]["message"] == NOPE


def test_cli_file_from_stdin_and_several_statements_inline(
    embedded: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("SELECT 1 AS a;\nSELECT 2 AS b;"))
    assert main(["sql", "-f", "-", "--json", *embedded]) == 0
    assert [r["rows"] for r in json.loads(capsys.readouterr().out)["results"]] == [[[1]], [[2]]]
    assert main(["sql", "SELECT 1 AS a; SELECT 2 AS b", *embedded]) == 0
    out = capsys.readouterr().out
    assert out.startswith("-- [1] SELECT 1 AS a\n") and "-- [2] SELECT 2 AS b\n" in out


def test_cli_file_failure(
    embedded: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "SELECT 1 AS a;\nSELECT * FROM nope;\nSELECT 3")
    assert main(["sql", "-f", path, "--json", *embedded]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["results"] == [
        {"statement": 1, "sql": "SELECT 1 AS a", "columns": ["a"], "rows": [[1]]}
    ]
    assert (document["error"]["statement"], document["error"]["done"]) == (2, [1])
    assert captured.err.startswith("ERROR [DATASOURCE_ERROR]: Statement 2: ")
    # a syntax error anywhere: nothing runs, nothing is printed
    path = _write(tmp_path, "SELECT 1;\nSELECT 2;\nSELEC 3")
    assert main(["sql", "-f", path, *embedded]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("ERROR [PARSE_ERROR]: Statement 3: Unknown statement")
    assert "(line 3, col 1)" in captured.err


def test_cli_file_remote(served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["sql", "-f", _write(tmp_path, CLI_SCRIPT), "--url", served, "--format", "csv"]) == 0
    )
    assert capsys.readouterr().out == "x,s\n1,a;b\n2,c\n\nn\n2\n"
    path = _write(tmp_path, "SELECT 1 AS a;\nSELECT * FROM nope;\nSELECT 3")
    assert main(["sql", "-f", path, "--url", served]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR [DATASOURCE_ERROR]: Statement 2: ")
    assert err.rstrip().endswith("(statement 1 took effect; statement 3 did not run).")


def test_cli_file_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql"]) == 2
    assert main(["sql", "SELECT 1", "-f", "x.sql"]) == 2
    assert "give the SQL text or -f FILE" in capsys.readouterr().err
    assert main(["sql", "-f", str(tmp_path / "missing.sql")]) == 2
    assert "cannot read" in capsys.readouterr().err
