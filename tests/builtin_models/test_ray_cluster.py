"""On a real local Ray: training as a Ray task, then the model served by Ray Serve over HTTP."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from builtin_models import artifacts
from builtin_models.training import Progress, TrainingRequest, TrainingResult, submit
from tests.builtin_models.conftest import TINY_HYPERPARAMS, FrameReader, sentiment_frame
from tests.conftest import RayCluster

pytestmark = pytest.mark.slow


class ActorProgress:
    """A picklable progress callback that forwards events to a collecting actor."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def __call__(self, event: Progress) -> None:
        self.actor.add.remote(event)


@pytest.fixture(scope="module")
def ray_serve(ray_cluster: RayCluster) -> str:
    """The session's Ray; its Serve HTTP URL."""
    return ray_cluster.serve_url


@pytest.fixture(scope="module")
def remote_result(
    ray_serve: str, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainingResult, list[Progress]]:
    """Train in a Ray task: the reader travels there and is read there; events come back."""
    import ray

    @ray.remote(num_cpus=0)
    class Collector:
        def __init__(self) -> None:
            self.events: list[Progress] = []

        def add(self, event: Progress) -> None:
            self.events.append(event)

        def all(self) -> list[Progress]:
            return self.events

    collector = Collector.remote()
    request = TrainingRequest(
        task="text_classification",
        model_name=str(tiny_bert),
        hyperparams=TINY_HYPERPARAMS,
        tracking_uri=artifacts.default_tracking_uri(tmp_path_factory.mktemp("ray_home")),
    )
    ref = submit(FrameReader(sentiment_frame(200)), request, ActorProgress(collector))
    result = ray.get(ref, timeout=300)
    return result, ray.get(collector.all.remote(), timeout=30)


def test_training_ran_as_a_ray_task(remote_result: tuple[TrainingResult, list[Progress]]) -> None:
    result, events = remote_result
    # well above chance (0.5); a 40-row holdout moves in steps of 2.5 points between machines
    assert result.metrics["accuracy"] >= 0.8
    assert result.rows_used == 200
    assert events[-1].phase == "done"
    assert any(e.phase == "training" and e.step for e in events)


def test_served_over_http(
    ray_serve: str, remote_result: tuple[TrainingResult, list[Progress]]
) -> None:
    from ray import serve

    from builtin_models.serving import build_app

    result = remote_result[0]
    app = build_app(result.model_uri, "sentiment_v1", tracking_uri=result.tracking_uri)
    serve.run(app, name="sentiment", route_prefix="/sentiment", blocking=False)
    base = f"{ray_serve}/sentiment"
    assert httpx.get(base + "/", timeout=30).json()["status"] == "ready"

    frames = [sentiment_frame(n, seed=n) for n in (1, 5, 2, 8, 3, 4)]

    def post(frame: Any) -> httpx.Response:
        body = {"df": frame.drop(columns="labels").to_json(orient="records")}
        return httpx.post(base + "/predict", json=body, timeout=60)

    with ThreadPoolExecutor(6) as pool:  # concurrent requests: @serve.batch merges them
        answers = list(pool.map(post, frames))
    for frame, response in zip(frames, answers, strict=True):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert set(answer) == {"prediction", "confidence", "probabilities"}
        assert answer["prediction"] == frame["labels"].tolist()
        assert len(answer["confidence"]) == len(answer["probabilities"]) == len(frame)

    bad = httpx.post(base + "/predict", json={"df": json.dumps([{"review": "x"}])}, timeout=60)
    assert bad.status_code == 400
    assert "cannot predict" in bad.json()["detail"]
    assert httpx.post(base + "/predict", content=b"{", timeout=30).status_code == 400


def test_a_failed_training_task_explains_itself(ray_serve: str, tiny_bert: Path) -> None:
    import ray

    from builtin_models.training import explain_ray_failure
    from byom.errors import InvalidInput

    request = TrainingRequest(task="text_classification", model_name=str(tiny_bert))
    ref = submit(FrameReader(sentiment_frame(5)), request)
    with pytest.raises(ray.exceptions.RayTaskError) as err:
        ray.get(ref, timeout=120)
    explained = explain_ray_failure(err.value)
    assert type(explained) is InvalidInput
    assert "at least 10 rows" in explained.message


def test_ray_crashes_are_explained() -> None:
    import ray.exceptions as rex

    from builtin_models.training import explain_ray_failure

    for crash in (rex.OutOfMemoryError("killed"), rex.WorkerCrashedError()):
        explained = explain_ray_failure(crash)
        assert explained.code == "OUT_OF_MEMORY"
        assert "per_device_train_batch_size" in explained.message
    other = explain_ray_failure(RuntimeError("boom"))
    assert other.status == 500 and "RuntimeError: boom" in other.message
