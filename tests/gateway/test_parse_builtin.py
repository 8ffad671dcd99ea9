"""Parser tests for the built-in models' statements after CREATE (RETRAIN, EVALUATE, CANCEL
TRAINING) and for model versions named as tables (``FROM m.2``)."""

from __future__ import annotations

import pytest
from sqlglot import exp

from byom.errors import ParseError
from gateway import statements as st
from gateway.parser import DIALECT, parse, parse_one, parse_script

# ---------------------------------------------------------------------------- RETRAIN


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("RETRAIN m", st.Retrain(name="m")),
        ("retrain MODEL Proj.M;", st.Retrain(name="m", namespace="proj")),
        ("RETRAIN PREDICTOR m", st.Retrain(name="m")),
        # As in DESCRIBE, MODEL alone (or before a clause) is the model's name.
        ("RETRAIN model", st.Retrain(name="model")),
        ("RETRAIN model USING a = 1", st.Retrain(name="model", options={"a": 1})),
        ("RETRAIN model.m", st.Retrain(name="m", namespace="model")),
        (
            "RETRAIN m FROM MyDB (SELECT text, label FROM reviews) PREDICT label",
            st.Retrain(
                name="m",
                datasource="mydb",
                query="SELECT text, label FROM reviews",
                target="label",
            ),
        ),
        (
            "RETRAIN mindsdb.m FROM (SELECT * FROM t WHERE (a) > 1) AS training_data",
            st.Retrain(name="m", namespace="mindsdb", query="SELECT * FROM t WHERE (a) > 1"),
        ),
        (
            "RETRAIN m USING hyperparams = '{\"num_train_epochs\": 1}', test_size = 0.2, "
            'freeze = true, extra = {"a": [1, 2]}',
            st.Retrain(
                name="m",
                options={
                    "hyperparams": '{"num_train_epochs": 1}',
                    "test_size": 0.2,
                    "freeze": True,
                    "extra": {"a": [1, 2]},
                },
            ),
        ),
        (
            "RETRAIN m FROM (SELECT 1) USING engine = 'byom' WHERE MODEL_NAME = 'distilbert'",
            st.Retrain(
                name="m",
                query="SELECT 1",
                options={"engine": "byom", "model_name": "distilbert"},
            ),
        ),
    ],
)
def test_retrain_forms(sql: str, expected: st.Retrain) -> None:
    assert parse_one(sql) == expected


def test_retrain_options_are_read_as_create_models() -> None:
    clauses = (
        "FROM db (SELECT a, b FROM t) PREDICT b USING hyperparams = '{\"x\": 1}', "
        'dtype_dict = {"a": "text"}, data_dtype_x = 2 WHERE task = \'text_classification\''
    )
    create = parse_one(f"CREATE MODEL p.m {clauses}")
    retrain = parse_one(f"RETRAIN p.m {clauses}")
    assert isinstance(create, st.CreatePredictor)
    assert isinstance(retrain, st.Retrain)
    assert (retrain.datasource, retrain.query, retrain.target, retrain.options) == (
        create.datasource,
        create.query,
        create.target,
        create.options,
    )
    assert type(retrain.options["hyperparams"]) is str


# ---------------------------------------------------------------------------- EVALUATE


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "EVALUATE m FROM mydb (SELECT text, label FROM holdout)",
            st.Evaluate(name="m", datasource="mydb", query="SELECT text, label FROM holdout"),
        ),
        (
            "evaluate MODEL Proj.M version 3 from Db (SELECT 1) using metric = 'f1', top = 2;",
            st.Evaluate(
                name="m",
                namespace="proj",
                version=3,
                datasource="db",
                query="SELECT 1",
                options={"metric": "f1", "top": 2},
            ),
        ),
        (
            "EVALUATE m VERSION 2 FROM (SELECT * FROM t) AS rows USING a = 1",
            st.Evaluate(name="m", version=2, query="SELECT * FROM t", options={"a": 1}),
        ),
        ("EVALUATE m FROM (SELECT 1)", st.Evaluate(name="m", query="SELECT 1")),
        ("EVALUATE model FROM (SELECT 1)", st.Evaluate(name="model", query="SELECT 1")),
        (
            "EVALUATE m VERSION 007 FROM (SELECT 1)",
            st.Evaluate(name="m", version=7, query="SELECT 1"),
        ),
    ],
)
def test_evaluate_forms(sql: str, expected: st.Evaluate) -> None:
    assert parse_one(sql) == expected


# ---------------------------------------------------------------------------- CANCEL TRAINING


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CANCEL TRAINING m", st.CancelTraining(name="m")),
        ("CANCEL TRAINING OF m", st.CancelTraining(name="m")),
        ("CANCEL TRAINING OF MODEL p.m", st.CancelTraining(name="m", namespace="p")),
        ("cancel training model M;", st.CancelTraining(name="m")),
        ("CANCEL TRAINING model", st.CancelTraining(name="model")),
        ("CANCEL TRAINING `Of`", st.CancelTraining(name="of")),
    ],
)
def test_cancel_training_forms(sql: str, expected: st.CancelTraining) -> None:
    assert parse_one(sql) == expected


