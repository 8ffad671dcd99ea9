"""Resolving model_name: the packaged MiniLM, local paths, hub ids (offline here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builtin_models import base_models
from byom.errors import InvalidOption


@pytest.mark.parametrize("name", [None, "", "  ", base_models.DEFAULT_MODEL_ID])
def test_default_is_the_packaged_minilm(name: str | None) -> None:
    base = base_models.resolve(name)
    assert base.source == "packaged"
    assert base.name == base_models.DEFAULT_MODEL_ID
    path = Path(base.path)
    assert "site-packages" in path.parts
    assert (path / "config.json").is_file()
    assert (path / "model.safetensors").is_file()


def test_a_local_directory(tiny_bert: Path) -> None:
    base = base_models.resolve(str(tiny_bert))
    assert (base.source, base.path, base.name) == ("local", str(tiny_bert), str(tiny_bert))


def test_a_directory_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidOption, match="holds no config.json"):
        base_models.resolve(str(tmp_path))


def test_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidOption, match="looks like a path, but no such directory"):
        base_models.resolve(str(tmp_path / "nope"))


def test_an_unknown_hub_id_offline_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InvalidOption) as err:
        base_models.resolve("nobody/no-such-model-xyz")
    assert "Unknown base model 'nobody/no-such-model-xyz'" in err.value.message
    assert "HF_HUB_OFFLINE" in err.value.message
    assert err.value.details["value"] == "nobody/no-such-model-xyz"


def test_an_invalid_hub_id() -> None:
    with pytest.raises(InvalidOption, match="neither a local directory nor a valid"):
        base_models.resolve("not a valid id!!")
