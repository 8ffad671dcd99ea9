"""PostgresML's forms (issue 11): how ``SELECT pgml.tune|predict|predict_proba|generate(...)``
is read (``gateway.parse_postgresml``), the gateway's own statement each becomes
(``gateway.postgresml``), the errors with their codes, and PostgresML's other functions still
refused by name.

The translation is checked as text (``native_sql``) and as what it plans to: over HTTP, the
PostgresML form and the native statement written by hand give the same plan (or the same
error). The rows themselves are compared on real models in tests/e2e/test_postgresml.py.
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
from sqlglot import exp

from byom.errors import (
    InvalidInput,
    InvalidOption,
    ModelNotFound,
    UnsupportedStatement,
    UserError,
)
from catalog.records import PredictorRecord, PredictorSpec
from gateway import postgresml
from gateway import statements as st
from gateway.parser import parse, parse_one
from gateway.planner import plan
from gateway.server import create_app
from gateway.session import Session

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient deprecation notice
    from fastapi.testclient import TestClient

# The PostgresML document's statements, verbatim but for whitespace.
HYPER = (
    '{"learning_rate": 2e-5, "per_device_train_batch_size": 16, "per_device_eval_batch_size": '
    '16, "num_train_epochs": 1, "weight_decay": 0.01, "max_length": 128}'
)
TUNE_TRANSLATION = (
    "SELECT pgml.tune('Translate English to Spanish', task => 'translation', relation_name "
    "=> 'kde4_en_to_es', y_column_name => 'es', -- translate into spanish\n"
    f"model_name => 'Helsinki-NLP/opus-mt-en-es', hyperparams => '{HYPER}', test_size => 0.5, "
    "test_sampling => 'last');"
)
TUNE_IMDB = (
    "SELECT pgml.tune('IMDB Review Sentiment', task => 'text-classification', relation_name => "
    "'pgml.imdb', y_column_name => 'label', model_name => 'distilbert-base-uncased', "
    "hyperparams => '{\"num_train_epochs\": 1}', test_size => 0.5, test_sampling => 'last')"
)
TUNE_SUMMARY = (
    "SELECT pgml.tune('Legal Summarization', task => 'summarization', relation_name => "
    "'billsum_training_data', y_column_name => 'summary', test_size => 0.2)"
)
TUNE_GPT = (
    "SELECT pgml.tune('GPT Generator', task => 'text-generation', relation_name => "
    "'pgml.bookcorpus', y_column_name => 'text', model_name => 'gpt2', test_size => 0.2)"
)
TABLES = {
    "kde4_en_to_es": ["en", "es"],
    "pgml.imdb": ["text", "label"],
    "billsum_training_data": ["text", "summary"],
    "billsum": ["text", "summary", "title"],
    "pgml.bookcorpus": ["text"],
    "squad": ["question", "context", "answer"],
    "quiz": ["Question", "passage", "answer"],
    "pairs": ["english", "french"],
    "reviews": ["id", "review", "sentiment"],
}


def record(name: str, task: str | None = None, **fields: Any) -> PredictorRecord:
    now = datetime.now(UTC)
    kind = "builtin" if task else "external"
    return PredictorRecord(
        name=name, kind=kind, task=task, status="complete", created_at=now, updated_at=now,
        **fields,
    )  # fmt: skip


class FakeResolver:
    """What the translation asks: models, datasources and a relation's columns."""

    default_project = "mindsdb"

    def __init__(self, default: str = "local") -> None:
        self.default_datasource = default
        self.models = {
            m.name: m
            for m in (
                record("imdb_review_sentiment", "text_classification", target="label"),
                record("spanish", "translation", target="es"),
                record("legal", "summarization", target="summary"),
                record("qa", "question_answering", target="answer"),
                record("gpt", "text_generation", target="continuation"),
                record("rec", "recommendation", target="rating"),
                record(
                    "byom",
                    url_predict="http://h/p",
                    target="y",
                    dtype_dict={"a": "integer", "b": "float", "y": "integer"},
                ),  # fmt: skip
            )
        }
        self.asked: list[tuple[str, str]] = []

    def model(self, name: str) -> PredictorRecord | None:
        return self.models.get(name)

    def model_names(self) -> list[str]:
        return sorted(self.models)

    def datasource_dialect(self, name: str) -> str | None:
        return "sqlite" if name in ("local", "shop", "pg") else None

    def relation_columns(self, datasource: str, table: str) -> list[str]:
        self.asked.append((datasource, table))
        return TABLES[table]


