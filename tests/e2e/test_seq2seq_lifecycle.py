"""Summarization and translation through SQL, on real Ray and Ray Serve: CREATE MODEL from a
SQLite table (a tiny word-level T5 built in the test, so one word is one token), the version
completes with its metrics, one row predicted, per-query generation options (``USING
max_new_tokens``, ``temperature`` + ``seed``) honoured, a JOIN generating one row per source
in order, a bad option value refused with a 4xx naming it while the gateway keeps serving.

(The seed's translation form without languages is refused in test_seed_conformance.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builtin_models.test_seq2seq import (
    EN_FR,
    TINY_SEQ2SEQ,
    build_tiny_t5,
    summary_frame,
    translation_frame,
)
from tests.conftest import RayCluster
from tests.e2e.test_builtin_lifecycle import records, run, sqlite_gateway, wait_version

pytestmark = pytest.mark.slow
# 40 rows, 32 to train: 16 steps of 8 rows, a couple of seconds on one thread.
HYPER = json.dumps({**TINY_SEQ2SEQ, "num_train_epochs": 15, "per_device_train_batch_size": 8})
SOURCES = ["red cat", "big green tree small house blue car", "dog", "small red car"]


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5_e2e"))


@pytest.fixture(scope="module")
def api(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A gateway with datasource ``texts``: tables ``pairs(en, fr)``, ``notes(body, gist)``
    and ``inbox(id, source)`` (the sources a JOIN generates for)."""
    tables = {
        "pairs": (
            "en TEXT, fr TEXT",
            list(translation_frame(40).itertuples(index=False, name=None)),
        ),
        "notes": (
            "body TEXT, gist TEXT",
            list(summary_frame(40).itertuples(index=False, name=None)),
        ),
        "inbox": ("id INTEGER, source TEXT", list(enumerate(SOURCES))),
    }
    with sqlite_gateway(tmp_path_factory, "texts", tables) as client:
        yield client


@pytest.fixture(scope="module")
def versions(api: TestClient, tiny_t5: Path) -> dict[str, dict[str, Any]]:
    """CREATE MODEL french (translation, en -> fr) and gists (summarization), trained at the
    same time (one CPU each); their finished versions 1 by model name."""
    run(
        api,
        "CREATE MODEL french FROM texts (SELECT en AS source, fr AS target FROM pairs) "
        "PREDICT target USING task = 'translation', source_lang = 'en', target_lang = 'fr', "
        f"model_name = '{tiny_t5}', hyperparams = '{HYPER}', test_size = 0.2",
    )
    run(
        api,
        "CREATE MODEL gists FROM texts (SELECT body AS source, gist AS summary FROM notes) "
        f"PREDICT summary USING task = 'summarization', model_name = '{tiny_t5}', "
        f"hyperparams = '{HYPER}', test_size = 0.2",
    )
    return {name: wait_version(api, name, 1) for name in ("french", "gists")}


@pytest.fixture(scope="module")
def translator(versions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return versions["french"]


@pytest.fixture(scope="module")
def summarizer(versions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return versions["gists"]


def _translate(api: TestClient, source: str, using: str = "") -> str:
    body = run(api, f"SELECT target FROM french WHERE source = '{source}' {using}")
    (row,) = records(body)
    assert isinstance(row["target"], str), row
    return str(row["target"])


def test_translation_completes_with_bleu_and_chrf(translator: dict[str, Any]) -> None:
    assert translator["status"] == "complete", translator["error"]
    metrics = translator["metrics"]
    assert {"bleu", "chrf", "test_rows"} <= set(metrics)
    assert metrics["test_rows"] == 8
    assert 0 <= metrics["bleu"] <= 100 and 0 <= metrics["chrf"] <= 100


def test_summarization_completes_with_rouge(api: TestClient, summarizer: dict[str, Any]) -> None:
    assert summarizer["status"] == "complete", summarizer["error"]
    assert {"rouge1", "rouge2", "rougeL"} <= set(summarizer["metrics"])
    assert all(0 <= summarizer["metrics"][k] <= 1 for k in ("rouge1", "rouge2", "rougeL"))
    (row,) = records(run(api, "SELECT summary FROM gists WHERE source = 'big cat red dog'"))
    assert isinstance(row["summary"], str)
    bounded = records(
        run(
            api,
            "SELECT summary FROM gists WHERE source = 'big cat red dog small tree' "
            "USING max_new_tokens = 1",
        )
    )
    assert len(bounded[0]["summary"].split()) <= 1


def test_predict_one_row(api: TestClient, translator: dict[str, Any]) -> None:
    text = _translate(api, "red cat big dog")
    # Trained a few seconds: it writes the target language (not necessarily the right words).
    assert any(word in EN_FR.values() for word in text.split()), text


def test_max_new_tokens_bounds_the_answer(api: TestClient, translator: dict[str, Any]) -> None:
    source = "big green tree small house blue car red cat"
    unbounded = _translate(api, source)
    bounded = _translate(api, source, "USING max_new_tokens = 2")
    assert len(bounded.split()) <= 2  # one word is one token of the tiny tokenizer
    assert unbounded.split()[:2] == bounded.split()  # greedy: the same start, cut


def test_seeded_sampling_repeats(api: TestClient, translator: dict[str, Any]) -> None:
    using = "USING temperature = 0.9, seed = 7, max_new_tokens = 6"
    first = _translate(api, "small red car green tree", using)
    assert _translate(api, "small red car green tree", using) == first
    other = _translate(api, "small red car green tree", using.replace("seed = 7", "seed = 8"))
    assert isinstance(other, str)  # may equal the first: a trained model is confident


def test_a_join_generates_one_row_per_source_in_order(
    api: TestClient, translator: dict[str, Any]
) -> None:
    body = run(
        api,
        "SELECT t.id, t.source, p.target FROM texts.inbox AS t JOIN french AS p "
        "ORDER BY t.id USING max_new_tokens = 8",
    )
    rows = records(body)
    assert [r["id"] for r in rows] == list(range(len(SOURCES)))
    assert [r["source"] for r in rows] == SOURCES
    for row in rows:
        # Each row is its own source's translation (the same as predicted alone).
        assert row["target"] == _translate(api, row["source"], "USING max_new_tokens = 8")


@pytest.mark.parametrize(
    ("using", "option"),
    [
        ("temperature = -1", "temperature"),
        ("num_beams = 100", "num_beams"),
        ("max_new_tokens = 'many'", "max_new_tokens"),
        ("max_new_token = 2", "max_new_token"),  # misspelt: MLflow alone would ignore it
    ],
)
def test_a_bad_option_is_a_client_error_and_serving_goes_on(
    api: TestClient, translator: dict[str, Any], using: str, option: str
) -> None:
    response = api.post(
        "/api/sql", json={"query": f"SELECT target FROM french WHERE source = 'dog' USING {using}"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_OPTION" and error["option"] == option, error
    assert f"USING {option} = " in error["message"], error
    assert isinstance(_translate(api, "dog"), str)  # answered (200): serving goes on


def test_describe_shows_the_version(api: TestClient, translator: dict[str, Any]) -> None:
    (row,) = records(run(api, "DESCRIBE french"))
    assert row["version"] == 1 and row["status"] == "complete"
    assert row["task"] == "translation"