def test_the_new_statements_in_a_script() -> None:
    got = parse_script("RETRAIN m;\nEVALUATE m FROM (SELECT 1);\nCANCEL TRAINING m")
    assert [(type(s.statement), s.line) for s in got] == [
        (st.Retrain, 1),
        (st.Evaluate, 2),
        (st.CancelTraining, 3),
    ]


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("sql", "line", "col", "suggestion", "fragment"),
    [
        ("RETRIAN m", 1, 1, "RETRAIN", "RETRIAN"),
        ("EVALUTE m FROM (SELECT 1)", 1, 1, "EVALUATE", "EVALUTE"),
        ("CANCLE TRAINING m", 1, 1, "CANCEL", "CANCLE"),
        ("CANCEL TRAINNG m", 1, 8, "TRAINING", "TRAINNG"),
        ("RETRAIN m FORM db (SELECT 1)", 1, 11, "FROM", "FORM"),
        ("RETRAIN m PREDICT y USNG a = 1", 1, 21, "USING", "USNG"),
        ("EVALUATE m FORM db (SELECT 1)", 1, 12, "FROM", "FORM"),
        ("EVALUATE m VERSON 2 FROM db (SELECT 1)", 1, 12, "VERSION", "VERSON"),
        ("EVALUATE m FROM db (SELECT 1) USNG a = 1", 1, 31, "USING", "USNG"),
    ],
)
def test_misspelt_words_suggest(
    sql: str, line: int, col: int, suggestion: str, fragment: str
) -> None:
    with pytest.raises(ParseError) as info:
        parse(sql)
    error = info.value
    assert (error.line, error.col, error.suggestion) == (line, col, suggestion)
    assert fragment in error.message
    assert f"Did you mean {suggestion}?" in error.message


@pytest.mark.parametrize(
    ("sql", "line", "col", "fragment"),
    [
        ("RETRAIN", 1, 8, "expected a model name"),
        ("RETRAIN a.b.c", 1, 12, "at most two parts"),
        ("RETRAIN m USING a = 1 PREDICT y", 1, 23, "PREDICT must come before USING"),
        ("RETRAIN m FROM (SELECT 1) FROM (SELECT 2)", 1, 27, "FROM is given twice"),
        ("RETRAIN m USING a = 1 WHERE A = 2", 1, 29, "'a' is given twice"),
        ("RETRAIN m VERSION 2", 1, 11, "FROM, PREDICT, USING or WHERE"),
        ("RETRAIN m FROM db (SELECT 1", 1, 19, "never closed"),
        ("EVALUATE m", 1, 11, "EVALUATE needs labelled rows: EVALUATE m FROM mydb (SELECT ...)."),
        ("EVALUATE m VERSION 2", 1, 21, "EVALUATE needs labelled rows"),
        ("EVALUATE m\n  USING a = 1", 2, 3, "EVALUATE needs labelled rows"),
        ("EVALUATE m VERSION", 1, 19, "expected a version number"),
        (
            "EVALUATE m VERSION 0 FROM (SELECT 1)",
            1,
            20,
            "positive whole number (VERSION 2) but found '0'",
        ),
        ("EVALUATE m VERSION -1 FROM (SELECT 1)", 1, 20, "found '-1'"),
        ("EVALUATE m VERSION 1.5 FROM (SELECT 1)", 1, 20, "found '1.5'"),
        ("EVALUATE m VERSION 'two' FROM (SELECT 1)", 1, 20, "found 'two'"),
        ("EVALUATE m VERSION latest FROM (SELECT 1)", 1, 20, "found 'latest'"),
        ("EVALUATE m VERSION 2 VERSION 3 FROM (SELECT 1)", 1, 22, "Expected FROM but found"),
        ("EVALUATE m FROM db (SELECT 1) PREDICT y", 1, 31, "found 'PREDICT'"),
        ("EVALUATE m FROM db", 1, 19, "'('"),
        ("EVALUATE m FROM db ()", 1, 20, "empty"),
        ("CANCEL", 1, 7, "expected TRAINING"),
        ("CANCEL TRAINING", 1, 16, "expected a model name"),
        ("CANCEL TRAINING OF", 1, 19, "expected a model name"),
        ("CANCEL TRAINING m now", 1, 19, "found 'now'"),
        ("CANCEL TRAINING OF MODEL m FROM x", 1, 28, "end of the statement"),
        ("SELECT 1;\n\nCANCEL TRAINING m x", 3, 19, "Statement 2: Expected the end"),
    ],
)
def test_errors_have_position_and_message(sql: str, line: int, col: int, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(sql)
    error = info.value
    assert error.code == "PARSE_ERROR"
    assert (error.line, error.col) == (line, col), error.message
    assert fragment in error.message
    assert f"(line {line}, col {col})" in error.message


# ---------------------------------------------------------------------------- FROM m.2


def _query(sql: str) -> exp.Expression:
    statement = parse_one(sql)
    assert isinstance(statement, st.Query)
    assert statement.sql == sql.rstrip(";")  # the text as written, not the rewritten one
    return statement.tree


def _tables(tree: exp.Expression) -> list[tuple[str, str, str]]:
    return [(t.catalog, t.db, t.name) for t in tree.find_all(exp.Table)]


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT * FROM m.2 WHERE text = 'good'", [("", "m", "2")]),
        ("SELECT * FROM m.2", [("", "m", "2")]),
        ("SELECT * FROM m.12;", [("", "m", "12")]),
        ("SELECT * FROM `m`.2", [("", "m", "2")]),
        ('SELECT * FROM "my model".2', [("", "my model", "2")]),
        ("SELECT * FROM proj.m.2", [("proj", "m", "2")]),
        ("SELECT * FROM proj . m.2", [("proj", "m", "2")]),
        (
            "SELECT t.text, p.label FROM mydb.reviews AS t JOIN mindsdb.m.2 AS p",
            [("", "mydb", "reviews"), ("mindsdb", "m", "2")],
        ),
        (
            "SELECT * FROM t LEFT JOIN p.m.3 AS x ON t.a = x.a",
            [("", "", "t"), ("p", "m", "3")],
        ),
        ("SELECT * FROM a, m.2 AS p", [("", "", "a"), ("", "m", "2")]),
        ("SELECT * FROM a AS x, m.2", [("", "", "a"), ("", "m", "2")]),
        ("SELECT * FROM (SELECT * FROM m.2) AS s", [("", "m", "2")]),
        ("SELECT * FROM t WHERE a IN (SELECT a FROM m.2)", [("", "", "t"), ("", "m", "2")]),
        ("SELECT * FROM m.2 USING threshold = 0.5", [("", "m", "2")]),
    ],
)
def test_a_model_version_as_a_table(sql: str, tables: list[tuple[str, str, str]]) -> None:
    tree = _query(sql)
    assert sorted(_tables(tree)) == sorted(tables)
    versioned = [t for t in tree.find_all(exp.Table) if t.name.isdigit()]
    assert all(t.this.quoted for t in versioned)