def native(sql: str, resolver: FakeResolver | None = None) -> str:
    statement = parse_one(sql)
    assert isinstance(statement, st.PostgresMLCall)
    return postgresml.native_sql(statement, resolver or FakeResolver())


def failure(sql: str, resolver: FakeResolver | None = None) -> UserError:
    with pytest.raises(UserError) as info:
        native(sql, resolver)
    return info.value


# --- reading the forms --------------------------------------------------------------------------


def test_positional_and_named_arguments_take_postgresml_names() -> None:
    call = parse_one("SELECT pgml.tune('p', 'translation', 'ds.t', 'y', test_size => -0.5)")
    assert isinstance(call, st.PostgresMLCall)
    assert (call.function, call.label, call.query) == ("tune", "tune", None)
    assert call.args == {
        "project_name": "p", "task": "translation", "relation_name": "ds.t",
        "y_column_name": "y", "test_size": -0.5,
    }  # fmt: skip
    generate = parse_one(
        "select PGML.Generate('p', ARRAY['a', 'b'], '{\"max_new_tokens\": 3}'::jsonb) AS s"
    )
    assert isinstance(generate, st.PostgresMLCall)
    assert generate.function == "generate" and generate.label == "s"
    assert generate.args == {
        "project_name": "p", "inputs": ["a", "b"], "config": {"max_new_tokens": 3},
    }  # fmt: skip
    # pgml.transform's name for options, predict's row overload, NULL/TRUE, a table function
    named = parse_one("SELECT pgml.generate(project_name => 'p', inputs => 'x', args => NULL)")
    assert isinstance(named, st.PostgresMLCall) and named.args["config"] is None
    row = parse_one("SELECT pgml.predict('p', row => 'x')")
    assert isinstance(row, st.PostgresMLCall) and row.args["features"] == "x"
    table = parse_one("SELECT * FROM pgml.tune('p', automatic_deploy => FALSE) AS t")
    assert isinstance(table, st.PostgresMLCall)
    assert table.args["automatic_deploy"] is False and table.label == "t"


def test_the_form_over_a_table_keeps_its_select() -> None:
    call = parse_one(
        "SELECT t.id, pgml.predict('p', t.review) FROM shop.reviews AS t WHERE t.id > 1 "
        "USING batch_size = 10"
    )
    assert isinstance(call, st.PostgresMLCall)
    assert isinstance(call.args["features"], exp.Column) and call.query is not None
    assert call.using == {"batch_size": 10}


