"""run_training end to end on the tiny model: read chunks, split, train, evaluate, log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from builtin_models import artifacts
from builtin_models.training import Progress, TrainingRequest, TrainingResult, run_training
from byom.errors import InvalidInput, InvalidOption
from tests.builtin_models.conftest import TINY_HYPERPARAMS, FrameReader, sentiment_frame

Run = tuple[TrainingResult, list[Progress], FrameReader]


def test_result(trained_run: Run) -> None:
    result, _, reader = trained_run
    assert reader.calls == 1  # the trainer read the rows itself, in chunks of 32
    assert (result.rows_used, result.train_rows, result.test_rows) == (200, 160, 40)
    assert result.labels == ["negative", "positive"]
    # well above chance (0.5); a 40-row holdout moves in steps of 2.5 points between machines
    assert result.metrics["accuracy"] >= 0.8
    assert result.metrics["test_rows"] == 40
    assert result.metrics["confusion_matrix"]["labels"] == ["negative", "positive"]
    assert result.model_uri.startswith("models:/")
    assert result.artifact_uri.startswith("file://")
    assert result.tracking_uri.startswith("sqlite:///")
    assert result.hyperparams["learning_rate"] == TINY_HYPERPARAMS["learning_rate"]
    assert result.hyperparams["weight_decay"] == 0.01  # a default filled in


def test_progress(trained_run: Run) -> None:
    _, events, _ = trained_run
    phases = [e.phase for e in events]
    assert phases[0] == "reading" and phases[-1] == "done"
    order = ["reading", "preparing", "training", "evaluating", "logging", "done"]
    assert sorted(set(phases), key=order.index) == [p for p in order if p in phases]
    assert phases.index("training") < phases.index("evaluating")
    percents = [e.percent for e in events]
    assert percents == sorted(percents) and percents[-1] == 100.0
    last_step = [e for e in events if e.phase == "training"][-1]
    assert last_step.step == last_step.total_steps and last_step.epoch == pytest.approx(4.0)


def test_the_mlflow_run(trained_run: Run) -> None:
    result, _, _ = trained_run
    client = mlflow.MlflowClient(result.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.run_name == "sentiment-v1"
    assert run.data.tags["byom.task"] == "text_classification"
    assert run.data.tags["byom.version"] == "1"
    params = run.data.params
    assert params["task"] == "text_classification"
    assert params["test_sampling"] == "stratified"
    assert json.loads(params["labels"]) == ["negative", "positive"]
    assert float(params["hp.learning_rate"]) == TINY_HYPERPARAMS["learning_rate"]
    metrics = run.data.metrics
    assert metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert "train_loss" in metrics and "roc_auc" in metrics
    local = client.download_artifacts(result.run_id, "confusion_matrix.json")
    assert json.loads(Path(local).read_text()) == result.metrics["confusion_matrix"]


def test_the_loss_curve_in_mlflow(trained_run: Run) -> None:
    """Every optimizer step's loss is in the run's ``loss`` history, in step order."""
    result, events, _ = trained_run
    points = artifacts.metric_history(result.run_id, artifacts.LOSS_CURVE, result.tracking_uri)
    total = [e for e in events if e.phase == "training"][-1].total_steps
    assert [step for step, _ in points] == list(range(1, total + 1))
    losses = [loss for _, loss in points]
    assert all(loss > 0 for loss in losses)
    # its mean is the run's train_loss (the Trainer averages the same per-step losses)
    assert sum(losses) / len(losses) == pytest.approx(result.metrics["train_loss"], rel=1e-3)


def test_curve_points_keep_short_curves_and_average_long_ones() -> None:
    short = [(1, 2.0), (2, 1.0)]
    assert artifacts.curve_points(short, max_points=5) == short
    long = [(step, float(step)) for step in range(1, 11)]  # 10 points into at most 4
    assert artifacts.curve_points(long, max_points=4) == [(3, 2.0), (6, 5.0), (9, 8.0), (10, 10.0)]


def test_load_back(trained_run: Run) -> None:
    result, _, _ = trained_run
    rows = sentiment_frame(6, seed=9)
    by_id = artifacts.load_model(result.model_uri, result.tracking_uri).predict(rows[["text"]])
    by_path = artifacts.load_model(result.artifact_uri).predict(rows[["text"]])
    assert list(by_id.columns) == ["prediction", "confidence", "probabilities"]
    assert by_id.to_dict("records") == by_path.to_dict("records")
    assert by_id["prediction"].tolist() == rows["labels"].tolist()


def _request(**kwargs: object) -> TrainingRequest:
    return TrainingRequest(task="text_classification", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "error", "match"),
    [
        (TrainingRequest(task="sentiment"), InvalidOption, "Unknown task 'sentiment'"),
        (_request(model_name="nobody/nothing-here"), InvalidOption, "Unknown base model"),
        (_request(hyperparams={"epochs": 2}), InvalidOption, "Unknown hyperparameter 'epochs'"),
        (_request(test_sampling="newest"), InvalidOption, "Unknown test_sampling"),
        (_request(test_size=2.5), InvalidOption, "test_size"),
    ],
)
def test_options_fail_before_reading(
    request_: TrainingRequest,
    error: type[Exception],
    match: str,
    reader_of: Callable[..., FrameReader],
) -> None:
    reader = reader_of(sentiment_frame(20))
    with pytest.raises(error, match=match):
        run_training(reader, request_)
    assert reader.calls == 0


def test_rows_are_checked_after_reading(
    tiny_bert: Path, reader_of: Callable[..., FrameReader]
) -> None:
    reader = reader_of(sentiment_frame(5))
    with pytest.raises(InvalidInput, match="at least 10 rows"):
        run_training(reader, _request(model_name=str(tiny_bert)))
    assert reader.calls == 1
