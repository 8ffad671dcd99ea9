"""Session-wide fixtures for every test folder.

The real example services (one Ray per test session) are started lazily, by the first test
that asks for them, and stopped at the end of the session. A service that cannot start is an
error with its log tail, never a skip: the tests that need it exercise features that must work.

The PostgreSQL fixtures live in tests/pg_fixtures.py and are imported here, once, for all
folders. Scripted HTTP for adapter tests is tests/mock_http.py.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# hypothesis: imported (and assertion-rewritten) now, not lazily by its plugin's end-of-run
# summary: on CPython 3.11.7 a file run alone (e.g. tests/builtin_models/test_serving.py)
# otherwise ends in "SystemError: AST constructor recursion depth mismatch" there.
import hypothesis  # noqa: F401
import pytest

from tests.pg_fixtures import (  # noqa: F401  (fixtures are found by name)
    pg_catalog_clean_url,
    pg_catalog_url,
    postgres_params,
    postgres_url,
)

# Before anything imports transformers or mlflow: no model hub, no telemetry lookups.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tests keep their SQLite datasources in pytest's tmp_path, outside any gateway home: allow
# the system temp dir as a data directory (the file policy, datasources/files.py) rather
# than weaken the rule. Set at import so subprocesses (``byom serve``) inherit it.
os.environ.setdefault("BYOM_DATA_DIRS", tempfile.gettempdir())

from gateway.processes import (  # noqa: E402  (the environment above must be set first)
    Service,
    free_port,
    load_example,
    start_mlflow_example,
    start_ray_serve_example,
)


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for service logs and saved models, kept after the run for debugging."""
    return tmp_path_factory.mktemp("services")


ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RayCluster:
    """The session's Ray: its GCS ``address`` (for processes that join it) and Serve's URL."""

    address: str
    serve_url: str


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One local Ray for the session (2 CPUs, no dashboard, no token) with Serve on a free
    port, started by the first test that needs it. In-process gateways find it running and
    use it; ``byom serve`` processes join it through ``RAY_ADDRESS``."""
    import ray
    from ray import serve

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")  # no cluster token for a private cluster
        # Workers import test helpers (readers, progress callbacks) from the checkout.
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
        )
        port = free_port()
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            address = ray.get_runtime_context().gcs_address
            yield RayCluster(address=address, serve_url=f"http://127.0.0.1:{port}")
        finally:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _no_serve_apps_left_behind() -> Iterator[None]:
    """After each test module, delete the Serve applications it deployed on the session's
    Ray: every model version reserves a share of the 2 CPUs, and versions left by earlier
    modules would starve later modules' training tasks (they would wait for a CPU)."""
    yield
    import sys

    if "ray" not in sys.modules:
        return
    import ray

    if not ray.is_initialized():
        return
    from ray import serve

    try:
        names = list(serve.status().applications)
    except Exception:  # noqa: BLE001 - Serve not started in this session
        return
    for name in names:
        serve.delete(name)


@pytest.fixture(scope="session")
def ray_serve_example(services_dir: Path) -> Iterator[Service]:
    """The Ray Serve example model; ``url`` is ``http://127.0.0.1:<port>/my_model``."""
    service = start_ray_serve_example(log_dir=services_dir)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def mlflow_model_path(services_dir: Path) -> str:
    """The example MLflow model (rooms from prices), saved to a folder."""
    return load_example("mlflow_model").train_and_log(services_dir / "mlflow_models")


@pytest.fixture(scope="session")
def mlflow_example(mlflow_model_path: str, services_dir: Path) -> Iterator[Service]:
    """``mlflow models serve`` of ``mlflow_model_path``; ``url`` is the /invocations URL."""
    service = start_mlflow_example(mlflow_model_path, log_dir=services_dir)
    try:
        yield service
    finally:
        service.stop()
