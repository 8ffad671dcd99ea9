"""Upgrading real older catalogs in place, on SQLite and on PostgreSQL.

Each test builds a catalog the way an older gateway left it (the frozen version-1 tables of
``catalog.migrations``, with rows in them) and opens it with today's ``Catalog``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Inspector

from byom.errors import GatewayError
from catalog import migrations
from catalog.records import PredictorSpec
from catalog.repository import Catalog

CREATED = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
FINISHED = datetime(2025, 6, 1, 12, 31, tzinfo=UTC)

V1_PREDICTOR: dict[str, Any] = {
    "name": "home_rentals",
    "namespace": "mindsdb",
    "format": "ray_serve",
    "url_predict": "http://127.0.0.1:8000/predict",
    "url_train": "http://127.0.0.1:8000/train",
    "dtype_dict": {"number_of_rooms": "integer", "initial_price": "float"},
    "target": "rental_price",
    "training_datasource": "mydb",
    "training_query": "SELECT * FROM test_data.home_rentals",
    "options": {"batch_size": 100, "nested": {"a": [1, 2]}},
    "status": "complete",
    "error": None,
    "created_at": CREATED,
    "updated_at": FINISHED,
}
V1_JOB: dict[str, Any] = {
    "predictor": "home_rentals",
    "status": "complete",
    "error": None,
    "rows": 25,
    "started_at": CREATED,
    "finished_at": FINISHED,
    "extra": {"loss": 0.5},
}
V1_DATASOURCE: dict[str, Any] = {
    "name": "mydb",
    "engine": "sqlite",
    "parameters": {"path": "/data/my.db"},
    "created_at": CREATED,
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A catalog URL with nothing in it yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("pg_catalog_clean_url")


def _make_old_catalog(
    url: str, *, version: int | None = 1, tables: tuple[str, ...] | None = None
) -> None:
    """A catalog as a version-1 gateway left it: one datasource, predictor and training
    job. ``version=None`` leaves out the schema_version table (a pre-versioning catalog);
    ``tables`` limits which version-1 tables exist."""
    metadata = migrations.V1_METADATA
    wanted = [metadata.tables[n] for n in (tables or tuple(metadata.tables))]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn, tables=wanted)
            rows = {"datasources": V1_DATASOURCE, "predictors": V1_PREDICTOR}
            rows["training_jobs"] = V1_JOB
            for table in wanted:
                conn.execute(table.insert().values(**rows[table.name]))
            if version is not None:
                conn.execute(
                    text(
                        "CREATE TABLE schema_version "
                        "(id INTEGER NOT NULL PRIMARY KEY, version INTEGER NOT NULL)"
                    )
                )
                conn.execute(text("INSERT INTO schema_version VALUES (1, :v)"), {"v": version})
    finally:
        engine.dispose()


def _columns(insp: Inspector, table: str) -> dict[str, tuple[str, bool, str | None]]:
    """``table``'s columns by name: (type, nullable, server default)."""
    cols = insp.get_columns(table)
    return {c["name"]: (str(c["type"]), c["nullable"], c["default"]) for c in cols}


