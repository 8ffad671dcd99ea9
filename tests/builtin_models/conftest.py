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


# --------------------------------------------------------------------------- recommendation
#: Small, fast TwoTower settings for the planted data below (a second or two per run).
TINY_RECOMMENDER_HYPERPARAMS: dict[str, Any] = {
    "embedding_dim": 16,
    "epochs": 30,
    "batch_size": 128,
    "negatives": 32,
    "learning_rate": 0.02,
    "weight_decay": 0.01,
}
RECOMMENDER_GROUPS = 4


def group_of(entity_id: str) -> int:
    """The planted group of a synthetic id (``u2_7`` and ``i2_13`` are in group 2)."""
    return int(entity_id.split("_")[0][1:])


def planted_frame(
    users_per_group: int = 20,
    items_per_group: int = 40,
    per_user: int = 12,
    noise: float = 0.15,
    seed: int = 0,
) -> pd.DataFrame:
    """Interactions with a planted structure: users of group g mostly choose items of group
    g (the popular ones more often) and rate them 4-5; a ``noise`` share of their rows are
    random items of any group, rated 1-2. ``rating`` doubles as a play count for implicit
    feedback (in-group 4-5 above a threshold of 2, noise 1-2 below it)."""
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 0.7 for rank in range(items_per_group)]  # popular first
    rows = []
    for g in range(RECOMMENDER_GROUPS):
        for u in range(users_per_group):
            user = f"u{g}_{u}"
            chosen: set[str] = set()
            while len(chosen) < per_user:
                if rng.random() < noise:
                    item = f"i{rng.randrange(RECOMMENDER_GROUPS)}_{rng.randrange(items_per_group)}"
                    rating = rng.choice((1, 2)) if group_of(item) != g else 4
                else:
                    item = f"i{g}_{rng.choices(range(items_per_group), weights)[0]}"
                    rating = rng.choice((4, 5))
                if item not in chosen:
                    chosen.add(item)
                    rows.append((user, item, float(rating)))
    rng.shuffle(rows)
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])


def planted_item_metadata(items_per_group: int = 40, cold_per_group: int = 2) -> pd.DataFrame:
    """Item metadata: ``genres`` like ``"G1|Extra3"`` (the group's genre and a random one)
    and a ``title`` of the group's words; ``cold_per_group`` extra items per group (``c2_0``)
    that have metadata but no interaction."""
    rng = random.Random(7)
    rows = []
    for g in range(RECOMMENDER_GROUPS):
        ids = [f"i{g}_{j}" for j in range(items_per_group)]
        ids += [f"c{g}_{j}" for j in range(cold_per_group)]
        for item in ids:
            genres = f"G{g}|Extra{rng.randrange(6)}"
            title = f"the {rng.choice(['red', 'blue'])} story of word{g} and kind{g}"
            rows.append((item, genres, title, rng.randrange(1950, 2020)))
    return pd.DataFrame(rows, columns=["item_id", "genres", "title", "year"])


@pytest.fixture(scope="session")
def recommender_home(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite MLflow store for the recommendation runs."""
    from builtin_models import artifacts

    return artifacts.default_tracking_uri(tmp_path_factory.mktemp("mlflow_recommender"))


@pytest.fixture(scope="session")
def explicit_recommender(recommender_home: str) -> tuple[Any, pd.DataFrame]:
    """A recommender trained on explicit ratings of the planted data, with three rows of
    NULL ids appended: ``(TrainingResult, the frame without those rows)``."""
    from builtin_models.training import TrainingRequest, run_training

    frame = planted_frame()
    nulls = pd.DataFrame(
        [(None, "i0_1", 4.0), ("u0_1", None, 5.0), (None, None, 3.0)], columns=frame.columns
    )
    request = TrainingRequest(
        task="recommendation",
        hyperparams=TINY_RECOMMENDER_HYPERPARAMS,
        test_size=0.2,
        test_sampling="stratified",
        tracking_uri=recommender_home,
        run_name="planted-explicit",
    )
    reader = FrameReader(pd.concat([frame, nulls], ignore_index=True), chunk=256)
    return run_training(reader, request), frame


@pytest.fixture(scope="session")
def implicit_recommender(recommender_home: str) -> tuple[Any, pd.DataFrame]:
    """A recommender trained on implicit feedback (threshold 2) with item metadata."""
    from builtin_models.training import TrainingRequest, run_training

    frame = planted_frame(seed=1)
    request = TrainingRequest(
        task="recommender",
        hyperparams=TINY_RECOMMENDER_HYPERPARAMS,
        test_size=0.2,
        test_sampling="random",
        tracking_uri=recommender_home,
        run_name="planted-implicit",
        task_options={
            "feedback": "implicit",
            "feedback_threshold": 2,
            "item_metadata": '{"table_name": "shop.items"}',
        },
        side_readers={"item_metadata": FrameReader(planted_item_metadata(), chunk=50)},
    )
    return run_training(FrameReader(frame, chunk=256), request), frame


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models train several times faster on one thread (and leave a core to others)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
