"""The built-in question answerer through SQL, on real Ray and Ray Serve: CREATE MODEL from a
SQLite table (a tiny BERT built in the test gets a span head), predict one row, and a
training query whose answers are not in their contexts ends the version with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builtin_models.conftest import build_tiny_bert
from tests.builtin_models.test_question_answering import TINY_QA_HYPERPARAMS, capitals_frame
from tests.conftest import RayCluster
from tests.e2e.test_builtin_lifecycle import records, run, sqlite_gateway, wait_version

pytestmark = pytest.mark.slow
HYPER = json.dumps(TINY_QA_HYPERPARAMS)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert_qa"))


@pytest.fixture(scope="module")
def api(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A gateway with datasource ``kb``: table ``facts(q, passage, capital)``."""
    rows = list(capitals_frame(100).itertuples(index=False, name=None))
    tables = {"facts": ("q TEXT, passage TEXT, capital TEXT", rows)}
    with sqlite_gateway(tmp_path_factory, "kb", tables) as client:
        yield client


def test_create_and_answer_a_question(api: TestClient, tiny_bert: Path) -> None:
    run(
        api,
        "CREATE MODEL capitals FROM kb "
        "(SELECT q AS question, passage AS context, capital FROM facts) PREDICT capital "
        f"USING task = 'question_answering', model_name = '{tiny_bert}', "
        f"hyperparams = '{HYPER}', test_size = 0.2",
    )
    v1 = wait_version(api, "capitals", 1)
    assert v1["status"] == "complete", v1["error"]
    assert {"exact_match", "f1"} <= set(v1["metrics"])

    context = "Many people visit gang. The capital of heist is funny."
    body = run(
        api,
        "SELECT capital, score, start, end FROM capitals "
        f"WHERE question = 'What is the capital of heist?' AND context = '{context}'",
    )
    (row,) = records(body)
    assert row["capital"] and context[row["start"] : row["end"]] == row["capital"]
    assert 0.0 < row["score"] <= 1.0
    # Per query: at most one token (one word of the tiny vocabulary) in the answer.
    body = run(
        api,
        "SELECT capital FROM capitals WHERE question = 'Where is it?' "
        f"AND context = '{context}' USING max_answer_length = 1",
    )
    assert " " not in records(body)[0]["capital"]
    refused = api.post(
        "/api/sql",
        json={
            "query": "SELECT capital FROM capitals WHERE question = 'q' AND context = 'c' "
            "USING max_answer_length = 1000"
        },
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["option"] == "max_answer_length"


def test_answers_not_in_their_contexts_end_the_version(api: TestClient, tiny_bert: Path) -> None:
    run(
        api,
        "CREATE MODEL broken FROM kb (SELECT q AS question, passage AS context, "
        "'Atlantis' AS answer FROM facts) PREDICT answer "
        f"USING task = 'question_answering', model_name = '{tiny_bert}'",
    )
    v1: dict[str, Any] = wait_version(api, "broken", 1)
    assert v1["status"] == "error"
    assert "100 of 100 rows have an answer that is not in their context" in v1["error"]
