"""The planner is pure: statements in, plans out, names from a fake resolver."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from byom.errors import (
    DatasourceNotFound,
    InvalidInput,
    InvalidOption,
    ModelNotFound,
    UnsupportedStatement,
)
from catalog.records import PredictorRecord
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

    def model(self, name: str) -> PredictorRecord | None:
        return self.models.get(name)

    def model_names(self) -> list[str]:
        return list(self.models)

    def datasource_dialect(self, name: str) -> str | None:
        return self.sources.get(name)

    def datasource_names(self) -> list[str]:
        return list(self.sources)


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
