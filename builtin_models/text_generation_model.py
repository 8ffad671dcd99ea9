"""Generation with a fine-tuned causal language model (the ``text_generation`` task), and its
MLflow "model from code".

Self-contained on purpose: MLflow copies this file into every logged model and runs it on
load, so it imports only mlflow, pandas, torch, transformers and ``model_support.py`` (the
helpers the model files share, logged with every model: the parameter checks are those of
``seq2seq_model.py``) - never the gateway.

A saved model is a ``save_pretrained`` directory (a decoder: GPT-2 and friends, or the BERT
warm-started as a decoder, ``BertLMHeadModel``) plus ``byom_text_generation.json``: the task,
``max_length`` (prompt tokens kept: the last ones), the generation defaults
``max_new_tokens`` and ``num_beams``, and the ``start_token_id`` / ``end_token_id`` /
``pad_token_id`` of the model ([CLS], [SEP], [PAD] for a BERT; GPT-2's ``<|endoftext|>``
for all three).

``predict(DataFrame with text or prompt, params)`` answers one ``prediction`` per row: the
continuation of the row's text (the generated text only, not the prompt, trimmed of
surrounding whitespace); a NULL text answers None. A prompt is read as training read texts:
the start token ([CLS], or ``start_token_id`` where the tokenizer adds none), then the text
(its last tokens), no end token. Params, per query (``pgml.generate``'s names):

* ``max_new_tokens``: at most this many generated tokens (0: the model's default);
* ``num_beams``: beam search width (0: the model's default; 1 is greedy);
* ``temperature``: 0 decodes deterministically (greedy or beams); above 0 samples with
  that temperature, ``top_p`` (nucleus sampling, 1.0: off) applying;
* ``seed``: with sampling, a seed makes each row's output reproducible (each row is then
  generated on its own, so it does not depend on the other rows of the batch); -1: none.

Prompts are generated in batches of similar token lengths (sorted by length, left-padded as
a decoder needs), answered in input order.
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

META_FILE = "byom_text_generation.json"
#: The input column, and its alias (``WHERE prompt = '...'``).
INPUT_COLUMNS = ("text", "prompt")
ARTIFACT_KEY = "model"
INFERENCE_BATCH = 16
#: The params the logged signature declares, with their defaults.
PARAMS_EXAMPLE: dict[str, Any] = model_support.GENERATION_PARAMS


def added_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The token ids the tokenizer puts before and after every text (BERT: [CLS] and [SEP];
    GPT-2: none)."""
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    return [], []


def position_limit(config: Any) -> int | None:
    """The longest sequence the model's position embeddings allow (None: no limit known)."""
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class TextGenerator:
    """A tokenizer + causal language model + generation defaults, ready to continue texts."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = dict(meta)
        self.max_length = int(meta.get("max_length", 128))
        self.max_new_tokens = int(meta.get("max_new_tokens", 32))
        self.num_beams = int(meta.get("num_beams", 1))
        self.end_id = int(meta["end_token_id"])
        self.pad_id = int(meta.get("pad_token_id", self.end_id))
        self.start_id = int(meta.get("start_token_id", self.end_id))
        # What starts every training text: the tokenizer's own [CLS] (or <s>), else the start
        # token (GPT-2). The end token it may add ([SEP]) is not part of a prompt.
        self.prefix = added_tokens(tokenizer)[0] or [self.start_id]
        self.limit = position_limit(model.config)

    @classmethod
    def load(cls, path: str | Path) -> TextGenerator:
        """Load a saved model directory."""
        from transformers import AutoModelForCausalLM

        return cls(*model_support.load_pretrained(path, META_FILE, AutoModelForCausalLM))

    def settings(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The generation settings of ``params`` over the model's defaults (ValueError for a
        value out of range)."""
        return model_support.generation_settings(
            params, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams
        )

    def encode(self, text: str, keep: int) -> list[int]:
        """The prompt's ids: the start of a text ([CLS], <|endoftext|>) and the text's last
        tokens, ``keep`` in all at most."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        room = max(keep - len(self.prefix), 0)
        ids = [*self.prefix, *(ids[-room:] if room else [])]
        return ids

    def generate(self, texts: list[str], params: dict[str, Any] | None = None) -> list[str]:
        """The continuation of each text, in order."""
        import torch

        settings = self.settings(params)
        seed = settings.pop("seed", None)
        if not texts:
            return []
        keep = self.max_length
        if self.limit:  # prompt + new tokens must fit the position embeddings
            settings["max_new_tokens"] = min(settings["max_new_tokens"], self.limit - 1)
            keep = max(1, min(keep, self.limit - settings["max_new_tokens"]))
        prompts = [self.encode(str(t), keep) for t in texts]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        # A seeded row is generated alone: its sample cannot depend on its batch mates.
        size = 1 if seed is not None else INFERENCE_BATCH
        out: list[str] = [""] * len(prompts)
        with torch.inference_mode():
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                width = max(len(prompts[i]) for i in rows)
                # Left padding: every prompt ends where generation starts.
                ids = [[self.pad_id] * (width - len(prompts[i])) + prompts[i] for i in rows]
                mask = [[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in rows]
                if seed is not None:
                    torch.manual_seed(seed)
                generated = self.model.generate(
                    input_ids=torch.tensor(ids),
                    attention_mask=torch.tensor(mask),
                    pad_token_id=self.pad_id,
                    eos_token_id=self.end_id,
                    **settings,
                )
                for i, row in zip(rows, generated.tolist(), strict=True):
                    out[i] = self.continuation(prompts[i], row[width:])
        return out

    def continuation(self, prompt: list[int], new: list[int]) -> str:
        """The text of ``new`` after ``prompt`` (decoded together, so a word piece that
        continues the prompt's last word reads right), trimmed."""
        decode = self.tokenizer.decode
        before = decode(prompt, skip_special_tokens=True)
        both = decode(prompt + new, skip_special_tokens=True)
        text = (
            both[len(before) :]
            if both.startswith(before)
            else decode(new, skip_special_tokens=True)
        )
        return str(text).strip()

    def predict(self, texts: list[Any], params: dict[str, Any] | None = None) -> list[Any]:
        """Continuations of ``texts``; None/NaN texts answer None."""
        return model_support.per_present(texts, lambda present: self.generate(present, params))


def texts_of(model_input: Any) -> list[Any]:
    """The prompts of a pyfunc input: a DataFrame (``text`` column, else ``prompt``, a row's
    NULL text taking its prompt; or its only column), a Series, a list, a dict of columns."""
    return model_support.texts_of(model_input, INPUT_COLUMNS)


class TextGenerationModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: ``predict(DataFrame with text or prompt, params)`` -> DataFrame
    with ``prediction`` (the continuation)."""

    generator: TextGenerator

    def load_context(self, context: Any) -> None:
        self.generator = TextGenerator.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        answer = self.generator.predict(texts_of(model_input), params)
        return pd.DataFrame({"prediction": answer}, dtype=object)


mlflow.models.set_model(TextGenerationModel())