@pytest.mark.parametrize(
    ("sql", "error", "fragment"),
    [
        ("SELECT pgml.tune('p', tsk => 'x')", InvalidOption,
         "no argument 'tsk'. Did you mean task?"),
        ("SELECT pgml.tune('p', search => 'grid')", InvalidOption, "It is pgml.train's"),
        ("SELECT pgml.generate('p', 'x', config => '{}', inputs => 'y')", InvalidInput,
         "argument inputs is given twice"),
        ("SELECT pgml.predict(project_name => 'p', 'x')", InvalidInput,
         "a positional argument follows a named one"),
        ("SELECT pgml.predict('p', 'x', 'y')", InvalidInput, "takes at most 2 arguments"),
        ("SELECT pgml.predict(features => 'x')", InvalidInput, "needs project_name"),
        ("SELECT pgml.generate('p', 'x', '{bad'::jsonb)", InvalidInput, "config is not JSON"),
        ("SELECT pgml.predict('p', upper('x'))", InvalidInput, "must be a 'string', a number"),
        ("SELECT pgml.predict('p', review)", InvalidInput, "the SELECT has no FROM"),
        ("SELECT pgml.predict(name, review) FROM t", InvalidInput, "project_name must be a value"),
        ("SELECT pgml.generate('p', ARRAY[a, b]) FROM t", InvalidInput, "is an ARRAY of values"),
        ("SELECT pgml.tune('p') FROM t", UnsupportedStatement, "reads its rows from relation_name"),
        ("SELECT 1, pgml.predict('p', 'x')", UnsupportedStatement, "a SELECT of its own"),
        ("SELECT pgml.predict('p', 'x') LIMIT 1", UnsupportedStatement, "a SELECT of its own"),
        ("SELECT upper(pgml.generate('p', 'x'))", UnsupportedStatement,
         "only as a column of its own"),
        ("SELECT a FROM t WHERE pgml.predict('p', a) = 1", UnsupportedStatement,
         "only as a column of its own"),
        ("SELECT * FROM t JOIN pgml.tune('p') AS x", UnsupportedStatement,
         "only as a column of its own"),
        ("SELECT pgml.predict('p', a), pgml.predict_proba('p', a) FROM t",
         UnsupportedStatement, "calls 2 pgml functions"),
    ],
)  # fmt: skip
def test_mistakes_are_errors_naming_the_function(
    sql: str, error: type[UserError], fragment: str
) -> None:
    with pytest.raises(error) as info:
        parse(sql)
    assert fragment in info.value.message, info.value.message


def test_an_unknown_argument_suggests_postgresml_names() -> None:
    with pytest.raises(InvalidOption) as info:
        parse("SELECT pgml.tune('p', y_colum_name => 'label')")
    assert info.value.code == "INVALID_OPTION"
    assert info.value.details == {"option": "y_colum_name", "suggestion": "y_column_name"}


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT pgml.train('p', 'regression', 't', 'y')", "pgml.tune(...) fine-tunes"),
        ("SELECT pgml.load_dataset('kde4', kwargs => '{}')", "load the rows into a table"),
        ("SELECT pgml.embed('intfloat/e5-small', 'hi')", "has no equivalent here"),
        ("SELECT pgml.transform('translation', inputs => ARRAY['x'])", "pgml.generate"),
        ("SELECT * FROM pgml.deploy('p', 'best_score')", "automatic_deploy"),
        ("SELECT pgml.predict_batch('p', ARRAY[1])", "SELECT * FROM m WHERE"),
        ("SELECT pgml.whatever(1)", "fine-tuned with pgml.tune"),
        ("SELECT pgml.predict('p', 'x'), pgml.embed('m', 'x')", "pgml.embed is PostgresML's"),
        ("INSERT INTO t SELECT pgml.predict('p', a) FROM u", "only as a column of its own"),
        ("CREATE VIEW v AS SELECT pgml.generate('p', a) FROM u", "pgml.generate is PostgresML's"),
    ],
)
def test_what_does_not_translate_is_refused_by_name(sql: str, fragment: str) -> None:
    with pytest.raises(UnsupportedStatement) as info:
        parse(sql)
    assert info.value.code == "UNSUPPORTED_STATEMENT"
    assert info.value.message.startswith("pgml."), info.value.message
    assert fragment in info.value.message, info.value.message


def test_a_schema_called_pgml_is_plain_sql() -> None:
    assert isinstance(parse_one("SELECT * FROM pgml.imdb LIMIT 1"), st.Query)


# --- pgml.tune ----------------------------------------------------------------------------------


