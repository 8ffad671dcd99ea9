"""Streamed answers end to end in the front layers: the server writing a ``StreamResult``
batch by batch (JSON and NDJSON), errors after the first byte, closing the stream when the
client goes away, flat memory; the client's ``iter_sql``; the CLI's progress bar and CSV.

The gateway behind is ``FakeGateway`` answering ``StreamResult``s built from the async
generator of ``Batches``, which records how it was consumed. One test at the end runs a
real ``Gateway`` JOIN over the embedded SQLite datasource and a real HTTP model endpoint.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from byom.errors import EndpointTimeout, GatewayError, ModelNotFound, NotFound
from gateway import cli_progress
from gateway.cli import main
from gateway.client import Client
from gateway.formatting import format_progress
from gateway.result import Result, StreamResult
from gateway.server import create_app
from tests.gateway.test_server import FakeGateway, install_fake_core
from tests.threaded_server import serving

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

COLUMNS = ["n", "label"]


class Batches:
    """A stream of ``batches`` batches of ``size`` numbered rows that records its use:
    ``produced`` batches handed out, ``closed`` once its ``finally`` ran. ``fail_at``
    raises ``error`` instead of that batch; ``endless`` never ends; ``before`` is awaited
    before the first batch."""

    def __init__(
        self,
        batches: int = 3,
        size: int = 2,
        *,
        fail_at: int | None = None,
        error: Exception | None = None,
        endless: bool = False,
        before: Any = None,
    ) -> None:
        self.batches, self.size = batches, size
        self.fail_at, self.error = fail_at, error
        self.endless = endless
        self.before = before
        self.produced = 0
        self.closed = False

    def batch(self, i: int) -> list[list[Any]]:
        return [[i * self.size + j, f"row{i * self.size + j}"] for j in range(self.size)]

    def rows(self, batches: int | None = None) -> list[list[Any]]:
        return [
            row
            for i in range(self.batches if batches is None else batches)
            for row in self.batch(i)
        ]

    async def _generate(self) -> AsyncIterator[list[list[Any]]]:
        try:
            if self.before is not None:
                await self.before()
            i = 0
            while self.endless or i < self.batches:
                if i == self.fail_at:
                    assert self.error is not None
                    raise self.error
                self.produced += 1
                yield self.batch(i)
                i += 1
                await asyncio.sleep(0)  # a real stream awaits its endpoint between batches
        finally:
            self.closed = True

    def __call__(self, query_id: str | None = None) -> StreamResult:
        return StreamResult(columns=COLUMNS, batches=self._generate(), query_id=query_id)


def wait_until(condition: Any, what: str, timeout: float = 20.0) -> None:
    """Wait for something another thread does (a bound against hangs, not a timing check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


def ndjson(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, FakeGateway]]:
    """A real HTTP server (uvicorn) over one FakeGateway, for the client and the CLI."""
    fake = FakeGateway()
    with serving(create_app(fake)) as url:  # type: ignore[arg-type]
        yield url, fake


@pytest.fixture
def url(served: tuple[str, FakeGateway]) -> str:
    return served[0]


@pytest.fixture
def fake(served: tuple[str, FakeGateway]) -> FakeGateway:
    return served[1]


@pytest.fixture
def gw() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def api(gw: FakeGateway) -> Iterator[TestClient]:
    with TestClient(create_app(gw)) as test_client:  # type: ignore[arg-type]
        yield test_client


# --- server: JSON ------------------------------------------------------------------------


