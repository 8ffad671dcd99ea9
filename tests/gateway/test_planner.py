"""The planner is pure: statements in, plans out, names from a fake resolver."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from byom.errors import (
    DatasourceNotFound,
    InvalidInput,
    InvalidOption,
    ModelNotFound,
    NotFound,
    UnsupportedStatement,
)
from catalog.records import PredictorRecord, ProjectRecord, project_key
from gateway import statements as st
from gateway.parser import parse_one
from gateway.planner import (
    CatalogQueryPlan,
    JoinPlan,
    NativePlan,
    PredictRowPlan,
    RegisterPlan,
    WriteBackPlan,
    plan,
)
from gateway.plans import DescribePlan, DescribeTablePlan, ShowTablesPlan, UsePlan

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def predictor(name: str, target: str | None, dtypes: dict[str, str]) -> PredictorRecord:
    return PredictorRecord(
        name=name, namespace="mindsdb", format="ray_serve", url_predict="http://x/predict",
        url_train=None, dtype_dict=dtypes, target=target, training_datasource=None,
        training_query=None, options={}, status="complete", error=None, created_at=NOW,
        updated_at=NOW,
    )  # fmt: skip


class FakeResolver:
    default_datasource = "local"
    default_project = "mindsdb"

    def __init__(self) -> None:
        self.models = {
            "byom": predictor(
                "byom",
                "number_of_rooms",
                {
                    "number_of_rooms": "categorical",
                    "initial_price": "integer",
                    "rental_price": "integer",
                },
            ),  # fmt: skip
            "byom2": predictor("byom2", "1", {"0": "integer", "1": "integer"}),
            "loose": predictor("loose", None, {}),
        }
        self.sources = {"local": "sqlite", "mydb": "postgres"}
        self.projects = {"mindsdb": ProjectRecord("mindsdb", NOW)}

    def model(self, name: str) -> PredictorRecord | None:
        return self.models.get(name)

    def model_names(self) -> list[str]:
        return list(self.models)

    def datasource_dialect(self, name: str) -> str | None:
        return self.sources.get(name)

    def datasource_names(self) -> list[str]:
        return list(self.sources)

    def project(self, name: str) -> ProjectRecord | None:
        return self.projects.get(project_key(name))

    def project_names(self) -> list[str]:
        return list(self.projects)


def plan_sql(sql: str):
    return plan(parse_one(sql), FakeResolver())


def test_one_row_prediction_from_literals() -> None:
    p = plan_sql("SELECT * FROM byom WHERE initial_price=3000 AND rental_price='3000'")
    assert isinstance(p, PredictRowPlan)
    assert p.model.name == "byom"
    assert p.inputs == {"initial_price": 3000, "rental_price": "3000"}
    assert [c.name for c in p.outputs] == ["*"]


def test_one_row_with_quoted_column_and_namespace() -> None:
    p = plan_sql("SELECT y FROM mindsdb.byom2 WHERE `0`=-2")
    assert isinstance(p, PredictRowPlan)
    assert p.inputs == {"0": -2}
    assert [(c.name, c.label) for c in p.outputs] == [("y", "y")]


def test_one_row_rejects_non_equality() -> None:
    with pytest.raises(UnsupportedStatement, match="column = value"):
        plan_sql("SELECT * FROM byom WHERE initial_price > 3")


def test_spec_join_pushes_down_needed_columns_and_bound_where() -> None:
    p = plan_sql(
        "SELECT tb.number_of_rooms, t.rental_price FROM mydb.test_data.home_rentals AS t "
        "JOIN mindsdb.byom AS tb WHERE t.rental_price > 5300"
    )
    assert isinstance(p, JoinPlan)
    assert p.datasource == "mydb"
    assert p.source_sql == (
        'SELECT t."rental_price", t."initial_price" FROM test_data.home_rentals AS t '
        "WHERE t.rental_price > :p0"
    )
    assert p.params == {"p0": 5300}
    assert [(c.side, c.name) for c in p.outputs] == [
        ("model", "number_of_rooms"),
        ("table", "rental_price"),
    ]


def test_join_string_literals_are_bound_never_pasted() -> None:
    p = plan_sql(
        "SELECT t.a, p.number_of_rooms FROM local.homes AS t JOIN byom AS p "
        "WHERE t.city = 'x''; DROP TABLE homes; --' ORDER BY t.a LIMIT 7"
    )
    assert isinstance(p, JoinPlan)
    assert "DROP" not in p.source_sql
    assert p.params == {"p0": "x'; DROP TABLE homes; --"}
    assert p.source_sql.endswith("ORDER BY t.a LIMIT 7")


def test_join_model_without_dtypes_reads_every_column() -> None:
    p = plan_sql("SELECT t.a, m.prediction FROM local.t1 AS t JOIN loose AS m")
    assert isinstance(p, JoinPlan)
    assert p.source_sql.startswith("SELECT t.* FROM t1 AS t")


def test_join_two_models() -> None:
    p = plan_sql("SELECT * FROM mydb.h AS t JOIN byom AS a JOIN models.byom2 AS b")
    assert isinstance(p, JoinPlan)
    assert [m.name for m in p.models] == ["byom", "byom2"]


def test_join_filter_on_model_output_is_applied_after_prediction() -> None:
    p = plan_sql(
        "SELECT t.id FROM mydb.h AS t JOIN byom AS p "
        "WHERE t.sqft > 10 AND p.number_of_rooms = 2 AND t.city = 'x' LIMIT 3"
    )
    assert isinstance(p, JoinPlan)
    # table-only conditions are pushed down; LIMIT is not (the post-filter drops rows)
    assert p.source_sql == (
        'SELECT t."id", t."initial_price", t."rental_price" FROM h AS t '
        "WHERE t.sqft > :p0 AND t.city = :p1"
    )
    assert p.post_filter is not None
    assert p.post_filter.sql() == "__model0.number_of_rooms = 2"
    assert p.limit == 3


def test_join_order_by_model_output_is_refused() -> None:
    with pytest.raises(UnsupportedStatement, match="ORDER BY table columns"):
        plan_sql("SELECT * FROM mydb.h AS t JOIN byom AS p ORDER BY p.number_of_rooms")


def test_join_subquery_table_side_with_limit() -> None:
    p = plan_sql(
        "SELECT t.initial_price, p.number_of_rooms FROM (SELECT initial_price, rental_price "
        "FROM mydb.public.h WHERE rental_price > 100) AS t JOIN byom AS p LIMIT 5"
    )
    assert isinstance(p, JoinPlan)
    assert p.datasource == "mydb"
    assert p.source_sql == (
        'SELECT t."initial_price", t."rental_price" FROM (SELECT initial_price, rental_price '
        "FROM public.h WHERE rental_price > :p0) AS t LIMIT 5"
    )
    assert p.params == {"p0": 100}


def test_join_unknown_alias() -> None:
    with pytest.raises(InvalidInput, match="Unknown table alias 'z'"):
        plan_sql("SELECT z.a FROM mydb.h AS t JOIN byom AS p")


def test_unknown_datasource_suggests() -> None:
    with pytest.raises(DatasourceNotFound, match="Did you mean mydb"):
        plan_sql("SELECT * FROM mydbb.x.h AS t JOIN byom AS p")


def test_namespaced_unknown_model_suggests() -> None:
    with pytest.raises(ModelNotFound, match="Did you mean byom"):
        plan_sql("SELECT * FROM mindsdb.byon WHERE a=1")


def test_pass_through_strips_datasource_prefix() -> None:
    p = plan_sql("SELECT count(*) FROM mydb.public.h WHERE x = 1")
    assert isinstance(p, NativePlan)
    assert p.datasource == "mydb"
    assert p.sql == "SELECT COUNT(*) FROM public.h WHERE x = 1"


def test_pass_through_unqualified_goes_to_embedded_as_written() -> None:
    p = plan_sql("select * from homes  where x = 1")
    assert isinstance(p, NativePlan)
    assert (p.datasource, p.sql) == ("local", "select * from homes  where x = 1")
    assert p.bare_tables == ("homes",)


def test_register_spec_statement() -> None:
    p = plan_sql(
        """CREATE PREDICTOR byom FROM mydb (SELECT a, b FROM t) PREDICT a
        USING url.train = 'http://h/train', url.predict = 'http://h/predict',
        dtype_dict={"a": "categorical", "b": "integer"}, format='ray_server'"""
    )
    assert isinstance(p, RegisterPlan)
    spec = p.spec
    assert (spec.kind, spec.format, spec.url_train, spec.training_datasource, spec.target) == (
        "external",
        "ray_serve",
        "http://h/train",
        "mydb",
        "a",
    )
    assert spec.training_query == "SELECT a, b FROM t"
    assert spec.dtype_dict == {"a": "categorical", "b": "integer"}


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("CREATE PREDICTOR m PREDICT y USING format='mlflow'", "needs url.predict"),
        ("CREATE PREDICTOR m USING url.predict='http://h'", "needs a format"),
        ("CREATE PREDICTOR m USING url.predict='ftp://h', format='mlflow'", "http://"),
        (
            "CREATE PREDICTOR m USING url.predict='http://h', format='mlflow', "
            'dtype_dict={"a": "integr"}',
            "did you mean integer",
        ),
        (
            "CREATE PREDICTOR m PREDICT y USING url.predict='http://h', url.train='http://h/t', "
            "format='ray_serve'",
            "no training data",
        ),
        ("CREATE PREDICTOR m USING url.predict='http://h', format='rayserve'", "ray_serve"),
    ],
)
def test_register_option_errors(sql: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        plan_sql(sql)


def test_catalog_tables_are_queryable() -> None:
    p = plan_sql("SELECT name FROM mindsdb.models WHERE status = 'error' ORDER BY name")
    assert isinstance(p, CatalogQueryPlan)
    assert p.sql == "SELECT name FROM models WHERE status = 'error' ORDER BY name"


def test_catalog_tables_do_not_mix_with_datasource_tables() -> None:
    with pytest.raises(UnsupportedStatement, match="catalog tables"):
        plan_sql("SELECT * FROM mindsdb.models AS m JOIN mydb.t AS t ON m.name = t.name")


def test_create_table_as_join_is_a_write_back() -> None:
    p = plan_sql(
        "CREATE TABLE mydb.public.preds AS SELECT t.id, p.number_of_rooms "
        "FROM local.h AS t JOIN byom AS p USING batch_size=10"
    )
    assert isinstance(p, WriteBackPlan)
    assert (p.datasource, p.schema, p.table, p.mode) == ("mydb", "public", "preds", "create")
    assert p.join.datasource == "local"
    assert p.join.options == {"batch_size": 10}


def test_insert_into_select_join_with_columns() -> None:
    p = plan_sql(
        "INSERT INTO preds (house, rooms) SELECT t.id, p.number_of_rooms FROM mydb.h AS t "
        "JOIN byom AS p"
    )
    assert isinstance(p, WriteBackPlan)
    assert (p.datasource, p.schema, p.table, p.mode) == ("local", None, "preds", "append")
    assert p.columns == ["house", "rooms"]


def test_plain_create_table_as_passes_through() -> None:
    p = plan_sql("CREATE TABLE mydb.x AS SELECT * FROM mydb.y")
    assert isinstance(p, NativePlan)
    assert p.datasource == "mydb"


def test_payload_option_checked_at_create() -> None:
    p = plan_sql("CREATE MODEL m USING url.predict='http://h', format='ray_serve', payload='Arrow'")
    assert isinstance(p, RegisterPlan)
    assert p.spec.options == {"payload": "arrow"}
    with pytest.raises(InvalidOption, match="parquet"):
        plan_sql(
            "CREATE MODEL m USING url.predict='http://h', format='ray_serve', payload='parqet'"
        )
    with pytest.raises(InvalidOption):
        plan_sql("CREATE MODEL m USING url.predict='http://h', format='mlflow', payload='parquet'")


# ---------------------------------------------------------------- qualified column names (issue 7)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (  # the seed docs' statement, verbatim
            "SELECT user_id AS user_id, movie_id AS item_id FROM mydb.movie_rating "
            "WHERE mydb.movie_rating.rating > 3",
            "SELECT user_id AS user_id, movie_id AS item_id FROM movie_rating "
            "WHERE movie_rating.rating > 3",
        ),
        (
            "SELECT mydb.movie_rating.user_id FROM mydb.movie_rating",
            "SELECT movie_rating.user_id FROM movie_rating",
        ),
        (  # four-part names lose only the datasource
            "SELECT mydb.test_data.home_rentals.rental_price FROM mydb.test_data.home_rentals",
            "SELECT test_data.home_rentals.rental_price FROM test_data.home_rentals",
        ),
        (  # GROUP BY, ORDER BY, JOIN ... ON and a subquery
            "SELECT mydb.s.h.city, count(*) FROM mydb.s.h JOIN mydb.s.c "
            "ON mydb.s.h.city = mydb.s.c.name WHERE mydb.s.h.id IN "
            "(SELECT mydb.s.x.id FROM mydb.s.x WHERE mydb.s.x.ok) "
            "GROUP BY mydb.s.h.city ORDER BY mydb.s.h.city",
            "SELECT s.h.city, COUNT(*) FROM s.h JOIN s.c ON s.h.city = s.c.name "
            "WHERE s.h.id IN (SELECT s.x.id FROM s.x WHERE s.x.ok) "
            "GROUP BY s.h.city ORDER BY s.h.city NULLS FIRST",
        ),
        (  # PostgreSQL's own schema.table.column stays: only the datasource's name goes
            "SELECT public.h.x, h.y FROM mydb.public.h WHERE public.h.x > 1",
            "SELECT public.h.x, h.y FROM public.h WHERE public.h.x > 1",
        ),
        (  # case-insensitive, like datasource names
            "SELECT MyDB.t.a FROM MYDB.t",
            "SELECT t.a FROM t",
        ),
        (  # a plain CREATE TABLE ... AS (no model): passed through, columns stripped too
            "CREATE TABLE mydb.x AS SELECT mydb.y.a FROM mydb.y WHERE mydb.y.a > 0",
            "CREATE TABLE x AS SELECT y.a FROM y WHERE y.a > 0",
        ),
    ],
)
def test_pass_through_strips_the_datasource_from_qualified_columns(sql: str, expected: str) -> None:
    p = plan_sql(sql)
    assert isinstance(p, NativePlan)
    assert (p.datasource, p.sql) == ("mydb", expected)


def test_pass_through_to_the_embedded_datasource_strips_local_from_columns() -> None:
    p = plan_sql("SELECT local.t.a FROM local.t WHERE local.t.a = 'x'")
    assert isinstance(p, NativePlan)
    assert (p.datasource, p.sql) == ("local", "SELECT t.a FROM t WHERE t.a = 'x'")


def test_join_without_alias_strips_qualified_columns_in_where_and_order_by() -> None:
    p = plan_sql(
        "SELECT tb.number_of_rooms, mydb.test_data.home_rentals.rental_price "
        "FROM mydb.test_data.home_rentals JOIN mindsdb.byom AS tb "
        "WHERE mydb.test_data.home_rentals.rental_price > 5300 "
        "ORDER BY mydb.test_data.home_rentals.rental_price LIMIT 3"
    )
    assert isinstance(p, JoinPlan)
    assert p.datasource == "mydb"
    assert p.source_sql == (
        'SELECT home_rentals."rental_price", home_rentals."initial_price" '
        "FROM test_data.home_rentals WHERE test_data.home_rentals.rental_price > :p0 "
        "ORDER BY test_data.home_rentals.rental_price NULLS FIRST LIMIT 3"
    )
    assert p.params == {"p0": 5300}
    assert [(c.side, c.name, c.label) for c in p.outputs] == [
        ("model", "number_of_rooms", "number_of_rooms"),
        ("table", "rental_price", "rental_price"),
    ]


def test_join_subquery_and_post_filter_with_qualified_columns() -> None:
    p = plan_sql(
        "SELECT t.initial_price, p.number_of_rooms FROM (SELECT mydb.h.initial_price, "
        "mydb.h.rental_price FROM mydb.h WHERE mydb.h.rental_price > 100) AS t "
        "JOIN byom AS p WHERE p.number_of_rooms > 1"
    )
    assert isinstance(p, JoinPlan)
    assert p.source_sql == (
        'SELECT t."initial_price", t."rental_price" FROM (SELECT h.initial_price, '
        "h.rental_price FROM h WHERE h.rental_price > :p0) AS t"
    )
    assert p.post_filter is not None
    assert p.post_filter.sql() == "__model0.number_of_rooms > 1"


def test_join_post_filter_on_a_fully_qualified_table_column() -> None:
    p = plan_sql(
        "SELECT local.h.id FROM local.h JOIN byom AS p "
        "WHERE p.number_of_rooms > 1 OR local.h.id < 3"
    )
    assert isinstance(p, JoinPlan)
    assert p.post_filter is not None
    assert p.post_filter.sql() == "__model0.number_of_rooms > 1 OR __table__.id < 3"
    assert p.source_sql == 'SELECT h."id", h."initial_price", h."rental_price" FROM h'


def test_write_back_join_with_qualified_columns() -> None:
    p = plan_sql(
        "CREATE TABLE mydb.public.preds AS SELECT mydb.public.h.id, p.number_of_rooms "
        "FROM mydb.public.h JOIN byom AS p WHERE mydb.public.h.id > 5"
    )
    assert isinstance(p, WriteBackPlan)
    assert (p.datasource, p.schema, p.table) == ("mydb", "public", "preds")
    assert p.join.source_sql == (
        'SELECT h."id", h."initial_price", h."rental_price" FROM public.h WHERE public.h.id > :p0'
    )


# ---------------------------------------------------------------- CREATE-time checks (issue 7)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "CREATE PREDICTOR m FROM mydb (SELECT a, y FROM t) PREDICT y "
            "USING url.predict='http://h/invocations', url.train='http://h/train', "
            "format='mlflow'",
            "format 'mlflow' is predict-only",
        ),
        (  # predict-only is refused before "no training data", whatever else is missing
            "CREATE PREDICTOR m PREDICT y USING url.predict='http://h', url.train='http://h/t', "
            "format='MLflow'",
            "format 'mlflow' is predict-only",
        ),
        (
            "CREATE PREDICTOR m FROM mydb (SELECT a, y FROM t) PREDICT y "
            "USING url.predict='http://h/p', url.train='http://h/t', format='ray_serve', "
            'dtype_dict={"a": "integer", "Y": "integer"}',
            "the target 'y' \\(PREDICT\\) is not in dtype_dict; did you mean Y\\?",
        ),
        (
            "CREATE PREDICTOR m USING url.predict='http://h/p', format='ray_serve', "
            'dtype_dict={"": "integer"}',
            "dtype_dict has an empty column name",
        ),
        (
            "CREATE PREDICTOR m USING url.predict='http://h/p', format='ray_serve', "
            'dtype_dict={"  ": "integer"}',
            "dtype_dict has an empty column name",
        ),
    ],
)
def test_register_static_mistakes_fail_at_create(sql: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        plan_sql(sql)


def test_register_training_query_must_read_rows() -> None:
    with pytest.raises(InvalidInput, match="the training query must be a SELECT"):
        plan_sql(
            "CREATE PREDICTOR m FROM mydb (DELETE FROM t) PREDICT y "
            "USING url.predict='http://h/p', url.train='http://h/t', format='ray_serve'"
        )
    p = plan_sql(
        "CREATE PREDICTOR m FROM mydb (/* c */ WITH q AS (SELECT 1 AS y) SELECT y FROM q) "
        "PREDICT y USING url.predict='http://h/p', url.train='http://h/t', format='ray_serve'"
    )
    assert isinstance(p, RegisterPlan)


def test_register_predict_only_models_keep_their_freedom() -> None:
    """The target-in-dtype_dict rule is for trained models: a predict-only model may name an
    output column its dtype_dict does not list (the SPEC's mlflow example lists it)."""
    p = plan_sql(
        "CREATE PREDICTOR m PREDICT y USING url.predict='http://h/invocations', "
        'format=\'mlflow\', dtype_dict={"a": "integer"}'
    )
    assert isinstance(p, RegisterPlan)
    assert (p.spec.target, p.spec.url_train) == ("y", None)


# ---------------------------------------------------------------- projects, USE, SHOW, DESCRIBE


def with_project(*names: str, **attributes: str) -> FakeResolver:
    resolver = FakeResolver()
    for name in names:
        resolver.projects[name] = ProjectRecord(name, NOW)
    for key, value in attributes.items():
        setattr(resolver, key, value)
    return resolver


def plan_in(sql: str, resolver: FakeResolver):
    return plan(parse_one(sql), resolver)


CREATE_TAIL = "PREDICT y USING url.predict = 'http://h/p', format = 'mlflow'"


def test_create_model_goes_to_the_named_or_default_project() -> None:
    assert plan_sql(f"CREATE MODEL m {CREATE_TAIL}").spec.namespace == "mindsdb"
    assert plan_sql(f"CREATE MODEL models.m {CREATE_TAIL}").spec.namespace == "mindsdb"
    resolver = with_project("p", default_project="p")
    assert plan_in(f"CREATE MODEL m {CREATE_TAIL}", resolver).spec.namespace == "p"
    assert plan_in(f"CREATE MODEL mindsdb.m {CREATE_TAIL}", resolver).spec.namespace == "mindsdb"


def test_create_model_in_unknown_project_suggests() -> None:
    with pytest.raises(NotFound) as info:
        plan_sql(f"CREATE MODEL mindbs.m {CREATE_TAIL}")
    assert info.value.code == "PROJECT_NOT_FOUND"
    assert info.value.details["suggestion"] == "mindsdb"


def test_create_flags_and_default_training_datasource() -> None:
    p = plan_sql(f"CREATE OR REPLACE MODEL m {CREATE_TAIL}")
    assert isinstance(p, RegisterPlan) and p.or_replace and not p.if_not_exists
    assert plan_sql(f"CREATE MODEL IF NOT EXISTS m {CREATE_TAIL}").if_not_exists
    sql = (
        "CREATE MODEL m FROM (SELECT a, y FROM t) PREDICT y USING url.train = 'http://h/t', "
        "url.predict = 'http://h/p', format = 'ray_serve'"
    )
    assert plan_sql(sql).spec.training_datasource == "local"
    assert plan_in(sql, with_project(default_datasource="mydb")).spec.training_datasource == "mydb"


def test_use_a_datasource_or_a_project() -> None:
    assert plan_sql("USE mydb") == UsePlan(datasource="mydb")
    assert plan_sql("USE models") == UsePlan(project="mindsdb")
    assert plan_in("USE p", with_project("p")) == UsePlan(project="p")
    with pytest.raises(DatasourceNotFound, match="Did you mean mydb"):
        plan_sql("USE mydbb")


def test_describe_forms() -> None:
    byom = FakeResolver().models["byom"]
    assert plan_sql("DESCRIBE byom") == DescribePlan(byom)
    assert plan_sql("DESCRIBE mindsdb.byom") == DescribePlan(byom)
    assert plan_sql("DESCRIBE byom.features") == DescribePlan(byom, "features")
    assert plan_sql("DESCRIBE model.byom.model") == DescribePlan(byom, "model")
    with pytest.raises(InvalidInput, match="features"):
        plan_sql("DESCRIBE byom.metrics")
    with pytest.raises(ModelNotFound, match="Did you mean byom"):
        plan_sql("DESCRIBE byon.features")
    with pytest.raises(NotFound, match="Project 'nope' not found"):
        plan_sql("DESCRIBE nope.byom")
    assert plan_sql("DESCRIBE mydb.t") == DescribeTablePlan("mydb", "t")  # its columns


def test_a_model_named_in_another_project_is_not_found() -> None:
    resolver = with_project("p")
    for sql in ("SELECT * FROM p.byom WHERE a = 1", "DESCRIBE p.byom", "DROP MODEL p.byom"):
        with pytest.raises(ModelNotFound, match="it is in project 'mindsdb'"):
            plan_in(sql, resolver)
    with pytest.raises(ModelNotFound, match="Did you mean byom"):
        plan_in("SELECT * FROM p.byon WHERE a = 1", resolver)
    # a schema of the default datasource is not a project: plain SQL
    assert isinstance(plan_in("SELECT * FROM s.byom", resolver), NativePlan)


def test_show_plans() -> None:
    assert plan_sql("SHOW TABLES") == ShowTablesPlan(datasource="local", project=None)
    assert plan_sql("SHOW FULL TABLES FROM model") == ShowTablesPlan(
        datasource=None, project="mindsdb", full=True
    )
    assert plan_sql("SHOW MODELS FROM models") == st.ShowModels(project="mindsdb")
    with pytest.raises(NotFound, match="See SHOW PROJECTS"):
        plan_sql("SHOW MODELS FROM nope")
    with pytest.raises(UnsupportedStatement, match="SQLite"):
        plan_sql("SHOW search_path")
    native = plan_in("SHOW search_path", with_project(default_datasource="mydb"))
    assert isinstance(native, NativePlan) and native.datasource == "mydb"


def test_project_and_datasource_names_stay_apart() -> None:
    with pytest.raises(InvalidInput, match="a datasource has that name"):
        plan_sql("CREATE PROJECT mydb")
    with pytest.raises(InvalidInput, match="a project has that name"):
        plan_sql("CREATE DATABASE models WITH ENGINE = 'sqlite'")
    with pytest.raises(InvalidInput, match="default project"):
        plan_sql("DROP PROJECT mindsdb")
    assert plan_in("DROP DATABASE p", with_project("p")) == st.DropProject(name="p")
    assert plan_sql("DROP DATABASE mydb") == st.DropDatabase(name="mydb")