def test_tune_translation_becomes_create_model_with_the_languages_of_its_columns() -> None:
    resolver = FakeResolver()
    assert native(TUNE_TRANSLATION, resolver) == (
        "CREATE MODEL translate_english_to_spanish FROM local (SELECT en AS source, es FROM "
        "kde4_en_to_es) PREDICT es USING task = 'translation', model_name = "
        "'Helsinki-NLP/opus-mt-en-es', hyperparams = {\"learning_rate\": 2e-05, "
        '"per_device_train_batch_size": 16, "per_device_eval_batch_size": 16, '
        '"num_train_epochs": 1, "weight_decay": 0.01, "max_length": 128}, test_size = 0.5, '
        "test_sampling = 'last', source_lang = 'en', target_lang = 'es'"
    )
    assert resolver.asked == [("local", "kde4_en_to_es")]
    statement = postgresml.resolve(parse_one(TUNE_TRANSLATION), FakeResolver())
    assert isinstance(statement, st.CreatePredictor)
    assert (statement.name, statement.datasource, statement.target) == (
        "translate_english_to_spanish", "local", "es",
    )  # fmt: skip
    assert statement.options["source_lang"] == "en"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (TUNE_IMDB,
         "CREATE MODEL imdb_review_sentiment FROM local (SELECT \"text\", label FROM pgml.imdb) "
         "PREDICT label USING task = 'text_classification', model_name = "
         "'distilbert-base-uncased', hyperparams = {\"num_train_epochs\": 1}, test_size = 0.5, "
         "test_sampling = 'last'"),
        (TUNE_SUMMARY,
         "CREATE MODEL legal_summarization FROM local (SELECT \"text\" AS source, summary FROM "
         "billsum_training_data) PREDICT summary USING task = 'summarization', test_size = 0.2"),
        (TUNE_GPT,
         "CREATE MODEL gpt_generator FROM local (SELECT \"text\" FROM pgml.bookcorpus) USING "
         "task = 'text_generation', model_name = 'gpt2', test_size = 0.2"),
        # positional, a datasource's table, a column that is not lower-case, no deploy
        ("SELECT pgml.tune('Quiz', 'question-answering', 'shop.quiz', 'answer', "
         "automatic_deploy => false, materialize_snapshot => true)",
         "CREATE MODEL quiz FROM shop (SELECT \"Question\" AS question, passage AS context, "
         "answer FROM quiz) PREDICT answer USING task = 'question_answering', active = false"),
        ("SELECT pgml.tune('s', 'question_answering', 'squad', 'answer')",
         "CREATE MODEL s FROM local (SELECT question, context, answer FROM squad) PREDICT "
         "answer USING task = 'question_answering'"),
        # languages from the hyperparams (taken out of them); none found: none written
        ("SELECT pgml.tune('fr', 'translation', 'pairs', 'french', "
         "hyperparams => '{\"source_lang\": \"en\", \"target_lang\": \"fr\", \"max_length\": 8}')",
         "CREATE MODEL fr FROM local (SELECT english AS source, french FROM pairs) PREDICT "
         "french USING task = 'translation', hyperparams = {\"max_length\": 8}, "
         "source_lang = 'en', target_lang = 'fr'"),
        ("SELECT pgml.tune('fr', 'translation', 'pairs', 'french')",
         "CREATE MODEL fr FROM local (SELECT english AS source, french FROM pairs) PREDICT "
         "french USING task = 'translation'"),
        # a project that exists trains a new version: RETRAIN, with or without new rows
        ("SELECT pgml.tune('Spanish', relation_name => 'kde4_en_to_es', y_column_name => 'es')",
         "RETRAIN spanish FROM local (SELECT en AS source, es FROM kde4_en_to_es) PREDICT es "
         "USING task = 'translation', source_lang = 'en', target_lang = 'es'"),
        ("SELECT * FROM pgml.tune('legal', hyperparams => '{\"num_train_epochs\": 2}'::jsonb)",
         "RETRAIN legal USING task = 'summarization', hyperparams = {\"num_train_epochs\": 2}"),
    ],
)  # fmt: skip
def test_tune_forms(sql: str, expected: str) -> None:
    resolver = FakeResolver()
    del resolver.models["imdb_review_sentiment"]  # a new project
    assert native(sql, resolver) == expected


