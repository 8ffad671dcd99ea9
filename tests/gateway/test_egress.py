"""Where registered model URLs may point (issue 12's egress rules): every refused form, the
allow-list, and the appendix's metadata URL refused over HTTP with the rule named."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from byom.errors import InvalidOption
from gateway.egress import check_url
from gateway.server import create_app


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://models.example/predict", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://user:secret@models.example/predict", "credentials"),
        ("http://user@models.example/predict", "credentials"),
        ("http:///predict", "no host"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://169.254.1.1:8000/predict", "link-local"),
        ("http://[fd00:ec2::254]/latest/meta-data", "metadata"),
        ("http://[fe80::1]:8000/predict", "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://2130706433/predict", "non-standard form"),
        ("http://0x7f000001/predict", "non-standard form"),
        ("http://127.1/predict", "non-standard form"),
        ("http://2852039166/latest/meta-data", "non-standard form"),  # 169.254.169.254
        ("http://models.example/pre dict", "spaces or control characters"),
        ("http://models.example/\x00", "spaces or control characters"),
    ],
)
def test_refused_urls_name_the_rule(url: str, fragment: str) -> None:
    with pytest.raises(InvalidOption, match=fragment) as info:
        check_url("url.predict", url, allowed="")
    assert info.value.details["option"] == "url.predict"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/predict", "https://models.example/v1/predict", "http://[::1]:80/p"],
)
def test_ordinary_urls_pass_without_an_allow_list(url: str) -> None:
    check_url("url.predict", url, allowed="")


ALLOWED = "*.models.internal, 10.0.0.0/8, localhost"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://a.models.internal/predict", True),
        ("http://models.internal/predict", False),  # the wildcard needs a sub-domain
        ("http://10.1.2.3:8000/predict", True),
        ("http://11.1.2.3:8000/predict", False),
        ("http://localhost:8000/predict", True),
        ("http://127.0.0.1:8000/predict", False),
        ("http://evil.example/predict", False),
    ],
)
def test_the_allow_list_limits_hosts(url: str, ok: bool) -> None:
    if ok:
        check_url("url.train", url, allowed=ALLOWED)
    else:
        with pytest.raises(InvalidOption, match="BYOM_ALLOWED_HOSTS does not list"):
            check_url("url.train", url, allowed=ALLOWED)


def test_metadata_needs_an_explicit_entry_not_a_wildcard() -> None:
    url = "http://169.254.169.254/latest/meta-data"
    for broad in ("*", "0.0.0.0/0"):
        with pytest.raises(InvalidOption, match="metadata"):
            check_url("url.predict", url, allowed=broad)
    check_url("url.predict", url, allowed="169.254.169.254")
    check_url("url.predict", url, allowed="169.254.0.0/16")


def test_registration_of_the_metadata_url_is_refused_over_http(tmp_path: Path) -> None:
    """The appendix's defect: this CREATE PREDICTOR was accepted (200)."""
    with TestClient(create_app(home=tmp_path)) as client:
        response = client.post(
            "/api/sql",
            json={
                "query": "CREATE PREDICTOR meta PREDICT y USING url.predict = "
                "'http://169.254.169.254/latest/meta-data', format = 'ray_serve'"
            },
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "INVALID_OPTION" and "metadata" in error["message"]
        models = client.post("/api/sql", json={"query": "SHOW MODELS"}).json()
        assert all("meta" not in row for row in models["rows"])
