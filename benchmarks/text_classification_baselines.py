"""The in-process baselines of ``text_classification.py``: no gateway, no Ray, no MLflow.

* :func:`load_sst` reads the SST-2 sentence files (``<0|1> <sentence>`` per line) with the
  labels as the strings ``negative`` / ``positive``;
* :func:`tfidf_baseline`: word 1-2-gram TF-IDF + scikit-learn ``LogisticRegression``, the
  classic non-neural baseline, trained on the same rows as the gateway's model;
* :func:`plain_trainer`: transformers' ``Trainer`` called directly on the same base model,
  rows and hyperparameters as the gateway's training task (``TrainingArguments`` built here
  by hand with the values ``builtin_models/hf_training.run_trainer`` uses);
* :func:`pipeline_predict`: ``pipeline("text-classification", model=<dir>)`` over rows.

torch and transformers are imported inside the functions, so ``--help`` stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABEL_NAMES = {"0": "negative", "1": "positive"}
#: Keys of the task's hyperparams that are not TrainingArguments fields
#: (``builtin_models/text_classification._OWN_KEYS``).
OWN_KEYS = ("max_length", "threshold", "multi_label")


@dataclass(frozen=True)
class Rows:
    """Texts and their string labels, in file order."""

    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> Rows:
        return self if n is None else Rows(self.texts[:n], self.labels[:n])


def load_sst(path: Path, limit: int | None = None) -> Rows:
    """One SST-2 sentence file: ``<0|1> <sentence>`` per line; the first ``limit`` rows."""
    texts, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        if label not in LABEL_NAMES or not text.strip():
            raise ValueError(f"{path}:{number}: expected '<0|1> <sentence>', got {line[:60]!r}")
        texts.append(text.strip())
        labels.append(LABEL_NAMES[label])
    return Rows(texts, labels).head(limit)


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro F1 (scikit-learn), as fractions."""
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1": float(f1_score(truth, predicted, average="macro")),
    }


# -- TF-IDF + logistic regression ------------------------------------------------------------


@dataclass
class TfidfRun:
    metrics: dict[str, float]
    fit_seconds: float


def tfidf_baseline(train: Rows, test: Rows) -> TfidfRun:
    """Word 1-2-grams, sublinear TF-IDF, LogisticRegression (untuned, scikit-learn defaults
    otherwise): fitted on ``train``, scored on ``test``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(max_iter=1000),
    )
    started = time.perf_counter()
    model.fit(train.texts, train.labels)
    seconds = time.perf_counter() - started
    return TfidfRun(scores(test.labels, list(model.predict(test.texts))), seconds)


# -- the plain Trainer loop ------------------------------------------------------------------


def training_arguments(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """The TrainingArguments values the gateway's ``hf_training.run_trainer`` uses for
    ``hyperparams`` (the task's defaults merged with the user's): the hyperparams that are
    TrainingArguments fields plus the fixed settings (no checkpoints, no evaluation, no
    logging or reporting, no progress bars, no pinned memory on CPU)."""
    import torch

    settings = {k: v for k, v in hyperparams.items() if k not in OWN_KEYS}
    settings.setdefault("dataloader_pin_memory", torch.cuda.is_available())
    settings.update(
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    return settings


@dataclass
class PlainRun:
    """The plain loop's timings and its saved model."""

    seconds: float  # load + tokenize + Trainer.train + save_pretrained
    load_seconds: float
    tokenize_seconds: float
    train_seconds: float  # Trainer.train only
    save_seconds: float
    train_loss: float
    steps: int
    model_dir: Path
    threads: int


def plain_trainer(
    train: Rows,
    *,
    base_model: str,
    hyperparams: Mapping[str, Any],
    threads: int,
    workdir: Path,
) -> PlainRun:
    """Fine-tune ``base_model`` on ``train`` with transformers' Trainer, in this process,
    on ``threads`` torch threads; save the model and tokenizer into ``workdir/model``.

    Mirrors the gateway's ``text_classification.train``: the seed set before the model is
    made (same classifier head init), labels sorted (same label ids), ``max_length``
    truncation without padding, ``DataCollatorWithPadding``, the same TrainingArguments.
    """
    import torch
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()  # the "newly initialized head" report
    transformers.logging.disable_progress_bar()
    labels = sorted(set(train.labels))
    label_ids = {label: i for i, label in enumerate(labels)}
    started = time.perf_counter()
    transformers.set_seed(int(hyperparams.get("seed", 42)))
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=label_ids,
        problem_type="single_label_classification",
    )
    loaded = time.perf_counter()
    max_length = int(hyperparams.get("max_length", 128))
    if 0 < getattr(tokenizer, "model_max_length", 0) < max_length:
        max_length = int(tokenizer.model_max_length)
    encoded = tokenizer(train.texts, truncation=True, max_length=max_length)
    dataset = [
        {**{key: encoded[key][i] for key in encoded}, "labels": label_ids[train.labels[i]]}
        for i in range(len(train))
    ]
    tokenized = time.perf_counter()
    args = TrainingArguments(output_dir=str(workdir / "trainer"), **training_arguments(hyperparams))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,  # type: ignore[arg-type]  # a list of dicts is a map dataset
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    output = trainer.train()
    trained = time.perf_counter()
    model_dir = workdir / "model"
    trainer.model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    saved = time.perf_counter()
    return PlainRun(
        seconds=saved - started,
        load_seconds=loaded - started,
        tokenize_seconds=tokenized - loaded,
        train_seconds=trained - tokenized,
        save_seconds=saved - trained,
        train_loss=float(output.training_loss),
        steps=int(output.global_step),
        model_dir=model_dir,
        threads=threads,
    )


# -- pipeline("text-classification") ---------------------------------------------------------


@dataclass
class PipelineRun:
    rows: int
    seconds: float
    predictions: list[str]
    threads: int
    batch_size: int

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def pipeline_predict(
    model_dir: Path,
    texts: list[str],
    *,
    threads: int,
    batch_size: int,
    max_length: int = 128,
    warmup_rows: int = 32,
) -> PipelineRun:
    """Time ``pipeline("text-classification", model=model_dir)`` over ``texts`` on
    ``threads`` torch threads, after loading it and a warm-up call (both untimed)."""
    import torch
    import transformers
    from transformers import pipeline

    torch.set_num_threads(threads)
    transformers.logging.disable_progress_bar()
    classify = pipeline("text-classification", model=str(model_dir), device="cpu")
    options = {"batch_size": batch_size, "truncation": True, "max_length": max_length}
    classify(texts[:warmup_rows], **options)
    started = time.perf_counter()
    answers = classify(texts, **options)
    seconds = time.perf_counter() - started
    predictions = [answer["label"] for answer in answers]
    return PipelineRun(len(texts), seconds, predictions, threads, batch_size)