@pytest.mark.parametrize(
    ("sql", "error", "fragment"),
    [
        ("SELECT pgml.tune('new', relation_name => 'pgml.imdb', y_column_name => 'label')",
         InvalidOption, "name its task to create it"),
        ("SELECT pgml.tune('new', 'text-clasification', 'pgml.imdb', 'label')", InvalidOption,
         "Did you mean text_classification?"),
        ("SELECT pgml.tune('new', 'summarization')", InvalidInput,
         "is new: name its rows with relation_name"),
        ("SELECT pgml.tune('new', 'summarization', 'billsum', 'sumary')", InvalidInput,
         "'sumary' is not a column of billsum. Did you mean summary?"),
        ("SELECT pgml.tune('new', 'summarization', 'billsum', 'summary')", InvalidInput,
         "so which column is source is not clear"),
        ("SELECT pgml.tune('new', 'summarization', 'billsum')", InvalidInput,
         "name it with y_column_name"),
        ("SELECT pgml.tune('new', 'text_classification', 'pgml.imdb', 'text')", InvalidInput,
         "is the name of a text_classification model's input"),
        ("SELECT pgml.tune('byom', relation_name => 'pgml.imdb')", InvalidInput,
         "is an external model"),
        ("SELECT pgml.tune('new', 'summarization', 'billsum', 'summary', test_size => 'a')",
         InvalidOption, "test_size is a number"),
        ("SELECT pgml.tune('new', 'summarization', automatic_deploy => 'yes')", InvalidOption,
         "automatic_deploy is true or false"),
        ("SELECT pgml.tune('new', 'summarization', hyperparams => '[1]')", InvalidOption,
         "hyperparams must be a JSON object"),
        ("SELECT pgml.tune('new', 'summarization', hyperparams => '{x')", InvalidOption,
         "hyperparams is not JSON"),
        ("SELECT pgml.tune('--', 'summarization')", InvalidInput, "has no letter or digit"),
        ("SELECT pgml.tune(NULL, 'summarization')", InvalidInput, "project_name is NULL"),
    ],
)  # fmt: skip
def test_tune_errors(sql: str, error: type[UserError], fragment: str) -> None:
    e = failure(sql)
    assert isinstance(e, error) and fragment in e.message, e.message


def test_project_names_become_model_names() -> None:
    assert postgresml.model_name("IMDB Review Sentiment", "tune") == "imdb_review_sentiment"
    assert postgresml.model_name(" Translate: English->Spanish! ", "tune") == (
        "translate_english_spanish"
    )
    assert postgresml.model_name("already_a_name", "predict") == "already_a_name"


