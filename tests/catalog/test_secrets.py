"""Datasource secrets at rest (``catalog.secrets``): the key, sealing and revealing, and a
real gateway that never shows a password - in answers, errors, logs, catalog tables, the
catalog file or the audit log.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from byom.errors import GatewayError
from catalog.repository import Catalog
from catalog.secrets import ENV_VAR, KEY_FILE, SecretBox, is_sealed
from gateway.planner import CATALOG_TABLES
from gateway.server import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient deprecation notice
    from fastapi.testclient import TestClient


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


# -- the key -----------------------------------------------------------------------------


def test_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv(ENV_VAR, key.decode())
    box = SecretBox(tmp_path)
    sealed = box.seal("hunter2")
    assert Fernet(key).decrypt(sealed["value"].encode()) == b'"hunter2"'
    assert not (tmp_path / KEY_FILE).exists()  # the environment's key: no file written
    assert box.source == ENV_VAR


@pytest.mark.parametrize("bad", ["not-a-key", "c2hvcnQ=", Fernet.generate_key().decode()[:-4]])
def test_malformed_env_key_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv(ENV_VAR, bad)
    with pytest.raises(GatewayError) as info:
        SecretBox(tmp_path).seal("x")
    assert info.value.code == "SECRET_KEY_INVALID"
    assert ENV_VAR in info.value.message and "Fernet" in info.value.message
    assert bad not in info.value.message  # never echo a key, even a broken one


@pytest.mark.usefixtures("no_env_key")
def test_key_file_created_0600_on_first_use(tmp_path: Path) -> None:
    home = tmp_path / "home"
    box = SecretBox(home)
    assert not home.exists()  # nothing until a secret needs the key
    sealed = box.seal("hunter2")
    path = home / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir()] == [KEY_FILE]  # no scratch file left behind
    Fernet(path.read_bytes().strip())  # a Fernet key
    # Another gateway of the same home reads the same key.
    assert SecretBox(home).reveal(sealed, datasource="d", parameter="password") == "hunter2"
    assert box.source == f"the key file {path}"


@pytest.mark.usefixtures("no_env_key")
def test_gateways_starting_together_make_one_key(tmp_path: Path) -> None:
    boxes = [SecretBox(tmp_path) for _ in range(8)]
    sealed: list[dict[str, str]] = []
    barrier = threading.Barrier(len(boxes))

    def start(box: SecretBox) -> None:
        barrier.wait()
        sealed.append(box.seal("pw"))

    threads = [threading.Thread(target=start, args=(b,)) for b in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    key = Fernet((tmp_path / KEY_FILE).read_bytes().strip())
    assert [key.decrypt(s["value"].encode()) for s in sealed] == [b'"pw"'] * len(boxes)
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


@pytest.mark.usefixtures("no_env_key")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(Fernet.generate_key())
    os.chmod(path, mode)
    with pytest.raises(GatewayError) as info:
        SecretBox(tmp_path).seal("x")
    assert info.value.code == "SECRET_KEY_UNSAFE"
    assert f"chmod 600 {path}" in info.value.message


@pytest.mark.usefixtures("no_env_key")
def test_malformed_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(b"garbage\n")
    os.chmod(path, 0o600)
    with pytest.raises(GatewayError, match=f"key file {path} is not a valid") as info:
        SecretBox(tmp_path).seal("x")
    assert info.value.code == "SECRET_KEY_INVALID"


@pytest.mark.usefixtures("no_env_key")
def test_key_file_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "not-a-dir"
    home.write_text("")
    with pytest.raises(GatewayError) as info:
        SecretBox(home).seal("x")
    assert info.value.code == "SECRET_KEY_UNREADABLE" and ENV_VAR in info.value.message


# -- sealing and revealing ---------------------------------------------------------------


def test_round_trip_and_legacy_values() -> None:
    box = SecretBox(key=Fernet.generate_key())
    # Distinctive values: a short one ("pw") turns up inside random ciphertext now and then.
    params = {"host": "h", "Password": "Sesame-open-8f3a2c", "api_key": 987654321,
              "token": None, "user": "u"}  # fmt: skip
    sealed = box.seal_parameters(params)
    assert is_sealed(sealed["Password"]) and is_sealed(sealed["api_key"])  # any case
    assert sealed["token"] is None and sealed["host"] == "h" and sealed["user"] == "u"
    text = json.dumps(sealed)
    assert "Sesame-open-8f3a2c" not in text and "987654321" not in text
    assert box.seal_parameters(sealed) == sealed  # sealed once only
    assert box.reveal_parameters(sealed, datasource="d") == params  # types kept
    # A plain value written before schema 7 is read as it is.
    assert box.reveal_parameters({"password": "old"}, datasource="d") == {"password": "old"}


def test_wrong_key_is_a_clear_error() -> None:
    sealed = SecretBox(key=Fernet.generate_key()).seal_parameters({"password": "pw"})
    with pytest.raises(GatewayError) as info:
        SecretBox(key=Fernet.generate_key()).reveal_parameters(sealed, datasource="sales")
    error = info.value
    assert (error.code, error.details["datasource"]) == ("SECRET_KEY_MISMATCH", "sales")
    assert "datasource 'sales'" in error.message and ENV_VAR in error.message
    assert "the key given to the catalog" in error.message  # which key was tried


def test_unknown_scheme_is_refused_by_name() -> None:
    stored = {"password": {"$enc": "fernet:v9", "value": "x"}}
    with pytest.raises(GatewayError) as info:
        SecretBox(key=Fernet.generate_key()).reveal_parameters(stored, datasource="d")
    assert info.value.code == "SECRET_FORMAT_UNKNOWN" and "fernet:v9" in info.value.message


def test_catalog_stores_secrets_sealed(url: str) -> None:
    params = {"host": "db.example", "user": "u", "database": "d", "password": "p-4711"}
    cat = Catalog(url)
    try:
        assert cat.add_datasource("pg", "postgres", params).parameters == params
        [listed] = cat.list_datasources()
        assert is_sealed(listed.parameters["password"])  # listing never decrypts
        assert cat.get_datasource("pg").parameters == params
    finally:
        cat.close()


# -- a real gateway never shows one ------------------------------------------------------


def _status(described: dict[str, Any]) -> Any:
    return dict(zip(described["columns"], described["rows"][0], strict=True))["status"]


def _bytes_of(*paths: Path) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.exists())


@pytest.mark.postgres
def test_passwords_never_shown(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    pg_role: dict[str, Any],
) -> None:
    monkeypatch.delenv(ENV_VAR)  # the home's key file, as a gateway out of the box
    monkeypatch.delenv("BYOM_CATALOG_URL", raising=False)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # it sets itself to WARNING otherwise
    home = tmp_path / "home"
    good = pg_role
    wrong = {**pg_role, "password": f"Wrong-{uuid.uuid4().hex}"}
    secrets = [good["password"], wrong["password"]]
    answers: list[str] = []

    with TestClient(create_app(home=home)) as api:

        def sql(query: str, status: int = 200) -> dict[str, Any]:
            answer = api.post("/api/sql", json={"query": query})
            answers.append(answer.text)
            assert answer.status_code == status, answer.text
            return answer.json()

        def create(name: str, params: dict[str, Any], status: int = 200) -> dict[str, Any]:
            body = json.dumps(params)
            return sql(
                f"CREATE DATABASE {name} WITH ENGINE = 'postgres', PARAMETERS = {body}", status
            )

        created = create("pg", good)
        assert created["rows"][0][2]["password"] == "******"
        refused = create("badpg", wrong, status=400)  # the connection error path
        assert refused["error"]["code"] == "DATASOURCE_ERROR"
        assert "password authentication failed" in refused["error"]["message"]
        # A stored datasource whose password the server no longer takes.
        other = Catalog(f"sqlite:///{home / 'catalog.sqlite'}", secrets=SecretBox(home))
        try:
            other.add_datasource("lost", "postgres", wrong)
        finally:
            other.close()

        assert sql("SELECT count(*) AS n FROM pg.pg_tables")["rows"][0][0] > 0  # it connects
        failed = sql("SELECT * FROM lost.pg_tables", status=400)
        assert failed["error"]["code"] == "DATASOURCE_ERROR"
        shown = sql("SHOW DATABASES")
        assert {r[0]: r[2]["password"] for r in shown["rows"][1:]} == {
            "lost": "******",
            "pg": "******",
        }
        sql("SHOW FULL DATABASES")
        for table in CATALOG_TABLES:
            answer = api.post("/api/sql", json={"query": f"SELECT * FROM mindsdb.{table}"})
            answers.append(answer.text)
            assert answer.status_code < 500, answer.text
        # A model trained from pg (its endpoint is down: the training fails), described.
        sql(
            "CREATE MODEL m FROM pg (SELECT 1 AS a, 2 AS y) PREDICT y USING "
            "url.train = 'http://127.0.0.1:9/train', url.predict = 'http://127.0.0.1:9/predict', "
            "format = 'ray_serve'"
        )
        deadline = time.monotonic() + 30
        while _status(sql("DESCRIBE m")) in ("generating", "training"):
            assert time.monotonic() < deadline, "training never ended"
            time.sleep(0.05)
        for query in ("DESCRIBE m", "DESCRIBE m.model", "DESCRIBE m.features"):
            sql(query)
        for table in CATALOG_TABLES:  # the jobs and models tables now have rows too
            answers.append(
                api.post("/api/sql", json={"query": f"SELECT * FROM mindsdb.{table}"}).text
            )
        sql("DROP DATABASE lost")
        files = [home / "catalog.sqlite", home / "catalog.sqlite-wal"]
        live = _bytes_of(*files)  # while the gateway runs, its WAL holds the latest writes

    logged = [caplog.text, *(r.getMessage() for r in caplog.records)]
    assert logged[0]  # the capture works
    stored = live + _bytes_of(*files, home / "audit.jsonl")
    for secret in secrets:
        for answer in answers:
            assert secret not in answer, answer
        for text in logged:
            assert secret not in text
        assert secret.encode() not in stored
