"""The datasets and baselines of ``builtin_tasks.py``: each task's train and evaluation rows,
read from ``../shared/data`` (never committed), and the in-process baseline it must beat.

- question answering: XQuAD-en (SQuAD v1.1 JSON), split by article - the first
  ``QA_TRAIN_ARTICLES`` articles train, the others are scored; baseline: the context
  sentence that shares most words with the question (SQuAD EM and token F1);
- summarization: SciTLDR-A (abstract sentences -> the author's TLDR, the first target);
  train.jsonl trains, test.jsonl is scored; baseline: the abstract's first sentence
  (ROUGE-L, as the issue asks; ROUGE-1/2 reported too);
- translation: Multi30K en->fr, the first ``--train-rows`` of train, scored on
  test_2016_flickr; baseline: the English source copied (BLEU, chrF);
- text generation: Multi30K's English captions (a text the base model has not been tuned
  on), trained on the train captions, perplexity on the test captions before and after.

Metrics are the gateway's own functions (``builtin_models.qa_metrics``, ``text_metrics``):
the gateway's EVALUATE and the baselines are scored by the same code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from builtin_models import qa_metrics, text_metrics

#: XQuAD-en has 48 articles; the first 32 train (about two thirds of the questions).
QA_TRAIN_ARTICLES = 32
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_STOPWORDS = frozenset(
    "a an the of in on at to for by with from and or is are was were be been what which who "
    "whom whose when where why how did do does that this these those it its as into than "
    "after before during".split()
)


@dataclass
class Split:
    """One task's rows: column name -> values, for the train and the evaluation part."""

    train: dict[str, list[str]]
    test: dict[str, list[str]]

    @property
    def sizes(self) -> tuple[int, int]:
        return len(next(iter(self.train.values()))), len(next(iter(self.test.values())))


def _take(columns: dict[str, list[str]], limit: int | None) -> dict[str, list[str]]:
    return {k: v[:limit] if limit else v for k, v in columns.items()}


def load_qa(folder: Path, train_limit: int | None, test_limit: int | None) -> Split:
    """XQuAD-en rows ``question, context, answer`` (the first given answer), by article."""
    articles = json.loads((folder / "xquad.en.json").read_text(encoding="utf-8"))["data"]
    parts: list[dict[str, list[str]]] = [
        {"question": [], "context": [], "answer": []} for _ in range(2)
    ]
    for index, article in enumerate(articles):
        part = parts[0] if index < QA_TRAIN_ARTICLES else parts[1]
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                part["question"].append(qa["question"])
                part["context"].append(paragraph["context"])
                part["answer"].append(qa["answers"][0]["text"])
    return Split(_take(parts[0], train_limit), _take(parts[1], test_limit))


def load_summaries(folder: Path, train_limit: int | None, test_limit: int | None) -> Split:
    """SciTLDR-A rows ``source`` (the abstract's sentences joined) -> ``summary``."""

    def read(name: str) -> dict[str, list[str]]:
        rows = [json.loads(line) for line in (folder / name).read_text().splitlines() if line]
        return {
            "source": [" ".join(r["source"]) for r in rows],
            "summary": [r["target"][0] for r in rows],
        }

    return Split(_take(read("train.jsonl"), train_limit), _take(read("test.jsonl"), test_limit))


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def load_translations(folder: Path, train_limit: int | None, test_limit: int | None) -> Split:
    """Multi30K rows ``source`` (English) -> ``target`` (French)."""
    train = {"source": _lines(folder / "train.en"), "target": _lines(folder / "train.fr")}
    test = {
        "source": _lines(folder / "test_2016_flickr.en"),
        "target": _lines(folder / "test_2016_flickr.fr"),
    }
    return Split(_take(train, train_limit), _take(test, test_limit))


def load_generation(folder: Path, train_limit: int | None, test_limit: int | None) -> Split:
    """Multi30K's English captions as ``text``: train captions train, test ones are held out."""
    train = {"text": _lines(folder / "train.en")}
    test = {"text": _lines(folder / "test_2016_flickr.en")}
    return Split(_take(train, train_limit), _take(test, test_limit))


# ---------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def sentences(text: str) -> list[str]:
    """A paragraph's sentences (a split after ., ! or ? followed by a capital or digit)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def overlap_sentence(question: str, context: str) -> str:
    """The context sentence sharing most (non-stopword) words with the question; the first
    such sentence on a tie."""
    asked = _words(question)
    return max(sentences(context) or [context], key=lambda s: len(asked & _words(s)))


def qa_baseline(test: dict[str, list[str]]) -> dict[str, float]:
    """SQuAD EM/F1 (fractions, as the gateway reports them) of the overlap sentence."""
    predictions = [
        overlap_sentence(q, c) for q, c in zip(test["question"], test["context"], strict=True)
    ]
    scores = qa_metrics.qa_metrics(predictions, test["answer"])
    return {k: float(v) for k, v in scores.items() if k in ("exact_match", "f1")}


def lead_baseline(test: dict[str, list[str]]) -> dict[str, float]:
    """ROUGE of the abstract's first sentence as the summary."""
    leads = [(sentences(s) or [s])[0] for s in test["source"]]
    return text_metrics.rouge(leads, test["summary"])


def copy_baseline(test: dict[str, list[str]]) -> dict[str, float]:
    """BLEU and chrF of the English source copied as the French translation."""
    return text_metrics.bleu_chrf(test["source"], test["target"])


def mean_length(texts: Sequence[str]) -> float:
    return sum(len(t.split()) for t in texts) / max(1, len(texts))