def test_streamed_json_is_the_same_document_as_a_result(api: TestClient, gw: FakeGateway) -> None:
    stream = Batches(batches=4, size=3)
    gw.answers["JOIN"] = stream
    response = api.post("/api/sql", json={"query": "JOIN", "query_id": "q-1"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-query-id"] == "q-1"
    assert response.json() == Result(columns=COLUMNS, rows=stream.rows()).to_dict()
    assert gw.query_ids == ["q-1"]
    assert stream.closed


def test_empty_stream_and_empty_batches(api: TestClient, gw: FakeGateway) -> None:
    gw.answers["NONE"] = Batches(batches=0)
    assert api.post("/api/sql", json={"query": "NONE"}).json() == {"columns": COLUMNS, "rows": []}
    gw.answers["HOLES"] = Batches(batches=3, size=0)
    assert api.post("/api/sql", json={"query": "HOLES"}).json() == {"columns": COLUMNS, "rows": []}


def test_error_mid_stream_ends_the_document_with_error(api: TestClient, gw: FakeGateway) -> None:
    stream = Batches(batches=5, fail_at=2, error=EndpointTimeout("model 'm': no answer in 30 s."))
    gw.answers["JOIN"] = stream
    response = api.post("/api/sql", json={"query": "JOIN"})
    assert response.status_code == 200  # the status line was sent before the failure
    assert response.json() == {
        "columns": COLUMNS,
        "rows": stream.rows(2),
        "error": {"code": "ENDPOINT_TIMEOUT", "message": "model 'm': no answer in 30 s."},
    }
    assert stream.closed


def test_unexpected_error_mid_stream_is_internal_and_logged(
    api: TestClient, gw: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gw.answers["JOIN"] = Batches(fail_at=1, error=RuntimeError("kaput"))
    with caplog.at_level("ERROR", logger="gateway.server"):
        body = api.post("/api/sql", json={"query": "JOIN"}).json()
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert "RuntimeError: kaput" in body["error"]["message"]
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError]


def test_errors_before_streaming_keep_their_status(api: TestClient) -> None:
    for fmt in ("json", "ndjson"):
        response = api.post("/api/sql", json={"query": "SELECT * FROM missing", "format": fmt})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "MODEL_NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"query": "SELECT 1", "format": "xml"}, "format"),
        ({"query": "SELECT 1", "query_id": "a b/c"}, "query_id"),
    ],
)
def test_bad_format_or_query_id_is_400(
    api: TestClient, gw: FakeGateway, body: dict[str, Any], needle: str
) -> None:
    response = api.post("/api/sql", json=body)
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]
    assert gw.calls == []


# --- server: NDJSON ----------------------------------------------------------------------


def test_ndjson_lines(api: TestClient, gw: FakeGateway) -> None:
    stream = Batches(batches=3, size=2)
    gw.answers["JOIN"] = stream
    response = api.post("/api/sql", json={"query": "JOIN", "format": "ndjson"})
    assert response.headers["content-type"] == "application/x-ndjson"
    assert ndjson(response.text) == [
        {"columns": COLUMNS},
        {"rows": stream.batch(0)},
        {"rows": stream.batch(1)},
        {"rows": stream.batch(2)},
        {"done": True, "rows": 6},
    ]
    assert stream.closed


def test_ndjson_of_plain_results(api: TestClient) -> None:
    one = api.post("/api/sql", json={"query": "SELECT 1", "format": "ndjson"})
    assert ndjson(one.text) == [{"columns": ["one"]}, {"rows": [[1]]}, {"done": True, "rows": 1}]
    note = api.post("/api/sql", json={"query": "CREATE DATABASE x", "format": "ndjson"})
    assert ndjson(note.text) == [
        {"columns": [], "message": "datasource 'x' created"},
        {"done": True, "rows": 0},
    ]


def test_ndjson_error_mid_stream_is_the_last_line(api: TestClient, gw: FakeGateway) -> None:
    stream = Batches(batches=4, fail_at=1, error=EndpointTimeout("slow."))
    gw.answers["JOIN"] = stream
    lines = ndjson(api.post("/api/sql", json={"query": "JOIN", "format": "ndjson"}).text)
    assert lines == [
        {"columns": COLUMNS},
        {"rows": stream.batch(0)},
        {"error": {"code": "ENDPOINT_TIMEOUT", "message": "slow."}},
    ]


# --- server: flat memory and closing ------------------------------------------------------