# --- pgml.predict, pgml.predict_proba, pgml.generate ------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT pgml.predict('IMDB Review Sentiment', 'I love SQL') AS sentiment;",
         "SELECT label AS sentiment FROM imdb_review_sentiment WHERE `text` = 'I love SQL'"),
        ("SELECT pgml.predict_proba('IMDB Review Sentiment', 'it''s fine')",
         "SELECT label_proba AS predict_proba FROM imdb_review_sentiment "
         "WHERE `text` = 'it''s fine'"),
        ("SELECT pgml.generate('Spanish', 'I love SQL') AS spanish",
         "SELECT es AS spanish FROM spanish WHERE source = 'I love SQL'"),
        ("SELECT pgml.generate('legal', 'A long bill.', '{\"max_new_tokens\": 20}'::jsonb)",
         "SELECT summary AS generate FROM legal WHERE source = 'A long bill.' "
         "USING max_new_tokens = 20"),
        ("SELECT pgml.generate('gpt', inputs => 'Once', config => '{\"seed\": 7}') "
         "USING temperature = 0.7",
         "SELECT continuation AS generate FROM gpt WHERE `text` = 'Once' "
         "USING temperature = 0.7, seed = 7"),
        ("SELECT pgml.generate('Spanish', ARRAY['I love SQL', 'Thanks'], args => "
         "'{\"num_beams\": 2}') AS \"Spanish\"",
         "SELECT p.es AS Spanish FROM (SELECT 'I love SQL' AS source UNION ALL SELECT "
         "'Thanks' AS source) AS t JOIN spanish AS p USING num_beams = 2"),
        ("SELECT pgml.predict('qa', '{\"question\": \"Who?\", \"context\": \"Me.\"}')",
         "SELECT answer AS predict FROM qa WHERE question = 'Who?' AND context = 'Me.'"),
        ("SELECT pgml.predict('IMDB Review Sentiment', '{\"text\": \"x\"}'::jsonb)",
         "SELECT label AS predict FROM imdb_review_sentiment WHERE `text` = 'x'"),
        ("SELECT pgml.predict('IMDB Review Sentiment', '{\"text\": \"x\"}')",
         "SELECT label AS predict FROM imdb_review_sentiment WHERE `text` = '{\"text\": \"x\"}'"),
        ("SELECT pgml.predict('byom', ARRAY[1, 2.5])",
         "SELECT y AS predict FROM byom WHERE a = 1 AND b = 2.5"),
        ("SELECT pgml.predict('rec', '{\"user_id\": \"42\"}'::jsonb) USING topk = 3",
         "SELECT prediction AS predict FROM rec WHERE user_id = '42' USING topk = 3"),
        ("SELECT * FROM pgml.predict('IMDB Review Sentiment', 'x')",
         "SELECT label AS predict FROM imdb_review_sentiment WHERE `text` = 'x'"),
    ],
)  # fmt: skip
def test_prediction_forms(sql: str, expected: str) -> None:
    assert native(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT t.id, pgml.predict('IMDB Review Sentiment', t.review) AS s "
         "FROM shop.reviews AS t WHERE t.id > 1 ORDER BY t.id LIMIT 5",
         "SELECT t.id, p.label AS s FROM (SELECT t.id, t.review AS text FROM shop.reviews AS t "
         "WHERE t.id > 1 ORDER BY t.id LIMIT 5) AS t JOIN imdb_review_sentiment AS p"),
        ("SELECT *, pgml.generate('Spanish', title || ' ' || body, '{\"num_beams\": 1}') "
         "FROM docs",
         "SELECT t.*, p.es AS generate FROM (SELECT *, title || ' ' || body AS source FROM "
         "docs) AS t JOIN spanish AS p USING num_beams = 1"),
        ("SELECT d.*, length(body) AS n, pgml.predict_proba('imdb review sentiment', body) "
         "FROM docs AS d USING batch_size = 8",
         "SELECT t.*, t.n, p.label_proba AS predict_proba FROM (SELECT d.*, LENGTH(body) AS n, "
         "body AS text FROM docs AS d) AS t JOIN imdb_review_sentiment AS p USING batch_size = 8"),
    ],
)  # fmt: skip
def test_the_form_over_a_table_becomes_a_join(sql: str, expected: str) -> None:
    assert native(sql) == expected


