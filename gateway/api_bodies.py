"""The request bodies of the HTTP API (``gateway.server``), as pydantic models.

``PredictorSpec`` is derived from ``catalog.records.PredictorSpec``, so the JSON body of
``POST /api/predictors`` cannot drift from what the catalog stores.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any, Literal, get_type_hints

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model, model_validator

from catalog.records import PredictorSpec as CatalogSpec
from catalog.records import TokenRecord


class SqlRequest(BaseModel):
    """``POST /api/sql``: one statement or a script of several (the last one answers)."""

    query: str = Field(description="SQL statement(s)", examples=["SHOW MODELS"])
    query_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        description="names the statement's progress entry (GET /api/queries/{query_id}) "
        "so a client can poll it while the answer streams",
    )
    format: Literal["json", "ndjson"] = Field(
        default="json",
        description="json: one document {columns, rows}; ndjson: a columns line, one line "
        "per batch of rows, then a done (or error) line",
    )


class PredictorURLs(BaseModel):
    """The nested form ``"url": {"predict": ..., "train": ...}`` (as in ``url.predict=``)."""

    model_config = ConfigDict(extra="forbid")

    predict: str | None = None
    train: str | None = None


# OpenAPI help for the fields of ``catalog.records.PredictorSpec``; the fields themselves (names,
# types) come from that dataclass, so the JSON body cannot drift from what the catalog stores.
_SPEC_HELP: dict[str, dict[str, Any]] = {
    "name": {"examples": ["byom"]},
    "format": {"description": "ray_serve (alias ray_server) or mlflow", "examples": ["mlflow"]},
    "url_predict": {"examples": ["http://127.0.0.1:5000/invocations"]},
    "dtype_dict": {
        "description": "column -> dtype (integer, float, categorical, binary, text, date, ...)",
        "validation_alias": AliasChoices("dtype_dict", "data_dtype"),
    },
    "target": {"description": "the predicted column"},
    "training_datasource": {
        "description": "where training rows come from",
        "validation_alias": AliasChoices("training_datasource", "datasource"),
    },
    "training_query": {
        "description": "SELECT giving the training rows",
        "validation_alias": AliasChoices("training_query", "query"),
    },
    "options": {"description": "other USING options"},
    "task": {"description": "a built-in model's task (not available yet)"},
}
# Set by the gateway, not by the request.
_SPEC_SERVER_SIDE = ("kind",)
_SPEC_REQUIRED = ("name", "format")


def _spec_fields() -> dict[str, Any]:
    """pydantic field definitions for the fields of ``catalog.records.PredictorSpec``."""
    hints = get_type_hints(CatalogSpec)
    defined: dict[str, Any] = {}
    for spec_field in dataclass_fields(CatalogSpec):
        name = spec_field.name
        if name in _SPEC_SERVER_SIDE:
            continue
        required = name in _SPEC_REQUIRED
        kind = hints[name] if required else hints[name] | None
        help_ = _SPEC_HELP.get(name, {})
        info = Field(... if required else None, min_length=1 if name == "name" else None, **help_)
        defined[name] = (kind, info)
    return defined


_SpecFields: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "_SpecFields",
    # Unknown keys are rejected: a misspelt "dtypes" silently ignored would surface much
    # later as a confusing prediction error.
    __config__=ConfigDict(extra="forbid", populate_by_name=True),
    **_spec_fields(),
)


class PredictorSpec(_SpecFields):
    """The JSON twin of ``CREATE PREDICTOR ... USING url.predict=..., format=...``: the
    fields of ``catalog.records.PredictorSpec`` (``datasource``/``query``/``data_dtype`` are
    accepted for ``training_datasource``/``training_query``/``dtype_dict``), plus ``url``."""

    url: PredictorURLs | None = Field(default=None, description="alternative to url_predict/train")

    @model_validator(mode="after")
    def _merge_urls(self) -> PredictorSpec:
        if self.url is None:
            return self
        for kind in ("predict", "train"):
            nested = getattr(self.url, kind)
            flat = getattr(self, f"url_{kind}")
            if nested is not None and flat is not None and nested != flat:
                raise ValueError(f"url_{kind} and url.{kind} disagree; give the URL once")
            if nested is not None:
                setattr(self, f"url_{kind}", nested)
        return self

    def to_spec(self) -> dict[str, Any]:
        """The dict ``Gateway.register_predictor`` takes (``url`` folded into url_*; fields
        not given left out, so the gateway's defaults apply)."""
        return self.model_dump(exclude={"url"}, exclude_none=True)


class PredictRequest(BaseModel):
    """``POST /api/predictors/{name}/predict``: ``{"rows": [...]}`` or a bare list of rows."""

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Any]] = Field(examples=[[{"initial_price": 3000, "rental_price": 3000}]])

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_list(cls, data: Any) -> Any:
        return {"rows": data} if isinstance(data, list) else data


class TokenSpec(BaseModel):
    """``POST /api/tokens``: ``{"name": ..., "role": "reader" | "writer" | "admin"}``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, examples=["ci-reader"])
    role: Literal["reader", "writer", "admin"] = "reader"


def token_dict(token: TokenRecord) -> dict[str, Any]:
    """A token as the API lists it: never its secret."""
    stamp = {k: getattr(token, k) for k in ("created_at", "last_used_at", "revoked_at")}
    return {
        "name": token.name,
        "role": token.role,
        "prefix": token.prefix,
        "active": token.active,
        **{k: v.isoformat() if v else None for k, v in stamp.items()},
    }
