"""MySQL HeatWave AutoML's recommendation forms (issue 9): how they are read
(``gateway.parse_heatwave``), the gateway's own statement each becomes
(``gateway.heatwave``), session variables over HTTP, HeatWave's model catalog
(``ML_SCHEMA_<user>.MODEL_CATALOG``, ``SHOW TABLES FROM ML_SCHEMA_<user>``) and the errors,
with their codes.

The translation is checked as text (``native_sql``) and as what it plans to: the HeatWave
form and the native statement written by hand give the same plan (or the same error).
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from byom.errors import (
    InvalidInput,
    InvalidOption,
    ModelNotFound,
    ParseError,
    UnsupportedStatement,
    UserError,
)
from catalog.records import PredictorSpec
from datasources import EMBEDDED_NAME
from gateway import heatwave, parse_heatwave
from gateway import statements as st
from gateway.executor.catalog_tables import MODEL_CATALOG_COLUMNS, train_table_name
from gateway.parser import parse, parse_one, parse_script
from gateway.planner import plan
from gateway.server import create_app
from gateway.session import Session

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient deprecation notice
    from fastapi.testclient import TestClient

SESSION = "X-Byom-Session"
CLOCK = 1_700_000_000.0
TRAIN = (
    "CALL sys.ML_TRAIN('mldb.movie_rating', 'rating', JSON_OBJECT('task', 'recommendation', "
    "'users', 'user_id', 'items', 'movie_id', 'feedback', 'implicit', 'feedback_threshold', 3, "
    "'item_metadata', JSON_OBJECT('table_name', 'mldb.movie')), @model)"
)
PREDICT_ROW = (
    "SELECT sys.ML_PREDICT_ROW(JSON_OBJECT('user_id', '42'), @model, "
    "JSON_OBJECT('recommend', 'items', 'topk', 3))"
)
PREDICT_TABLE = (
    "CALL sys.ML_PREDICT_TABLE('mldb.movie_rating', @model, 'mldb.recs', "
    "JSON_OBJECT('recommend', 'items', 'topk', 3))"
)


class FakeResolver:
    """Just what the translation asks: which names are models and datasources."""

    default_project = "mindsdb"

    def __init__(self, default: str = "local") -> None:
        self.default_datasource = default
        self.models = {"rec", "my-model"}
        self.datasources = {"local", "mldb", "pg"}

    def model(self, name: str) -> Any:
        return object() if name in self.models else None

    def model_names(self) -> list[str]:
        return sorted(self.models)

    def datasource_dialect(self, name: str) -> str | None:
        return "sqlite" if name in self.datasources else None


def native(sql: str, variables: dict[str, Any] | None = None, default: str = "local") -> str:
    statement = parse_one(sql)
    assert isinstance(statement, st.HeatWaveRoutine)
    session = Session(variables=dict(variables or {}))
    return heatwave.native_sql(statement, session, FakeResolver(default), clock=lambda: CLOCK)


# --- reading the forms ------------------------------------------------------------------------


def test_set_reads_values_and_variables() -> None:
    statement = parse_one("SET @a = 1, @B := 'x', @c = NULL, @d = -2.5, @e = TRUE, @f = @a")
    assert statement == st.SetVariables(
        values=(
            ("a", 1), ("b", "x"), ("c", None), ("d", -2.5), ("e", True),
            ("f", st.Variable("a")),
        )
    )  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SET @a = 1 + 2", "end of the statement"),
        ("SET @a", "'=' after @a"),
        ("SET @a = b", "SET @a takes a 'string'"),
        ("SET @a = 1, b = 2", "a user variable (@name)"),
        ("SET @a = JSON_OBJECT('k', 1)", "SET @a takes a 'string'"),
    ],
)
def test_set_mistakes_are_parse_errors(sql: str, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(sql)
    assert fragment in info.value.message


def test_system_variables_and_plain_set_are_not_user_variables() -> None:
    with pytest.raises(UnsupportedStatement, match="@@autocommit is a MySQL system variable"):
        parse("SET @@autocommit = 1")
    assert isinstance(parse_one("SET search_path = x"), st.Query)  # PostgreSQL's, passed on


def test_routines_read_their_arguments() -> None:
    train = parse_one(TRAIN)
    assert isinstance(train, st.HeatWaveRoutine)
    assert (train.routine, train.sql) == ("ML_TRAIN", TRAIN)
    assert train.args == (
        "mldb.movie_rating",
        "rating",
        {
            "task": "recommendation", "users": "user_id", "items": "movie_id",
            "feedback": "implicit", "feedback_threshold": 3,
            "item_metadata": {"table_name": "mldb.movie"},
        },
        st.Variable("model"),
    )  # fmt: skip
    row = parse_one(PREDICT_ROW + " AS answer")
    assert isinstance(row, st.HeatWaveRoutine) and row.routine == "ML_PREDICT_ROW"
    assert row.args == ({"user_id": "42"}, st.Variable("model"), {"recommend": "items", "topk": 3})
    load = parse_one("call SYS.ml_model_load(@M, NULL)")
    assert isinstance(load, st.HeatWaveRoutine)
    assert (load.routine, load.args) == ("ML_MODEL_LOAD", (st.Variable("m"), None))
    table = parse_one("CALL sys.ML_PREDICT_TABLE('a.b', 'rec', 'a.c')")  # options left out
    assert isinstance(table, st.HeatWaveRoutine) and table.args == ("a.b", "rec", "a.c")


@pytest.mark.parametrize(
    ("sql", "col", "fragment"),
    [
        (
            "CALL sys.ML_TRAIN('t', 'y', JSON_OBJECT('task', 'recommendation', 'users'), @m)",
            29,
            "odd number of arguments (3)",
        ),
        ("CALL sys.ML_TRAIN('t', 'y', JSON_OBJECT(1.5), @m)", 29, "odd number"),
        ("CALL sys.ML_TRAIN('t', 'y', JSON_OBJECT(NULL, 1), @m)", 29, "key is a 'string'"),
        ("CALL sys.ML_TRAIN('t', 'y', NULL)", 18, "takes 4 arguments but found 3"),
        ("CALL sys.ML_MODEL_UNLOAD()", 25, "takes 1 arguments but found 0"),
        ("SELECT sys.ML_PREDICT_ROW(JSON_OBJECT('a', 1), 'rec')", 1, None),  # no options
        ("SELECT sys.ML_PREDICT_ROW(JSON_OBJECT('a', 1))", 26, "takes 2 to 3 arguments"),
        (
            "CALL sys.ML_TRAIN('table_name', 'target_column_name', JSON_OBJECT('task', "
            "'task_name'), model_handle)",
            89,
            "the model handle (argument 4) is a value, not the name model_handle",
        ),
        ("CALL sys.ML_TRAIN('t', 'y', NULL, @m) extra", 39, "end of the statement"),
        ("SET @m = 1; CALL sys.ML_TRAIN('t', 'y', NULL, @ m)", 47, "right after '@'"),
    ],
)
def test_malformed_routines_are_parse_errors_at_their_place(
    sql: str, col: int, fragment: str | None
) -> None:
    if fragment is None:
        assert isinstance(parse_one(sql), st.HeatWaveRoutine)
        return
    with pytest.raises(ParseError) as info:
        parse_script(sql)
    assert info.value.col == col, info.value.message
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("CALL sys.ML_EXPLAIN_TABLE('a.b', @m, 'a.c', NULL)", "sys.ML_EXPLAIN_TABLE is MySQL"),
        ("CALL sys.ML_SCORE('a.b', 'y', @m, 'accuracy', @s, NULL)", "no equivalent here yet"),
        ("CALL sys.ML_PREDICT_ROW('{}', @m, NULL)", "is a MySQL HeatWave function"),
        ("SELECT sys.ML_TRAIN('a.b', 'y', NULL, @m)", "CALL sys.ML_TRAIN(...)"),
        ("CALL ML_TRAIN('a.b', 'y', NULL, @m)", "CALL ML_TRAIN runs a stored procedure"),
        ("CALL other.proc(1)", "CALL other.proc runs a stored procedure"),
        ("SELECT sys.ML_PREDICT_ROW(JSON_OBJECT('a', t.a), @m, NULL) FROM t", "JOIN m AS p"),
        ("SELECT x, sys.ML_PREDICT_ROW('{}', @m, NULL) FROM t", "a statement of its own"),
        ("SELECT pgml.train('p', 'regression')", "pgml.train is PostgresML's"),
        ("SHOW MODELS FROM ML_SCHEMA_u", "SHOW TABLES FROM ML_SCHEMA_u"),
        ("DELETE FROM ML_SCHEMA_u.MODEL_CATALOG", "read-only"),
    ],
)
def test_forms_that_do_not_translate_are_refused_by_name(sql: str, fragment: str) -> None:
    with pytest.raises(UnsupportedStatement) as info:
        parse(sql)
    assert info.value.code == "UNSUPPORTED_STATEMENT"
    assert fragment in info.value.message, info.value.message


def test_ml_schema_tables_are_read_from_the_catalog_and_the_embedded_datasource() -> None:
    query = parse_one(
        "SELECT model_id, model_handle FROM ml_schema_Bob.Model_Catalog AS c "
        "WHERE ML_SCHEMA_Bob.c.model_handle = 'rec'"
    )
    assert isinstance(query, st.Query)
    assert query.sql == (
        "SELECT model_id, model_handle FROM mindsdb.model_catalog AS c WHERE c.model_handle = 'rec'"
    )
    users = parse_one("SELECT * FROM ML_SCHEMA_user1.3e094aa4ba_users LIMIT 5")
    assert isinstance(users, st.Query)
    assert users.sql == 'SELECT * FROM local."3e094aa4ba_users" LIMIT 5'
    assert parse_heatwave.EMBEDDED_DATASOURCE == EMBEDDED_NAME
    # numbers elsewhere stay numbers
    plain = parse_one("SELECT 1.5e3 FROM t WHERE a = 3")
    assert isinstance(plain, st.Query) and plain.sql == "SELECT 1.5e3 FROM t WHERE a = 3"


def test_show_tables_from_ml_schema_is_a_catalog_query() -> None:
    show = parse_one("SHOW FULL TABLES FROM ML_SCHEMA_user1 LIKE 'rec%' WHERE table_type <> 'x'")
    assert isinstance(show, st.Query)
    assert "\"Tables_in_ML_SCHEMA_user1\" LIKE 'rec%'" in show.sql
    assert "mindsdb.model_catalog" in show.sql and "'BASE TABLE' AS table_type" in show.sql


# --- the translation ----------------------------------------------------------------------------


def test_ml_train_becomes_create_model_from_the_datasource() -> None:
    assert native(TRAIN, {"model": "Recommendation_Use_Case"}) == (
        "CREATE MODEL Recommendation_Use_Case FROM mldb (SELECT * FROM movie_rating) "
        "PREDICT rating USING task = 'recommendation', users = 'user_id', items = 'movie_id', "
        "feedback = 'implicit', feedback_threshold = 3, "
        'item_metadata = {"table_name": "mldb.movie"}'
    )
    statement = heatwave.resolve(
        parse_one(TRAIN), Session(variables={"model": "rec2"}), FakeResolver()
    )
    assert statement == st.CreatePredictor(
        name="rec2",
        datasource="mldb",
        query="SELECT * FROM movie_rating",
        target="rating",
        options={
            "task": "recommendation", "users": "user_id", "items": "movie_id",
            "feedback": "implicit", "feedback_threshold": 3,
            "item_metadata": {"table_name": "mldb.movie"},
        },
    )  # fmt: skip


def test_ml_train_on_a_schema_of_the_session_datasource() -> None:
    sql = (
        "CALL sys.ML_TRAIN('recommendation_data.training_dataset', 'rating', "
        "JSON_OBJECT('task', 'recommendation', 'users', 'user_id', 'items', 'item_id'), @model)"
    )
    assert native(sql, {"model": "recommendation_use_case"}, default="pg") == (
        "CREATE MODEL recommendation_use_case FROM pg (SELECT * FROM "
        "recommendation_data.training_dataset) PREDICT rating USING task = 'recommendation', "
        "users = 'user_id', items = 'item_id'"
    )
    # one part: the session's datasource; a quoted part; NULL target and options
    assert native("CALL sys.ML_TRAIN('`my table`', NULL, NULL, 'm')") == (
        "CREATE MODEL m FROM local (SELECT * FROM `my table`) USING task = 'classification'"
    )


def test_ml_train_without_a_handle_makes_one_and_keeps_it() -> None:
    session = Session()
    statement = parse_one(TRAIN)
    assert isinstance(statement, st.HeatWaveRoutine)
    text = heatwave.native_sql(statement, session, FakeResolver(), clock=lambda: CLOCK)
    handle = "mldb_movie_rating_byom_1700000000"
    assert text.startswith(f"CREATE MODEL {handle} FROM mldb ")
    assert session.variables == {"model": handle}
    # a NULL literal makes one too, but has nowhere to keep it
    assert native("CALL sys.ML_TRAIN('a.b-c', NULL, NULL, NULL)").startswith(
        "CREATE MODEL a_b_c_byom_1700000000 FROM local (SELECT * FROM a.`b-c`)"
    )


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ("JSON_OBJECT('task', 'recommendation', 'model_list', JSON_ARRAY('SVD'))",
         InvalidOption, "option(s) model_list have no equivalent here"),
        ("JSON_OBJECT('task', 'classification', 'positive_class', 1, 'notes', 'x')",
         InvalidOption, "positive_class, notes"),
        ("JSON_OBJECT('task', 'recommendation', 'bad key', 1)", InvalidOption, "not a word"),
        ("'not json'", InvalidInput, "the options is not JSON"),
        ("'[1, 2]'", InvalidInput, "must be a JSON object"),
    ],
)  # fmt: skip
def test_ml_train_options_that_cannot_be_mapped(
    options: str, error: type[UserError], fragment: str
) -> None:
    with pytest.raises(error) as info:
        native(f"CALL sys.ML_TRAIN('mldb.t', 'y', {options}, 'm')")
    assert fragment in info.value.message


def test_other_options_pass_through_for_the_planner() -> None:
    text = native(
        "CALL sys.ML_TRAIN('mldb.t', 'labels', JSON_OBJECT('task', 'text_classification', "
        "'test_size', 0.2, 'hyperparams', JSON_OBJECT('num_train_epochs', 1)), 'm')"
    )
    assert text.endswith(
        "USING task = 'text_classification', test_size = 0.2, "
        'hyperparams = {"num_train_epochs": 1}'
    )


def test_ml_predict_row_becomes_a_one_row_select() -> None:
    assert native(PREDICT_ROW, {"model": "REC"}) == (
        "SELECT * FROM rec WHERE user_id = '42' USING recommend = 'items', topk = 3"
    )
    assert native(
        "SELECT sys.ML_PREDICT_ROW('{\"user id\": 7, \"x\": null}', 'my-model', NULL)"
    ) == ("SELECT * FROM `my-model` WHERE `user id` = 7 AND x = NULL")
    values = {"m": "rec", "uid": "it's", "k": 2}
    assert native(
        "SELECT sys.ML_PREDICT_ROW(JSON_OBJECT('user_id', @uid, 'ok', TRUE), @m, "
        "JSON_OBJECT('topk', @k))",
        values,
    ) == ("SELECT * FROM rec WHERE user_id = 'it''s' AND ok = TRUE USING topk = 2")


def test_ml_predict_table_becomes_a_write_back() -> None:
    assert native(PREDICT_TABLE, {"model": "rec"}) == (
        "CREATE TABLE mldb.recs AS SELECT * FROM mldb.movie_rating AS t JOIN rec AS p "
        "USING recommend = 'items', topk = 3"
    )
    assert native("CALL sys.ML_PREDICT_TABLE('s.in', 'rec', 's.out', NULL)") == (
        "CREATE TABLE s.`out` AS SELECT * FROM s.`in` AS t JOIN rec AS p"  # keywords quoted
    )


def test_model_load_and_unload_answer_a_message() -> None:
    session = Session(variables={"model": "rec"})
    for routine, word in (("ML_MODEL_LOAD(@model, NULL)", "loaded"),
                          ("ML_MODEL_UNLOAD(@model)", "unloaded")):  # fmt: skip
        statement = heatwave.resolve(parse_one(f"CALL sys.{routine}"), session, FakeResolver())
        assert isinstance(statement, st.SetVariables) and statement.values == ()
        assert statement.message is not None and f"Model 'rec' is {word}" in statement.message


@pytest.mark.parametrize(
    ("sql", "variables", "error", "fragment"),
    [
        (PREDICT_ROW, {"model": "recc"}, ModelNotFound, "Did you mean rec?"),
        (PREDICT_ROW, {}, InvalidInput, "the model handle is NULL"),
        (PREDICT_TABLE, {"model": "nope"}, ModelNotFound, "Model 'nope' not found"),
        ("CALL sys.ML_MODEL_LOAD(@m, NULL)", {"m": "gone"}, ModelNotFound, "'gone'"),
        ("CALL sys.ML_TRAIN(@t, 'y', NULL, 'm')", {}, InvalidInput, "the training table"),
        ("CALL sys.ML_TRAIN('a..b', 'y', NULL, 'm')", {}, InvalidInput, "not a table name"),
        ("SELECT sys.ML_PREDICT_ROW(JSON_OBJECT('a', JSON_OBJECT('b', 1)), 'rec', NULL)",
         {}, InvalidInput, "an input value is"),
        ("SELECT sys.ML_PREDICT_ROW(1, 'rec', NULL)", {}, InvalidInput, "a JSON object"),
    ],
)  # fmt: skip
def test_resolving_errors(
    sql: str, variables: dict[str, Any], error: type[UserError], fragment: str
) -> None:
    with pytest.raises(error) as info:
        heatwave.resolve(parse_one(sql), Session(variables=variables), FakeResolver())
    assert fragment in info.value.message, info.value.message
    assert info.value.message.endswith(".")


def test_variables_are_put_into_plain_sql() -> None:
    query = parse_one("SELECT @a, @B AS b, @a + 1, @none FROM t WHERE x = @b")
    session = Session(variables={"a": 1, "b": "x'y"})
    resolved = heatwave.resolve(query, session, FakeResolver())
    assert isinstance(resolved, st.Query)
    assert resolved.sql == (
        "SELECT 1 AS \"@a\", 'x''y' AS b, 1 + 1, NULL AS \"@none\" FROM t WHERE x = 'x''y'"
    )
    untouched = parse_one("SELECT 1")
    assert heatwave.resolve(untouched, session, FakeResolver()) is untouched
    set_b = heatwave.resolve(parse_one("SET @c = @a, @d = @zz"), session, FakeResolver())
    assert set_b == st.SetVariables(values=(("c", 1), ("d", None)))


def test_train_table_name() -> None:
    assert train_table_name("mldb", "SELECT * FROM movie_rating") == "mldb.movie_rating"
    assert train_table_name("pg", "SELECT * FROM s.t") == "s.t"
    query = "SELECT a FROM t WHERE b > 1"
    assert train_table_name("mldb", query) == query
    assert train_table_name("mldb", None) is None


# --- over HTTP, with a real gateway ------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    """A gateway with datasource ``mldb`` (movie_rating) and, in its catalog, built-in
    recommender ``rec`` (version 1 complete, version 2 training), text classifier ``sent``
    and an external model ``ext``; nothing is deployed (no Ray)."""
    mldb = tmp_path / "mldb.sqlite"
    with sqlite3.connect(mldb) as conn:
        conn.execute("CREATE TABLE movie_rating (user_id TEXT, movie_id TEXT, rating REAL)")
        conn.execute("INSERT INTO movie_rating VALUES ('1', '31', 2.5), ('2', '31', 5.0)")
    with TestClient(create_app(home=tmp_path)) as client:
        path = json.dumps({"path": str(mldb)})
        ok(client, f"CREATE DATABASE mldb WITH ENGINE = 'sqlite', PARAMETERS = {path}")
        catalog = client.app.state.gateway.catalog  # type: ignore[attr-defined]
        for name, task, target in (("rec", "recommendation", "rating"),
                                   ("sent", "text_classification", "labels")):  # fmt: skip
            catalog.add_predictor(
                PredictorSpec(
                    name=name, kind="builtin", task=task, target=target,
                    training_datasource="mldb", training_query="SELECT * FROM movie_rating",
                ),
                status="complete",
            )  # fmt: skip
        catalog.add_predictor(
            PredictorSpec(name="ext", url_predict="http://127.0.0.1:9/predict"), status="complete"
        )
        for name, task, status in (("rec", "recommendation", "complete"),
                                   ("rec", "recommendation", "training"),
                                   ("sent", "text_classification", "complete")):  # fmt: skip
            job = catalog.start_job(name)
            version = catalog.add_version(
                name,
                task=task,
                training_datasource="mldb",
                training_query="SELECT * FROM movie_rating",
                options={"users": "user_id", "items": "movie_id"} if name == "rec" else {},
                job_id=job.id,
            )
            catalog.update_version(name, version.version, status=status, metrics={"x": 1})
        yield client


def post(api: TestClient, query: str, session: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {SESSION: session} if session is not None else {}
    answer = api.post("/api/sql", json={"query": query}, headers=headers)
    return answer.status_code, answer.json()


def ok(api: TestClient, query: str, session: str | None = None) -> dict[str, Any]:
    status, body = post(api, query, session)
    assert status == 200 and "error" not in body, body
    return body


def error(api: TestClient, query: str, code: str, session: str | None = None) -> dict[str, Any]:
    status, body = post(api, query, session)
    assert status in (400, 404, 409) and body["error"]["code"] == code, body
    return body["error"]


def test_session_variables_over_http(api: TestClient) -> None:
    answer = ok(api, "SET @model = 'rec', @n = 3", session="hw-1")
    assert answer["message"] == "Set @model, @n."
    assert ok(api, "SELECT @model, @N", session="hw-1") == {
        "columns": ["@model", "@N"], "rows": [["rec", 3]],
    }  # fmt: skip
    # another session, and no session, do not see them
    assert ok(api, "SELECT @model", session="hw-2")["rows"] == [[None]]
    assert ok(api, "SELECT @model")["rows"] == [[None]]
    # a script is a session of its own
    assert ok(api, "SET @x = 'mldb'; SELECT @x AS x")["results"][1]["rows"] == [["mldb"]]
    # in plain SQL for a datasource, and in a routine's arguments
    rows = ok(api, "SELECT rating FROM mldb.movie_rating WHERE user_id = @n - 1", session="hw-1")
    assert rows["rows"] == [[5.0]]
    loaded = ok(api, "CALL sys.ML_MODEL_LOAD(@model, NULL)", session="hw-1")
    assert loaded["message"].startswith("Model 'rec' is loaded")
    assert "unloaded" in ok(api, "CALL sys.ML_MODEL_UNLOAD(@model)", session="hw-1")["message"]


def test_model_catalog_answers_the_seed_columns(api: TestClient) -> None:
    body = ok(
        api,
        "SELECT model_id, model_handle, train_table_name FROM ML_SCHEMA_user1.MODEL_CATALOG "
        "WHERE model_handle = 'rec' ORDER BY model_id",
    )
    assert body["columns"] == ["model_id", "model_handle", "train_table_name"]
    jobs = [j.id for j in api.app.state.gateway.catalog.list_jobs("rec")]  # type: ignore[attr-defined]
    assert body["rows"] == [
        [jobs[0], "rec", "mldb.movie_rating"],
        [jobs[1], "rec", "mldb.movie_rating"],
    ]
    every = ok(api, "SELECT * FROM ml_schema_anyone.model_catalog ORDER BY model_id")
    assert every["columns"] == MODEL_CATALOG_COLUMNS
    rows = [dict(zip(every["columns"], row, strict=True)) for row in every["rows"]]
    assert [(r["model_handle"], r["version"], r["status"], r["task"]) for r in rows] == [
        ("rec", 1, "complete", "recommendation"),
        ("rec", 2, "training", "recommendation"),
        ("sent", 1, "complete", "text_classification"),
    ]  # external models are not HeatWave's
    first = rows[0]
    assert (first["model_owner"], first["target_column_name"]) == ("byom", "rating")
    assert abs(first["build_timestamp"] - datetime.now(UTC).timestamp()) < 600
    metadata = json.loads(first["model_metadata"])
    assert metadata["options"] == {"users": "user_id", "items": "movie_id"}
    assert metadata["metrics"] == {"x": 1}


def test_show_tables_from_ml_schema(api: TestClient) -> None:
    body = ok(api, "SHOW TABLES FROM ML_SCHEMA_user1")
    assert body == {
        "columns": ["Tables_in_ML_SCHEMA_user1"],
        "rows": [["MODEL_CATALOG"], ["rec_interactions"], ["rec_items"], ["rec_users"]],
    }
    full = ok(
        api, "show full tables in ml_schema_admin like 'REC_%' where table_type = 'BASE TABLE'"
    )
    assert full["columns"] == ["Tables_in_ml_schema_admin", "table_type"]
    assert [r[0] for r in full["rows"]] == ["rec_interactions", "rec_items", "rec_users"]
    # the tables themselves are the embedded datasource's
    ok(api, "CREATE TABLE rec_users (user_id TEXT, embedding_vector BLOB)")
    ok(api, "INSERT INTO rec_users VALUES ('1', '0x543B')")
    users = ok(api, "SELECT user_id FROM ML_SCHEMA_user1.rec_users LIMIT 5")
    assert users["rows"] == [["1"]]


def test_translated_forms_plan_as_their_native_statements(api: TestClient) -> None:
    gateway = api.app.state.gateway  # type: ignore[attr-defined]
    session = Session(variables={"model": "rec"})

    def outcome(statement: st.Statement) -> Any:
        resolver = gateway.executor.resolver(session)
        try:
            return plan(heatwave.resolve(statement, session, resolver), resolver)
        except UserError as e:
            return e.code, e.message

    pairs = [
        (
            PREDICT_ROW,
            "SELECT * FROM rec WHERE user_id = '42' USING recommend = 'items', topk = 3",
        ),
        (
            PREDICT_TABLE,
            "CREATE TABLE mldb.recs AS SELECT * FROM mldb.movie_rating AS t JOIN rec AS p "
            "USING recommend = 'items', topk = 3",
        ),
        (
            TRAIN.replace("@model", "'rec_2'"),
            "CREATE MODEL rec_2 FROM mldb (SELECT * FROM movie_rating) PREDICT rating USING "
            "task = 'recommendation', users = 'user_id', items = 'movie_id', feedback = "
            '\'implicit\', feedback_threshold = 3, item_metadata = {"table_name": "mldb.movie"}',
        ),
    ]
    for form, written in pairs:
        assert outcome(parse_one(form)) == outcome(parse_one(written)), form


def test_errors_over_http_have_stable_codes(api: TestClient) -> None:
    assert (
        error(api, PREDICT_ROW.replace("@model", "'recc'"), "MODEL_NOT_FOUND")["suggestion"]
        == "rec"
    )
    error(api, "CALL sys.ML_MODEL_LOAD('nope', NULL)", "MODEL_NOT_FOUND")
    error(api, PREDICT_ROW, "INVALID_INPUT")  # @model unset in this session
    error(api, "CALL sys.ML_TRAIN('t', 'y', JSON_OBJECT('task'), @m)", "PARSE_ERROR")
    error(api, "CALL sys.ML_EXPLAIN('t', 'y', @m, NULL)", "UNSUPPORTED_STATEMENT")
    error(
        api,
        "CALL sys.ML_TRAIN('mldb.movie_rating', 'rating', JSON_OBJECT('task', "
        "'recommendation', 'exclude_column_list', JSON_ARRAY('x')), 'm2')",
        "INVALID_OPTION",
    )
    # a script with a malformed routine runs nothing
    failed = error(api, "SET @a = 1;\nCALL sys.ML_TRAIN('t', 'y', NULL)", "PARSE_ERROR", "s")
    assert failed["statement"] == 2
    assert ok(api, "SELECT @a", session="s")["rows"] == [[None]]
