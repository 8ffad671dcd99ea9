"""Fixtures for the built-in models: a tiny BERT built on the fly, and toy text data.

The tiny model (2 layers, hidden size 32, a WordPiece vocabulary trained here with the
``tokenizers`` library) saves and loads through the same Auto* classes as a real checkpoint,
and fine-tunes on a few hundred rows in about a second: every code path runs for real,
with no model hub.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

POSITIVE = ["great", "wonderful", "brilliant", "moving", "funny", "superb", "charming", "fresh"]
NEGATIVE = ["awful", "boring", "dull", "terrible", "bland", "tedious", "clumsy", "stale"]
FILLER = ["the", "movie", "film", "story", "was", "is", "really", "quite", "a", "plot", "and"]
GENRES = {
    "Crime": ["detective", "murder", "heist", "gang", "police"],
    "Drama": ["family", "grief", "marriage", "loss", "tears"],
    "Comedy": ["jokes", "laughs", "prank", "silly", "clown"],
}


def _sentence(rng: random.Random, keywords: Sequence[str], n_keywords: int = 2) -> str:
    words = rng.sample(FILLER, 4) + rng.sample(list(keywords), n_keywords)
    rng.shuffle(words)
    return " ".join(words)


def sentiment_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Toy sentiment rows: ``text`` -> ``labels`` in {"negative", "positive"}, balanced."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        rows.append((_sentence(rng, POSITIVE if label == "positive" else NEGATIVE), label))
    return pd.DataFrame(rows, columns=["text", "labels"])


def genre_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Toy multi-label rows: ``labels`` like ``"Crime, Drama"`` (one or two genres)."""
    rng = random.Random(seed)
    names = sorted(GENRES)
    rows = []
    for i in range(n):
        chosen = sorted(rng.sample(names, 1 + i % 2))
        keywords = [w for g in chosen for w in rng.sample(GENRES[g], 2)]
        rows.append((_sentence(rng, keywords, len(keywords)), ", ".join(chosen)))
    return pd.DataFrame(rows, columns=["text", "labels"])


def build_tiny_bert(folder: Path) -> Path:
    """Save a randomly initialised 2-layer BERT and a WordPiece tokenizer to ``folder``."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    corpus = (
        sentiment_frame(400, seed=1)["text"].tolist() + genre_frame(400, seed=1)["text"].tolist()
    )
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(corpus, vocab_size=200, min_frequency=1)
    specials = {
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece._tokenizer, model_max_length=64, **specials
    )
    config = BertConfig(
        vocab_size=wordpiece.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


#: Hyperparameters that train the tiny model to a useful accuracy in about a second.
TINY_HYPERPARAMS: dict[str, Any] = {
    "learning_rate": 5e-3,
    "num_train_epochs": 4,
    "per_device_train_batch_size": 16,
    "warmup_steps": 0,
    "max_length": 32,
}


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT base model directory (built once per session)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


class FrameReader:
    """A picklable RowReader over a DataFrame: ``(columns, rows)`` chunks of ``chunk`` rows."""

    def __init__(self, frame: pd.DataFrame, chunk: int = 64) -> None:
        self.frame = frame
        self.chunk = chunk
        self.calls = 0

    def __call__(self) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        self.calls += 1
        columns = [str(c) for c in self.frame.columns]
        rows = list(self.frame.itertuples(index=False, name=None))
        for start in range(0, max(len(rows), 1), self.chunk):
            yield columns, rows[start : start + self.chunk]


@pytest.fixture
def reader_of() -> Callable[[pd.DataFrame], FrameReader]:
    return FrameReader


@pytest.fixture(scope="session")
def trained_run(
    tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, list[Any], FrameReader]:
    """One training run of the tiny model on toy sentiment rows, logged to a SQLite MLflow
    store in a temporary folder: ``(TrainingResult, progress events, the reader)``."""
    from builtin_models import artifacts
    from builtin_models.training import TrainingRequest, run_training

    home = tmp_path_factory.mktemp("mlflow_home")
    reader = FrameReader(sentiment_frame(200).assign(extra=1), chunk=32)
    events: list[Any] = []
    request = TrainingRequest(
        task="text_classification",
        model_name=str(tiny_bert),
        hyperparams=TINY_HYPERPARAMS,
        test_size=0.2,
        test_sampling="stratified",
        tracking_uri=artifacts.default_tracking_uri(home),
        run_name="sentiment-v1",
        tags={"byom.model": "sentiment", "byom.version": "1"},
    )
    return run_training(reader, request, events.append), events, reader