def _predictor_columns(url: str) -> dict[str, tuple[str, bool, str | None]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return _columns(inspect(conn), "predictors")
    finally:
        engine.dispose()


def _schema(url: str) -> dict[str, Any]:
    """Everything about the catalog's tables that an upgrade must get right."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            return {
                name: {
                    "columns": _columns(insp, name),
                    "pk": insp.get_pk_constraint(name)["constrained_columns"],
                    "unique": sorted(
                        tuple(u["column_names"]) for u in insp.get_unique_constraints(name)
                    ),
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                        for i in insp.get_indexes(name)
                        # PostgreSQL reports a unique constraint's index here too.
                        if not i.get("duplicates_constraint")
                    ),
                }
                for name in sorted(insp.get_table_names())
            }
    finally:
        engine.dispose()


def _assert_v1_rows_survived(cat: Catalog) -> None:
    rec = cat.get_predictor("home_rentals")
    for field, value in V1_PREDICTOR.items():
        assert getattr(rec, field) == value, field
    assert rec.kind == "external"
    assert (rec.task, rec.version, rec.deployment) == (None, None, None)

    [job] = cat.list_jobs("home_rentals")
    for field, value in V1_JOB.items():
        assert getattr(job, field) == value, field

    [ds] = cat.list_datasources()
    assert (ds.name, ds.engine, ds.parameters, ds.created_at) == tuple(V1_DATASOURCE.values())


def _assert_builtin_models_fit(cat: Catalog) -> None:
    builtin = PredictorSpec(name="sentiment", kind="builtin", task="text_classification")
    rec = cat.add_predictor(builtin, status="generating")
    assert rec.url_predict is None and cat.get_predictor("sentiment").url_predict is None
    deployed = cat.set_predictor_deployment(
        "sentiment", url_predict="http://serve/sentiment", deployment="sentiment_v1", version=1
    )
    assert (deployed.deployment, deployed.version) == ("sentiment_v1", 1)
    _assert_versions_fit(cat, "sentiment", first=2)  # past the version deployed above


def _table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _assert_versions_fit(cat: Catalog, model: str, *, first: int) -> None:
    """The model_versions table works: ``model`` (built-in) gets versions ``first`` and
    ``first + 1``, the first of which becomes active."""
    assert cat.list_versions(model) == []
    added = cat.add_version(
        model, task="text_classification", training_datasource="MyDB",
        training_query="SELECT 1", options={"epochs": 2},
    )  # fmt: skip
    assert (added.version, added.status, added.active) == (first, "generating", False)
    url = f"http://serve/{model}/v{first}"
    cat.update_version(model, first, status="complete", url_predict=url, metrics={"f1": 0.9})
    activated = cat.activate_version(model, first)
    assert (activated.version, activated.url_predict, activated.status) == (first, url, "complete")
    second = cat.add_version(
        model, task="text_classification", training_datasource=None, training_query=None,
        options={},
    )  # fmt: skip
    assert second.version == first + 1
    shown = [(v.version, v.active, v.training_datasource) for v in cat.list_versions(model)]
    assert shown == [(first, True, "mydb"), (first + 1, False, None)]


def test_v1_catalog_upgrades_in_place(url: str) -> None:
    _make_old_catalog(url)
    assert _predictor_columns(url)["url_predict"][1] is False  # NOT NULL in version 1

    cat = Catalog(url)
    try:
        assert cat.schema_version == migrations.SCHEMA_VERSION == 7
        _assert_v1_rows_survived(cat)
        _assert_builtin_models_fit(cat)
        # The name is still unique after the upgrade (SQLite rebuilt the table).
        with pytest.raises(GatewayError, match="already exists"):
            cat.add_predictor(
                PredictorSpec(name="HOME_RENTALS", url_predict="http://x"), status="complete"
            )
    finally:
        cat.close()

    assert "model_versions" in _table_names(url)
    columns = _predictor_columns(url)
    assert columns["url_predict"][1] is True
    assert {"kind", "task", "version", "deployment"} <= set(columns)
    assert columns["kind"][1] is False and "external" in (columns["kind"][2] or "")

    # Reopening does nothing more.
    again = Catalog(url)
    try:
        assert again.schema_version == 7
        assert [p.name for p in again.list_predictors()] == ["home_rentals", "sentiment"]
    finally:
        again.close()


def test_upgraded_schema_matches_fresh_catalog(url: str, tmp_path: Path) -> None:
    _make_old_catalog(url)
    Catalog(url).close()
    upgraded = _schema(url)

    # A fresh catalog of the same kind of database, for comparison.
    if url.startswith("sqlite"):
        fresh_url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    else:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        fresh_url = url
    Catalog(fresh_url).close()
    assert upgraded == _schema(fresh_url)


def test_unversioned_catalog_upgrades_to_current(url: str) -> None:
    # Before versioning, and from before training jobs were kept: step 0 -> 1 adds the
    # table, step 1 -> 2 upgrades predictors.
    _make_old_catalog(url, version=None, tables=("datasources", "predictors"))
    engine = create_engine(url)
    with engine.connect() as conn:
        assert migrations.read_version(conn) == 0
    engine.dispose()

    cat = Catalog(url)
    try:
        assert cat.schema_version == 7
        rec = cat.get_predictor("home_rentals")
        assert rec.kind == "external" and rec.url_predict == V1_PREDICTOR["url_predict"]
        assert cat.list_jobs() == []
        assert cat.start_job("home_rentals").status == "running"  # training_jobs exists
        _assert_builtin_models_fit(cat)  # model_versions exists too
    finally:
        cat.close()


def test_replicas_starting_together_upgrade_once(url: str) -> None:
    _make_old_catalog(url)
    errors: list[BaseException] = []
    versions: list[int] = []

    def start() -> None:
        try:
            cat = Catalog(url)
            try:
                versions.append(cat.schema_version)
            finally:
                cat.close()
        except BaseException as exc:  # surfaced below; a thread would swallow it
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and versions == [migrations.SCHEMA_VERSION] * 4

    cat = Catalog(url)
    try:
        _assert_v1_rows_survived(cat)
    finally:
        cat.close()


def test_sqlite_upgrade_refuses_to_drop_unknown_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    _make_old_catalog(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE predictors ADD COLUMN owner VARCHAR(64)"))
        conn.execute(text("UPDATE predictors SET owner = 'me'"))
    engine.dispose()

    with pytest.raises(GatewayError, match=r"predictors: it has columns .* \(owner\)"):
        Catalog(url)

    # Nothing changed: still version 1, the row and its extra column intact.
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert migrations.read_version(conn) == 1
            row = conn.execute(text("SELECT name, owner FROM predictors")).one()
            assert tuple(row) == ("home_rentals", "me")
            assert "kind" not in {c["name"] for c in inspect(conn).get_columns("predictors")}
    finally:
        engine.dispose()


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_upgrade_step_is_idempotent(url: str, step: int) -> None:
    Catalog(url).close()
    before = _schema(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            migrations.UPGRADES[step](conn)  # already applied: changes nothing
    finally:
        engine.dispose()
    assert _schema(url) == before
    cat = Catalog(url)
    try:
        assert [p.name for p in cat.list_projects()] == ["mindsdb"]
    finally:
        cat.close()


# -- version 2 -> 3: projects ----------------------------------------------------------------


def _make_v2_catalog(url: str, namespaces: dict[str, str]) -> None:
    """A version-2 catalog (the version-1 one upgraded by the steps of that time) with one
    more predictor per ``name: namespace``: what ``POST /api/predictors`` could store."""
    _make_old_catalog(url)
    engine = create_engine(url)
    try:
        assert migrations.migrate(engine, target=2) == 2
        predictors = migrations._V2_PREDICTORS
        with engine.begin() as conn:
            for name, namespace in namespaces.items():
                row = {**V1_PREDICTOR, "name": name, "namespace": namespace, "kind": "external"}
                conn.execute(predictors.insert().values(**row))
            assert "projects" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_v2_catalog_gets_projects(url: str) -> None:
    _make_v2_catalog(url, {"a": "model", "b": "MODELS", "c": "", "d": "Sales", "e": "sales"})

    cat = Catalog(url)
    try:
        assert cat.schema_version == 7
        _assert_v1_rows_survived(cat)
        # mindsdb's other names became mindsdb; any other namespace became a project
        namespaces = {p.name: p.namespace for p in cat.list_predictors()}
        assert namespaces == {
            "home_rentals": "mindsdb", "a": "mindsdb", "b": "mindsdb", "c": "mindsdb",
            "d": "sales", "e": "sales",
        }  # fmt: skip
        projects = cat.list_projects()
        assert [p.name for p in projects] == ["mindsdb", "sales"]
        assert all(p.created_at.tzinfo is not None for p in projects)
    finally:
        cat.close()


def test_fresh_catalog_has_the_default_project(url: str) -> None:
    cat = Catalog(url)
    try:
        [project] = cat.list_projects()
        assert project.name == "mindsdb"
        assert cat.find_project("MODELS") == project  # another name of mindsdb
    finally:
        cat.close()


# -- version 3 -> 4: model versions ----------------------------------------------------------


def _make_v3_catalog(url: str) -> None:
    """A version-3 catalog (the version-1 one upgraded by the steps of that time) with a
    built-in model deployed as version 2: ``set_predictor_deployment`` could record one
    before versions had a table."""
    _make_old_catalog(url)
    engine = create_engine(url)
    try:
        assert migrations.migrate(engine, target=3) == 3
        row = {
            **V1_PREDICTOR, "name": "sentiment", "kind": "builtin", "format": "ray_serve",
            "task": "text_classification", "url_predict": "http://serve/sentiment/v2",
            "version": 2, "deployment": "byom-sentiment-v2",
        }  # fmt: skip
        with engine.begin() as conn:
            conn.execute(migrations._V2_PREDICTORS.insert().values(**row))
            assert migrations.read_version(conn) == 3
            assert "model_versions" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_v3_catalog_gets_model_versions(url: str) -> None:
    _make_v3_catalog(url)

    cat = Catalog(url)
    try:
        assert cat.schema_version == 7
        _assert_v1_rows_survived(cat)
        assert cat.list_versions() == []
        model = cat.get_predictor("sentiment")
        assert (model.version, model.deployment) == (2, "byom-sentiment-v2")
        # Version 2 is serving already: the first version with a row is 3.
        _assert_versions_fit(cat, "sentiment", first=3)
    finally:
        cat.close()
    assert "model_versions" in _table_names(url)


def test_v3_upgrade_matches_fresh_catalog(url: str, tmp_path: Path) -> None:
    _make_v3_catalog(url)
    Catalog(url).close()
    upgraded = _schema(url)
    fresh_url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    if not url.startswith("sqlite"):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        fresh_url = url
    Catalog(fresh_url).close()
    assert upgraded["model_versions"] == _schema(fresh_url)["model_versions"]
    assert upgraded["model_versions"]["unique"] == [("predictor", "version")]


# -- version 4 -> 5: replicas (job owners and heartbeats, queries, sessions) -----------------


def _make_v4_catalog(url: str) -> None:
    """A version-4 catalog (the version-1 one upgraded by the steps of that time) with one
    more training job still running: a gateway of that version stopped while it trained."""
    _make_old_catalog(url)
    engine = create_engine(url)
    try:
        assert migrations.migrate(engine, target=4) == 4
        running = {**V1_JOB, "status": "running", "finished_at": None, "rows": None}
        with engine.begin() as conn:
            conn.execute(migrations.V1_METADATA.tables["training_jobs"].insert().values(**running))
            assert migrations.read_version(conn) == 4
            columns = {c["name"] for c in inspect(conn).get_columns("training_jobs")}
            assert "owner" not in columns and "heartbeat_at" not in columns
            assert not {"queries", "sessions"} & set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_v4_catalog_gets_owners_queries_and_sessions(url: str) -> None:
    _make_v4_catalog(url)

    cat = Catalog(url, owner="host:1:abcd")
    try:
        assert cat.schema_version == 7
        # the old jobs survived, owned by nobody, never beaten
        done, running = cat.list_jobs("home_rentals")
        for field, value in V1_JOB.items():
            assert getattr(done, field) == value, field
        assert (running.status, running.owner, running.heartbeat_at) == ("running", None, None)
        # new jobs are owned; an unowned running one counts as lost
        mine = cat.start_job("home_rentals")
        assert (mine.owner, mine.heartbeat_at) == ("host:1:abcd", None)
        assert cat.running_owners() == {None, "host:1:abcd"}
        assert cat.fail_lost(unowned=True, alive="host:1:abcd") == ["home_rentals"]
        jobs = {j.id: j for j in cat.list_jobs()}
        assert jobs[running.id].status == "error" and jobs[mine.id].status == "running"
        # the new tables work
        saved = cat.save_session("s1", datasource="mydb", project=None, variables={"a": 1})
        assert cat.load_session("s1", used_since=CREATED) == saved
        assert cat.list_queries() == [] and cat.find_query("q1") is None
    finally:
        cat.close()
    assert {"queries", "sessions"} <= _table_names(url)


def test_v4_upgrade_matches_fresh_catalog(url: str, tmp_path: Path) -> None:
    _make_v4_catalog(url)
    Catalog(url).close()
    upgraded = _schema(url)
    fresh_url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    if not url.startswith("sqlite"):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        fresh_url = url
    Catalog(fresh_url).close()
    fresh = _schema(fresh_url)
    for name in ("training_jobs", "queries", "sessions"):
        assert upgraded[name] == fresh[name], name
    assert upgraded["training_jobs"]["indexes"] == [
        ("ix_training_jobs_predictor", ("predictor",), False)
    ]


# -- version 6 -> 7: datasource secrets encrypted --------------------------------------------


def _make_v6_catalog(url: str, parameters: dict[str, Any]) -> None:
    """A version-6 catalog (the version-1 one upgraded by the steps of that time) with a
    PostgreSQL datasource ``pg`` whose password is stored in plain text, as before v7."""
    _make_old_catalog(url)
    engine = create_engine(url)
    try:
        assert migrations.migrate(engine, target=6) == 6
        row = {**V1_DATASOURCE, "name": "pg", "engine": "postgres", "parameters": parameters}
        with engine.begin() as conn:
            conn.execute(migrations.V1_METADATA.tables["datasources"].insert().values(**row))
    finally:
        engine.dispose()


def _stored_parameters(url: str) -> str:
    """The datasources' parameters as the database holds them, as text."""
    engine = create_engine(url)
    cast = "parameters" if url.startswith("sqlite") else "parameters::text"
    try:
        with engine.connect() as conn:
            return " ".join(conn.execute(text(f"SELECT {cast} FROM datasources")).scalars())
    finally:
        engine.dispose()


def _file_bytes(url: str) -> bytes:
    """The SQLite catalog file and its -wal file, as they are on disk now."""
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


@pytest.mark.postgres
def test_v6_catalog_gets_its_secrets_encrypted(url: str, pg_role: dict[str, Any]) -> None:
    from catalog.secrets import SecretBox
    from datasources import open_datasource

    password = pg_role["password"]
    _make_v6_catalog(url, pg_role)
    assert password in _stored_parameters(url)  # the plain text an older gateway left

    cat = Catalog(url)
    try:
        assert cat.schema_version == 7
        assert password not in _stored_parameters(url)
        if url.startswith("sqlite"):  # checkpointed: not in the file, even while open
            assert password.encode() not in _file_bytes(url)
        listed = {d.name: d for d in cat.list_datasources()}
        assert listed["pg"].parameters["password"]["$enc"] == "fernet:v1"
        assert listed["pg"].public_parameters()["password"] == "******"
        assert listed["mydb"].parameters == V1_DATASOURCE["parameters"]  # no secrets: as is
        record = cat.get_datasource("pg")
        assert record.parameters == pg_role  # decrypted to connect ...
        datasource = open_datasource(record)
        try:
            datasource.check()  # ... and it does
        finally:
            datasource.close()
    finally:
        cat.close()
    if url.startswith("sqlite"):
        assert password.encode() not in _file_bytes(url)

    # Another key cannot read it: a clear error naming the datasource, not a traceback.
    other = Catalog(url, secrets=SecretBox(key=Fernet.generate_key()))
    try:
        assert other.schema_version == 7
        assert [d.name for d in other.list_datasources()] == ["mydb", "pg"]  # listing works
        with pytest.raises(GatewayError) as info:
            other.get_datasource("pg")
        assert info.value.code == "SECRET_KEY_MISMATCH"
        assert "datasource 'pg'" in info.value.message and "BYOM_SECRET_KEY" in info.value.message
    finally:
        other.close()


def test_v7_step_leaves_sealed_secrets_alone(url: str) -> None:
    # A value sealed already (say, by a replica that upgraded first) is not sealed again.
    _make_v6_catalog(url, {"host": "db", "user": "u", "database": "d", "password": "pw-1"})
    Catalog(url).close()
    sealed = _stored_parameters(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            migrations.UPGRADES[6](conn)
    finally:
        engine.dispose()
    assert _stored_parameters(url) == sealed and "pw-1" not in sealed
