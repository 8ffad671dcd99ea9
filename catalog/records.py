"""Plain dataclasses the catalog hands out; no ORM object ever leaves ``catalog/``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

# Parameter names whose values are secrets: stored, used to connect, never shown back.
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_key", "private_key"})
MASK = "******"

# Predictor lifecycle: generating -> training -> complete | error. Predict-only predictors
# are complete at once.
PREDICTOR_STATUSES = ("generating", "training", "complete", "error")
# A version (one training run of a built-in model) goes the same way.
VERSION_STATUSES = ("generating", "training", "complete", "error")
JOB_STATUSES = ("running", "complete", "error")
# An external model is an endpoint the user runs; a built-in one the gateway hosts itself.
MODEL_KINDS = ("external", "builtin")

# Projects are the namespaces of models (``proj.m``). ``mindsdb`` always exists and cannot be
# dropped; ``model`` and ``models`` are other names of it (as in MindsDB's SQL).
DEFAULT_PROJECT = "mindsdb"
PROJECT_ALIASES = ("model", "models")


def project_key(name: str | None) -> str:
    """The stored name of project ``name``: lower-case, the aliases (and no name) resolved
    to ``mindsdb``."""
    key = (name or "").strip().lower()
    return DEFAULT_PROJECT if not key or key in PROJECT_ALIASES else key


def name_key(name: str) -> str:
    """The stored name of a datasource or model: names are case-insensitive, so they are
    stored and looked up lower-case."""
    return name.strip().lower()


@dataclass(frozen=True)
class DatasourceRecord:
    name: str
    engine: str
    # Kept out of the repr: a record from get_datasource holds decrypted secrets, and a repr
    # ends up in logs and test reports.
    parameters: dict[str, Any] = field(repr=False)
    created_at: datetime

    def public_parameters(self) -> dict[str, Any]:
        """Parameters with every secret value masked, fit to show a user."""
        return {k: (MASK if k.lower() in SECRET_KEYS else v) for k, v in self.parameters.items()}


@dataclass(frozen=True)
class PredictorSpec:
    """What a user declares about a model (CREATE PREDICTOR / POST /api/predictors).

    An ``external`` model is an HTTP endpoint the user runs; a ``builtin`` one is hosted by
    the gateway on Ray Serve for its ``task`` and has no ``url_predict`` until deployed.
    """

    name: str
    namespace: str = "mindsdb"
    kind: str = "external"  # one of MODEL_KINDS
    format: str = "ray_serve"  # adapter (wire format) name: "ray_serve" | "mlflow"
    url_predict: str | None = None  # None for a built-in model not deployed yet
    url_train: str | None = None
    dtype_dict: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    training_datasource: str | None = None
    training_query: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # other USING options, verbatim
    task: str | None = None  # built-in models: the task (e.g. text_classification)


@dataclass(frozen=True, kw_only=True)
class PredictorRecord(PredictorSpec):
    """A stored predictor: its spec plus the state the gateway keeps."""

    status: str  # one of PREDICTOR_STATUSES
    error: str | None = None
    version: int | None = None  # active version of a built-in model
    deployment: str | None = None  # Serve deployment hosting a built-in model
    created_at: datetime
    updated_at: datetime

    @property
    def spec(self) -> PredictorSpec:
        """The declared part of this record, as a plain ``PredictorSpec``."""
        return PredictorSpec(**{f.name: getattr(self, f.name) for f in fields(PredictorSpec)})


@dataclass(frozen=True)
class ProjectRecord:
    """A project: a namespace for models (``CREATE PROJECT p``; ``p.m`` names model m)."""

    name: str
    created_at: datetime


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
    owner: str | None = None  # the gateway running it (None: recorded before schema v5)
    heartbeat_at: datetime | None = None  # its owner's last heartbeat (None: none yet)


@dataclass(frozen=True)
class ModelVersionRecord:
    """One training run (version) of a built-in model."""

    predictor: str
    version: int
    status: str  # one of VERSION_STATUSES
    task: str
    job_id: int | None
    training_datasource: str | None
    training_query: str | None
    options: dict[str, Any]  # USING options as given (model_name, hyperparams, test_size, ...)
    progress: dict[str, Any]  # phase, percent, epoch, step, total_steps, message
    metrics: dict[str, Any]  # holdout metrics (scalars and JSON reports)
    hyperparams: dict[str, Any]  # effective hyperparams once known
    run_id: str | None  # MLflow run
    model_uri: str | None  # MLflow model URI
    tracking_uri: str | None
    deployment: str | None  # Ray Serve application name
    url_predict: str | None  # its predict URL once deployed
    error: str | None
    active: bool  # computed: the predictor's active version is this one
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class QueryRecord:
    """The stored progress of one streaming statement (``gateway.progress.QueryProgress``)."""

    id: str
    statement: str
    kind: str  # "join" | "write"
    status: str  # "running" | "done" | "error" | "cancelled"
    rows_done: int
    rows_total: int | None
    error: str | None
    owner: str | None  # the gateway running it
    started_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True)
class SessionRecord:
    """A stored HTTP session: its defaults (``USE``) and user variables (``SET @v``)."""

    id: str
    datasource: str | None
    project: str | None
    variables: dict[str, Any]
    updated_at: datetime


# Roles of API tokens, least to most: each may do what the ones before it may.
ROLES = ("reader", "writer", "admin")


@dataclass
class TokenRecord:
    """An API token as listed: never its secret (only a prefix to recognise it by)."""

    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None
