"""Plain dataclasses the catalog hands out; no ORM object ever leaves ``catalog/``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Parameter names whose values are secrets: stored, used to connect, never shown back.
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_key", "private_key"})
MASK = "******"

# Predictor lifecycle: generating -> training -> complete | error. Predict-only predictors
# are complete at once.
PREDICTOR_STATUSES = ("generating", "training", "complete", "error")
JOB_STATUSES = ("running", "complete", "error")


@dataclass(frozen=True)
class DatasourceRecord:
    name: str
    engine: str
    parameters: dict[str, Any]
    created_at: datetime

    def public_parameters(self) -> dict[str, Any]:
        """Parameters with every secret value masked, fit to show a user."""
        return {k: (MASK if k.lower() in SECRET_KEYS else v) for k, v in self.parameters.items()}


@dataclass(frozen=True)
class PredictorRecord:
    name: str
    namespace: str
    format: str  # adapter name: "ray_serve" | "mlflow"
    url_predict: str
    url_train: str | None
    dtype_dict: dict[str, str]
    target: str | None
    training_datasource: str | None
    training_query: str | None
    options: dict[str, Any]  # other USING options, kept verbatim
    status: str
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TrainingJobRecord:
    id: int
    predictor: str
    status: str
    error: str | None
    rows: int | None
    started_at: datetime
    finished_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
