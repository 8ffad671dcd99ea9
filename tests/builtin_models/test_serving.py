"""The ray_serve protocol of a built-in model's deployment, without a cluster.

Ray 2.60's ``@serve.batch`` asks for the replica context when its queue starts (and Serve's
local testing mode sets none), so these tests stand in a context with the one field it
reads; everything else - the batch queue, the model loaded from MLflow - is real. The queue
is one per decorated method and process, bound to the event loop of its first call (one
replica = one process), so the tests share one server and one loop. The real cluster is in
test_ray_cluster.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from fastapi import HTTPException
from ray import serve

from builtin_models import artifacts
from builtin_models.serving import ModelServer, answer_lists, parse_body, split_answer
from tests.builtin_models.conftest import sentiment_frame


class Server:
    """A ModelServer and the one event loop its batch queue lives on."""

    def __init__(self, server: ModelServer) -> None:
        self.server = server
        self.model = server.model
        self.loop = asyncio.new_event_loop()

    def answer(self, body: Any) -> dict[str, list[Any]]:
        return self.loop.run_until_complete(self.server.answer(body))

    def answer_all(self, bodies: list[Any]) -> list[dict[str, list[Any]]]:
        async def all_at_once() -> list[dict[str, list[Any]]]:
            return await asyncio.gather(*(self.server.answer(b) for b in bodies))

        return self.loop.run_until_complete(asyncio.wait_for(all_at_once(), 60))


@pytest.fixture(scope="module")
def deployment(trained_run: tuple[Any, ...]) -> Iterator[Server]:
    context = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=100))
    result = trained_run[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serve, "get_replica_context", lambda: context)
        server = Server(ModelServer(result.model_uri, result.tracking_uri))
        yield server
        server.loop.close()


def _body(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {"df": json.dumps(rows)}


def test_predict_answer_shape(deployment: Server) -> None:
    frame = sentiment_frame(4, seed=3)
    rows = frame.to_dict("records") + [{"text": None, "labels": "x"}]
    answer = deployment.answer(_body(rows))
    assert list(answer) == ["prediction", "confidence", "probabilities"]
    assert answer["prediction"][:4] == frame["labels"].tolist()
    assert answer["prediction"][4] is None and answer["probabilities"][4] is None
    assert all(0.5 <= c <= 1 for c in answer["confidence"][:4])
    assert set(answer["probabilities"][0]) == {"negative", "positive"}
    json.dumps(answer, allow_nan=False)  # what the HTTP answer must be able to carry


def test_concurrent_requests_are_one_batch(
    deployment: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    predict = deployment.model.predict

    def counting(frame: pd.DataFrame) -> Any:
        calls.append(len(frame))
        return predict(frame)

    monkeypatch.setattr(deployment.model, "predict", counting)
    bodies = [_body(sentiment_frame(n, seed=n).to_dict("records")) for n in (1, 3, 2)]

    answers = deployment.answer_all(bodies)
    assert calls == [6]
    assert [len(a["prediction"]) for a in answers] == [1, 3, 2]
    for n, answer in zip((1, 3, 2), answers, strict=True):
        assert answer["prediction"] == sentiment_frame(n, seed=n)["labels"].tolist()


def test_columnar_df_and_empty_df(deployment: Server) -> None:
    columnar = {"df": json.dumps({"text": ["great fun", "dull"]})}
    assert len(deployment.answer(columnar)["prediction"]) == 2
    assert deployment.answer({"df": "[]"}) == {"prediction": []}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"rows": []}, 'expected a JSON object with "df"'),
        ({"df": "not json"}, '"df" is not a JSON table'),
        (["x"], 'expected a JSON object with "df"'),
        (_body([{"review": "a", "score": 1}]), "cannot predict"),
    ],
)
def test_bad_requests_are_400(deployment: Server, body: Any, match: str) -> None:
    with pytest.raises(HTTPException) as err:
        deployment.answer(body)
    assert err.value.status_code == 400
    assert match in err.value.detail


def test_answer_lists() -> None:
    frame = pd.DataFrame({"prediction": [1, 2], "confidence": [0.5, float("nan")]})
    assert answer_lists(frame, 2) == {"prediction": [1, 2], "confidence": [0.5, None]}
    assert answer_lists(pd.Series(["a"]), 1) == {"prediction": ["a"]}
    with pytest.raises(ValueError, match="answered 2 values for 3 rows"):
        answer_lists(frame, 3)
    with pytest.raises(ValueError, match="no 'prediction' column"):
        answer_lists(pd.DataFrame({"x": [1]}), 1)


def test_parse_body() -> None:
    assert parse_body(_body([{"text": "a"}])).to_dict("records") == [{"text": "a"}]


@pytest.mark.slow
def test_the_logged_model_needs_nothing_of_the_project(trained_run: tuple[Any, ...]) -> None:
    """The model carries its own code: it loads and predicts with byom, builtin_models,
    gateway & co. unimportable (as in any environment with mlflow, torch, transformers)."""
    script = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("byom", "builtin_models", "gateway", "tests"):
                    raise ImportError(f"blocked: {name}")
        sys.meta_path.insert(0, Block())
        import mlflow.pyfunc, pandas as pd
        model = mlflow.pyfunc.load_model(sys.argv[1])
        print(model.predict(pd.DataFrame({"text": ["a great film", "dull boring"]}))
              ["prediction"].tolist())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, trained_run[0].artifact_uri],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['positive', 'negative']"


class TopK:
    """A stand-in pyfunc model, one-to-many: ``k`` answers per input row (``params``), the
    item ids ``<user>-1 .. <user>-k``; users named ``nobody`` get none. Counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, Any]]] = []

    def predict(self, frame: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        self.calls.append((len(frame), params))
        k = int(params.get("topk", 1))
        out = [
            (i, f"{user}-{r}", r)
            for i, user in enumerate(frame["user_id"])
            if user != "nobody"
            for r in range(1, k + 1)
        ]
        return pd.DataFrame(out, columns=["row", "prediction", "rank"])


@pytest.fixture
def topk_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    context = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=100))
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)
    monkeypatch.setattr(artifacts, "load_model", lambda uri, tracking=None: TopK())
    server = Server(ModelServer("models:/fake", None, max_batch_size=8, batch_wait_timeout_s=0.2))
    yield server
    server.loop.close()


