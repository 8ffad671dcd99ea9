"""The real pieces: the packaged MiniLM fine-tunes, and `mlflow models serve` serves a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from builtin_models import base_models
from builtin_models import text_classification as tc
from gateway.processes import start_mlflow_example
from tests.builtin_models.conftest import sentiment_frame

pytestmark = pytest.mark.slow


def test_the_packaged_minilm_fine_tunes(tmp_path: Path) -> None:
    base = base_models.resolve(None)
    assert base.source == "packaged"
    params = tc.validate_hyperparams(
        {"max_steps": 3, "per_device_train_batch_size": 8, "max_length": 32, "learning_rate": 1e-4}
    )
    examples = tc.prepare(sentiment_frame(40), params)
    steps: list[tuple[int, int, float, float | None]] = []
    trained = tc.train(
        examples,
        base_model=base.path,
        hyperparams=params,
        workdir=tmp_path / "work",
        on_step=lambda *a, loss=None: steps.append((*a, loss)),
    )
    assert [s[0] for s in steps] == [1, 2, 3] and steps[-1][1] == 3
    assert trained.model.config.model_type == "bert"
    assert trained.model.config.hidden_size == 384  # the real all-MiniLM-L6-v2
    answer = trained.classifier().predict(["a wonderful and funny film"])
    assert answer["prediction"][0] in ("negative", "positive")
    assert set(answer["probabilities"][0]) == {"negative", "positive"}
    tc.save(trained, tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").is_file()


def test_mlflow_models_serve(trained_run: tuple[Any, ...], tmp_path: Path) -> None:
    result = trained_run[0]
    service = start_mlflow_example(result.artifact_uri, log_dir=tmp_path)
    try:
        body = {
            "dataframe_split": {
                "columns": ["text"],
                "data": [["a great and funny film"], ["dull boring plot"], [None]],
            }
        }
        response = httpx.post(service.url, json=body, timeout=60)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [p["prediction"] for p in predictions] == ["positive", "negative", None]
        assert predictions[2] == {"prediction": None, "confidence": None, "probabilities": None}
        assert set(predictions[0]["probabilities"]) == {"negative", "positive"}
        assert predictions[0]["confidence"] == max(predictions[0]["probabilities"].values())

        records = {"dataframe_records": [{"text": "superb charming story"}]}
        answer = httpx.post(service.url, json=records, timeout=60).json()
        assert answer["predictions"][0]["prediction"] == "positive"

        missing = httpx.post(service.url, json={"dataframe_records": [{"x": "a"}]}, timeout=60)
        assert missing.status_code == 400
    finally:
        service.stop()
