"""Text generation through SQL, on real Ray and Ray Serve: CREATE MODEL from a SQLite table
(a tiny word-level GPT-2 built in the test, so one word is one token), the version completes
with its perplexities, one prompt continued with per-query generation options (``USING
max_new_tokens``, ``temperature`` + ``seed``) honoured, and a JOIN continuing one row per
prompt, in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builtin_models.test_text_generation import (
    TINY_GENERATION,
    VOCABULARY,
    build_tiny_gpt2,
    story_frame,
)
from tests.conftest import RayCluster
from tests.e2e.test_builtin_lifecycle import records, run, sqlite_gateway, wait_version

pytestmark = pytest.mark.slow
# 40 rows, 32 to train: 16 steps of 8 rows, about a second on one thread.
HYPER = json.dumps({**TINY_GENERATION, "num_train_epochs": 4, "per_device_train_batch_size": 8})
PROMPTS = ["the red", "the small dog sat on", "the", "the green bird"]


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2_e2e"))


@pytest.fixture(scope="module")
def api(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A gateway with datasource ``lib``: tables ``stories(body)`` and ``starts(id, prompt)``
    (the prompts a JOIN continues)."""
    tables = {
        "stories": ("body TEXT", list(story_frame(40).itertuples(index=False, name=None))),
        "starts": ("id INTEGER, prompt TEXT", list(enumerate(PROMPTS))),
    }
    with sqlite_gateway(tmp_path_factory, "lib", tables) as client:
        yield client


@pytest.fixture(scope="module")
def storyteller(api: TestClient, tiny_gpt2: Path) -> dict[str, Any]:
    """CREATE MODEL stories (text_generation); its finished version 1."""
    run(
        api,
        "CREATE MODEL storyteller FROM lib (SELECT body AS text FROM stories) "
        f"PREDICT continuation USING task = 'text_generation', model_name = '{tiny_gpt2}', "
        f"hyperparams = '{HYPER}', test_size = 0.2",
    )
    return wait_version(api, "storyteller", 1)


def _continue(api: TestClient, prompt: str, using: str = "") -> str:
    body = run(api, f"SELECT continuation FROM storyteller WHERE prompt = '{prompt}' {using}")
    (row,) = records(body)
    assert isinstance(row["continuation"], str), row
    return str(row["continuation"])


def test_the_version_completes_with_its_perplexities(
    api: TestClient, storyteller: dict[str, Any]
) -> None:
    assert storyteller["status"] == "complete", storyteller["error"]
    metrics = storyteller["metrics"]
    assert {"perplexity", "base_perplexity", "test_tokens", "test_rows"} <= set(metrics)
    assert metrics["test_rows"] == 8
    assert 1 <= metrics["perplexity"] < metrics["base_perplexity"], metrics
    (row,) = records(run(api, "DESCRIBE storyteller"))
    assert row["task"] == "text_generation"


def test_a_prompt_is_continued_with_the_query_options(
    api: TestClient, storyteller: dict[str, Any]
) -> None:
    text = _continue(api, "the red cat")
    assert text and set(text.split()) <= set(VOCABULARY), text
    assert not text.startswith("the red cat")  # the continuation only
    using = "USING max_new_tokens = 5, temperature = 0.9, seed = 7"
    first = _continue(api, "the small", using)
    assert _continue(api, "the small", using) == first
    assert len(first.split()) <= 5  # one word is one token of the tiny tokenizer
    assert len(_continue(api, "the big dog", "USING max_new_tokens = 1").split()) <= 1


def test_a_join_continues_one_row_per_prompt_in_order(
    api: TestClient, storyteller: dict[str, Any]
) -> None:
    body = run(
        api,
        "SELECT t.id, t.prompt, p.continuation FROM lib.starts AS t JOIN storyteller AS p "
        "ORDER BY t.id USING max_new_tokens = 4",
    )
    rows = records(body)
    assert [r["id"] for r in rows] == list(range(len(PROMPTS)))
    assert [r["prompt"] for r in rows] == PROMPTS
    for row in rows:
        # Each row is its own prompt's continuation (the same as predicted alone).
        assert row["continuation"] == _continue(api, row["prompt"], "USING max_new_tokens = 4")


def test_a_bad_option_is_a_client_error(api: TestClient, storyteller: dict[str, Any]) -> None:
    response = api.post(
        "/api/sql",
        json={"query": "SELECT continuation FROM storyteller WHERE prompt = 'the' USING top_p = 0"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert "top_p" in response.json()["error"]["message"], response.text
