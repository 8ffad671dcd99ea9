"""The ``USING`` options of a translation model, checked when ``CREATE MODEL`` runs.

Light on purpose (the gateway imports it at start-up through ``tasks.py``): no pandas or
torch.

* ``source_lang`` / ``target_lang`` (both required): language codes, ISO 639-1 or 639-3
  (``en``, ``fr``, ``deu``), optionally with a script or region (``pt-BR``, ``zh_Hans``);
  stored lower-case, the region upper-case. An English language name (``'French'``) is an
  error that suggests its code. They must differ.

The codes name the languages in T5's task prefix (``translate English to French: ``) and are
logged with the model; other models learn the direction from the rows alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from byom.errors import InvalidOption

__all__ = ["LANGUAGES", "OPTIONS", "check", "language_name"]

OPTIONS = ("source_lang", "target_lang")
#: Names of common codes, for T5's prefix and for hints (any well-formed code is accepted).
LANGUAGES: dict[str, str] = {
    "ar": "Arabic",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "hi": "Hindi",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "zh": "Chinese",
}
_CODE = re.compile(r"^([A-Za-z]{2,3})((?:[-_][A-Za-z0-9]{2,8})*)$")
_EXAMPLE = "USING source_lang = 'en', target_lang = 'fr'"


def language_name(code: str) -> str:
    """The English name of ``code``'s language (``fr-CA`` -> French), else the code."""
    return LANGUAGES.get(re.split(r"[-_]", code)[0].lower(), code)


def _code(key: str, value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidOption(f"translation needs {key}: {_EXAMPLE}.", option=key)
    text = str(value).strip() if isinstance(value, str) else None
    match = _CODE.match(text) if text is not None else None
    if match is None:
        by_name = {name.lower(): code for code, name in LANGUAGES.items()}
        hint = by_name.get(str(value).strip().lower())
        raise InvalidOption(
            f"{key} must be a language code such as 'en', 'fr' or 'pt-BR', got {value!r}."
            + (f" Did you mean '{hint}'?" if hint else ""),
            option=key,
            value=str(value),
            suggestion=hint,
        )
    language, rest = match.groups()
    parts = [language.lower()]
    for part in filter(None, re.split(r"[-_]", rest)):
        # BCP 47 casing: a 4-letter script is title case, a region upper case.
        parts.append(part.title() if len(part) == 4 else part.upper())
    return "-".join(parts)


def check(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options normalised; InvalidOption for a missing, malformed or identical code."""
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        raise InvalidOption(
            f"Unknown translation option '{unknown[0]}'; the options are {', '.join(OPTIONS)}.",
            option=unknown[0],
        )
    source = _code("source_lang", options.get("source_lang"))
    target = _code("target_lang", options.get("target_lang"))
    if source == target:
        raise InvalidOption(
            f"source_lang and target_lang are both '{source}': translation needs two "
            "different languages.",
            option="target_lang",
        )
    return {"source_lang": source, "target_lang": target}
