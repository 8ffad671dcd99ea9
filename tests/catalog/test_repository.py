"""The catalog on SQLite (a file under tmp_path) and on PostgreSQL (a dedicated database)."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from byom.errors import (
    DatasourceExists,
    DatasourceNotFound,
    GatewayError,
    InvalidOption,
    ModelExists,
    ModelNotFound,
    NotFound,
    UserError,
)
from catalog import db, migrations
from catalog.db import catalog_url, default_home, make_engine
from catalog.records import (
    MASK,
    MODEL_KINDS,
    DatasourceRecord,
    PredictorRecord,
    PredictorSpec,
    TrainingJobRecord,
)
from catalog.repository import INTERRUPTED_MESSAGE, Catalog
from catalog.tables import PredictorRow


def _spec(name: str, **over: Any) -> PredictorSpec:
    fields: dict[str, Any] = {
        "name": name,
        "namespace": "mindsdb",
        "format": "ray_serve",
        "url_predict": "http://127.0.0.1:8000/predict",
        "url_train": "http://127.0.0.1:8000/train",
        "dtype_dict": {"number_of_rooms": "integer", "initial_price": "float"},
        "target": "rental_price",
        "training_datasource": "mydb",
        "training_query": "SELECT * FROM test_data.home_rentals",
        "options": {"batch_size": 100, "nested": {"a": [1, 2]}},
    }
    fields.update(over)
    return PredictorSpec(**fields)


def _predictor(catalog: Catalog, name: str, status: str = "complete", **over: Any) -> Any:
    return catalog.add_predictor(_spec(name, **over), status=status)


def _builtin(catalog: Catalog, name: str, status: str = "complete") -> PredictorRecord:
    spec = PredictorSpec(
        name=name, kind="builtin", task="text_classification", dtype_dict={"text": "str"}
    )
    return catalog.add_predictor(spec, status=status)


def _set_version(url: str, version: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": version})
    engine.dispose()


# -- schema --------------------------------------------------------------------------------


def test_fresh_catalog_records_current_version(catalog: Catalog, url: str) -> None:
    assert catalog.schema_version == migrations.SCHEMA_VERSION
    engine = create_engine(url)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        rows = conn.execute(text("SELECT version FROM schema_version")).all()
    engine.dispose()
    assert {"datasources", "predictors", "training_jobs", "schema_version"} <= tables
    assert rows == [(migrations.SCHEMA_VERSION,)]


def test_restart_keeps_everything(url: str) -> None:
    first = Catalog(url)
    first.add_datasource("mydb", "sqlite", {"path": "/data/my.db"})
    _predictor(first, "byom")
    first.close()

    second = Catalog(url)
    try:
        assert second.get_predictor("byom").url_predict == "http://127.0.0.1:8000/predict"
        assert [d.name for d in second.list_datasources()] == ["mydb"]
        assert second.schema_version == migrations.SCHEMA_VERSION
    finally:
        second.close()


def test_old_version_runs_upgrade_steps(url: str) -> None:
    Catalog(url).close()
    # Pretend this catalog predates versioning and lost a table: step 0 -> 1 restores it.
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE training_jobs"))
    engine.dispose()
    _set_version(url, 0)

    cat = Catalog(url)
    try:
        # Every step runs again; the later ones find their changes already made.
        assert cat.schema_version == migrations.SCHEMA_VERSION
        _predictor(cat, "byom")
        assert cat.start_job("byom").status == "running"  # training_jobs is back
    finally:
        cat.close()


def test_upgrade_steps_run_in_order_once(url: str) -> None:
    Catalog(url).close()
    current = migrations.SCHEMA_VERSION
    calls: list[int] = []

    def add_owner(conn: Any) -> None:
        calls.append(1)
        conn.execute(text("ALTER TABLE datasources ADD COLUMN owner VARCHAR(64)"))

    def set_owner(conn: Any) -> None:
        calls.append(2)
        conn.execute(text("UPDATE datasources SET owner = 'me'"))  # needs step 1's column

    engine = make_engine(url)
    try:
        steps = [*migrations.UPGRADES, add_owner, set_owner]
        assert migrations.migrate(engine, target=current + 2, steps=steps) == current + 2
        assert calls == [1, 2]
        assert migrations.migrate(engine, target=current + 2, steps=steps) == current + 2
        assert calls == [1, 2]  # nothing re-runs on an up-to-date catalog
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("datasources")}
        assert "owner" in columns
    finally:
        engine.dispose()

    # This code only knows the current version: a newer catalog is refused, not touched.
    with pytest.raises(GatewayError) as info:
        Catalog(url)
    assert not isinstance(info.value, UserError)
    assert f"schema version {current + 2}" in info.value.message
    assert f"newer than this gateway supports ({current})" in info.value.message


def test_failed_upgrade_step_keeps_last_good_version(url: str) -> None:
    Catalog(url).close()
    current = migrations.SCHEMA_VERSION

    def broken(conn: Any) -> None:
        conn.execute(text("ALTER TABLE predictors ADD COLUMN half_done INTEGER"))
        raise RuntimeError("step failed")

    engine = make_engine(url)
    try:
        with pytest.raises(RuntimeError):
            migrations.migrate(engine, target=current + 1, steps=[*migrations.UPGRADES, broken])
        with engine.connect() as conn:
            assert migrations.read_version(conn) == current
            columns = {c["name"] for c in inspect(conn).get_columns("predictors")}
        assert "half_done" not in columns  # the step's DDL was rolled back with it
    finally:
        engine.dispose()


def test_newer_catalog_is_refused(url: str) -> None:
    Catalog(url).close()
    _set_version(url, 99)
    with pytest.raises(GatewayError, match=r"schema version 99, newer than this gateway"):
        Catalog(url)


@pytest.mark.postgres
def test_password_not_in_newer_catalog_message(pg_catalog_clean_url: str) -> None:
    Catalog(pg_catalog_clean_url).close()
    _set_version(pg_catalog_clean_url, 99)
    with pytest.raises(GatewayError) as info:
        Catalog(pg_catalog_clean_url)
    password = create_engine(pg_catalog_clean_url).url.password
    assert ":***@" in info.value.message
    assert f":{password}@" not in info.value.message


# -- datasources ---------------------------------------------------------------------------


def test_datasource_round_trip_is_case_insensitive(catalog: Catalog) -> None:
    params = {"host": "db.example", "port": 5432, "user": "u", "password": "hunter2"}
    added = catalog.add_datasource("MyDB", "postgres", params)
    assert isinstance(added, DatasourceRecord)
    assert added.name == "mydb"
    assert added.created_at.tzinfo is not None and added.created_at.utcoffset().total_seconds() == 0

    got = catalog.get_datasource("MYDB")
    assert got == added
    assert got.parameters["password"] == "hunter2"  # kept: needed to connect
    assert got.public_parameters()["password"] == MASK
    assert got.public_parameters()["host"] == "db.example"

    with pytest.raises(DatasourceExists, match="Datasource 'mydb' already exists"):
        catalog.add_datasource("mydb", "sqlite", {"path": "/x.db"})

    catalog.add_datasource("another", "sqlite", {"path": "/x.db"})
    assert [d.name for d in catalog.list_datasources()] == ["another", "mydb"]

    catalog.drop_datasource("MyDb")
    with pytest.raises(DatasourceNotFound):
        catalog.drop_datasource("mydb")
    assert [d.name for d in catalog.list_datasources()] == ["another"]


def test_datasource_not_found_suggests(catalog: Catalog) -> None:
    catalog.add_datasource("mydb", "sqlite", {"path": "/x.db"})
    with pytest.raises(DatasourceNotFound) as info:
        catalog.get_datasource("mydbb")
    assert info.value.message == (
        "Datasource 'mydbb' not found. Did you mean mydb? See SHOW DATABASES."
    )
    assert info.value.status == 404
    assert info.value.to_dict()["error"]["suggestion"] == "mydb"

    with pytest.raises(DatasourceNotFound) as info:
        catalog.get_datasource("zzzzzz")
    assert info.value.message == "Datasource 'zzzzzz' not found. See SHOW DATABASES."


# -- predictors ----------------------------------------------------------------------------


def test_predictor_round_trip(catalog: Catalog) -> None:
    added = _predictor(catalog, "Byom", status="training")
    assert isinstance(added, PredictorRecord) and dataclasses.is_dataclass(added)
    got = catalog.get_predictor("BYOM")
    assert got == added
    assert got.name == "byom" and got.namespace == "mindsdb"
    assert got.dtype_dict == {"number_of_rooms": "integer", "initial_price": "float"}
    assert got.options == {"batch_size": 100, "nested": {"a": [1, 2]}}
    assert got.training_datasource == "mydb" and got.target == "rental_price"
    assert got.status == "training" and got.error is None
    assert got.created_at.tzinfo is not None and got.created_at == got.updated_at

    assert catalog.find_predictor("byom") == got
    assert catalog.find_predictor("nothing") is None

    with pytest.raises(ModelExists, match="Model 'byom' already exists"):
        _predictor(catalog, "BYOM")


def test_predict_only_predictor(catalog: Catalog) -> None:
    rec = _predictor(
        catalog,
        "byom2",
        namespace="",
        format="mlflow",
        url_train=None,
        target=None,
        training_datasource=None,
        training_query=None,
        options={},
    )
    assert rec.namespace == "" and rec.url_train is None and rec.training_query is None
    assert catalog.get_predictor("byom2").format == "mlflow"


def test_spec_defaults_and_record_spec(catalog: Catalog) -> None:
    spec = PredictorSpec(name="Minimal", url_predict="http://m/predict")
    assert (spec.namespace, spec.kind, spec.format) == ("mindsdb", "external", "ray_serve")
    assert spec.dtype_dict == {} and spec.options == {} and spec.task is None
    rec = catalog.add_predictor(spec, status="complete")
    assert (rec.kind, rec.version, rec.deployment, rec.error) == ("external", None, None, None)
    # The stored spec is the declared one, names normalised.
    assert rec.spec == dataclasses.replace(spec, name="minimal")
    assert type(rec.spec) is PredictorSpec

    full = _spec("Full", namespace="MindsDB", training_datasource="MyDB", task=None)
    got = catalog.add_predictor(full, status="training").spec
    assert got == dataclasses.replace(
        full, name="full", namespace="mindsdb", training_datasource="mydb"
    )


def test_record_fields_are_predictor_columns() -> None:
    columns = set(PredictorRow.__table__.columns.keys())
    assert {f.name for f in dataclasses.fields(PredictorRecord)} <= columns
    assert MODEL_KINDS == ("external", "builtin")


def test_builtin_predictor_and_deployment(catalog: Catalog) -> None:
    added = _builtin(catalog, "Sentiment", status="generating")
    assert added.kind == "builtin" and added.task == "text_classification"
    assert added.url_predict is None and added.deployment is None and added.version is None
    assert catalog.get_predictor("sentiment") == added

    deployed = catalog.set_predictor_deployment(
        "SENTIMENT",
        url_predict="http://127.0.0.1:8000/sentiment_v1",
        deployment="sentiment_v1",
        version=1,
    )
    assert (deployed.url_predict, deployed.deployment, deployed.version) == (
        "http://127.0.0.1:8000/sentiment_v1",
        "sentiment_v1",
        1,
    )
    assert deployed.updated_at >= added.updated_at and deployed.created_at == added.created_at
    assert deployed.status == "generating" and deployed.spec.task == "text_classification"
    assert catalog.get_predictor("sentiment") == deployed

    undeployed = catalog.set_predictor_deployment(
        "sentiment", url_predict=None, deployment=None, version=None
    )
    assert (undeployed.url_predict, undeployed.deployment, undeployed.version) == (None,) * 3

    with pytest.raises(ModelNotFound):
        catalog.set_predictor_deployment("nope", url_predict=None, deployment=None, version=1)
    _predictor(catalog, "ext")
    with pytest.raises(InvalidOption, match="'ext' is external, not built-in"):
        catalog.set_predictor_deployment("ext", url_predict="http://x", deployment="d", version=1)
    assert catalog.get_predictor("ext").deployment is None


def test_add_predictor_validates_spec(catalog: Catalog) -> None:
    with pytest.raises(InvalidOption, match=r"Unknown model kind 'native'.*'external', 'builtin'"):
        _predictor(catalog, "a", kind="native")
    with pytest.raises(InvalidOption, match="'b' is external and needs url_predict"):
        _predictor(catalog, "B", url_predict=None)
    with pytest.raises(InvalidOption, match="Unknown predictor status"):
        _builtin(catalog, "c", status="deployed")
    assert catalog.list_predictors() == []


def test_predictor_not_found_suggests(catalog: Catalog) -> None:
    _predictor(catalog, "home_rentals_model")
    with pytest.raises(ModelNotFound) as info:
        catalog.get_predictor("home_rental_model")
    assert info.value.message == (
        "Model 'home_rental_model' not found. Did you mean home_rentals_model? See SHOW MODELS."
    )
    with pytest.raises(ModelNotFound):
        catalog.drop_predictor("nope")
    with pytest.raises(ModelNotFound):
        catalog.set_predictor_status("nope", "complete")


def test_list_and_drop_predictors(catalog: Catalog) -> None:
    for name in ("zeta", "alpha", "mid"):
        _predictor(catalog, name)
    assert [p.name for p in catalog.list_predictors()] == ["alpha", "mid", "zeta"]
    catalog.drop_predictor("MID")
    assert [p.name for p in catalog.list_predictors()] == ["alpha", "zeta"]


def test_set_predictor_status(catalog: Catalog) -> None:
    added = _predictor(catalog, "byom", status="generating")
    failed = catalog.set_predictor_status("BYOM", "error", error="endpoint said 500")
    assert failed.status == "error" and failed.error == "endpoint said 500"
    assert failed.updated_at >= added.updated_at and failed.created_at == added.created_at
    done = catalog.set_predictor_status("byom", "complete")
    assert done.error is None  # cleared
    assert catalog.get_predictor("byom").status == "complete"
    with pytest.raises(InvalidOption, match="Unknown predictor status 'finished'"):
        catalog.set_predictor_status("byom", "finished")
    with pytest.raises(InvalidOption):
        _predictor(catalog, "other", status="bogus")


# -- training jobs -------------------------------------------------------------------------


def test_training_jobs(catalog: Catalog) -> None:
    _predictor(catalog, "a", status="training")
    _predictor(catalog, "b", status="training")
    job = catalog.start_job("A", extra={"attempt": 1})
    assert isinstance(job, TrainingJobRecord)
    assert (job.predictor, job.status, job.finished_at, job.extra) == (
        "a",
        "running",
        None,
        {"attempt": 1},
    )
    other = catalog.start_job("b")

    done = catalog.finish_job(job.id, "complete", rows=25, extra={"loss": 0.5})
    assert done.status == "complete" and done.rows == 25 and done.error is None
    assert done.finished_at is not None and done.finished_at >= done.started_at
    assert done.finished_at.tzinfo is not None
    assert done.extra == {"attempt": 1, "loss": 0.5}

    failed = catalog.finish_job(other.id, "error", error="bad rows")
    assert failed.error == "bad rows"

    assert [j.id for j in catalog.list_jobs()] == [job.id, other.id]
    assert [j.id for j in catalog.list_jobs("B")] == [other.id]

    with pytest.raises(ModelNotFound):
        catalog.start_job("nobody")
    with pytest.raises(InvalidOption):
        catalog.finish_job(job.id, "running")
    with pytest.raises(InvalidOption):
        catalog.finish_job(job.id, "done")
    with pytest.raises(NotFound) as info:
        catalog.finish_job(10_000, "complete")
    assert info.value.code == "JOB_NOT_FOUND"

    # A predictor dropped and created again starts without the old one's history.
    catalog.drop_predictor("a")
    assert [j.id for j in catalog.list_jobs("a")] == []
    assert [j.id for j in catalog.list_jobs()] == [other.id]


def test_fail_interrupted(catalog: Catalog) -> None:
    _predictor(catalog, "training_one", status="training")
    _predictor(catalog, "generating_one", status="generating")
    _predictor(catalog, "done_one", status="complete")
    running = catalog.start_job("training_one")
    finished = catalog.finish_job(catalog.start_job("done_one").id, "complete", rows=3)

    assert catalog.fail_interrupted() == ["generating_one", "training_one"]

    for name in ("training_one", "generating_one"):
        rec = catalog.get_predictor(name)
        assert rec.status == "error" and rec.error == INTERRUPTED_MESSAGE
    assert catalog.get_predictor("done_one").status == "complete"

    jobs = {j.id: j for j in catalog.list_jobs()}
    assert jobs[running.id].status == "error"
    assert jobs[running.id].error == INTERRUPTED_MESSAGE
    assert jobs[running.id].finished_at is not None
    assert jobs[finished.id] == finished  # untouched

    assert catalog.fail_interrupted() == []  # nothing left running


def test_fail_interrupted_custom_message(catalog: Catalog) -> None:
    _predictor(catalog, "x", status="training")
    assert catalog.fail_interrupted("stopped") == ["x"]
    assert catalog.get_predictor("x").error == "stopped"


def test_concurrent_use_from_threads(catalog: Catalog) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(8):
                name = f"p{worker}_{i}"
                _predictor(catalog, name, status="training")
                job = catalog.start_job(name)
                catalog.finish_job(job.id, "complete", rows=i)
                catalog.set_predictor_status(name, "complete")
        except BaseException as exc:  # surfaced below; a thread would swallow it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(catalog.list_predictors()) == 32
    assert {p.status for p in catalog.list_predictors()} == {"complete"}
    assert len({j.id for j in catalog.list_jobs()}) == 32


# -- where the catalog lives ---------------------------------------------------------------


def test_open_uses_byom_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYOM_CATALOG_URL", raising=False)
    monkeypatch.setenv("BYOM_HOME", str(tmp_path / "home"))
    assert default_home() == tmp_path / "home"
    cat = Catalog.open()
    try:
        cat.add_datasource("mydb", "sqlite", {"path": "/x.db"})
    finally:
        cat.close()
    assert (tmp_path / "home" / "catalog.sqlite").is_file()

    explicit = Catalog.open(tmp_path / "other")
    try:
        assert explicit.list_datasources() == []
    finally:
        explicit.close()
    assert (tmp_path / "other" / "catalog.sqlite").is_file()


def test_default_home_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYOM_HOME", raising=False)
    assert default_home() == Path.home() / ".byom"


def test_catalog_url_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYOM_CATALOG_URL", raising=False)
    assert catalog_url(tmp_path) == f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    monkeypatch.setenv("BYOM_CATALOG_URL", "postgresql+psycopg2://u:p@h/db")
    assert catalog_url(tmp_path) == "postgresql+psycopg2://u:p@h/db"


def test_sqlite_catalog_uses_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'c.sqlite'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()


def test_switching_to_wal_waits_for_a_writer(tmp_path: Path) -> None:
    """An old catalog (rollback journal) that another connection is writing (another
    gateway upgrading it): switching it to WAL needs the file to itself, and SQLite answers
    "database is locked" at once instead of waiting for that."""
    path = tmp_path / "old.sqlite"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (a INTEGER)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")  # a reserved lock until COMMIT
    threading.Timer(0.3, lambda: writer.execute("COMMIT")).start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT a FROM t").all() == [(1,)]
    finally:
        engine.dispose()
        writer.close()


def test_sqlite_reads_do_not_wait_for_a_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the catalog's write lock (a long write, another gateway's
    DDL): reads answer from the last committed state; writes wait for the lock as
    before and, past the busy timeout, answer CATALOG_UNAVAILABLE with nothing changed."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_S", 1)  # a stuck write fails in 1 s, not 30
    path = tmp_path / "catalog.sqlite"
    cat = Catalog(f"sqlite:///{path}")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        cat.add_datasource("mydb", "sqlite", {"path": "/x.db"})
        made = _predictor(cat, "m")
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE predictors SET status = 'error' WHERE name = 'm'")
        assert cat.get_datasource("mydb").parameters == {"path": "/x.db"}
        assert cat.get_predictor("m") == made  # the uncommitted update is not seen
        assert [p.name for p in cat.list_predictors()] == ["m"]
        assert [p.name for p in cat.list_projects()] == ["mindsdb"]
        assert cat.list_versions("m") == [] and cat.list_queries() == []
        assert cat.running_owners() == set() and not cat.tokens_exist()
        with pytest.raises(GatewayError) as info:
            cat.add_project("sales")
        assert info.value.code == "CATALOG_UNAVAILABLE" and "locked" in info.value.message
        writer.execute("COMMIT")
        assert cat.get_predictor("m").status == "error"
        assert cat.find_project("sales") is None
    finally:
        writer.close()
        cat.close()


def test_in_memory_catalog(tmp_path: Path) -> None:
    cat = Catalog("sqlite://")
    try:
        _predictor(cat, "m")
        assert cat.get_predictor("m").created_at.tzinfo == UTC
    finally:
        cat.close()


# -- projects -----------------------------------------------------------------------------


def test_projects_round_trip(catalog: Catalog) -> None:
    assert [p.name for p in catalog.list_projects()] == ["mindsdb"]
    made = catalog.add_project("  Sales ")
    assert made.name == "sales" and made.created_at.tzinfo is not None
    assert catalog.find_project("SALES") == made
    assert catalog.find_project("model") == catalog.find_project("mindsdb") is not None
    assert catalog.find_project("nope") is None
    for taken in ("sales", "mindsdb", "Models"):
        with pytest.raises(GatewayError) as info:
            catalog.add_project(taken)
        assert info.value.code == "PROJECT_EXISTS" and info.value.status == 409
    assert [p.name for p in catalog.list_projects()] == ["mindsdb", "sales"]


def test_drop_project_refuses_the_default_and_one_with_models(catalog: Catalog) -> None:
    catalog.add_project("sales")
    _predictor(catalog, "b", namespace="sales")
    _predictor(catalog, "a", namespace="sales")
    with pytest.raises(UserError) as info:
        catalog.drop_project("Sales")
    assert info.value.code == "PROJECT_NOT_EMPTY"
    assert "sales.a, sales.b" in info.value.message and info.value.details["models"] == ["a", "b"]
    with pytest.raises(UserError, match="default project") as default:
        catalog.drop_project("models")
    assert default.value.code == "INVALID_INPUT"
    catalog.drop_predictor("a")
    catalog.drop_predictor("b")
    assert catalog.drop_project("sales") is True
    assert catalog.drop_project("sales") is False
    assert [p.name for p in catalog.list_projects()] == ["mindsdb"]