def _users(*users: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"df": json.dumps([{"user_id": u} for u in users])}
    if params:
        body["params"] = params
    return body


def test_one_to_many_answers_are_cut_back_per_request(topk_server: Server) -> None:
    answers = topk_server.answer_all(
        [_users("a", "b", topk=2), _users("nobody", "c", topk=2), _users("d", topk=3)]
    )
    assert answers[0] == {
        "row": [0, 0, 1, 1],
        "prediction": ["a-1", "a-2", "b-1", "b-2"],
        "rank": [1, 2, 1, 2],
    }
    assert answers[1] == {"row": [1, 1], "prediction": ["c-1", "c-2"], "rank": [1, 2]}
    assert answers[2]["prediction"] == ["d-1", "d-2", "d-3"]
    # requests with the same params share one model call; other params get their own
    calls = sorted(topk_server.model.calls, key=lambda c: c[1]["topk"])
    assert calls == [(4, {"topk": 2}), (1, {"topk": 3})]


def test_params_must_be_an_object(topk_server: Server) -> None:
    with pytest.raises(HTTPException) as err:
        topk_server.answer({"df": json.dumps([{"user_id": "a"}]), "params": [1]})
    assert err.value.status_code == 400
    assert "params" in err.value.detail


def test_split_answer_and_row_order() -> None:
    merged = {"row": [0, 2, 2, 3], "prediction": ["x", "y", "z", "w"]}
    assert split_answer(merged, [2, 2]) == [
        {"row": [0], "prediction": ["x"]},
        {"row": [0, 0, 1], "prediction": ["y", "z", "w"]},
    ]
    with pytest.raises(ValueError, match="not in input order"):
        answer_lists(pd.DataFrame({"row": [1, 0], "prediction": ["a", "b"]}), 2)
