"""Where built-in training and model replicas run on a Ray cluster, without a cluster: the
options handed to Ray (training and EVALUATE tasks) and to Serve (a version's deployment)
carry the CPUs, the custom resources and the replicas the settings and the version ask for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builtin_models import deployments, serving
from builtin_models.cluster import resource_options
from builtin_models.deployments import DeployOptions
from builtin_models.training import task_options
from gateway.executor.builtin import deploy_options, train_resources
from gateway.settings import Settings


def test_resource_options_split_gpus_from_custom_resources() -> None:
    assert resource_options(None) == {}
    assert resource_options({}) == {}
    assert resource_options({"trainer": 1.0}) == {"resources": {"trainer": 1.0}}
    assert resource_options({"GPU": 1.0, "trainer": 0.5}) == {
        "num_gpus": 1.0,
        "resources": {"trainer": 0.5},
    }


def test_training_task_options_carry_cpus_and_resources() -> None:
    options = task_options(2.0, {"trainer": 1.0})
    assert options["num_cpus"] == 2.0
    assert options["resources"] == {"trainer": 1.0}
    assert options["max_retries"] == 0
    plain = task_options(1.0)
    assert "resources" not in plain and "num_gpus" not in plain


def test_training_is_submitted_with_those_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from builtin_models import training

    seen: dict[str, Any] = {}

    class Remote:
        def options(self, **kwargs: Any) -> Remote:
            seen.update(kwargs)
            return self

        def remote(self, *args: Any) -> str:
            return "ref"

    monkeypatch.setattr(ray, "remote", lambda _fn: Remote())
    request = training.TrainingRequest(task="text_classification")
    ref = training.submit(lambda: [], request, num_cpus=1.5, resources={"trainer": 1.0})
    assert ref == "ref"
    assert (seen["num_cpus"], seen["resources"]) == (1.5, {"trainer": 1.0})


def test_replica_actor_options_carry_cpus_and_resources() -> None:
    options = serving.replica_actor_options(0.5, {"serving": 1.0})
    assert options["num_cpus"] == 0.5
    assert options["resources"] == {"serving": 1.0}
    assert "resources" not in serving.replica_actor_options(0.2)


def test_build_app_asks_serve_for_replicas_and_resources() -> None:
    app = serving.build_app(
        "models:/m-1", "byom-m-v1", num_cpus=0.3, num_replicas=2, resources={"serving": 1.0}
    )
    # Not public API: the deployment an Application binds (what serve.run deploys).
    deployment = app._bound_deployment
    assert deployment.name == "byom-m-v1"
    assert deployment.num_replicas == 2
    assert deployment.max_ongoing_requests >= 16  # batches of max_batch_size can form
    assert deployment.ray_actor_options["num_cpus"] == 0.3
    assert deployment.ray_actor_options["resources"] == {"serving": 1.0}


def test_deploy_passes_its_options_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray import serve

    built: dict[str, Any] = {}

    def fake_build_app(model_uri: str, name: str, **kwargs: Any) -> str:
        built.update(kwargs, model_uri=model_uri, name=name)
        return "app"

    monkeypatch.setattr(serving, "build_app", fake_build_app)
    monkeypatch.setattr(serve, "run", lambda app, name, route_prefix: None)
    options = DeployOptions(num_cpus=0.5, num_replicas=3, resources={"serving": 1.0})
    url = deployments.deploy("m", 2, "models:/x", serve_url="http://h:8000", options=options)
    assert url == "http://h:8000/byom/m/v2/predict"
    assert built["name"] == "byom-m-v2"
    assert (built["num_cpus"], built["num_replicas"], built["resources"]) == (
        0.5,
        3,
        {"serving": 1.0},
    )


def test_a_version_is_deployed_with_its_replicas_and_the_gateways_resources() -> None:
    settings = Settings(replica_cpus=0.5, replica_resources={"serving": 1.0})
    assert deploy_options(settings, {}) == DeployOptions(
        num_cpus=0.5, num_replicas=1, resources={"serving": 1.0}, batch_wait_timeout_s=0.0
    )
    waiting = deploy_options(Settings(batch_wait_ms=5.0), {})
    assert waiting.batch_wait_timeout_s == 0.005
    mine = deploy_options(settings, {"replicas": 2, "replica_resources": {"edge": 2.0}})
    assert (mine.num_replicas, dict(mine.resources)) == (2, {"edge": 2.0})
    assert deploy_options(settings, {"replica_resources": {}}).resources == {}


def test_a_version_trains_with_its_resources_else_the_gateways() -> None:
    settings = Settings(train_resources={"trainer": 1.0})
    assert train_resources(settings, {}) == {"trainer": 1.0}
    assert train_resources(settings, {"train_resources": {"big": 1.0}}) == {"big": 1.0}
    assert train_resources(Settings(), {}) == {}


def test_a_new_experiment_keeps_its_models_under_the_artifact_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import mlflow

    from builtin_models import artifacts

    uri = artifacts.default_tracking_uri(tmp_path / "home")
    shared = (tmp_path / "shared").as_uri()
    with artifacts.tracking(uri):
        made = artifacts._experiment_id("cluster", uri, shared)
        assert mlflow.get_experiment(made).artifact_location == shared
        # without a root: next to the SQLite store, as before
        plain = artifacts._experiment_id("local", uri)
        location = mlflow.get_experiment(plain).artifact_location
        assert location == (tmp_path / "home" / "mlartifacts").as_uri()
        # an existing experiment cannot move: it is used as is, and the log says why
        with caplog.at_level("WARNING", logger="byom.artifacts"):
            assert artifacts._experiment_id("local", uri, shared) == plain
        assert "cannot change" in caplog.text
        caplog.clear()
        with caplog.at_level("WARNING", logger="byom.artifacts"):
            artifacts._experiment_id("cluster", uri, str(tmp_path / "shared"))
        assert caplog.text == ""  # the same place, written as a path
