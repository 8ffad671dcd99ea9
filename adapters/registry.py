"""Format name -> adapter class, as a plain dict; adding a format is one line here.

Catalog rows name the format; the executor asks ``AdapterRegistry.get(format)`` for the adapter.
Adapters are built by ``from_context(AdapterContext)`` - from what the gateway offers to
reach a model - rather than from one HTTP client, so an adapter that reaches its model
another way (a Ray Serve handle for a model the gateway deployed itself, say) takes what it
needs from the context (or a new field there), not a new seam.
``validate_options`` checks the predictor options the adapters read (``payload``) at CREATE
time, so a typo fails the statement rather than the first prediction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import Adapter, AdapterContext
from adapters.mlflow_serving import MlflowAdapter
from adapters.ray_serve import RayServeAdapter
from adapters.wire import PAYLOAD_OPTION, payload_option
from byom.errors import InvalidOption, did_you_mean

# Each value builds its adapter with ``from_context(AdapterContext)``.
FORMATS: dict[str, type[Adapter]] = {
    "ray_serve": RayServeAdapter,
    "mlflow": MlflowAdapter,
}

# MindsDB's documentation spells the format 'ray_server'; accept it as written there.
ALIASES: dict[str, str] = {
    "ray_server": "ray_serve",
}


def normalize_format(name: str) -> str:
    """The canonical format name for ``name`` (case-insensitive, aliases resolved).

    Raises InvalidOption, with a did-you-mean hint, for an unknown format.
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in FORMATS:
        return key
    known = ", ".join(sorted(FORMATS))
    suggestion = did_you_mean(key, [*FORMATS, *ALIASES])
    hint = f" Did you mean {ALIASES.get(suggestion, suggestion)}?" if suggestion else ""
    raise InvalidOption(
        f"Unknown format '{name}'.{hint} Known formats: {known}",
        option="format",
        value=name,
        suggestion=ALIASES.get(suggestion, suggestion) if suggestion else None,
    )


def validate_options(
    format: str, options: Mapping[str, Any], *, model: str | None = None
) -> dict[str, Any]:
    """``options`` with the adapter options of ``format`` checked and normalised.

    Today that is ``payload`` (lower-cased; InvalidOption with a did-you-mean hint for a
    value the format does not support). Other keys are returned unchanged; the planner may
    store the result as the predictor's options.
    """
    key = normalize_format(format)
    checked = dict(options)
    if PAYLOAD_OPTION in checked:
        allowed = FORMATS[key].payloads
        checked[PAYLOAD_OPTION] = payload_option(checked, format=key, allowed=allowed, model=model)
    return checked


class AdapterRegistry:
    """One adapter instance per format, each built once from the same ``AdapterContext``."""

    def __init__(self, context: AdapterContext) -> None:
        self.context = context
        self._adapters: dict[str, Adapter] = {}

    def get(self, format: str) -> Adapter:
        """The adapter for ``format`` (any spelling ``normalize_format`` accepts)."""
        key = normalize_format(format)
        adapter = self._adapters.get(key)
        if adapter is None:
            adapter = FORMATS[key].from_context(self.context)
            self._adapters[key] = adapter
        return adapter

    @property
    def formats(self) -> list[str]:
        """Canonical format names, sorted."""
        return sorted(FORMATS)
