"""The Python client and the ``byom`` CLI against a real uvicorn server over a fake Gateway,
plus the table formatting they print."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from byom.errors import (
    EndpointTimeout,
    EndpointUnreachable,
    GatewayError,
    InvalidInput,
    ModelExists,
    ModelNotFound,
    NotFound,
    ParseError,
)
from gateway.cli import main
from gateway.client import Client, error_classes, error_from_body
from gateway.formatting import dumps_json, format_table, format_value
from gateway.result import Result
from gateway.server import create_app
from tests.gateway.test_server import FakeGateway, install_fake_core
from tests.threaded_server import serving


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, FakeGateway]]:
    """A real HTTP server on a free port, running the app over one FakeGateway."""
    fake = FakeGateway()
    with serving(create_app(fake)) as url:
        yield url, fake


@pytest.fixture
def url(served: tuple[str, FakeGateway]) -> str:
    return served[0]


@pytest.fixture
def fake(served: tuple[str, FakeGateway]) -> FakeGateway:
    return served[1]


@pytest.fixture
def closed_url() -> str:
    """A URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- client ------------------------------------------------------------------------------


def test_client_sql_returns_a_result(url: str) -> None:
    with Client(url) as client:
        assert client.sql("SELECT 1") == Result(columns=["one"], rows=[[1]])
        assert client.sql("CREATE DATABASE x").message == "datasource 'x' created"


@pytest.mark.parametrize(
    ("query", "cls", "status"),
    [
        ("SELEC 1", ParseError, 400),
        ("SELECT * FROM missing", ModelNotFound, 404),
        ("SELECT * FROM down", EndpointUnreachable, 502),
        ("SELECT * FROM slow", EndpointTimeout, 504),
    ],
)
def test_client_raises_the_matching_error_class(
    url: str, query: str, cls: type[GatewayError], status: int
) -> None:
    with Client(url) as client, pytest.raises(GatewayError) as info:
        client.sql(query)
    assert type(info.value) is cls
    assert info.value.code == cls.code
    assert info.value.status == status


def test_client_error_keeps_message_and_details(url: str) -> None:
    with Client(url) as client:
        with pytest.raises(ParseError) as parse:
            client.sql("SELEC 1")
        with pytest.raises(ModelNotFound) as missing:
            client.sql("SELECT * FROM missing")
    # The server formatted the message already; the client must not append line/col again.
    assert parse.value.message == "Unknown statement 'SELEC'. Did you mean SELECT? (line 1, col 1)."
    assert str(parse.value) == parse.value.message
    assert (parse.value.line, parse.value.col, parse.value.suggestion) == (1, 1, "SELECT")
    assert missing.value.details == {"model": "missing"}
    assert isinstance(missing.value, NotFound)


def test_client_internal_and_unknown_codes(url: str, fake: FakeGateway) -> None:
    fake.answers["LOCKED"] = GatewayError("catalog is locked", code="CATALOG_LOCKED", tries=3)
    with Client(url) as client:
        with pytest.raises(GatewayError) as internal:
            client.sql("BOOM")
        with pytest.raises(GatewayError) as unknown:
            client.sql("LOCKED")
    assert type(internal.value) is GatewayError
    assert (internal.value.code, internal.value.status) == ("INTERNAL_ERROR", 500)
    assert "RuntimeError: kaput" in internal.value.message
    assert type(unknown.value) is GatewayError
    assert unknown.value.code == "CATALOG_LOCKED"
    assert unknown.value.details == {"tries": 3}


def test_client_unreachable_gateway(closed_url: str) -> None:
    with Client(closed_url, timeout=5) as client, pytest.raises(GatewayError) as info:
        client.sql("SELECT 1")
    assert info.value.code == "GATEWAY_UNREACHABLE"
    assert info.value.message == (
        f"cannot reach the gateway at {closed_url}; start it with `byom serve`."
    )
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_client_predictor_lifecycle(url: str) -> None:
    with Client(url) as client:
        row = client.register_predictor(
            name="lifecycle",
            format="ray_serve",
            url={"predict": "http://h/predict"},
            dtype_dict={"a": "integer"},
        )
        assert row == {
            "name": "lifecycle",
            "format": "ray_serve",
            "status": "complete",
            "url_predict": "http://h/predict",
        }
        with pytest.raises(ModelExists):
            client.register_predictor(name="lifecycle", format="mlflow", url_predict="http://h")
        assert "lifecycle" in [p["name"] for p in client.list_predictors()]
        assert client.get_predictor("lifecycle")["status"] == "complete"
        # numpy values and datetimes are encoded by the client, not rejected.
        result = client.predict(
            "lifecycle", [{"a": np.int64(2), "b": 3, "at": dt.date(2024, 1, 1)}]
        )
        assert result == Result(
            columns=["a", "b", "at", "prediction"], rows=[[2, 3, "2024-01-01", 5]]
        )
        assert client.drop_predictor("lifecycle") == {"dropped": "lifecycle"}
        with pytest.raises(ModelNotFound):
            client.get_predictor("lifecycle")


def test_client_invalid_request_and_health(url: str) -> None:
    with Client(url) as client:
        with pytest.raises(GatewayError) as info:
            client.register_predictor(name="x", format="mlflow", dtypes={})
        assert info.value.code == "INVALID_REQUEST"
        assert info.value.status == 400
        assert client.health()["status"] == "ok"


