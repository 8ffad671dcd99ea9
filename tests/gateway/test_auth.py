"""API tokens and roles: 401 without a valid token once one exists, 403 for a role that may
not run the statement (naming the role needed), the audit log of DDL and failed logins, and
``byom serve`` refusing a non-loopback address without authentication.

Through the real app on a real catalog (tmp home); models point at a closed port, which no
statement here calls.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byom.errors import GatewayError, Unauthorized
from catalog.records import TokenRecord
from gateway import auth
from gateway.auth import Authenticator, native_reads_only
from gateway.auth_middleware import check_exposure, is_loopback
from gateway.cli import main as cli_main
from gateway.server import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MODEL = (
    "CREATE MODEL {name} PREDICT y USING url.predict = 'http://127.0.0.1:9/p', format = 'ray_serve'"
)


def sql(api: TestClient, query: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api.post("/api/sql", json={"query": query}, headers=headers)


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(auth, "CACHE_S", 0.0)  # a revoked token counts at once
    with TestClient(create_app(home=tmp_path / "home")) as client:
        yield client


def tokens(api: TestClient) -> dict[str, str]:
    gateway = api.app.state.gateway  # type: ignore[attr-defined]
    return {role: gateway.create_token(f"{role}-1", role)[1] for role in auth.ROLES}


def test_without_tokens_the_api_is_open_as_before(api: TestClient) -> None:
    assert sql(api, MODEL.format(name="m")).status_code == 200
    assert sql(api, "SHOW MODELS").json()["rows"][0][0] == "m"


def test_the_first_token_turns_authentication_on(api: TestClient) -> None:
    secrets = tokens(api)
    missing = sql(api, "SHOW MODELS")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "UNAUTHORIZED"
    assert "Authorization: Bearer" in missing.json()["error"]["message"]
    wrong = sql(api, "SHOW MODELS", token="byom_not-a-token")
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["error"]["message"]
    assert sql(api, "SHOW MODELS", token=secrets["reader"]).status_code == 200
    # Health probes and the docs stay open.
    assert api.get("/healthz").status_code == 200
    assert api.get("/openapi.json").status_code == 200
    assert api.get("/api/predictors").status_code == 401


@pytest.mark.parametrize(
    ("statement", "needed"),
    [
        (MODEL.format(name="m2"), "writer"),
        ("DROP MODEL m", "writer"),
        ("CREATE PROJECT p", "writer"),
        ("CREATE TABLE local.t2 (a INT)", "writer"),
        ('CREATE DATABASE d WITH ENGINE = \'sqlite\', PARAMETERS = {"path": "x.sqlite"}', "admin"),
        ("DROP DATABASE d", "admin"),
        ("SELECT * FROM mindsdb.audit", "admin"),
        ("SELECT * FROM mindsdb.tokens", "admin"),
    ],
)
def test_a_reader_is_refused_with_the_role_named(
    api: TestClient, statement: str, needed: str
) -> None:
    assert sql(api, MODEL.format(name="m")).status_code == 200
    secrets = tokens(api)
    answer = sql(api, statement, token=secrets["reader"])
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert error["code"] == "FORBIDDEN" and error["required_role"] == needed
    assert f"needs role {needed}" in error["message"] and "reader-1" in error["message"]
    # Nothing happened: the model is still there.
    assert sql(api, "SHOW MODELS", token=secrets["reader"]).json()["rows"][0][0] == "m"


def test_each_role_runs_what_it_may(api: TestClient) -> None:
    secrets = tokens(api)
    reader, writer, admin = secrets["reader"], secrets["writer"], secrets["admin"]
    assert sql(api, "SELECT 1 AS one", token=reader).json()["rows"] == [[1]]
    assert sql(api, "SHOW DATABASES", token=reader).status_code == 200
    assert sql(api, MODEL.format(name="m"), token=writer).status_code == 200
    assert sql(api, "DESCRIBE m", token=reader).status_code == 200
    assert sql(api, "CREATE TABLE local.t (a INT)", token=writer).status_code == 200
    denied = sql(api, "DROP DATABASE nothing", token=writer)
    assert denied.status_code == 403 and denied.json()["error"]["required_role"] == "admin"
    assert sql(api, "DROP MODEL m", token=writer).status_code == 200
    assert sql(api, "SELECT name, role FROM mindsdb.tokens", token=admin).json()["rows"] == [
        ["admin-1", "admin"], ["reader-1", "reader"], ["writer-1", "writer"],
    ]  # fmt: skip
    # The JSON API goes through the same checks.
    spec = {"name": "j", "url_predict": "http://127.0.0.1:9/p", "format": "ray_serve"}
    headers = {"Authorization": f"Bearer {reader}"}
    assert api.post("/api/predictors", json=spec, headers=headers).status_code == 403
    headers = {"Authorization": f"Bearer {writer}"}
    assert api.post("/api/predictors", json=spec, headers=headers).status_code == 201
    assert api.delete("/api/predictors/j", headers=headers).status_code == 200


def test_tokens_over_http_need_an_admin_and_revoking_works_at_once(api: TestClient) -> None:
    secrets = tokens(api)
    as_writer = {"Authorization": f"Bearer {secrets['writer']}"}
    as_admin = {"Authorization": f"Bearer {secrets['admin']}"}
    refused = api.post("/api/tokens", json={"name": "x", "role": "admin"}, headers=as_writer)
    assert refused.status_code == 403
    made = api.post("/api/tokens", json={"name": "ci", "role": "reader"}, headers=as_admin)
    assert made.status_code == 200 and made.json()["token"].startswith("byom_")
    listed = api.get("/api/tokens", headers=as_admin).json()["tokens"]
    assert {t["name"] for t in listed} == {"admin-1", "reader-1", "writer-1", "ci"}
    assert all("token" not in t and "hash" not in json.dumps(t) for t in listed)
    new = made.json()["token"]
    assert sql(api, "SHOW MODELS", token=new).status_code == 200
    assert api.delete("/api/tokens/ci", headers=as_admin).json()["active"] is False
    assert sql(api, "SHOW MODELS", token=new).status_code == 401
    again = api.post("/api/tokens", json={"name": "ci", "role": "reader"}, headers=as_admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "TOKEN_EXISTS"


def test_revoking_every_token_keeps_authentication_on(api: TestClient) -> None:
    gateway = api.app.state.gateway  # type: ignore[attr-defined]
    _, secret = gateway.create_token("only", "admin")
    gateway.revoke_token("only")
    assert sql(api, "SHOW MODELS").status_code == 401
    assert sql(api, "SHOW MODELS", token=secret).status_code == 401


def test_the_audit_log_records_ddl_denials_and_failed_logins(api: TestClient) -> None:
    secrets = tokens(api)
    assert sql(api, MODEL.format(name="m"), token=secrets["writer"]).status_code == 200
    assert sql(api, "DROP MODEL m", token=secrets["reader"]).status_code == 403
    assert sql(api, "DROP MODEL nope", token=secrets["writer"]).status_code == 404
    assert sql(api, "SHOW MODELS", token="byom_guess").status_code == 401
    assert sql(api, "SHOW MODELS", token=secrets["reader"]).status_code == 200  # not logged
    answer = sql(
        api,
        "SELECT token, kind, object, outcome, code FROM mindsdb.audit",
        token=secrets["admin"],
    ).json()
    assert answer["rows"] == [
        [None, "CREATE TOKEN", "reader-1", "ok", None],
        [None, "CREATE TOKEN", "writer-1", "ok", None],
        [None, "CREATE TOKEN", "admin-1", "ok", None],
        ["writer-1", "CREATE MODEL", "m", "ok", None],
        ["reader-1", "DROP MODEL", "m", "denied", "FORBIDDEN"],
        ["writer-1", "DROP MODEL", "nope", "error", "MODEL_NOT_FOUND"],
        [None, "AUTHENTICATE", "/api/sql", "denied", "UNAUTHORIZED"],
    ]
    home = api.app.state.gateway.services.home  # type: ignore[attr-defined]
    lines = (Path(home) / "audit.jsonl").read_text().splitlines()
    assert all(set(json.loads(line)) >= {"time", "token", "kind", "outcome"} for line in lines)
    assert all(secret not in "".join(lines) for secret in secrets.values())


def test_the_cli_manages_tokens_on_the_embedded_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    assert cli_main(["token", "create", "ops", "--role", "admin", "--home", home]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("byom_") and "shown only now" in err
    assert cli_main(["token", "list", "--json", "--home", home]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["name"], t["role"], t["active"]) for t in listed] == [("ops", "admin", True)]
    assert secret not in json.dumps(listed)
    assert cli_main(["token", "revoke", "ops", "--home", home]) == 0
    assert cli_main(["token", "revoke", "nobody", "--home", home]) == 1
    assert "TOKEN_NOT_FOUND" in capsys.readouterr().err
    assert cli_main(["token", "create", "x", "--role", "root", "--home", home]) == 2


class _Store:
    def __init__(self) -> None:
        self.exists = True
        self.lookups = 0
        self.known: dict[str, TokenRecord] = {}

    def tokens_exist(self) -> bool:
        return self.exists

    def find_token(self, secret: str) -> TokenRecord | None:
        self.lookups += 1
        return self.known.get(secret)


def test_the_authenticator_caches_for_a_second() -> None:
    store, now = _Store(), [0.0]
    from datetime import UTC, datetime

    store.known["s"] = TokenRecord("a", "writer", "byom_s", datetime.now(UTC), None, None)
    checker = Authenticator(store, clock=lambda: now[0])
    assert checker.authenticate("Bearer s") == auth.Principal("a", "writer")
    assert checker.authenticate("bearer  s ") == auth.Principal("a", "writer")
    assert store.lookups == 1
    del store.known["s"]  # revoked
    now[0] = 1.5
    with pytest.raises(Unauthorized):
        checker.authenticate("Bearer s")
    with pytest.raises(Unauthorized, match="send 'Authorization: Bearer"):
        checker.authenticate("Basic dXNlcg==")
    store.exists = False
    now[0] = 3.0
    assert checker.authenticate(None) is None  # authentication off


@pytest.mark.parametrize(
    ("sql_text", "reads"),
    [
        ("SELECT * FROM t", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),
        ("SELECT * INTO t2 FROM t", False),
        ("INSERT INTO t VALUES (1)", False),
        ("SELECT 1; DROP TABLE t", False),
        ("VACUUM INTO '/tmp/x'", False),
        ("PRAGMA writable_schema = 1", False),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", False),
        ("not sql at all (", False),
    ],
)
def test_only_provable_reads_are_a_readers(sql_text: str, reads: bool) -> None:
    assert native_reads_only(sql_text) is reads


def test_serving_beyond_loopback_needs_a_token_or_insecure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "CACHE_S", 0.0)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    app = create_app(home=tmp_path / "home", host="0.0.0.0")
    with pytest.raises(GatewayError, match="Refusing to serve on 0.0.0.0 without authentication"):
        with TestClient(app):
            pass
    with TestClient(create_app(home=tmp_path / "home", host="0.0.0.0", insecure=True)) as api:
        assert "INSECURE" in caplog.text
        gateway = api.app.state.gateway  # type: ignore[attr-defined]
        gateway.create_token("ops", "admin")
        check_exposure(gateway, "0.0.0.0", insecure=False)  # a token exists: fine now
    with TestClient(create_app(home=tmp_path / "home", host="0.0.0.0")) as api:
        assert sql(api, "SHOW MODELS").status_code == 401


def test_the_cli_and_client_send_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.client import Client
    from tests.threaded_server import serving

    monkeypatch.delenv("BYOM_TOKEN", raising=False)
    home = tmp_path / "home"
    assert cli_main(["token", "create", "ci", "--role", "reader", "--home", str(home)]) == 0
    secret = capsys.readouterr().out.strip()
    with serving(create_app(home=home)) as url:
        assert cli_main(["sql", "SHOW MODELS", "--url", url]) == 1
        assert "UNAUTHORIZED" in capsys.readouterr().err
        assert cli_main(["sql", "SHOW MODELS", "--url", url, "--token", secret]) == 0
        script = ["sql", "SELECT 1 AS a; SELECT 2 AS b", "--url", url, "--token", secret]
        assert cli_main(script) == 0
        assert cli_main(["status", "--url", url, "--token", secret]) == 0
        capsys.readouterr()
        assert "BYOM_TOKEN" not in os.environ  # handed to its clients, not to the environment
        with Client(url, token=secret) as client:
            assert client.sql("SELECT 1 AS one").rows == [[1]]
            with client.fork(timeout=10) as poller:  # the progress poller's client
                assert poller.sql("SELECT 2 AS two").rows == [[2]]
            with pytest.raises(GatewayError) as refused:
                client.sql(MODEL.format(name="m"))
            assert refused.value.code == "FORBIDDEN"
        monkeypatch.setenv("BYOM_TOKEN", secret)
        with Client(url) as client:  # $BYOM_TOKEN by default
            assert client.sql("SHOW MODELS").rows == []
