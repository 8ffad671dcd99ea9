"""Batched generation of summarization and translation: rows generated in batches of
similar source lengths (little padding) and answered in input order, and the deployment's
Serve batches split by params, so each request is generated with its own settings.

A stand-in "echo" model generates its input ids back (cut to ``max_new_tokens``): with the
tiny word-level tokenizer of test_seq2seq, the text generated for a source is the source,
so order and params show in the answers; the real tiny T5 checks that batching does not
change what greedy decoding writes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from fastapi import HTTPException
from ray import serve

from builtin_models import artifacts, seq2seq_model
from builtin_models.seq2seq_model import PARAMS_EXAMPLE, Seq2SeqGenerator, Seq2SeqModel
from builtin_models.serving import ModelServer, declared_params
from tests.builtin_models.test_seq2seq import EN_FR, build_tiny_t5
from tests.builtin_models.test_serving import Server

META = {"prefix": "", "max_length": 64, "max_new_tokens": 64, "num_beams": 1}
WORDS = list(EN_FR)


class Echo:
    """A stand-in encoder-decoder: ``generate`` answers its input ids, cut to
    ``max_new_tokens``; it records each batch's shape, real tokens and settings."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []

    def eval(self) -> Echo:
        return self

    def generate(self, input_ids: Any, attention_mask: Any, **settings: Any) -> Any:
        self.batches.append(
            {
                "shape": tuple(input_ids.shape),
                "lengths": attention_mask.sum(dim=1).tolist(),
                "settings": settings,
            }
        )
        return input_ids[:, : settings["max_new_tokens"]]


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5_batching"))


@pytest.fixture(scope="module")
def tokenizer(tiny_t5: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_t5))


def mixed_sources(n: int, seed: int = 0) -> list[str]:
    """``n`` sources of 1 to 20 words, lengths shuffled."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 20))) for _ in range(n)]


def padding_in_input_order(lengths: list[int], size: int) -> int:
    """Pad tokens of batches of ``size`` rows taken in input order (no sorting)."""
    chunks = [lengths[i : i + size] for i in range(0, len(lengths), size)]
    return sum(max(chunk) * len(chunk) - sum(chunk) for chunk in chunks)


def test_answers_keep_input_order_across_length_sorted_batches(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seq2seq_model, "INFERENCE_BATCH", 4)
    echo = Echo()
    generator = Seq2SeqGenerator(echo, tokenizer, META)
    sources = mixed_sources(15)
    texts: list[Any] = [*sources[:7], None, *sources[7:]]
    answer = generator.predict(texts)
    assert answer == [*sources[:7], None, *sources[7:]]  # each row its own text, in order
    assert len(echo.batches) == 4  # 15 rows in batches of 4

    # Each batch holds rows of neighbouring lengths: shortest first, batch after batch.
    lengths = [b["lengths"] for b in echo.batches]
    assert [n for batch in lengths for n in batch] == sorted(n for b in lengths for n in b)
    assert all(b["shape"][1] == max(b["lengths"]) for b in echo.batches)  # padded per batch

    # So less padding than batches of the rows as they came.
    padded = sum(b["shape"][0] * b["shape"][1] - sum(b["lengths"]) for b in echo.batches)
    plain = [len(ids) for ids in tokenizer(sources)["input_ids"]]
    assert padded < padding_in_input_order(plain, 4)


def test_params_reach_every_batch(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seq2seq_model, "INFERENCE_BATCH", 3)
    echo = Echo()
    generator = Seq2SeqGenerator(echo, tokenizer, META)
    sources = mixed_sources(7, seed=1)
    answer = generator.predict(sources, {"max_new_tokens": 2, "num_beams": 2})
    assert answer == [" ".join(s.split()[:2]) for s in sources]
    assert [b["settings"]["num_beams"] for b in echo.batches] == [2, 2, 2]
    # A seeded sample is generated row by row (its text cannot depend on its batch mates).
    echo.batches.clear()
    generator.predict(sources[:3], {"temperature": 0.5, "seed": 3})
    assert [b["shape"][0] for b in echo.batches] == [1, 1, 1]


def test_batching_does_not_change_greedy_text(tiny_t5: Path) -> None:
    """The real (untrained) tiny T5: sources of very different lengths generated together
    write what each writes alone."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(str(tiny_t5))
    generator = Seq2SeqGenerator(model, AutoTokenizer.from_pretrained(str(tiny_t5)), META)
    sources = ["red", "big green tree small house blue car red cat dog", "cat dog", "tree"]
    together = generator.predict(sources, {"max_new_tokens": 5})
    alone = [generator.predict([s], {"max_new_tokens": 5})[0] for s in sources]
    assert together == alone


# -- the deployment: one Serve batch, several params


class EchoPyfunc:
    """A stand-in loaded MLflow model: Seq2SeqModel over the echo model, declaring the
    generation params as the logged signature does; counts its calls."""

    def __init__(self, tokenizer: Any) -> None:
        self.inner = Seq2SeqModel()
        self.inner.generator = Seq2SeqGenerator(Echo(), tokenizer, META)
        self.calls: list[tuple[int, dict[str, Any]]] = []
        params = [SimpleNamespace(name=name) for name in PARAMS_EXAMPLE]
        self.metadata = SimpleNamespace(get_params_schema=lambda: SimpleNamespace(params=params))

    def predict(self, frame: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        self.calls.append((len(frame), dict(params or {})))
        return self.inner.predict(None, frame, params)


@pytest.fixture
def echo_server(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    context = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=100))
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)
    monkeypatch.setattr(artifacts, "load_model", lambda uri, tracking=None: EchoPyfunc(tokenizer))
    server = Server(ModelServer("models:/fake", None, max_batch_size=8, batch_wait_timeout_s=0.2))
    yield server
    server.loop.close()


def _sources(*texts: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"df": json.dumps([{"source": t} for t in texts])}
    if params:
        body["params"] = params
    return body


def test_one_serve_batch_with_mixed_params_answers_each_with_its_own(
    echo_server: Server,
) -> None:
    long = "big green tree small house blue car"
    answers = echo_server.answer_all(
        [
            _sources(long, "red cat dog", max_new_tokens=1),
            _sources(long, max_new_tokens=3),
            _sources("dog", long, max_new_tokens=1),
            _sources(long),
        ]
    )
    assert answers[0] == {"prediction": ["big", "red"]}
    assert answers[1] == {"prediction": ["big green tree"]}
    assert answers[2] == {"prediction": ["dog", "big"]}
    assert answers[3] == {"prediction": [long]}
    # One Serve batch; requests with the same params share one model call, in the order
    # the params first came; others get their own.
    calls = echo_server.model.calls
    assert calls == [(4, {"max_new_tokens": 1}), (1, {"max_new_tokens": 3}), (1, {})]


def test_an_undeclared_param_is_refused(echo_server: Server) -> None:
    with pytest.raises(HTTPException) as err:
        echo_server.answer(_sources("dog", max_new_token=2))
    assert err.value.status_code == 400
    assert "unknown parameter(s) max_new_token; this model takes: max_new_tokens" in (
        err.value.detail
    )
    assert echo_server.answer(_sources("dog", max_new_tokens=2)) == {"prediction": ["dog"]}


def test_declared_params() -> None:
    assert declared_params(object()) is None  # a stand-in without MLflow metadata
    none = SimpleNamespace(metadata=SimpleNamespace(get_params_schema=lambda: None))
    assert declared_params(none) == []