def test_rows_are_written_as_they_are_produced(api: TestClient, gw: FakeGateway) -> None:
    """200k rows in 100 batches: the server never runs ahead of what the client has read
    by more than the one batch it is sending, so it cannot be holding all the rows."""
    stream = Batches(batches=100, size=2000)
    gw.answers["BIG"] = stream
    chunks: list[bytes] = []
    ahead: list[int] = []
    with api.stream("POST", "/api/sql", json={"query": "BIG"}) as response:
        for chunk in response.iter_raw():
            chunks.append(chunk)
            batches_received = len(chunks) - 1  # the first chunk is the document's head
            ahead.append(stream.produced - batches_received)
    assert max(ahead) <= 1
    assert stream.produced == 100
    body = json.loads(b"".join(chunks))
    assert len(body["rows"]) == 200_000
    assert body["rows"][0] == [0, "row0"] and body["rows"][-1] == [199_999, "row199999"]


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_stream_is_closed_when_the_client_goes_away(
    api: TestClient, gw: FakeGateway, fmt: str
) -> None:
    stream = Batches(endless=True)
    gw.answers["FOREVER"] = stream
    with api.stream("POST", "/api/sql", json={"query": "FOREVER", "format": fmt}) as response:
        parts = response.iter_raw()
        for _ in range(4):
            next(parts)
    assert stream.closed
    assert stream.produced < 10


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
def test_stream_is_closed_on_disconnect_at_the_asgi_level(spec_version: str) -> None:
    """Both ways a server reports a gone client: ``http.disconnect`` from ``receive``
    (ASGI < 2.4, uvicorn) or ``send`` raising ``OSError`` (ASGI 2.4)."""
    gw = FakeGateway()
    stream = Batches(endless=True)
    gw.answers["FOREVER"] = stream
    app = create_app(gw)  # type: ignore[arg-type]
    body = json.dumps({"query": "FOREVER"}).encode()
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        gone = asyncio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if len(sent) >= 4:
                gone.set()
                if spec_version == "2.4":
                    raise OSError("connection reset by peer")

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": spec_version},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/sql",
            "raw_path": b"/api/sql",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        await asyncio.wait_for(app(scope, receive, send), timeout=20)
        # Checked before asyncio.run ends: its shutdown would close a forgotten generator.
        assert stream.closed

    asyncio.run(run())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200


# --- client -------------------------------------------------------------------------------


def test_client_sql_reads_a_streamed_answer(url: str, fake: FakeGateway) -> None:
    stream = Batches(batches=3, size=4)
    fake.answers["JOIN"] = stream
    with Client(url) as client:
        assert client.sql("JOIN", query_id="abc") == Result(columns=COLUMNS, rows=stream.rows())
    assert fake.query_ids[-1] == "abc"


def test_client_sql_raises_an_error_from_mid_stream(url: str, fake: FakeGateway) -> None:
    fake.answers["JOIN"] = Batches(fail_at=1, error=EndpointTimeout("model 'm': timed out."))
    with Client(url) as client, pytest.raises(EndpointTimeout) as info:
        client.sql("JOIN")
    assert info.value.message == "model 'm': timed out."
    assert info.value.status == 504  # the class's own: the HTTP status said 200


def test_iter_sql_yields_batches(url: str, fake: FakeGateway) -> None:
    stream = Batches(batches=3, size=2)
    fake.answers["JOIN"] = stream
    with Client(url) as client:
        with client.iter_sql("JOIN") as rows:
            assert rows.columns == COLUMNS and rows.message is None
            assert list(rows) == [stream.batch(i) for i in range(3)]
            assert rows.done and rows.rows_read == 6
        with client.iter_sql("CREATE DATABASE x") as note:
            assert note.columns == [] and note.message == "datasource 'x' created"
            assert list(note.rows()) == []
        with client.iter_sql("SELECT 1") as one:
            assert list(one.rows()) == [[1]]


def test_iter_sql_errors_before_and_during_the_stream(url: str, fake: FakeGateway) -> None:
    stream = Batches(batches=4, fail_at=2, error=EndpointTimeout("model 'm': timed out."))
    fake.answers["JOIN"] = stream
    with Client(url) as client:
        with pytest.raises(ModelNotFound):
            client.iter_sql("SELECT * FROM missing")
        got: list[list[list[Any]]] = []
        with client.iter_sql("JOIN") as rows, pytest.raises(EndpointTimeout):
            for batch in rows:
                got.append(batch)
    assert got == [stream.batch(0), stream.batch(1)]


def test_iter_sql_close_cancels_the_statement(url: str, fake: FakeGateway) -> None:
    stream = Batches(endless=True, size=500)
    fake.answers["FOREVER"] = stream
    with Client(url) as client:
        with client.iter_sql("FOREVER") as rows:
            first = next(iter(rows))
        assert first == stream.batch(0)
        wait_until(lambda: stream.closed, "the server to close the abandoned stream")
        assert client.sql("SELECT 1").rows == [[1]]  # still serving