@pytest.mark.parametrize(
    ("sql", "error", "fragment"),
    [
        ("SELECT pgml.predict('qa', 'Who?')", InvalidInput,
         'pass them as a JSON object: \'{"question": ..., "context": ...}\''),
        ("SELECT pgml.predict_proba('Spanish', 'x')", InvalidInput,
         "'spanish' is a translation model: use pgml.predict"),
        ("SELECT pgml.predict_proba('byom', ARRAY[1, 2])", InvalidInput, "an external model"),
        ("SELECT pgml.predict('byom', ARRAY[1])", InvalidInput, "has 1 values but model 'byom' "
         "reads 2 (a, b)"),
        ("SELECT pgml.predict('qa', '{}'::jsonb)", InvalidInput, "an empty JSON object"),
        ("SELECT pgml.predict('qa', '{\"question\": [1]}'::jsonb)", InvalidInput,
         "an input value is a 'string'"),
        ("SELECT pgml.generate('Spanish', ARRAY[]::TEXT[])", InvalidInput, "ARRAY of inputs"),
        ("SELECT pgml.generate('Spanish', 'x', '[1]')", InvalidOption,
         "config must be a JSON object"),
        ("SELECT pgml.predict('qa', t.q) FROM t", InvalidInput,
         "write the native JOIN, SELECT t.*, p.answer FROM (SELECT ... AS question, ... AS "
         "context FROM ds.t) AS t JOIN qa AS p"),
        ("SELECT 1 + 2, pgml.predict('spanish', a) FROM t", InvalidInput,
         "name the selected 1 + 2 with AS name"),
    ],
)  # fmt: skip
def test_prediction_errors(sql: str, error: type[UserError], fragment: str) -> None:
    e = failure(sql)
    assert isinstance(e, error) and fragment in e.message, e.message


def test_an_unknown_project_is_model_not_found_with_a_suggestion() -> None:
    with pytest.raises(ModelNotFound) as info:
        native("SELECT pgml.predict('IMDB Review Sentimen', 'x')")
    assert info.value.code == "MODEL_NOT_FOUND"
    assert info.value.details["suggestion"] == "imdb_review_sentiment"


