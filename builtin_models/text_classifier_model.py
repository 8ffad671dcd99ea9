"""Inference for a fine-tuned text classifier, and its MLflow "model from code".

Self-contained on purpose: MLflow copies this file into every logged model and runs it on
load (``mlflow models serve``, ``mlflow.pyfunc.load_model``), so it imports only mlflow,
numpy, pandas, torch, transformers and ``model_support.py`` (the helpers the model files
share, logged with every model) - never the gateway - and a logged model serves from any
environment that has those.

A saved classifier is a ``save_pretrained`` directory plus ``byom_classifier.json``
(labels in output order, ``multi_label``, ``threshold``, ``max_length``).

Predict answer, one entry per input row (a DataFrame from pyfunc, lists from
:meth:`TextClassifier.predict`):

* ``prediction``: the label (its original type, e.g. ``1`` or ``"positive"``); multi-label:
  the labels whose probability reaches ``threshold``, joined by ``", "`` in label order
  (``""`` when none does);
* ``confidence``: the probability of the predicted label (multi-label: the highest label
  probability);
* ``probabilities``: ``{str(label): probability}`` for every label (softmax for one label,
  independent sigmoids for multi-label).

A NULL text gets ``None`` in all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

# The helpers shared by the model files. Inside this package (tests, training, the
# gateway's own loads) they are builtin_models.model_support; a logged model is also served
# where the package is not installed, and there MLflow puts the model's code/ folder, where
# artifacts.log_model ships model_support.py (``code_paths``), on sys.path.
try:
    from builtin_models import model_support
except ImportError:  # pragma: no cover - served from a logged model without this package
    import model_support  # type: ignore[no-redef]

META_FILE = "byom_classifier.json"
INPUT_COLUMN = "text"
ARTIFACT_KEY = "model"
INFERENCE_BATCH = 64
_DIGITS = 6


class TextClassifier:
    """A tokenizer + sequence-classification model + label metadata, ready to predict."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels: list[Any] = list(meta["labels"])
        self.multi_label = bool(meta["multi_label"])
        self.threshold = float(meta.get("threshold", 0.5))
        self.max_length = int(meta.get("max_length", 128))

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        """Load a saved classifier directory."""
        from transformers import AutoModelForSequenceClassification

        loaded = model_support.load_pretrained(path, META_FILE, AutoModelForSequenceClassification)
        return cls(*loaded)

    def probabilities(self, texts: list[str], batch_size: int = INFERENCE_BATCH) -> np.ndarray:
        """``(len(texts), len(labels))`` probabilities, float64."""
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[start : start + batch_size],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                logits = self.model(**batch).logits.float()
                scores = torch.sigmoid(logits) if self.multi_label else logits.softmax(-1)
                chunks.append(scores.numpy().astype(np.float64))
        if not chunks:
            return np.zeros((0, len(self.labels)))
        return np.concatenate(chunks)

    def predict(self, texts: list[Any]) -> dict[str, list[Any]]:
        """The answer lists (module docstring) for ``texts``; None/NaN texts answer None."""
        present = [i for i, t in enumerate(texts) if not model_support.missing(t)]
        probs = self.probabilities([str(texts[i]) for i in present])
        answer: dict[str, list[Any]] = {
            "prediction": [None] * len(texts),
            "confidence": [None] * len(texts),
            "probabilities": [None] * len(texts),
        }
        keys = [str(label) for label in self.labels]
        for row, p in zip(present, probs, strict=True):
            if self.multi_label:
                chosen = [str(self.labels[j]) for j in np.flatnonzero(p >= self.threshold)]
                answer["prediction"][row] = ", ".join(chosen)
            else:
                answer["prediction"][row] = self.labels[int(p.argmax())]
            answer["confidence"][row] = round(float(p.max()), _DIGITS)
            answer["probabilities"][row] = {
                k: round(float(v), _DIGITS) for k, v in zip(keys, p, strict=True)
            }
        return answer


def texts_of(model_input: Any) -> list[Any]:
    """The texts of a pyfunc input: a DataFrame (``text`` column, or its only column), a
    Series, a list of strings, or a dict of columns."""
    return model_support.texts_of(model_input, (INPUT_COLUMN,))


class TextClassifierModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: ``predict(DataFrame with text)`` -> DataFrame of the answer."""

    classifier: TextClassifier

    def load_context(self, context: Any) -> None:
        self.classifier = TextClassifier.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        # A DataFrame hint: MLflow infers no schema from it (the logged signature checks the
        # input) and does not warn about a missing hint.
        return pd.DataFrame(self.classifier.predict(texts_of(model_input)), dtype=object)


mlflow.models.set_model(TextClassifierModel())
