"""Generation with a fine-tuned sequence-to-sequence model (summarization, translation), and
its MLflow "model from code".

Self-contained on purpose: MLflow copies this file into every logged model and runs it on
load, so it imports only mlflow, pandas, torch, transformers and ``model_support.py`` (the
helpers the model files share, logged with every model) - never the gateway.

A saved model is a ``save_pretrained`` directory (an encoder-decoder: T5, BART, Marian, or
a BERT2BERT ``EncoderDecoderModel``) plus ``byom_seq2seq.json``: the task, the ``prefix``
put before every source (T5's "summarize: "; "" for other models), ``max_length`` (source
tokens kept) and the generation defaults ``max_new_tokens`` and ``num_beams``; for a
multilingual translation model (mBART-50, NLLB, M2M100) also the tokenizer's language codes
(``tokenizer_src_lang``, ``tokenizer_tgt_lang``) and the target language's token, which
starts every generated text (``forced_bos_token_id``).

``predict(DataFrame with source, params)`` answers one ``prediction`` (the generated text)
per row; a NULL source answers None. Params, per query (``pgml.generate``'s names):

* ``max_new_tokens``: at most this many generated tokens (0: the model's default);
* ``num_beams``: beam search width (0: the model's default; 1 is greedy);
* ``temperature``: 0 decodes deterministically (greedy or beams); above 0 samples with
  that temperature, ``top_p`` (nucleus sampling, 1.0: off) applying;
* ``seed``: with sampling, a seed makes each row's output reproducible (each row is then
  generated on its own, so it does not depend on the other rows of the batch); -1: none.

Rows are generated in batches of ``INFERENCE_BATCH`` sources of similar lengths (sorted by
their token counts, so little padding), answered in input order. The deployment merges
concurrent requests with the same params into one call (``serving.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

# The helpers shared by the model files. Inside this package (tests, training, the
# gateway's own loads) they are builtin_models.model_support; a logged model is also served
# where the package is not installed, and there MLflow puts the model's code/ folder, where
# artifacts.log_model ships model_support.py (``code_paths``), on sys.path.
try:
    from builtin_models import model_support
except ImportError:  # pragma: no cover - served from a logged model without this package
    import model_support  # type: ignore[no-redef]

META_FILE = "byom_seq2seq.json"
INPUT_COLUMN = "source"
ARTIFACT_KEY = "model"
INFERENCE_BATCH = 32
#: The params the logged signature declares, with their defaults.
PARAMS_EXAMPLE: dict[str, Any] = model_support.GENERATION_PARAMS


class Seq2SeqGenerator:
    """A tokenizer + encoder-decoder model + generation defaults, ready to generate."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = dict(meta)
        self.prefix = str(meta.get("prefix") or "")
        self.max_length = int(meta.get("max_length", 256))
        self.max_new_tokens = int(meta.get("max_new_tokens", 64))
        self.num_beams = int(meta.get("num_beams", 1))
        # A multilingual model (mBART-50, NLLB, M2M100): the tokenizer marks the source
        # language, generation starts with the target's token.
        if meta.get("tokenizer_src_lang"):
            self.tokenizer.src_lang = meta["tokenizer_src_lang"]
            self.tokenizer.tgt_lang = meta.get("tokenizer_tgt_lang")
        forced = meta.get("forced_bos_token_id")
        self.forced_bos_token_id = int(forced) if forced is not None else None

    @classmethod
    def load(cls, path: str | Path) -> Seq2SeqGenerator:
        """Load a saved model directory."""
        from transformers import AutoModelForSeq2SeqLM

        return cls(*model_support.load_pretrained(path, META_FILE, AutoModelForSeq2SeqLM))

    def settings(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The generation settings of ``params`` over the model's defaults (ValueError for a
        value out of range)."""
        return model_support.generation_settings(
            params,
            max_new_tokens=self.max_new_tokens,
            num_beams=self.num_beams,
            forced_bos_token_id=self.forced_bos_token_id,
        )

    def length_order(self, sources: list[str]) -> list[int]:
        """Row indexes by source length in tokens (as truncated), shortest first: batches of
        neighbours pad little."""
        ids = self.tokenizer(
            sources, truncation=True, max_length=self.max_length, return_token_type_ids=False
        )["input_ids"]
        return sorted(range(len(sources)), key=lambda i: len(ids[i]))

    def generate(self, texts: list[str], params: dict[str, Any] | None = None) -> list[str]:
        """One generated text per source text, in order."""
        import torch

        settings = self.settings(params)
        seed = settings.pop("seed", None)
        if not texts:
            return []
        sources = [self.prefix + str(t) for t in texts]
        order = self.length_order(sources)
        # A seeded row is generated alone: its sample cannot depend on its batch mates.
        size = 1 if seed is not None else INFERENCE_BATCH
        out: list[str] = [""] * len(sources)
        with torch.inference_mode():
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                batch = self.tokenizer(
                    [sources[i] for i in rows],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                batch.pop("token_type_ids", None)  # BERT2BERT's encoder takes none
                if seed is not None:
                    torch.manual_seed(seed)
                ids = self.model.generate(**batch, **settings)
                texts_out = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
                for i, text in zip(rows, texts_out, strict=True):
                    out[i] = text.strip()
        return out

    def predict(self, texts: list[Any], params: dict[str, Any] | None = None) -> list[Any]:
        """Generated texts for ``texts``; None/NaN texts answer None."""
        return model_support.per_present(texts, lambda present: self.generate(present, params))


def texts_of(model_input: Any) -> list[Any]:
    """The source texts of a pyfunc input: a DataFrame (``source`` column, or its only
    column), a Series, a list of strings, or a dict of columns."""
    return model_support.texts_of(model_input, (INPUT_COLUMN,))


class Seq2SeqModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: ``predict(DataFrame with source, params)`` -> DataFrame with
    ``prediction``."""

    generator: Seq2SeqGenerator

    def load_context(self, context: Any) -> None:
        self.generator = Seq2SeqGenerator.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        answer = self.generator.predict(texts_of(model_input), params)
        return pd.DataFrame({"prediction": answer}, dtype=object)


mlflow.models.set_model(Seq2SeqModel())
