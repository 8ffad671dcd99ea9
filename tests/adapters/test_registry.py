"""Tests for adapters.registry: format names, aliases, did-you-mean, caching."""

from __future__ import annotations

import httpx
import pytest

from adapters.base import AdapterContext
from adapters.http import HttpSettings
from adapters.mlflow_serving import MlflowAdapter
from adapters.ray_serve import RayServeAdapter
from adapters.registry import (
    ALIASES,
    FORMATS,
    AdapterRegistry,
    normalize_format,
    validate_options,
)
from byom.errors import InvalidOption
from tests.mock_http import with_client


def test_formats_table() -> None:
    assert FORMATS == {"ray_serve": RayServeAdapter, "mlflow": MlflowAdapter}
    assert ALIASES == {"ray_server": "ray_serve"}
    for name, cls in FORMATS.items():
        assert cls.name == name  # the adapter's own name matches its registry key
    # mlflow scoring servers only predict; the planner refuses url.train for them
    assert (FORMATS["ray_serve"].trains, FORMATS["mlflow"].trains) == (True, False)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("ray_serve", "ray_serve"),
        ("ray_server", "ray_serve"),  # MindsDB's spelling
        ("Ray_Server", "ray_serve"),
        (" MLFLOW ", "mlflow"),
    ],
)
def test_normalize_format(given: str, canonical: str) -> None:
    assert normalize_format(given) == canonical


def test_unknown_format_suggests_the_closest() -> None:
    with pytest.raises(InvalidOption) as info:
        normalize_format("rayserve")
    err = info.value
    assert err.message == (
        "Unknown format 'rayserve'. Did you mean ray_serve? Known formats: mlflow, ray_serve."
    )
    assert err.code == "INVALID_OPTION" and err.status == 400
    assert err.details["suggestion"] == "ray_serve"


def test_unknown_format_without_a_close_match() -> None:
    with pytest.raises(InvalidOption) as info:
        normalize_format("onnx")
    assert info.value.message == "Unknown format 'onnx'. Known formats: mlflow, ray_serve."


def test_registry_caches_one_adapter_per_format() -> None:
    settings = HttpSettings(retries=0)

    async def check(client: httpx.AsyncClient) -> None:
        registry = AdapterRegistry(AdapterContext(http=client, settings=settings))
        ray = registry.get("ray_serve")
        assert isinstance(ray, RayServeAdapter)
        assert registry.get("RAY_SERVER") is ray
        mlflow = registry.get("mlflow")
        assert isinstance(mlflow, MlflowAdapter) and mlflow is not ray
        assert ray.client is client and mlflow.client is client
        assert ray.settings is settings
        assert registry.formats == ["mlflow", "ray_serve"]
        with pytest.raises(InvalidOption):
            registry.get("mlfow")

    with_client(settings, lambda request: httpx.Response(200, json={}), check)


def test_validate_options_normalises_payload_and_keeps_other_keys() -> None:
    options = {"payload": " Parquet ", "batch_size": 10}
    assert validate_options("ray_server", options) == {"payload": "parquet", "batch_size": 10}
    assert options["payload"] == " Parquet "  # the caller's dict is not changed
    assert validate_options("mlflow", {"note": "x"}) == {"note": "x"}
    assert validate_options("mlflow", {"payload": "json"}) == {"payload": "json"}
    for cls in FORMATS.values():
        assert cls.payloads[0] == "json"


@pytest.mark.parametrize(
    ("format", "payload", "fragment"),
    [
        ("ray_serve", "parket", "Did you mean parquet?"),
        ("ray_serve", "xml", "Known: json, json_columns, parquet, arrow."),
        ("mlflow", "parquet", "format 'mlflow' cannot send payload='parquet'; it supports json."),
    ],
)
def test_validate_options_rejects_bad_payloads(format: str, payload: str, fragment: str) -> None:
    with pytest.raises(InvalidOption) as info:
        validate_options(format, {"payload": payload}, model="byom")
    assert fragment in info.value.message
    assert info.value.message.startswith("Model 'byom': ")
    assert info.value.code == "INVALID_OPTION"


def test_validate_options_checks_the_format_too() -> None:
    with pytest.raises(InvalidOption, match="Unknown format 'onnx'"):
        validate_options("onnx", {})
