"""Translation with multilingual base models (mBART-50, NLLB, M2M100): the languages mapped
to the tokenizer's codes, set on the tokenizer while training, kept in the model's meta, and
the target's token forced at the start of every generated text.

A tiny NLLB tokenizer (letters as tokens, plus NLLB's 202 language codes) and a tiny M2M100
model (NLLB's architecture) are built here; M2M100's own tokenizer needs sentencepiece, so a
stand-in with its ``lang_code_to_id`` checks that mapping.
"""

from __future__ import annotations

import string
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from builtin_models import translation as tr
from builtin_models.language_codes import candidates, resolve
from builtin_models.seq2seq_model import Seq2SeqGenerator
from byom.errors import InvalidOption
from tests.builtin_models.test_seq2seq import TINY_SEQ2SEQ, build_tiny_t5, translation_frame

LANGS = {"source_lang": "en", "target_lang": "fr"}


def build_tiny_nllb(folder: Path) -> Path:
    """Save a tiny NLLB tokenizer and a randomly initialised tiny M2M100 to ``folder``."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "\u2581": 4}
    vocab.update({c: 5 + i for i, c in enumerate(string.ascii_lowercase)})
    tokenizer = NllbTokenizer(vocab=vocab, merges=[], model_max_length=64)
    config = M2M100Config(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    folder.mkdir(parents=True, exist_ok=True)
    M2M100ForConditionalGeneration(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_nllb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_nllb(tmp_path_factory.mktemp("tiny_nllb"))


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def test_candidate_codes() -> None:
    assert candidates("fr") == ["fr", "fr_XX", "fra_Latn"]
    assert candidates("pt-BR") == ["pt_BR", "pt_XX", "por_Latn", "pt"]
    assert candidates("fra-Latn") == ["fra_Latn", "fra"]  # NLLB's own code, as given
    assert candidates("da") == ["da", "dan_Latn"]  # not in mBART-50


def test_nllb_codes_and_the_forced_target(tiny_nllb: Path) -> None:
    tokenizer = _tokenizer(tiny_nllb)
    meta = resolve(tokenizer, LANGS)
    fra = tokenizer.convert_tokens_to_ids("fra_Latn")
    assert meta == {
        "tokenizer_src_lang": "eng_Latn",
        "tokenizer_tgt_lang": "fra_Latn",
        "forced_bos_token_id": fra,
    }
    assert (tokenizer.src_lang, tokenizer.tgt_lang) == ("eng_Latn", "fra_Latn")
    # Exact codes (as translation_options stores them) are taken as they are.
    exact = resolve(tokenizer, {"source_lang": "deu-Latn", "target_lang": "fra-Latn"})
    assert exact["tokenizer_src_lang"] == "deu_Latn"
    assert tokenizer(["ab"], text_target=["cd"])["labels"][0][0] == fra


def test_a_language_the_tokenizer_lacks(tiny_nllb: Path) -> None:
    with pytest.raises(InvalidOption) as err:
        resolve(_tokenizer(tiny_nllb), {"source_lang": "en", "target_lang": "tlh"})
    assert err.value.details["option"] == "target_lang"
    assert "target_lang 'tlh': the base model's tokenizer has no language code" in str(err.value)
    assert "e.g. ace_Arab" in str(err.value)


def test_m2m100_and_mbart50_style_mappings() -> None:
    """M2M100's tokenizer maps bare ISO codes; mBART-50's maps en_XX (lang_code_to_id)."""
    m2m = SimpleNamespace(src_lang="en", tgt_lang=None, lang_code_to_id={"en": 7, "fr": 9})
    assert resolve(m2m, LANGS) == {
        "tokenizer_src_lang": "en",
        "tokenizer_tgt_lang": "fr",
        "forced_bos_token_id": 9,
    }
    assert m2m.src_lang == "en" and m2m.tgt_lang == "fr"
    mbart = SimpleNamespace(src_lang="en_XX", lang_code_to_id={"en_XX": 3, "fr_XX": 4})
    assert resolve(mbart, {"source_lang": "fr", "target_lang": "en"})["forced_bos_token_id"] == 3
    assert mbart.src_lang == "fr_XX"


def test_other_tokenizers_need_no_codes(tmp_path: Path) -> None:
    assert resolve(_tokenizer(build_tiny_t5(tmp_path)), LANGS) == {}
    assert resolve(SimpleNamespace(src_lang="en"), {}) == {}  # summarization: no languages


def test_translation_with_a_multilingual_model(tiny_nllb: Path, tmp_path: Path) -> None:
    """Trained through the task: the codes in the meta, the generated text starts with the
    target's token, and a reloaded model sets them again."""
    import torch

    params = tr.validate_hyperparams({**TINY_SEQ2SEQ, "num_train_epochs": 1, "max_length": 48})
    trained = tr.train(
        tr.prepare(translation_frame(12), params, task_options=LANGS),
        base_model=str(tiny_nllb),
        hyperparams=params,
        workdir=tmp_path / "work",
    )
    fra = trained.tokenizer.convert_tokens_to_ids("fra_Latn")
    assert trained.meta["prefix"] == ""  # no T5 prefix
    assert trained.meta["tokenizer_src_lang"] == "eng_Latn"
    assert trained.meta["forced_bos_token_id"] == fra

    generator = trained.generator()
    assert generator.settings({"max_new_tokens": 3})["forced_bos_token_id"] == fra
    calls: list[Any] = []
    generate = generator.model.generate

    def spy(**kwargs: Any) -> Any:
        out = generate(**kwargs)
        calls.append((kwargs, out))
        return out

    generator.model.generate = spy  # type: ignore[method-assign]
    (text,) = generator.predict(["red cat"], {"max_new_tokens": 3})
    assert isinstance(text, str) and "fra_Latn" not in text  # a special token: not shown
    kwargs, out = calls[0]
    assert kwargs["input_ids"][0, 0].item() == trained.tokenizer.convert_tokens_to_ids("eng_Latn")
    assert out[0, 1].item() == fra  # after the decoder's start token: the target language

    tr.save(trained, tmp_path / "model")
    loaded = Seq2SeqGenerator.load(tmp_path / "model")
    loaded.tokenizer.src_lang = "deu_Latn"  # as a saved tokenizer might come back
    loaded = Seq2SeqGenerator(loaded.model, loaded.tokenizer, loaded.meta)
    assert loaded.tokenizer.src_lang == "eng_Latn" and loaded.forced_bos_token_id == fra
    with torch.inference_mode():
        assert loaded.predict(["red cat"], {"max_new_tokens": 3}) == [text]
