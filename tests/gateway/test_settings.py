"""Settings: one object read once from the environment and ``byom serve`` flags, checked."""

from __future__ import annotations

import argparse

import pytest

from byom.errors import InvalidOption
from gateway.settings import KNOBS, Settings, add_flags


def test_defaults_without_environment() -> None:
    settings = Settings.load({})
    assert settings == Settings()
    assert (settings.batch_size, settings.concurrency, settings.batch_timeout) == (1000, 4, None)


def test_every_knob_is_read_from_its_variable() -> None:
    env = {
        "BYOM_BATCH_SIZE": "7", "BYOM_CONCURRENCY": "2", "BYOM_BATCH_TIMEOUT": "1.5",
        "BYOM_PREDICT_TIMEOUT": "9", "BYOM_CONNECT_TIMEOUT": "0.5", "BYOM_TRAIN_TIMEOUT": "60",
        "BYOM_PREDICT_RETRIES": "0", "BYOM_TRAIN_CPUS": "0.5", "BYOM_REPLICA_CPUS": "0.1",
        "BYOM_SERVE_PORT": "8123", "BYOM_HEARTBEAT_INTERVAL": "2", "BYOM_HEARTBEAT_TIMEOUT": "7",
        "BYOM_RAY_JOIN_ROWS": "0", "BYOM_RAY_JOIN_WORKERS": "3",
        "BYOM_MAX_RESPONSE_BYTES": "1024", "BYOM_BREAKER_FAILURES": "0",
        "BYOM_BREAKER_COOLDOWN": "2.5",
        "BYOM_MAX_BODY_BYTES": "4096", "BYOM_MAX_STATEMENT_BYTES": "1024",
        "BYOM_MAX_STATEMENTS": "5", "BYOM_STATEMENT_TIMEOUT": "0", "BYOM_MAX_IN_FLIGHT": "8",
        "BYOM_MAX_IN_FLIGHT_PER_CLIENT": "2", "BYOM_BATCH_WAIT_MS": "2.5",
        "BYOM_MAX_STATEMENT_TIMEOUT": "7200",
    }  # fmt: skip
    settings = Settings.load(env)
    assert settings == Settings(
        7, 2, 1.5, 9.0, 0.5, 60.0, 0, 0.5, 0.1, 8123,
        heartbeat_interval=2.0, heartbeat_timeout=7.0, ray_join_rows=0, ray_join_workers=3,
        max_response_bytes=1024, breaker_failures=0, breaker_cooldown=2.5,
        max_body_bytes=4096, max_statement_bytes=1024, max_statements=5, statement_timeout=0.0,
        max_in_flight=8, max_in_flight_per_client=2, batch_wait_ms=2.5,
        max_statement_timeout=7200.0,
    )  # fmt: skip
    assert Settings.load({"BYOM_TRACKING_URI": " sqlite:///x.db "}).tracking_uri == "sqlite:///x.db"
    http = settings.http()
    assert (http.read_timeout, http.connect_timeout, http.train_timeout, http.retries) == (
        9.0,
        0.5,
        60.0,
        0,
    )
    assert (http.max_response_bytes, http.breaker_failures, http.breaker_cooldown) == (
        1024,
        0,
        2.5,
    )
    assert {k.env for k in KNOBS} == set(env)  # the table and the test name the same knobs


def test_resource_knobs_are_checked_json_objects() -> None:
    env = {"BYOM_TRAIN_RESOURCES": '{"trainer": 1}', "BYOM_REPLICA_RESOURCES": '{"a": 0.5}'}
    settings = Settings.load(env)
    assert settings.train_resources == {"trainer": 1.0}
    assert settings.replica_resources == {"a": 0.5}
    for bad in ("trainer", '["trainer"]', '{"trainer": 0}', '{"trainer": true}', '{"CPU": 1}'):
        with pytest.raises(InvalidOption, match="BYOM_TRAIN_RESOURCES"):
            Settings.load({"BYOM_TRAIN_RESOURCES": bad})


def test_artifact_root_is_read_next_to_the_tracking_uri() -> None:
    env = {"BYOM_TRACKING_URI": "postgresql://db/mlflow", "BYOM_ARTIFACT_ROOT": " s3://b/byom "}
    settings = Settings.load(env)
    assert (settings.tracking_uri, settings.artifact_root) == (
        "postgresql://db/mlflow",
        "s3://b/byom",
    )
    assert Settings.load({"BYOM_ARTIFACT_ROOT": " "}).artifact_root is None
    assert Settings.load({}).artifact_root is None


def test_flags_override_the_environment() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    args = parser.parse_args(["--batch-size", "5", "--batch-timeout", "2"])
    settings = Settings.load({"BYOM_BATCH_SIZE": "9", "BYOM_CONCURRENCY": "3"}, flags=args)
    assert (settings.batch_size, settings.concurrency, settings.batch_timeout) == (5, 3, 2.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BYOM_BATCH_SIZE": "0"}, "BYOM_BATCH_SIZE must be positive, got '0'."),
        ({"BYOM_BATCH_SIZE": "1.5"}, "BYOM_BATCH_SIZE must be an integer (positive), got '1.5'."),
        ({"BYOM_CONCURRENCY": "-2"}, "BYOM_CONCURRENCY must be positive, got '-2'."),
        ({"BYOM_PREDICT_TIMEOUT": "nan"}, "BYOM_PREDICT_TIMEOUT must be positive, got 'nan'."),
        ({"BYOM_TRAIN_TIMEOUT": "soon"}, "BYOM_TRAIN_TIMEOUT must be a number (positive)"),
        ({"BYOM_PREDICT_RETRIES": "-1"}, "BYOM_PREDICT_RETRIES must be 0 or more, got '-1'."),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        Settings.load(env)
    assert caught.value.message.startswith(message)
    assert caught.value.code == "INVALID_OPTION"
    assert caught.value.details["option"] == next(iter(env))


def test_zero_retries_and_blank_variables_are_fine() -> None:
    settings = Settings.load({"BYOM_PREDICT_RETRIES": "0", "BYOM_BATCH_SIZE": "  "})
    assert (settings.predict_retries, settings.batch_size) == (0, 1000)