def test_a_version_table_parses_as_the_quoted_name_would() -> None:
    for plain, quoted in [
        ("SELECT * FROM m.2 WHERE x = 1", "SELECT * FROM m.`2` WHERE x = 1"),
        ("SELECT * FROM a JOIN mindsdb.m.2 AS p", "SELECT * FROM a JOIN mindsdb.m.`2` AS p"),
    ]:
        assert _query(plain) == _query(quoted)
        assert _query(plain).sql(dialect=DIALECT) == _query(quoted).sql(dialect=DIALECT)


def test_numbers_and_strings_elsewhere_are_left_alone() -> None:
    sql = (
        "SELECT 1.5 AS a, .5 AS b, x.5e3 AS c, t.2 AS d, 'm.2' AS e, 2. AS f "
        "FROM t /* FROM m.2 */ WHERE s = 'FROM m.2' -- JOIN m.2\n AND x = t.2"
    )
    tree = _query(sql)
    assert _tables(tree) == [("", "", "t")]
    numbers = [lit.this for lit in tree.find_all(exp.Literal) if not lit.is_string]
    assert sorted(numbers) == sorted(["1.5", "0.5", "5e3", "2", "2.", "2"])
    strings = [lit.this for lit in tree.find_all(exp.Literal) if lit.is_string]
    assert strings == ["m.2", "FROM m.2"]
    # ``t.2`` in an expression stays what sqlglot makes of it: no quoted name appears.
    assert not any(i.quoted for i in tree.find_all(exp.Identifier))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT EXTRACT(YEAR FROM t.2) FROM t",
        "SELECT a, m.2 FROM t GROUP BY a, m.2",
        "SELECT * FROM t ORDER BY t.2",
        "SELECT f(a, t.2) FROM t",
        "SELECT * FROM t JOIN u ON t.a = u.2",
    ],
)
def test_a_dotted_number_outside_a_table_position_is_not_a_name(sql: str) -> None:
    tree = _query(sql)
    assert not any(i.quoted for i in tree.find_all(exp.Identifier))
    assert all(not t.name.isdigit() for t in tree.find_all(exp.Table))


@pytest.mark.parametrize(
    ("sql", "col"),
    [
        ("SELECT * FROM m .2", 18),  # a space: not a version
        ("SELECT * FROM m. 2", 18),
        ("SELECT * FROM m.2a", 17),
    ],
)
def test_a_spaced_or_glued_number_is_still_an_error(sql: str, col: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_one(sql)
    assert (info.value.line, info.value.col) == (1, col)
    assert "Expected table name" in info.value.message


def test_errors_after_a_version_table_keep_their_position() -> None:
    with pytest.raises(ParseError) as info:
        parse_one("SELECT * FROM m.2\nWHER x = 1")
    assert (info.value.line, info.value.col, info.value.suggestion) == (2, 1, "WHERE")