def test_error_class_map_covers_the_hierarchy() -> None:
    classes = error_classes()
    for cls in (ParseError, ModelNotFound, EndpointTimeout, InvalidInput, NotFound):
        assert classes[cls.code] is cls
    assert classes["GATEWAY_ERROR"] is GatewayError
    assert error_from_body({"detail": "Not Found"}, 404) is None
    assert error_from_body(None, 502) is None


# --- formatting ----------------------------------------------------------------------


def test_format_table_layout() -> None:
    result = Result(columns=["name", "score"], rows=[["a", 1.5], ["bb", None], ["c", np.int64(10)]])
    assert format_table(result) == "\n".join(
        [
            "+------+-------+",
            "| name | score |",
            "+------+-------+",
            "| a    |   1.5 |",
            "| bb   | NULL  |",
            "| c    |    10 |",
            "+------+-------+",
            "(3 rows)",
        ]
    )


def test_format_table_truncates_and_escapes() -> None:
    result = Result(columns=["text"], rows=[["x" * 50], ["two\nlines!"]])
    lines = format_table(result, max_width=10).splitlines()
    assert lines[3] == "| xxxxxxxxx… |"
    assert lines[4] == "| two\\nline… |"
    assert lines[-1] == "(2 rows)"


def test_format_table_empty_and_message_results() -> None:
    assert format_table(Result(columns=["a"], rows=[])) == "+---+\n| a |\n+---+\n(0 rows)"
    assert format_table(Result(message="model 'm' dropped")) == "model 'm' dropped"
    assert format_table(Result()) == "OK"
    one = format_table(Result(columns=["a"], rows=[[1]], message="note"))
    assert one.endswith("(1 row)\nnote")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "NULL"),
        (True, "true"),
        (0.1, "0.1"),
        (3000.0, "3000"),
        (1 / 3, "0.3333333333"),
        (float("nan"), "NaN"),
        (np.int64(4), "4"),
        (np.float32(0.25), "0.25"),
        (dt.datetime(2024, 5, 6, 7, 8, 9), "2024-05-06 07:08:09"),
        ({"a": [1, 2]}, '{"a":[1,2]}'),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_format_table_counts_wide_characters_twice() -> None:
    lines = format_table(Result(columns=["t"], rows=[["日本"], ["abcd"]])).splitlines()
    assert lines[3] == "| 日本 |"
    assert lines[4] == "| abcd |"


def test_dumps_json_handles_numpy_nan_and_dates() -> None:
    value = {"n": np.int64(1), "x": float("nan"), "d": dt.date(2024, 1, 1), "b": b"hi"}
    assert json.loads(dumps_json(value)) == {"n": 1, "x": None, "d": "2024-01-01", "b": "hi"}


# --- cli ---------------------------------------------------------------------------


def test_cli_sql_remote_prints_a_table(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT 1", "--url", url]) == 0
    out, err = capsys.readouterr()
    assert out == "+-----+\n| one |\n+-----+\n|   1 |\n+-----+\n(1 row)\n"
    assert err == ""


def test_cli_sql_json_output(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT 1", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"columns": ["one"], "rows": [[1]]}


def test_cli_sql_error_exit_code(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT * FROM missing", "--url", url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "ERROR [MODEL_NOT_FOUND]: model 'missing' does not exist.\n"


def test_cli_unreachable_url_exits_2(closed_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT 1", "--url", closed_url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR [GATEWAY_UNREACHABLE]: cannot reach the gateway at ")


def test_cli_reads_url_from_env_and_sql_from_stdin(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BYOM_URL", url)
    monkeypatch.setattr(sys, "stdin", io.StringIO("SELECT 1"))
    assert main(["sql", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == [[1]]


def test_cli_sql_embedded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BYOM_URL", raising=False)
    embedded = FakeGateway()
    seen: list[tuple[Any, ...]] = []
    install_fake_core(monkeypatch, embedded, seen)
    assert main(["sql", "SELECT 1", "--home", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"columns": ["one"], "rows": [[1]]}
    assert seen == [(tmp_path, None)]
    assert embedded.closed


def test_cli_sql_embedded_error_still_closes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BYOM_URL", raising=False)
    embedded = FakeGateway()
    install_fake_core(monkeypatch, embedded, [])
    assert main(["sql", "SELEC 1"]) == 1
    assert capsys.readouterr().err.startswith("ERROR [PARSE_ERROR]: Unknown statement 'SELEC'.")
    assert embedded.closed


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([]) == 2
    assert main(["sql", "SELECT 1", "--url", "http://h", "--home", str(tmp_path)]) == 2
    assert "--home applies to the embedded gateway only" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("byom ")


def test_cli_serve_runs_uvicorn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    assert main(["serve", "--port", "5555", "--home", str(tmp_path)]) == 0
    [(app, kwargs)] = calls
    assert kwargs == {"host": "127.0.0.1", "port": 5555, "log_level": "info", "access_log": False}
    assert app.title == "byom-gateway"


def test_cli_demo_delegates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    homes: list[Path | None] = []
    module = types.ModuleType("gateway.demo")
    module.main = lambda home: homes.append(home) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.demo", module)
    assert main(["demo", "--home", str(tmp_path)]) == 3
    assert main(["demo"]) == 3
    assert homes == [tmp_path, None]
