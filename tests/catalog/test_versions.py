"""Model versions in the catalog, on SQLite and on PostgreSQL: numbering, updates, the active
version, and what dropping a model or restarting the gateway does to them."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from byom.errors import (
    InvalidInput,
    InvalidOption,
    ModelNotFound,
    ModelVersionNotFound,
    NotFound,
)
from catalog.records import VERSION_STATUSES, ModelVersionRecord, PredictorSpec
from catalog.repository import INTERRUPTED_MESSAGE, Catalog
from catalog.tables import ModelVersionRow


def _builtin(catalog: Catalog, name: str, status: str = "generating") -> None:
    spec = PredictorSpec(name=name, kind="builtin", task="text_classification")
    catalog.add_predictor(spec, status=status)


def _add(catalog: Catalog, name: str, **over: Any) -> ModelVersionRecord:
    args: dict[str, Any] = {
        "task": "text_classification",
        "training_datasource": "MyDB",
        "training_query": "SELECT text, label FROM reviews",
        "options": {"model_name": "minilm", "hyperparams": {"epochs": 2}, "test_size": 0.2},
    }
    args.update(over)
    return catalog.add_version(name, **args)


def _complete(catalog: Catalog, name: str, version: int) -> ModelVersionRecord:
    """Version ``version`` trained and deployed."""
    return catalog.update_version(
        name,
        version,
        status="complete",
        deployment=f"byom-{name}-v{version}",
        url_predict=f"http://serve/byom/{name}/v{version}/predict",
    )


def test_record_fields_are_version_columns() -> None:
    fields = {f.name for f in dataclasses.fields(ModelVersionRecord)}
    columns = set(ModelVersionRow.__table__.columns.keys())
    assert fields - {"active"} == columns - {"id"}


def test_versions_are_numbered_from_one(catalog: Catalog) -> None:
    _builtin(catalog, "Sentiment")
    first = _add(catalog, "SENTIMENT", job_id=7)
    assert first.predictor == "sentiment" and first.version == 1
    assert (first.status, first.task, first.job_id) == ("generating", "text_classification", 7)
    assert first.training_datasource == "mydb"  # names are stored lower-case
    assert first.training_query == "SELECT text, label FROM reviews"
    assert first.options == {"model_name": "minilm", "hyperparams": {"epochs": 2}, "test_size": 0.2}
    assert (first.progress, first.metrics, first.hyperparams) == ({}, {}, {})
    assert (first.run_id, first.model_uri, first.tracking_uri) == (None, None, None)
    assert (first.deployment, first.url_predict, first.error) == (None, None, None)
    assert first.active is False
    assert first.created_at.tzinfo is not None and first.updated_at == first.created_at

    assert [_add(catalog, "sentiment").version for _ in range(2)] == [2, 3]
    assert catalog.find_version("sentiment", 1) == first
    assert [v.version for v in catalog.list_versions("Sentiment")] == [1, 2, 3]


def test_numbers_are_not_reused(catalog: Catalog) -> None:
    _builtin(catalog, "m")
    _add(catalog, "m")
    catalog.update_version("m", 1, status="error", error="out of memory")
    assert _add(catalog, "m").version == 2  # the failed version keeps its number
    _complete(catalog, "m", 2)
    catalog.activate_version("m", 2)
    assert _add(catalog, "m").version == 3
    assert [(v.version, v.status) for v in catalog.list_versions("m")] == [
        (1, "error"),
        (2, "complete"),
        (3, "generating"),
    ]


def test_numbering_starts_past_a_version_deployed_without_a_row(catalog: Catalog) -> None:
    _builtin(catalog, "m")
    catalog.set_predictor_deployment("m", url_predict="http://x", deployment="d", version=4)
    assert _add(catalog, "m").version == 5


def test_add_version_needs_a_builtin_model(catalog: Catalog) -> None:
    with pytest.raises(ModelNotFound, match="Model 'nope' not found"):
        _add(catalog, "nope")
    spec = PredictorSpec(name="ext", url_predict="http://127.0.0.1:1/predict")
    catalog.add_predictor(spec, status="complete")
    with pytest.raises(InvalidOption, match="'ext' is external, not built-in"):
        _add(catalog, "ext")
    assert catalog.list_versions() == []


def test_add_version_retries_a_lost_race_once(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    _builtin(catalog, "m")
    insert = Catalog._insert_version
    calls: list[int] = []

    def lose_first(self: Catalog, key: str, values: dict[str, Any]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("INSERT", {}, Exception("duplicate key"))
        return insert(self, key, values)

    monkeypatch.setattr(Catalog, "_insert_version", lose_first)
    assert _add(catalog, "m").version == 1
    assert len(calls) == 2


def test_concurrent_add_version_numbers_each_once(url: str) -> None:
    setup = Catalog(url)
    _builtin(setup, "m")
    setup.close()
    errors: list[BaseException] = []
    numbers: list[int] = []

    def work() -> None:
        cat = Catalog(url)  # one catalog (connection pool) per thread, as replicas have
        try:
            for _ in range(5):
                numbers.append(_add(cat, "m").version)
        except BaseException as exc:  # surfaced below; a thread would swallow it
            errors.append(exc)
        finally:
            cat.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers) == list(range(1, 21))


def test_list_versions_by_predictor_then_number(catalog: Catalog) -> None:
    _builtin(catalog, "b")
    _builtin(catalog, "a")
    for name in ("b", "a", "b", "a", "b"):
        _add(catalog, name)
    shown = [(v.predictor, v.version) for v in catalog.list_versions()]
    assert shown == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("b", 3)]
    assert [v.version for v in catalog.list_versions("a")] == [1, 2]
    assert catalog.list_versions("nope") == []


def test_update_version_sets_the_allowed_fields(catalog: Catalog) -> None:
    _builtin(catalog, "m")
    added = _add(catalog, "m")
    progress = {"phase": "train", "percent": 40, "epoch": 1, "step": 4, "total_steps": 10}
    updated = catalog.update_version(
        "M",
        1,
        status="training",
        progress=progress,
        hyperparams={"epochs": 2, "lr": 5e-5},
        run_id="abc123",
        tracking_uri="file:///mlruns",
        job_id=9,
    )
    progress["percent"] = 99  # the caller's dict is not the stored one
    assert updated.status == "training" and updated.progress["percent"] == 40
    assert updated.hyperparams == {"epochs": 2, "lr": 5e-5}
    assert (updated.run_id, updated.tracking_uri, updated.job_id) == ("abc123", "file:///mlruns", 9)
    assert updated.updated_at > added.updated_at and updated.created_at == added.created_at
    assert catalog.get_version("m", 1) == updated

    report = {"accuracy": 0.9, "report": {"pos": {"f1": 0.91}, "neg": {"f1": 0.89}}}
    done = catalog.update_version(
        "m", 1, status="complete", metrics=report, model_uri="runs:/abc123/model", error=None
    )
    assert done.metrics == report and done.model_uri == "runs:/abc123/model"
    assert done.progress == updated.progress  # fields not given are kept
    for status in VERSION_STATUSES:
        assert catalog.update_version("m", 1, status=status).status == status


@pytest.mark.parametrize(
    "fields",
    [{"created_at": None}, {"task": "regression"}, {"active": True}, {"options": {}}, {"nope": 1}],
)
def test_update_version_refuses_other_fields(catalog: Catalog, fields: dict[str, Any]) -> None:
    _builtin(catalog, "m")
    before = _add(catalog, "m")
    with pytest.raises(ValueError, match="update_version cannot set"):
        catalog.update_version("m", 1, status="training", **fields)
    assert catalog.get_version("m", 1) == before  # nothing was set, not even the status


def test_update_version_checks_values(catalog: Catalog) -> None:
    _builtin(catalog, "m")
    before = _add(catalog, "m")
    with pytest.raises(InvalidOption, match="Unknown version status 'done'"):
        catalog.update_version("m", 1, status="done")
    with pytest.raises(ValueError, match="metrics must be a dict"):
        catalog.update_version("m", 1, metrics=[0.9])
    assert catalog.get_version("m", 1) == before
    with pytest.raises(ModelVersionNotFound, match="Model 'm' has no version 2"):
        catalog.update_version("m", 2, status="training")


def test_get_version_missing_lists_the_versions(catalog: Catalog) -> None:
    _builtin(catalog, "m")
    with pytest.raises(ModelVersionNotFound) as none_yet:
        catalog.get_version("m", 1)
    assert none_yet.value.message == "Model 'm' has no version 1. It has no versions yet."

    _add(catalog, "m")
    _add(catalog, "m")
    assert catalog.find_version("m", 3) is None
    with pytest.raises(ModelVersionNotFound) as info:
        catalog.get_version("M", 3)
    error = info.value
    assert isinstance(error, NotFound) and error.status == 404
    assert error.message == "Model 'm' has no version 3. Its versions: 1, 2."
    assert error.to_dict()["error"] == {
        "code": "MODEL_VERSION_NOT_FOUND",
        "message": error.message,
        "model": "m",
        "version": 3,
        "versions": [1, 2],
    }
    with pytest.raises(ModelNotFound, match="Model 'mm' not found. Did you mean m"):
        catalog.get_version("mm", 1)  # no such model: not a missing version


def test_activate_version_needs_a_complete_deployed_version(catalog: Catalog) -> None:
    _builtin(catalog, "m")
    _add(catalog, "m")
    catalog.update_version("m", 1, status="training")
    with pytest.raises(InvalidInput) as info:
        catalog.activate_version("m", 1)
    assert info.value.message == (
        "Model 'm' version 1 is training; only a complete version can be made active."
    )
    assert info.value.details["status"] == "training"

    catalog.update_version("m", 1, status="complete")  # trained, not deployed yet
    with pytest.raises(InvalidInput, match="version 1 is not deployed"):
        catalog.activate_version("m", 1)
    with pytest.raises(ModelVersionNotFound, match="Its versions: 1"):
        catalog.activate_version("m", 2)

    model = catalog.get_predictor("m")
    assert (model.version, model.url_predict, model.status) == (None, None, "generating")
    assert catalog.get_version("m", 1).active is False


def test_activate_version_updates_the_model(catalog: Catalog) -> None:
    _builtin(catalog, "m")
    _add(catalog, "m")
    _complete(catalog, "m", 1)
    catalog.set_predictor_status("m", "error", "an earlier failure")
    before = catalog.get_predictor("m")

    model = catalog.activate_version("m", 1)
    assert model == catalog.get_predictor("m")
    assert (model.version, model.deployment) == (1, "byom-m-v1")
    assert model.url_predict == "http://serve/byom/m/v1/predict"
    assert (model.status, model.error) == ("complete", None)
    assert model.updated_at > before.updated_at
    assert model.task == before.task and model.kind == "builtin"

    _add(catalog, "m")
    assert [v.active for v in catalog.list_versions("m")] == [True, False]
    _complete(catalog, "m", 2)
    catalog.activate_version("m", 2)
    assert [v.active for v in catalog.list_versions("m")] == [False, True]
    assert catalog.get_predictor("m").url_predict == "http://serve/byom/m/v2/predict"
    catalog.activate_version("m", 1)  # back to an earlier one
    assert catalog.find_version("m", 1).active is True  # type: ignore[union-attr]
    assert catalog.get_predictor("m").deployment == "byom-m-v1"


def test_drop_predictor_drops_its_versions(catalog: Catalog) -> None:
    _builtin(catalog, "m")
    _builtin(catalog, "other")
    _add(catalog, "m")
    _add(catalog, "m")
    _add(catalog, "other")

    catalog.drop_predictor("m")
    assert [(v.predictor, v.version) for v in catalog.list_versions()] == [("other", 1)]
    # A model created later under the same name starts again at version 1.
    _builtin(catalog, "m")
    assert catalog.list_versions("m") == []
    assert _add(catalog, "m").version == 1


def test_fail_interrupted_fails_busy_versions(catalog: Catalog) -> None:
    # "served" answers with version 1 while version 2 trains; "fresh" trains its first.
    _builtin(catalog, "served")
    _add(catalog, "served")
    _complete(catalog, "served", 1)
    catalog.activate_version("served", 1)
    _add(catalog, "served")
    catalog.update_version("served", 2, status="training", progress={"percent": 50})
    _builtin(catalog, "fresh", status="training")
    _add(catalog, "fresh")  # still generating
    _builtin(catalog, "idle", status="complete")

    assert catalog.fail_interrupted() == ["fresh", "served"]

    served = catalog.get_predictor("served")
    assert (served.status, served.error, served.version) == ("complete", None, 1)
    assert served.url_predict == "http://serve/byom/served/v1/predict"
    first, second = catalog.list_versions("served")
    assert (first.status, first.error, first.active) == ("complete", None, True)
    assert (second.status, second.error) == ("error", INTERRUPTED_MESSAGE)
    assert second.updated_at > second.created_at

    fresh = catalog.get_predictor("fresh")
    assert (fresh.status, fresh.error) == ("error", INTERRUPTED_MESSAGE)
    assert catalog.get_version("fresh", 1).status == "error"
    assert catalog.get_predictor("idle").status == "complete"

    assert catalog.fail_interrupted("again") == []  # nothing left running


def test_version_not_found_error() -> None:
    error = ModelVersionNotFound.of("m", 3, [2, 1])
    assert error.code == "MODEL_VERSION_NOT_FOUND" and error.status == 404
    assert error.message == "Model 'm' has no version 3. Its versions: 1, 2."
    assert error.details == {"model": "m", "version": 3, "versions": [1, 2]}