def test_queries_and_query_progress(url: str, fake: FakeGateway) -> None:
    entry = fake.progress.start("SELECT ... JOIN m", "join", query_id="p-1")
    entry.rows_done, entry.rows_total = 250, 1000
    with Client(url) as client:
        listed = client.queries()
        assert [q["id"] for q in listed] == ["p-1"]
        one = client.query_progress("p-1")
        assert (one["rows_done"], one["rows_total"], one["fraction"]) == (250, 1000, 0.25)
        assert one["status"] == "running" and one["kind"] == "join"
        with pytest.raises(NotFound) as info:
            client.query_progress("nope")
    assert info.value.code == "QUERY_NOT_FOUND" and info.value.status == 404


# --- formatting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "text"),
    [
        (410_000, 1_000_000, "[########............]  41% 410,000/1,000,000 rows"),
        (0, 10, "[....................]   0% 0/10 rows"),
        (12, 10, "[####################] 100% 12/10 rows"),
        (410_000, None, "410,000 rows"),
        (5, 0, "5 rows"),
    ],
)
def test_format_progress(done: int, total: int | None, text: str) -> None:
    assert format_progress(done, total) == text


# --- cli ----------------------------------------------------------------------------------


def slow_join(gateway: FakeGateway, polls: int = 2) -> Batches:
    """A JOIN that registers progress under the client's query_id (410 of 1000 rows) and
    starts only after the progress was polled ``polls`` times: by then the bar has been
    drawn at least once (each poll draws before the next one is made)."""

    async def wait_for_polls() -> None:
        deadline = time.monotonic() + 20
        while gateway.polls < polls:
            assert time.monotonic() < deadline, "the CLI never polled the progress"
            await asyncio.sleep(0.005)

    stream = Batches(batches=2, size=3, before=wait_for_polls)

    def start(query_id: str | None) -> StreamResult:
        assert query_id, "the CLI sends a query_id when it draws progress"
        entry = gateway.progress.start("SELECT ... JOIN", "join", query_id)
        entry.rows_done, entry.rows_total = 410, 1000
        return stream(query_id)

    gateway.answers["JOIN"] = start  # type: ignore[assignment]
    return stream


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_progress, "PROGRESS_INTERVAL_S", 0.01)


def check_progress_output(out: str, err: str, stream: Batches) -> None:
    assert "\r[########............]  41% 410/1,000 rows" in err
    assert err.endswith("\r")  # the bar is erased at the end
    assert "\n" not in err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows == [COLUMNS, *[[str(n), label] for n, label in stream.rows()]]


