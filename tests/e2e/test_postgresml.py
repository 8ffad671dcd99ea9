"""PostgresML's forms on real models (real Ray and Ray Serve): ``pgml.tune`` fine-tunes a
tiny BERT (text classification) and a tiny T5 (translation, its languages told by its
columns ``en``, ``fr``) from SQLite tables, then ``pgml.predict``, ``pgml.predict_proba``
and ``pgml.generate`` (one text, with a config, an ARRAY, a table's rows) answer the very
rows of the native statements they translate to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builtin_models.conftest import TINY_HYPERPARAMS, build_tiny_bert, sentiment_frame
from tests.builtin_models.test_seq2seq import TINY_SEQ2SEQ, build_tiny_t5, translation_frame
from tests.conftest import RayCluster
from tests.e2e.test_builtin_lifecycle import records, run, sqlite_gateway, wait_version

pytestmark = pytest.mark.slow
BERT_HYPER = json.dumps(TINY_HYPERPARAMS)
T5_HYPER = json.dumps({**TINY_SEQ2SEQ, "num_train_epochs": 4, "per_device_train_batch_size": 8})
REVIEWS = ["a wonderful and funny story", "the plot was dull and tedious", "superb film"]


@pytest.fixture(scope="module")
def base_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        "bert": build_tiny_bert(tmp_path_factory.mktemp("pgml_bert")),
        "t5": build_tiny_t5(tmp_path_factory.mktemp("pgml_t5")),
    }


@pytest.fixture(scope="module")
def api(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A gateway with datasource ``docs``: ``imdb(text, label)`` and ``kde4(en, fr)`` as
    PostgresML's documents shape them, and ``fresh(id, review)`` to predict."""
    tables = {
        "imdb": (
            "text TEXT, label TEXT",
            list(sentiment_frame(120).itertuples(index=False, name=None)),
        ),
        "kde4": (
            "en TEXT, fr TEXT",
            list(translation_frame(40).itertuples(index=False, name=None)),
        ),
        "fresh": ("id INTEGER, review TEXT", list(enumerate(REVIEWS))),
    }
    with sqlite_gateway(tmp_path_factory, "docs", tables) as client:
        yield client


@pytest.fixture(scope="module")
def tuned(api: TestClient, base_models: dict[str, Path]) -> dict[str, Any]:
    """Both projects tuned at once (named and positional arguments); the answers of
    pgml.tune and the finished versions 1."""
    answers = {
        "movie_sentiment": run(
            api,
            "SELECT pgml.tune('Movie Sentiment', task => 'text-classification', "
            "relation_name => 'docs.imdb', y_column_name => 'label', "
            f"model_name => '{base_models['bert']}', hyperparams => '{BERT_HYPER}', "
            "test_size => 0.2, test_sampling => 'stratified')",
        ),
        "translate_english_to_french": run(
            api,
            "SELECT * FROM pgml.tune('Translate English to French', 'translation', "
            f"'docs.kde4', 'fr', '{base_models['t5']}', '{T5_HYPER}'::jsonb, 0.2)",
        ),
    }
    versions = {name: wait_version(api, name, 1) for name in answers}
    return {"answers": answers, "versions": versions}


def same_rows(api: TestClient, pgml: str, native: str) -> list[dict[str, Any]]:
    """The PostgresML form's answer, checked equal to the native statement's; its rows."""
    body = run(api, pgml)
    assert body == run(api, native), pgml
    return records(body)


def test_tune_creates_models_through_the_native_create(tuned: dict[str, Any]) -> None:
    for name, answer in tuned["answers"].items():
        (row,) = records(answer)
        assert row["name"] == name and row["status"] in ("generating", "training")
        version = tuned["versions"][name]
        assert version["status"] == "complete", version["error"]
    sentiment = tuned["versions"]["movie_sentiment"]
    assert sentiment["task"] == "text_classification" and "accuracy" in sentiment["metrics"]
    translation = tuned["versions"]["translate_english_to_french"]
    assert translation["task"] == "translation" and "bleu" in translation["metrics"]


def test_the_language_pair_comes_from_the_column_names(api: TestClient, tuned: Any) -> None:
    (row,) = records(run(api, "DESCRIBE translate_english_to_french.model"))
    assert row["target"] == "fr"
    options = row["options"] if isinstance(row["options"], dict) else json.loads(row["options"])
    assert (options["source_lang"], options["target_lang"]) == ("en", "fr")


def test_predict_and_predict_proba_answer_the_native_rows(api: TestClient, tuned: Any) -> None:
    text = REVIEWS[0]
    (row,) = same_rows(
        api,
        f"SELECT pgml.predict('Movie Sentiment', '{text}') AS sentiment",
        f"SELECT label AS sentiment FROM movie_sentiment WHERE text = '{text}'",
    )
    assert row["sentiment"] in ("positive", "negative")
    (proba,) = same_rows(
        api,
        f"SELECT pgml.predict_proba('Movie Sentiment', '{text}')",
        f"SELECT label_proba AS predict_proba FROM movie_sentiment WHERE text = '{text}'",
    )
    assert set(proba["predict_proba"]) == {"positive", "negative"}
    assert abs(sum(proba["predict_proba"].values()) - 1) < 1e-6


def test_generate_answers_the_native_rows(api: TestClient, tuned: Any) -> None:
    project = "'Translate English to French'"
    (row,) = same_rows(
        api,
        f"SELECT pgml.generate({project}, 'red cat big dog') AS french",
        "SELECT fr AS french FROM translate_english_to_french WHERE source = 'red cat big dog'",
    )
    assert isinstance(row["french"], str)
    (short,) = same_rows(
        api,
        f"SELECT pgml.generate({project}, 'big green tree small house', "
        "'{\"max_new_tokens\": 2}'::jsonb)",
        "SELECT fr AS generate FROM translate_english_to_french WHERE source = "
        "'big green tree small house' USING max_new_tokens = 2",
    )
    assert len(short["generate"].split()) <= 2  # one word is one token of the tiny T5
    batch = same_rows(
        api,
        f"SELECT pgml.generate({project}, ARRAY['red cat', 'blue car', 'dog'])",
        "SELECT p.fr AS generate FROM (SELECT 'red cat' AS source UNION ALL SELECT "
        "'blue car' AS source UNION ALL SELECT 'dog' AS source) AS t "
        "JOIN translate_english_to_french AS p",
    )
    alone = run(api, f"SELECT pgml.generate({project}, 'blue car')")["rows"][0][0]
    assert len(batch) == 3 and batch[1]["generate"] == alone  # one row per text, in order


def test_the_form_over_a_table_answers_the_native_join(api: TestClient, tuned: Any) -> None:
    rows = same_rows(
        api,
        "SELECT f.id, pgml.predict('Movie Sentiment', f.review) AS sentiment "
        "FROM docs.fresh AS f ORDER BY f.id",
        "SELECT t.id, p.label AS sentiment FROM (SELECT id, review AS text FROM docs.fresh "
        "ORDER BY id) AS t JOIN movie_sentiment AS p",
    )
    assert [r["id"] for r in rows] == [0, 1, 2]
    for row, text in zip(rows, REVIEWS, strict=True):
        alone = run(api, f"SELECT pgml.predict('movie_sentiment', '{text}')")["rows"][0][0]
        assert row["sentiment"] == alone
