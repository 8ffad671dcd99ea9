"""The web console's static files: served at ``/`` and ``/console/``, open without a token
(its data calls are not), and self-contained (no external URL: no CDN)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway import auth
from gateway.console import ASSETS, HERE
from gateway.server import create_app


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A gateway with authentication on (one admin token)."""
    monkeypatch.setattr(auth, "CACHE_S", 0.0)
    with TestClient(create_app(home=tmp_path)) as client:
        client.app.state.gateway.create_token("admin-1", "admin")  # type: ignore[attr-defined]
        yield client


def test_the_console_loads_without_a_token(api: TestClient) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for src in re.findall(r'(?:href|src)="(/console/[^"]+)"', page.text):
        asset = api.get(src)
        assert asset.status_code == 200, src
        name = src.rsplit("/", 1)[1]
        assert asset.headers["content-type"] == ASSETS[name]
    assert "/console/console.js" in page.text and "/console/console.css" in page.text
    # the data stays behind the token; a file that is not an asset is not served
    assert api.post("/api/sql", json={"query": "SELECT 1"}).status_code == 401
    assert api.get("/api/queries").status_code == 401
    assert api.get("/console/__init__.py").status_code == 404
    assert api.get("/console/%2e%2e/server.py").status_code == 404


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_the_shipped_files_name_no_external_url(name: str) -> None:
    text = (HERE / name).read_text(encoding="utf-8")
    # SVG's namespace is a name that createElementNS needs, never fetched
    text = text.replace('"http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?://", text, re.IGNORECASE), name
    assert "innerHTML" not in text  # data is written with textContent only


def test_the_package_data_ships_the_console() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'gateway\s*=\s*\[[^\]]*"console/\*\.js', pyproject)
