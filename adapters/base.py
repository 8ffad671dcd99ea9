"""The contract every wire-format adapter implements.

Batches are lists in, same-length lists out: ``predict`` gets ``len(rows)`` rows and must
return exactly ``len(rows)`` predictions, or raise. Adapters raise only ``EndpointError``
subclasses (from ``byom.errors``) for endpoint trouble and ``InvalidInput`` for rows that
cannot be sent; messages always name the model and the URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from adapters.breaker import Breakers

if TYPE_CHECKING:
    import httpx

    from adapters.http import HttpSettings


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one model; built by the executor from a catalog record."""

    model: str  # predictor name, for error messages
    url_predict: str
    url_train: str | None = None
    target: str | None = None
    dtype_dict: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    #: Per-query model parameters (``SELECT ... USING topk = 10``), sent with each batch.
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Predictions:
    """One batch's answer: ``values[i]`` is the prediction for input row ``i``.

    ``extra`` holds further per-row outputs the endpoint returned (e.g. ``confidence``),
    each a list of the same length as ``values``.
    """

    values: list[Any]
    extra: dict[str, list[Any]] = field(default_factory=dict)
    #: One-to-many answers (a recommender's top-k per user): the input row each output row
    #: belongs to, ascending; None when ``values[i]`` answers input row ``i``.
    rows: list[int] | None = None

    def expanded(self, rows: list[int]) -> Predictions:
        """This one-to-one answer repeated for the input rows ``rows`` (in that order)."""
        return Predictions(
            values=[self.values[i] for i in rows],
            extra={k: [v[i] for i in rows] for k, v in self.extra.items()},
        )

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class AdapterContext:
    """What the gateway offers adapters to reach their models: today the one shared, pooled
    HTTP client, its settings and the endpoints' circuit breakers (made from the settings
    when not given; ``Gateway.health`` and DESCRIBE read them). An adapter takes what it
    needs in ``from_context``."""

    http: httpx.AsyncClient
    settings: HttpSettings
    breakers: Breakers = field(default=None)  # type: ignore[assignment]  # set below

    def __post_init__(self) -> None:
        if self.breakers is None:
            breakers = Breakers(self.settings.breaker_failures, self.settings.breaker_cooldown)
            object.__setattr__(self, "breakers", breakers)


class Adapter(Protocol):
    """One wire format. Implementations live in ``adapters/<format>.py``."""

    name: str
    # Values of the ``payload`` predictor option this format can send (``json``, the default,
    # first).
    payloads: tuple[str, ...]
    # Whether the format has a training call (``url.train``); mlflow scoring servers do not.
    trains: bool

    @classmethod
    def from_context(cls, context: AdapterContext) -> Adapter:
        """Build the adapter from what the gateway offers (``adapters.registry`` calls it)."""
        ...

    async def train(
        self, endpoint: Endpoint, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        """Send training rows; return the endpoint's JSON answer (checked for success)."""
        ...

    async def predict(
        self, endpoint: Endpoint, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Predictions:
        """Predict ``rows`` (tuples in ``columns`` order); exactly one value per row."""
        ...
