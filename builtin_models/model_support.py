"""Helpers shared by the MLflow "models from code" (``seq2seq_model.py``,
``text_generation_model.py``, ``text_classifier_model.py``, ``question_answerer_model.py``,
``recommender_model.py``).

Self-contained on purpose, like those files: a logged model is served where this package
may not be installed (``mlflow models serve`` in an environment with only mlflow, torch,
transformers, pandas and numpy), so this module imports only the standard library, numpy
and pandas (transformers only inside :func:`load_pretrained`). ``artifacts.log_model``
ships it with every logged model (MLflow's ``code_paths``: copied into the model's
``code/`` folder, which MLflow puts on ``sys.path`` when it loads the model); a model file
imports it as ``builtin_models.model_support`` where the package is installed, else as the
top-level ``model_support``.

So a model logged earlier may run with a newer copy of this module (in the gateway's own
process): keep what is here backward compatible.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The generation params the logged signature of a generating model declares, with their
#: defaults (MLflow fills these in; 0 and -1 mean "the model's default" and "no seed").
GENERATION_PARAMS: dict[str, Any] = {
    "max_new_tokens": 0,
    "num_beams": 0,
    "temperature": 0.0,
    "top_p": 1.0,
    "seed": -1,
}
MAX_NEW_TOKENS_LIMIT = 4096
MAX_BEAMS = 64


def load_pretrained(
    path: str | Path, meta_file: str, model_class: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, tokenizer, meta)`` of a saved model directory: ``model_class`` (a
    transformers ``AutoModelFor...``) and ``AutoTokenizer`` ``from_pretrained`` it, ``meta``
    is its JSON ``meta_file``."""
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Loading weights" bars in server logs
    meta = json.loads((Path(path) / meta_file).read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = model_class.from_pretrained(str(path))
    return model, tokenizer, meta


def missing(value: Any) -> bool:
    """Whether a cell is NULL: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def known_params(
    params: dict[str, Any] | None, names: Sequence[str], what: str = "parameter(s)"
) -> dict[str, Any]:
    """A copy of ``params`` (None: empty); ValueError for a param not in ``names``."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(
            f"unknown {what} {', '.join(unknown)}; this model takes {', '.join(names)}"
        )
    return params


def number(params: dict[str, Any], key: str, kind: type, low: float, high: float) -> Any:
    """``params[key]`` as ``kind`` within [low, high]; None when it is not given."""
    value = params.get(key)
    if value is None:
        return None
    try:
        found = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or (kind is int and float(value) != found):
        raise ValueError(f"{key} must be a whole number, got {value!r}")
    if not low <= found <= high:
        raise ValueError(f"{key} must be in [{low:g}, {high:g}], got {value!r}")
    return found


def generation_settings(
    params: dict[str, Any] | None,
    *,
    max_new_tokens: int,
    num_beams: int,
    forced_bos_token_id: int | None = None,
    max_new_tokens_limit: int = MAX_NEW_TOKENS_LIMIT,
    max_beams: int = MAX_BEAMS,
) -> dict[str, Any]:
    """The ``generate`` settings of ``params`` (:data:`GENERATION_PARAMS`' names) over a
    model's defaults ``max_new_tokens`` and ``num_beams`` (and ``forced_bos_token_id``,
    when not None); ValueError for an unknown param or a value out of range. ``seed`` is
    in the answer only with sampling."""
    params = known_params(params, GENERATION_PARAMS, "generation parameter(s)")
    max_new = number(params, "max_new_tokens", int, 0, max_new_tokens_limit)
    beams = number(params, "num_beams", int, 0, max_beams)
    temperature = number(params, "temperature", float, 0.0, 100.0)
    top_p = number(params, "top_p", float, 0.0, 1.0)
    seed = number(params, "seed", int, -1, 2**32 - 1)
    if top_p == 0:
        raise ValueError("top_p must be above 0 (1.0 turns nucleus sampling off)")
    out: dict[str, Any] = {
        "max_new_tokens": max_new or max_new_tokens,
        "num_beams": beams or num_beams,
    }
    if forced_bos_token_id is not None:
        out["forced_bos_token_id"] = forced_bos_token_id
    if temperature and temperature > 0:
        out.update(do_sample=True, temperature=temperature, top_p=top_p)
        if seed is not None and seed >= 0:
            out["seed"] = seed
    else:
        out["do_sample"] = False
    return out


def per_present(texts: list[Any], answer: Callable[[list[str]], list[Any]]) -> list[Any]:
    """``answer`` of the texts that are not NULL (as strings), in ``texts``' places; None
    for a NULL text."""
    present = [i for i, t in enumerate(texts) if not missing(t)]
    found = answer([str(texts[i]) for i in present])
    out: list[Any] = [None] * len(texts)
    for i, value in zip(present, found, strict=True):
        out[i] = value
    return out


def texts_of(model_input: Any, columns: Sequence[str]) -> list[Any]:
    """The texts of a pyfunc input: a DataFrame (its ``columns[0]`` column, any case; a
    row's NULL there takes the next of ``columns`` that has one; or the frame's only
    column), a Series, an array, a list, or a dict of columns."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        names = {str(c).lower(): c for c in model_input.columns}
        found = [model_input[names[c]].tolist() for c in columns if c in names]
        if found:
            texts = found[0]
            for other in found[1:]:
                texts = [o if missing(t) else t for t, o in zip(texts, other, strict=True)]
            return texts
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].tolist()
        aliases = " or ".join(f"'{c}'" for c in columns[1:])
        wanted = f"'{columns[0]}'" + (f" (or {aliases})" if aliases else "")
        raise ValueError(
            f"expected a {wanted} column, got: {', '.join(map(str, model_input.columns))}"
        )
    if isinstance(model_input, pd.Series | np.ndarray):
        return list(model_input.tolist())
    if isinstance(model_input, list | tuple):
        return list(model_input)
    raise ValueError(f"cannot read texts from a {type(model_input).__name__}")