@pytest.mark.usefixtures("quick_polls")
def test_cli_remote_progress_bar_and_csv(
    url: str, fake: FakeGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.polls = 0
    stream = slow_join(fake)
    assert main(["sql", "JOIN", "--url", url, "--progress", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    check_progress_output(out, err, stream)
    assert stream.closed


@pytest.mark.usefixtures("quick_polls")
def test_cli_embedded_progress_bar_and_csv(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BYOM_URL", raising=False)
    embedded = FakeGateway()
    install_fake_core(monkeypatch, embedded, [])
    stream = slow_join(embedded)
    assert main(["sql", "JOIN", "--progress", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    check_progress_output(out, err, stream)
    assert embedded.closed and stream.closed


def test_cli_no_progress_when_not_asked(url: str, fake: FakeGateway, capsys: Any) -> None:
    fake.answers["JOIN"] = Batches()
    # stderr is not a terminal under pytest, so the default is no bar; --no-progress too.
    for extra in ([], ["--no-progress"]):
        assert main(["sql", "JOIN", "--url", url, "--format", "csv", *extra]) == 0
        assert capsys.readouterr().err == ""
        assert fake.query_ids[-1] is None  # nothing to poll, so no id was sent


@pytest.mark.parametrize("where", ["remote", "embedded"])
def test_cli_table_shows_the_first_max_rows(
    where: str,
    url: str,
    fake: FakeGateway,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["sql", "JOIN", "--max-rows", "3"]
    gateway = fake
    if where == "remote":
        args += ["--url", url]
    else:
        monkeypatch.delenv("BYOM_URL", raising=False)
        gateway = FakeGateway()
        install_fake_core(monkeypatch, gateway, [])
    stream = Batches(batches=5, size=2)
    gateway.answers["JOIN"] = stream
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3:6] == ["| 0 | row0  |", "| 1 | row1  |", "| 2 | row2  |"]
    assert len(lines) == 3 + 3 + 2  # head, 3 rows, border and the count line
    assert lines[-1] == "... 10 rows in all (the first 3 shown)"
    assert stream.produced == 5 and stream.closed  # the rest was read, not dropped


def test_cli_json_of_a_stream_and_a_failure(
    url: str, fake: FakeGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = Batches(batches=3)
    fake.answers["JOIN"] = stream
    assert main(["sql", "JOIN", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"columns": COLUMNS, "rows": stream.rows()}

    failing = Batches(batches=3, fail_at=1, error=EndpointTimeout("model 'm': timed out."))
    fake.answers["JOIN"] = failing
    assert main(["sql", "JOIN", "--url", url, "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "columns": COLUMNS,
        "rows": failing.rows(1),
        "error": {"code": "ENDPOINT_TIMEOUT", "message": "model 'm': timed out."},
    }
    assert err == "(stopped after 2 rows)\nERROR [ENDPOINT_TIMEOUT]: model 'm': timed out.\n"


def test_cli_csv_failure_keeps_rows_written_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BYOM_URL", raising=False)
    embedded = FakeGateway()
    install_fake_core(monkeypatch, embedded, [])
    failing = Batches(batches=3, fail_at=2, error=GatewayError("lost.", code="DATASOURCE_ERROR"))
    embedded.answers["JOIN"] = failing
    assert main(["sql", "JOIN", "--format", "csv"]) == 1
    out, err = capsys.readouterr()
    assert len(list(csv.reader(io.StringIO(out)))) == 1 + 4
    assert err.endswith("ERROR [DATASOURCE_ERROR]: lost.\n")
    assert failing.closed and embedded.closed


def test_cli_csv_values_and_message(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT odd", "--url", url, "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["i,f,nan,when,dec,flag", "7,0.5,,2024-01-02T03:04:05,1.25,true"]
    assert main(["sql", "CREATE DATABASE x", "--url", url, "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == "datasource 'x' created\n"


def test_cli_format_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT 1", "--json", "--format", "csv"]) == 2
    assert "disagree" in capsys.readouterr().err
    assert main(["sql", "SELECT 1", "--max-rows", "-1"]) == 2


# --- the real Gateway ---------------------------------------------------------------------


def test_real_gateway_join_streams_through_the_api(tmp_path: Path) -> None:
    """A JOIN over the embedded SQLite datasource and a real HTTP ray_serve endpoint
    (2 * first column) answers a ``StreamResult`` that the server writes batch by batch."""
    from tests.e2e import bad_endpoint

    n = 100
    with bad_endpoint.running() as model_url, TestClient(create_app(home=tmp_path)) as api:

        def run(query: str, **extra: Any) -> Any:
            response = api.post("/api/sql", json={"query": query, **extra})
            assert response.status_code == 200, response.text
            return response

        run("CREATE TABLE src (id INTEGER, a INTEGER)")
        run("INSERT INTO src VALUES " + ", ".join(f"({i}, {i * 10})" for i in range(1, n + 1)))
        run(
            f"CREATE MODEL dbl PREDICT y USING url.predict='{model_url}/doubler', "
            'format=\'ray_serve\', dtype_dict={"a": "integer", "y": "integer"}'
        )
        join = "SELECT t.id, p.y FROM local.src AS t JOIN dbl AS p USING batch_size=7"
        expected = [[i, 20 * i] for i in range(1, n + 1)]

        assert run(join).json() == {"columns": ["id", "y"], "rows": expected}
        lines = ndjson(run(join, format="ndjson", query_id="real-1").text)
        assert lines[0] == {"columns": ["id", "y"]} and lines[-1] == {"done": True, "rows": n}
        batches = [line["rows"] for line in lines[1:-1]]
        assert len(batches) == -(-n // 7)  # one line per batch of 7
        assert [row for batch in batches for row in batch] == expected

        progress = api.get("/api/queries/real-1").json()
        assert (progress["status"], progress["rows_done"]) == ("done", n)
        assert "real-1" in [q["id"] for q in api.get("/api/queries").json()]
        assert api.get("/api/queries/nope").json()["error"]["code"] == "QUERY_NOT_FOUND"
