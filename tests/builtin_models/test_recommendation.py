"""The recommendation task: TwoTower on planted data, every recommend mode through the
logged pyfunc model, options and input rules, metadata features, the embedding tables and
the ranking metrics."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from builtin_models import artifacts, holdout
from builtin_models import recommendation as rec
from builtin_models.ranking_metrics import ranking_metrics
from builtin_models.recommender_model import Recommender
from builtin_models.tasks import get_task
from builtin_models.training import TrainingRequest, TrainingResult, run_training
from byom.errors import InvalidInput, InvalidOption
from tests.builtin_models.conftest import (
    RECOMMENDER_GROUPS,
    TINY_RECOMMENDER_HYPERPARAMS,
    FrameReader,
    group_of,
    planted_frame,
)

Run = tuple[TrainingResult, pd.DataFrame]
USERS = [f"u{g}_{j}" for g in range(RECOMMENDER_GROUPS) for j in range(20)]


def _model(result: TrainingResult) -> Any:
    return artifacts.load_model(result.model_uri, result.tracking_uri)


def _seen(result: TrainingResult) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for user, item in result.tables["interactions"][["user_id", "item_id"]].itertuples(index=False):
        seen.setdefault(user, set()).add(item)
    return seen


# ------------------------------------------------------------------- quality, planted data
@pytest.mark.parametrize("run_name", ["explicit_recommender", "implicit_recommender"])
def test_recommends_in_group_and_beats_popularity(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    result, frame = request.getfixturevalue(run_name)
    answer = _model(result).predict(pd.DataFrame({"user_id": USERS}), params={"topk": 10})
    in_group = np.mean(
        [
            group_of(USERS[r]) == group_of(i)
            for r, i in zip(answer["row"], answer["item_id"], strict=True)
        ]
    )
    # Chance is 1/4. Explicit feedback learns every rated item, the 15% rated out of group
    # too, so popular items of other groups come up more than with implicit feedback.
    assert in_group >= (0.85 if run_name.startswith("implicit") else 0.65)

    # The same holdout as run_training, ranked by training popularity instead.
    implicit = run_name.startswith("implicit")
    sampling = "random" if implicit else "stratified"
    split = holdout.split(len(frame), 0.2, sampling, classes=frame["user_id"].tolist(), seed=42)
    train, test = frame.iloc[split.train], frame.iloc[split.test]
    positive = (lambda f: f[f["rating"] > 2]) if implicit else (lambda f: f)
    counts = positive(train)["item_id"].value_counts()
    seen = train.groupby("user_id")["item_id"].apply(set)
    relevant = positive(test).groupby("user_id")["item_id"].apply(set)
    ranked = [[i for i in counts.index if i not in seen.get(u, set())][:10] for u in relevant.index]
    popularity = ranking_metrics(np.array(ranked, dtype=object), list(relevant), 10)
    assert result.metrics["k"] == 10
    assert result.metrics["evaluated_users"] == popularity["evaluated_users"]
    assert result.metrics["ndcg_at_k"] > popularity["ndcg_at_k"] + 0.05
    assert result.metrics["precision_at_k"] > popularity["precision_at_k"]


def test_explicit_feedback_reports_rmse_and_drops_null_rows(explicit_recommender: Run) -> None:
    result, frame = explicit_recommender
    assert result.metrics["dropped_null_rows"] == 3  # the three NULL-id rows appended
    assert result.rows_used == len(frame) and result.train_rows + result.test_rows == len(frame)
    assert 0 < result.metrics["rmse"] < 4
    assert result.base_model == "TwoTower" and result.labels == []


def test_explicit_ratings_beat_the_mean(tmp_path: Path) -> None:
    # Denser, with more out-of-group rows rated 1-2: the ratings follow the groups.
    frame = planted_frame(per_user=25, noise=0.3, seed=5)
    examples = rec.prepare(frame, {})
    split = holdout.split(len(frame), 0.2, "stratified", classes=examples.users)
    hyperparams = TINY_RECOMMENDER_HYPERPARAMS
    trained = rec.train(
        rec.subset(examples, split.train), hyperparams=hyperparams, workdir=tmp_path
    )
    metrics = rec.evaluate(trained, rec.subset(examples, split.test))
    truth = frame.iloc[split.test]["rating"].to_numpy()
    mean_only = float(np.sqrt(np.mean((truth - frame.iloc[split.train]["rating"].mean()) ** 2)))
    assert metrics["rmse"] < 0.8 * mean_only  # about 0.9 against 1.4


def test_implicit_feedback_learns_the_rows_above_the_threshold(
    implicit_recommender: Run,
) -> None:
    result, frame = implicit_recommender
    assert "rmse" not in result.metrics
    params = mlflow.MlflowClient(result.tracking_uri).get_run(result.run_id).data.params
    assert params["option.feedback"] == "implicit"
    assert float(params["option.feedback_threshold"]) == 2.0
    examples = rec.prepare(
        frame, {}, task_options={"feedback": "implicit", "feedback_threshold": 2}
    )
    assert examples.positives().sum() == (frame["rating"] > 2).sum() < len(frame)
    with pytest.raises(InvalidInput, match="no rating above feedback_threshold 9"):
        rec.prepare(frame, {}, task_options={"feedback": "implicit", "feedback_threshold": 9})


# ------------------------------------------------------------------- the pyfunc's modes
def test_signature_declares_the_params(explicit_recommender: Run) -> None:
    result, _ = explicit_recommender
    with artifacts.tracking(result.tracking_uri):
        signature = mlflow.models.get_model_info(result.model_uri).signature
    params = {p.name: p.default for p in signature.params.params}
    assert params == {"recommend": "auto", "topk": 3, "remove_seen": True}
    assert {c.name: c.required for c in signature.inputs.inputs} == {
        "user_id": False,
        "item_id": False,
    }


def test_ratings_mode(explicit_recommender: Run) -> None:
    model = _model(explicit_recommender[0])
    pairs = pd.DataFrame({"user_id": ["u0_1", None, "nobody"], "item_id": ["i0_0"] * 3})
    out = model.predict(pairs)  # both columns: ratings by default
    assert list(out.columns) == ["row", "prediction"]
    assert out["row"].tolist() == [0, 1, 2]
    assert 1.0 <= out["prediction"][0] <= 5.0
    assert pd.isna(out["prediction"][1])  # a NULL user
    assert 1.0 <= out["prediction"][2] <= 5.0  # an unknown user: the item's baseline
    # Every user rates an item of its own group above the same-rank item of other groups.
    grid = pd.DataFrame(
        {
            "user_id": [u for u in USERS for _ in range(RECOMMENDER_GROUPS)],
            "item_id": [f"i{g}_5" for _ in USERS for g in range(RECOMMENDER_GROUPS)],
        }
    )
    rated = model.predict(grid)["prediction"].to_numpy(float).reshape(len(USERS), -1)
    own = rated[np.arange(len(USERS)), [group_of(u) for u in USERS]]
    others = (rated.sum(axis=1) - own) / (RECOMMENDER_GROUPS - 1)
    assert own.mean() > others.mean() + 0.2  # about 4.3 against 3.8
    same = model.predict(pairs, params={"recommend": "ratings"})
    assert same.equals(out)


def test_items_mode_topk_rows_and_remove_seen(explicit_recommender: Run) -> None:
    result, _ = explicit_recommender
    model, seen = _model(result), _seen(result)
    users = ["u1_2", None, "u3_4"]
    out = model.predict(pd.DataFrame({"user_id": users}))  # user_id alone: items, topk 3
    assert list(out.columns) == ["row", "prediction", "item_id", "score", "rank", "cold_start"]
    assert out["row"].tolist() == [0, 0, 0, 2, 2, 2]  # the NULL user answers no rows
    assert out["rank"].tolist() == [1, 2, 3, 1, 2, 3]
    assert out["prediction"].tolist() == out["item_id"].tolist()
    assert not out["cold_start"].any()
    for row, frame in out.groupby("row"):
        assert frame["score"].is_monotonic_decreasing
        assert not set(frame["item_id"]) & seen[users[row]]  # remove_seen by default

    five = model.predict(pd.DataFrame({"user_id": ["u1_2"]}), params={"topk": 5})
    assert five["rank"].tolist() == [1, 2, 3, 4, 5]
    every = len(result.tables["items"])
    kept = model.predict(
        pd.DataFrame({"user_id": ["u1_2"]}), params={"topk": every, "remove_seen": False}
    )
    assert len(kept) == every and seen["u1_2"] <= set(kept["item_id"])
    removed = model.predict(pd.DataFrame({"user_id": ["u1_2"]}), params={"topk": every})
    assert len(removed) == every - len(seen["u1_2"])


def test_cold_start_gets_the_popular_or_best_rated(
    explicit_recommender: Run, implicit_recommender: Run
) -> None:
    answers = {}
    for name, (result, _) in (
        ("explicit", explicit_recommender),
        ("implicit", implicit_recommender),
    ):
        out = _model(result).predict(
            pd.DataFrame({"user_id": ["stranger", "u0_0"]}), params={"topk": 4}
        )
        cold = answers[name] = out[out["row"] == 0]
        assert cold["cold_start"].all() and not out[out["row"] == 1]["cold_start"].any()
        assert cold["rank"].tolist() == [1, 2, 3, 4]
        assert cold["score"].is_monotonic_decreasing
    # Explicit: the best rated (damped mean rating), all rated 4-5 in the planted data.
    assert (answers["explicit"]["score"] > 3.5).all()
    # Implicit: the most chosen items above the threshold, in that order.
    result, frame = implicit_recommender
    cold = answers["implicit"]
    interactions = result.tables["interactions"]
    positives = interactions.merge(frame, on=["user_id", "item_id"])
    counts = positives[positives["rating"] > 2]["item_id"].value_counts()
    top = counts.sort_values(ascending=False, kind="stable")
    assert cold["score"].iloc[0] == pytest.approx(top.iloc[0] / counts.sum())
    assert set(cold["item_id"]) <= set(top[top >= top.iloc[3]].index)


def test_users_and_similarity_modes(implicit_recommender: Run) -> None:
    result, _ = implicit_recommender
    model, seen = _model(result), _seen(result)
    items = ["i2_3", "i1_0"]
    users = model.predict(pd.DataFrame({"item_id": items}), params={"topk": 5})  # users
    assert list(users.columns) == ["row", "prediction", "user_id", "score", "rank", "cold_start"]
    assert users["row"].tolist() == [0] * 5 + [1] * 5
    assert (
        np.mean(
            [
                group_of(u) == group_of(items[r])
                for r, u in zip(users.row, users.user_id, strict=True)
            ]
        )
        >= 0.8
    )
    for row, frame in users.groupby("row"):
        chose = {u for u, its in seen.items() if items[row] in its}
        assert not set(frame["user_id"]) & chose

    similar = model.predict(
        pd.DataFrame({"item_id": items}), params={"recommend": "items_to_items", "topk": 5}
    )
    assert "item_id" in similar.columns and items[0] not in set(similar[similar.row == 0].item_id)
    assert (
        np.mean(
            [
                group_of(i) == group_of(items[r])
                for r, i in zip(similar.row, similar.item_id, strict=True)
            ]
        )
        >= 0.8
    )

    peers = model.predict(
        pd.DataFrame({"user_id": ["u3_1"]}), params={"recommend": "users_to_users", "topk": 5}
    )
    assert "user_id" in peers.columns and "u3_1" not in set(peers["user_id"])
    assert np.mean([group_of(u) == 3 for u in peers["user_id"]]) >= 0.8
    unknown = model.predict(
        pd.DataFrame({"item_id": ["no-such-item"]}), params={"recommend": "items_to_items"}
    )
    assert unknown["cold_start"].all() and len(unknown) == 3
    empty = model.predict(pd.DataFrame({"user_id": pd.Series([], dtype=object)}))
    assert empty.empty and "item_id" in empty.columns
    huge = model.predict(pd.DataFrame({"user_id": ["u0_0"]}), params={"topk": 10**9})
    assert 0 < len(huge) <= len(result.tables["items"])
    with pytest.raises(ValueError, match="recommend must be one of"):
        model.predict(pd.DataFrame({"user_id": ["u3_1"]}), params={"recommend": "item"})


def test_top10_over_100k_items_takes_milliseconds() -> None:
    rng = np.random.default_rng(0)
    n_items, dim = 100_000, 64
    arrays = {
        "user_ids": np.array(["a", "b"]),
        "item_ids": np.array([f"i{i}" for i in range(n_items)]),
        "user_vectors": rng.normal(size=(2, dim)).astype(np.float32),
        "item_vectors": rng.normal(size=(n_items, dim)).astype(np.float32),
        "item_bias": np.zeros(n_items, np.float32),
        "seen_users": np.zeros(50, np.int64),
        "seen_items": np.arange(50, dtype=np.int64),
        "fallback_items": np.arange(10, dtype=np.int64),
        "fallback_items_score": np.ones(10),
        "fallback_users": np.arange(2, dtype=np.int64),
        "fallback_users_score": np.ones(2),
    }
    model = Recommender(arrays, {"feedback": "implicit"})
    query = pd.DataFrame({"user_id": ["a"]})
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        out = model.predict(query, {"topk": 10})
        timings.append(time.perf_counter() - start)
    scores = arrays["user_vectors"][0] @ arrays["item_vectors"].T
    scores[:50] = -np.inf  # seen
    best = [f"i{i}" for i in np.argsort(-scores)[:10]]
    assert out["item_id"].tolist() == best
    assert sorted(timings)[2] < 0.05  # a few ms; generous for a busy CI box


# ------------------------------------------------------------------- metadata features
def test_item_metadata_scores_cold_items_by_their_features(
    implicit_recommender: Run, tmp_path: Path
) -> None:
    result, frame = implicit_recommender
    assert {"c0_0", "c3_1"} <= set(result.tables["items"]["item_id"])  # metadata-only items
    pairs = pd.DataFrame(
        {
            "user_id": [u for u in USERS for _ in range(RECOMMENDER_GROUPS)],
            "item_id": [f"c{g}_0" for _ in USERS for g in range(RECOMMENDER_GROUPS)],
        }
    )
    scores = _model(result).predict(pairs)["prediction"].to_numpy(dtype=float)
    best = scores.reshape(len(USERS), RECOMMENDER_GROUPS).argmax(axis=1)
    assert np.mean(best == [group_of(u) for u in USERS]) >= 0.9  # chance: 0.25
    # The same rows without the metadata: the cold items are unknown, nothing scores them.
    options = {"feedback": "implicit", "feedback_threshold": 2}
    examples = rec.prepare(frame, {}, task_options=options)
    plain = rec.train(examples, hyperparams=TINY_RECOMMENDER_HYPERPARAMS, workdir=tmp_path)
    answer = plain.recommender.predict(pairs.head(RECOMMENDER_GROUPS), {})
    assert answer["prediction"].isna().all()


def test_metadata_features_are_parsed() -> None:
    from builtin_models.recommendation_data import features_for, read_metadata

    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "genres": ["Action|Comedy", "Comedy", None],
            "title": ["the big heist", "a big day", "the day"],
        }
    )
    meta = read_metadata(frame, "item_metadata", "item_id", "item_id")
    assert meta.tokens["a"] == [
        "genres=Action",
        "genres=Comedy",
        "title~the",
        "title~big",
        "title~heist",
    ]
    features = features_for(meta, ["a", "b", "c", "d"])
    assert features is not None
    # Only tokens two items share: genres=Comedy, title~the, title~big, title~day.
    assert features.n_features == 4
    assert features.has_any.tolist() == [True, True, True, False]
    assert read_metadata(frame.rename(columns={"item_id": "sku"}), "m", "sku", "item_id").tokens
    with pytest.raises(InvalidInput, match="no 'sku' column"):
        read_metadata(frame.rename(columns={"item_id": "code"}), "item_metadata", "sku", "item_id")
    with pytest.raises(InvalidInput, match="must hold strings"):
        read_metadata(frame.assign(item_id=[1, 2, 3]), "item_metadata", "item_id", "item_id")


# ------------------------------------------------------------------- tables
def test_tables(explicit_recommender: Run) -> None:
    result, frame = explicit_recommender
    tables = result.tables
    assert set(tables) == {"users", "items", "interactions"}
    dim = TINY_RECOMMENDER_HYPERPARAMS["embedding_dim"]
    for name, column in (("users", "user_id"), ("items", "item_id")):
        table = tables[name]
        assert list(table.columns) == [column, "embedding_vector"]
        assert {len(b) for b in table["embedding_vector"]} == {dim * 4}
        vectors = np.stack([np.frombuffer(b, np.float32) for b in table["embedding_vector"]])
        assert np.isfinite(vectors).all() and np.abs(vectors).sum() > 0
    assert set(tables["users"]["user_id"]) == set(frame["user_id"])
    interactions = tables["interactions"]
    assert list(interactions.columns) == ["id", "user_id", "item_id"]
    assert interactions["id"].tolist() == list(range(1, result.train_rows + 1))
    pairs = set(zip(frame["user_id"], frame["item_id"], strict=True))
    assert set(zip(interactions["user_id"], interactions["item_id"], strict=True)) <= pairs


# ------------------------------------------------------------------- rules and options
def test_ids_must_be_strings() -> None:
    frame = planted_frame().head(50)
    numbered = frame.assign(user_id=range(50))
    with pytest.raises(InvalidInput, match="user_id column must hold strings, got int") as err:
        rec.prepare(numbered, {})
    assert err.value.details["column"] == "user_id"
    with pytest.raises(InvalidInput, match="item_id column must hold strings, got float"):
        rec.prepare(frame.assign(item_id=1.5), {})


def test_null_rows_are_dropped_and_counted_and_too_few_rows_fail() -> None:
    frame = planted_frame().head(40)
    frame.loc[[0, 1], "user_id"] = None
    frame.loc[2, "item_id"] = None
    examples = rec.prepare(frame, {})
    assert examples.dropped_null_rows == 3 and len(examples.users) == 37
    with pytest.raises(InvalidInput, match=r"5 rows \(at least 10\)") as err:
        rec.prepare(frame.head(8), {})
    assert "after dropping 3 row(s) with NULLs" in err.value.message
    with pytest.raises(InvalidInput, match="Explicit feedback .* rating column"):
        rec.prepare(frame.drop(columns="rating"), {})
    implicit = rec.prepare(frame.drop(columns="rating"), {}, task_options={"feedback": "implicit"})
    assert implicit.positives().all()


def test_users_and_items_options_name_the_columns() -> None:
    frame = planted_frame().head(40).rename(columns={"user_id": "customer", "item_id": "sku"})
    examples = rec.prepare(frame, {}, task_options={"users": "customer", "items": "sku"})
    assert examples.users[:3] == frame["customer"].head(3).tolist()
    with pytest.raises(InvalidInput, match="needs the columns customer and item_id"):
        rec.prepare(frame, {}, task_options={"users": "customer"})


def test_task_registry_and_options() -> None:
    task = get_task("recommender")  # HeatWave's MODEL_NAME
    assert task is get_task("recommendation")
    assert task.columns == ("user_id", "item_id", "rating")
    assert "model_list" in task.options and task.own_model == "TwoTower"
    for model_list in (["TwoTower"], "twotower", '["TWOTOWER"]'):
        with pytest.raises(InvalidOption, match="TwoTower is the default and only model"):
            task.check_options({"model_list": model_list})
    checked = task.check_options(
        {
            "feedback": "IMPLICIT",
            "feedback_threshold": "3",
            "item_metadata": '{"table_name": "shop.items"}',
            "task": "recommendation",
        }
    )
    assert checked == {
        "feedback": "implicit",
        "feedback_threshold": 3.0,
        "item_metadata": {"table_name": "shop.items"},
        "task": "recommendation",
    }
    assert task.check_options({})["feedback"] == "explicit"
    for bad, match in (
        ({"feedback": "stars"}, "explicit or implicit"),
        ({"feedback_threshold": "high"}, "must be a number"),
        ({"users": ""}, "must name a column"),
        ({"user_metadata": '{"table": "x"}'}, '"table_name"'),
    ):
        with pytest.raises(InvalidOption, match=match):
            task.check_options(bad)
    assert get_task("text_classification").check_options({"a": 1}) == {"a": 1}


def test_the_options_checker_is_light() -> None:
    code = (
        "import sys, builtin_models.tasks as t;"
        "t.get_task('recommendation').check_options({'feedback': 'implicit'});"
        "print(sorted(m for m in ('pandas', 'numpy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (
            TrainingRequest(task="recommendation", hyperparams={"epoch": 3}),
            "Unknown hyperparameter 'epoch' for recommendation. Did you mean epochs?",
        ),
        (
            TrainingRequest(task="recommendation", hyperparams={"embedding_dim": 0}),
            "embedding_dim must be an integer",
        ),
        (
            TrainingRequest(task="recommendation", task_options={"model_list": ["TwoTower"]}),
            "remove model_list",
        ),
        (
            TrainingRequest(task="recommendation", model_name="bert-base-uncased"),
            "trains its own TwoTower model",
        ),
    ],
)
def test_options_fail_before_reading(request_: TrainingRequest, match: str) -> None:
    reader = FrameReader(planted_frame().head(20))
    with pytest.raises(InvalidOption, match=match):
        run_training(reader, request_)
    assert reader.calls == 0


def test_prepare_for_reads_rows_like_training(explicit_recommender: Run) -> None:
    result, frame = explicit_recommender
    trained = rec.load(_model(result))
    metrics = rec.evaluate(trained, rec.prepare_for(trained, frame.head(200)))
    assert metrics["k"] == 10 and 0 < metrics["rmse"] < 2
    assert 0 <= metrics["ndcg_at_k"] <= 1


# ------------------------------------------------------------------- ranking metrics
def test_ranking_metrics_by_hand() -> None:
    recommended = np.array([[1, 2, 3], [4, 5, -1], [7, 8, 9]])
    relevant = [{2, 9}, {6}, set()]  # the third user has nothing relevant: not scored
    metrics = ranking_metrics(recommended, relevant, 3)
    assert metrics["evaluated_users"] == 2
    assert metrics["precision_at_k"] == pytest.approx((1 / 3 + 0) / 2)
    assert metrics["recall_at_k"] == pytest.approx((1 / 2 + 0) / 2)
    assert metrics["hr_at_k"] == pytest.approx(0.5)
    # user 1: a hit at rank 2 -> 1/log2(3); ideal: two hits -> 1 + 1/log2(3)
    ideal = 1 + 1 / np.log2(3)
    assert metrics["ndcg_at_k"] == pytest.approx((1 / np.log2(3)) / ideal / 2)
    perfect = ranking_metrics(np.array([[5, 6]]), [{5, 6}], 2)
    assert perfect["ndcg_at_k"] == pytest.approx(1.0) and perfect["recall_at_k"] == 1.0
    # more relevant items than k: the ideal DCG stops at k
    assert ranking_metrics(np.array([[1, 2]]), [{1, 2, 3, 4}], 2)["ndcg_at_k"] == 1.0
    # padding (-1) never hits, even against an unknown relevant item (-1)
    assert ranking_metrics(np.array([[-1, -1]]), [{-1}], 2)["hr_at_k"] == 0.0
    assert ranking_metrics(np.zeros((1, 2), int), [set()], 2)["ndcg_at_k"] is None