# --- over HTTP: the same plans as the native statements --------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    """A gateway with datasource ``shop`` (kde4_en_to_es, imdb, reviews, books) and, in its
    catalog, built-in models ``spanish`` (translation) and ``imdb_review_sentiment`` (text
    classification); nothing is deployed (no Ray)."""
    shop = tmp_path / "shop.sqlite"
    with sqlite3.connect(shop) as conn:
        conn.execute("CREATE TABLE kde4_en_to_es (en TEXT, es TEXT)")
        conn.execute("CREATE TABLE imdb (text TEXT, label INTEGER)")
        conn.execute("CREATE TABLE reviews (id INTEGER, review TEXT)")
        conn.execute("CREATE TABLE books (id INTEGER, text TEXT)")
        conn.execute("INSERT INTO reviews VALUES (1, 'good'), (2, 'bad')")
    with TestClient(create_app(home=tmp_path / "home")) as client:
        path = json.dumps({"path": str(shop)})
        ok(client, f"CREATE DATABASE shop WITH ENGINE = 'sqlite', PARAMETERS = {path}")
        catalog = client.app.state.gateway.catalog  # type: ignore[attr-defined]
        models = (("spanish", "translation", "es"),
                  ("imdb_review_sentiment", "text_classification", "label"))  # fmt: skip
        for name, task, target in models:
            catalog.add_predictor(
                PredictorSpec(name=name, kind="builtin", task=task, target=target,
                              training_datasource="shop", training_query="SELECT 1"),
                status="complete",
            )  # fmt: skip
        yield client


def post(api: TestClient, query: str) -> tuple[int, dict[str, Any]]:
    answer = api.post("/api/sql", json={"query": query})
    return answer.status_code, answer.json()


def ok(api: TestClient, query: str) -> dict[str, Any]:
    status, body = post(api, query)
    assert status == 200 and "error" not in body, body
    return body


def error(api: TestClient, query: str, code: str) -> dict[str, Any]:
    status, body = post(api, query)
    assert status in (400, 404, 409) and body["error"]["code"] == code, body
    return body["error"]


def test_translated_forms_plan_as_their_native_statements(api: TestClient) -> None:
    gateway = api.app.state.gateway  # type: ignore[attr-defined]
    session = Session(datasource="shop")

    def outcome(statement: st.Statement) -> Any:
        resolver = gateway.executor.resolver(session)
        try:
            return plan(postgresml.resolve(statement, resolver), resolver)
        except UserError as e:
            return e.code, e.message

    pairs = [
        (
            TUNE_TRANSLATION.replace("Translate English to Spanish", "es2"),
            "CREATE MODEL es2 FROM shop (SELECT en AS source, es FROM kde4_en_to_es) PREDICT es "
            "USING task = 'translation', model_name = 'Helsinki-NLP/opus-mt-en-es', "
            f"hyperparams = '{HYPER}', test_size = 0.5, test_sampling = 'last', "
            "source_lang = 'en', target_lang = 'es'",
        ),
        (
            "SELECT pgml.tune('IMDB Review Sentiment', relation_name => 'shop.imdb', "
            "y_column_name => 'label', automatic_deploy => false)",
            'RETRAIN imdb_review_sentiment FROM shop (SELECT "text", label FROM imdb) PREDICT '
            "label USING task = 'text_classification', active = false",
        ),
        (
            "SELECT pgml.tune('GPT Generator', task => 'text-generation', relation_name => "
            "'shop.books', y_column_name => 'text', test_size => 0.2)",
            'CREATE MODEL gpt_generator FROM shop (SELECT "text" FROM books) USING '
            "task = 'text_generation', test_size = 0.2",
        ),
        (
            "SELECT pgml.predict('IMDB Review Sentiment', 'I love SQL') AS sentiment",
            "SELECT label AS sentiment FROM imdb_review_sentiment WHERE text = 'I love SQL'",
        ),
        (
            "SELECT pgml.generate('spanish', 'I love SQL', '{\"max_new_tokens\": 5}'::jsonb)",
            "SELECT es AS generate FROM spanish WHERE source = 'I love SQL' "
            "USING max_new_tokens = 5",
        ),
        (
            "SELECT pgml.generate('spanish', ARRAY['a', 'b'])",
            "SELECT p.es AS generate FROM (SELECT 'a' AS source UNION ALL SELECT 'b' AS source) "
            "AS t JOIN spanish AS p",
        ),
        (
            "SELECT r.id, pgml.predict('imdb_review_sentiment', r.review) AS s FROM "
            "shop.reviews AS r WHERE r.id > 1",
            "SELECT t.id, p.label AS s FROM (SELECT r.id, r.review AS text FROM shop.reviews "
            "AS r WHERE r.id > 1) AS t JOIN imdb_review_sentiment AS p",
        ),
    ]
    for form, written in pairs:
        translated = outcome(parse_one(form))
        assert not isinstance(translated, tuple), translated
        assert translated == outcome(parse_one(written)), form


def test_errors_over_http_have_stable_codes(api: TestClient) -> None:
    missing = error(api, "SELECT pgml.predict('IMDB Review Sentimen', 'x')", "MODEL_NOT_FOUND")
    assert missing["suggestion"] == "imdb_review_sentiment"
    error(api, "SELECT pgml.tune('x', tsk => 'translation')", "INVALID_OPTION")
    error(api, "SELECT pgml.train('x', 'regression', 't', 'y')", "UNSUPPORTED_STATEMENT")
    error(api, "SELECT pgml.tune('x', 'translation', 'shop.nope', 'es')", "DATASOURCE_ERROR")
    # languages that cannot be told from the columns: the task's own error
    ok(api, "CREATE TABLE shop.pairs (english TEXT, french TEXT)")
    body = error(api, "SELECT pgml.tune('x', 'translation', 'shop.pairs', 'french')",
                 "INVALID_OPTION")  # fmt: skip
    assert "source_lang" in body["message"]
    assert "pgml.tune translated to: CREATE MODEL x FROM shop" in body["message"]
    # a script holding an untranslated function runs nothing
    failed = error(api, "SELECT 1;\nSELECT pgml.embed('m', 'x')", "UNSUPPORTED_STATEMENT")
    assert failed["statement"] == 2 and failed["done"] == []
