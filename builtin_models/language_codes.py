"""Language codes of multilingual translation models (mBART-50, NLLB-200, M2M100).

Their tokenizers mark each text with a language token: the source's when encoding
(``tokenizer.src_lang``), the target's when encoding labels (``tokenizer.tgt_lang``), and
generation must start with the target's (``forced_bos_token_id``), else the model writes
whatever language it likes. Each family names the languages its own way: mBART-50
``en_XX``/``fr_XX``, NLLB ``eng_Latn``/``fra_Latn``, M2M100 ``en``/``fr`` (tokens
``__en__``/``__fr__``).

:func:`resolve` maps a translation's ``source_lang``/``target_lang`` (ISO codes, checked by
``translation_options.py``) to the tokenizer's codes: the code exactly as given when the
tokenizer knows it (``USING target_lang = 'fra_Latn'``), else the table below for common
languages. A tokenizer without ``src_lang`` (T5, Marian, BERT) needs none of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from byom.errors import InvalidOption

__all__ = ["CODES", "META_KEYS", "candidates", "resolve"]

#: ISO 639-1 -> (mBART-50, NLLB-200) codes of common languages; None where the family has
#: no such language. M2M100 takes the ISO code itself.
CODES: dict[str, tuple[str | None, str]] = {
    "ar": ("ar_AR", "arb_Arab"),
    "cs": ("cs_CZ", "ces_Latn"),
    "da": (None, "dan_Latn"),
    "de": ("de_DE", "deu_Latn"),
    "el": (None, "ell_Grek"),
    "en": ("en_XX", "eng_Latn"),
    "es": ("es_XX", "spa_Latn"),
    "fi": ("fi_FI", "fin_Latn"),
    "fr": ("fr_XX", "fra_Latn"),
    "hi": ("hi_IN", "hin_Deva"),
    "it": ("it_IT", "ita_Latn"),
    "ja": ("ja_XX", "jpn_Jpan"),
    "ko": ("ko_KR", "kor_Hang"),
    "nl": ("nl_XX", "nld_Latn"),
    "no": (None, "nob_Latn"),
    "pl": ("pl_PL", "pol_Latn"),
    "pt": ("pt_XX", "por_Latn"),
    "ro": ("ro_RO", "ron_Latn"),
    "ru": ("ru_RU", "rus_Cyrl"),
    "sv": ("sv_SE", "swe_Latn"),
    "tr": ("tr_TR", "tur_Latn"),
    "uk": ("uk_UA", "ukr_Cyrl"),
    "vi": ("vi_VN", "vie_Latn"),
    "zh": ("zh_CN", "zho_Hans"),
}
#: What :func:`resolve` adds to a model's meta (``byom_seq2seq.json``), read when serving.
META_KEYS = ("tokenizer_src_lang", "tokenizer_tgt_lang", "forced_bos_token_id")
_SHOWN = 8


def candidates(code: str) -> list[str]:
    """The tokenizer codes to try for an ISO ``code`` (as ``translation_options`` stores it,
    e.g. ``fr``, ``pt-BR``, ``fra-Latn``), in order: as given (``-`` as ``_``), then the
    table's mBART-50 and NLLB codes, then the bare language (M2M100)."""
    exact = code.replace("-", "_")
    base = code.split("-")[0].lower()
    found = [exact, *(c for c in CODES.get(base, ()) if c), base]
    return list(dict.fromkeys(found))


def _language_ids(tokenizer: Any) -> dict[str, int]:
    """The tokenizer's language codes -> token ids: its ``lang_code_to_id`` (mBART-50,
    M2M100), else its special tokens that look like codes (NLLB's ``eng_Latn``)."""
    mapping = getattr(tokenizer, "lang_code_to_id", None)
    if isinstance(mapping, Mapping) and mapping:
        return {str(k): int(v) for k, v in mapping.items()}
    vocab = tokenizer.get_vocab()
    specials = getattr(tokenizer, "all_special_tokens", None) or list(vocab)
    return {t: vocab[t] for t in specials if t in vocab and "_" in t.strip("_")}


def _pick(key: str, code: str, known: Mapping[str, int]) -> str:
    for candidate in candidates(code):
        if candidate in known:
            return candidate
    shown = ", ".join(sorted(known)[:_SHOWN]) + (", ..." if len(known) > _SHOWN else "")
    raise InvalidOption(
        f"{key} '{code}': the base model's tokenizer has no language code for it (tried "
        f"{', '.join(candidates(code))}); give one of its own codes, e.g. {shown}.",
        option=key,
        value=code,
    )


def resolve(tokenizer: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """For a multilingual tokenizer (one with ``src_lang``) and the translation's
    ``source_lang``/``target_lang``: the tokenizer's codes and the target's token id
    (``META_KEYS``), set on ``tokenizer`` too, so that encoding marks the languages.
    {} for other tokenizers or without both options; InvalidOption for a language the
    tokenizer does not know."""
    source, target = options.get("source_lang"), options.get("target_lang")
    if source is None or target is None or not hasattr(tokenizer, "src_lang"):
        return {}
    known = _language_ids(tokenizer)
    src = _pick("source_lang", str(source), known)
    tgt = _pick("target_lang", str(target), known)
    tokenizer.src_lang = src
    tokenizer.tgt_lang = tgt
    return {"tokenizer_src_lang": src, "tokenizer_tgt_lang": tgt, "forced_bos_token_id": known[tgt]}
