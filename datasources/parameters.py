"""Engine names and the checks on each engine's ``PARAMETERS``.

``validate`` is the one gate: a ``Datasource`` is only ever built from parameters it
returned, with defaults filled in and file paths made absolute.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from byom.errors import InvalidOption, did_you_mean

# Schema names become SQL identifiers (ATTACH ... AS <schema>): plain ones only.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SQLITE_RESERVED_SCHEMAS = frozenset({"main", "temp"})
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class EngineSpec:
    """What an engine's PARAMETERS may hold: required names and optional ones with defaults."""

    dialect: str  # sqlglot's dialect name
    required: tuple[str, ...]
    optional: Mapping[str, Any]

    def expected(self) -> str:
        parts = [", ".join(self.required) + " (required)"] if self.required else []
        if self.optional:
            parts.append(", ".join(self.optional) + " (optional)")
        return "; ".join(parts)


ENGINES: dict[str, EngineSpec] = {
    "sqlite": EngineSpec(
        "sqlite", ("path",), {"attach": None, "attach_dir": None, "read_only": False}
    ),
    "postgres": EngineSpec(
        "postgres",
        ("host", "user", "database"),
        {
            "port": 5432,
            "password": None,
            "schema": None,
            "sslmode": None,
            "connect_timeout": 10,
            "read_only": False,
        },
    ),
}
ENGINE_ALIASES = {"postgresql": "postgres", "sqlite3": "sqlite"}


def _engine_name(engine: str) -> str:
    key = str(engine).strip().lower()
    key = ENGINE_ALIASES.get(key, key)
    if key not in ENGINES:
        names = [*ENGINES, *ENGINE_ALIASES]
        suggestion = did_you_mean(key, names)
        hint = f" Did you mean {ENGINE_ALIASES.get(suggestion, suggestion)}?" if suggestion else ""
        raise InvalidOption(
            f"Unknown datasource engine '{engine}'.{hint} Supported engines: {', '.join(ENGINES)}.",
            suggestion=suggestion,
        )
    return key


def _require_str(engine: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidOption(f"Parameter '{key}' of engine '{engine}' must be a non-empty string.")
    return value


def _require_int(engine: str, key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
        if isinstance(value, bool) or isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidOption(
            f"Parameter '{key}' of engine '{engine}' must be a whole number, got {value!r}."
        ) from None
    if not low <= number <= high:
        raise InvalidOption(
            f"Parameter '{key}' of engine '{engine}' must be between {low} and {high}."
        )
    return number


def _require_bool(engine: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise InvalidOption(
        f"Parameter '{key}' of engine '{engine}' must be true or false, got {value!r}."
    )


def schema_name(engine: str, name: Any) -> str:
    """``name`` lower-cased, once checked to be a usable schema name for ``engine``."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise InvalidOption(
            f"Schema name {name!r} of engine '{engine}' must be a plain identifier "
            "(letters, digits, underscore)."
        )
    if engine == "sqlite" and name.lower() in SQLITE_RESERVED_SCHEMAS:
        raise InvalidOption(f"Schema name '{name}' is reserved by SQLite; pick another.")
    return name.lower()


def _file_path(value: str) -> str:
    # Stored absolute so the datasource means the same file whatever the gateway's cwd.
    return os.path.abspath(os.path.expanduser(value))


def _validate_sqlite(params: dict[str, Any]) -> dict[str, Any]:
    path = _require_str("sqlite", "path", params["path"])
    if path.strip() == ":memory:" or path.startswith("file::memory:"):
        raise InvalidOption(
            "A sqlite datasource needs a file 'path': ':memory:' is not allowed, because "
            "every pooled connection would see its own empty database."
        )
    params["path"] = _file_path(path)
    attach = params["attach"]
    if attach is not None:
        if not isinstance(attach, Mapping):
            raise InvalidOption(
                "Parameter 'attach' of engine 'sqlite' must be an object {schema: path}."
            )
        params["attach"] = {
            schema_name("sqlite", schema): _file_path(_require_str("sqlite", "attach", p))
            for schema, p in attach.items()
        }
    if params["attach_dir"] is not None:
        params["attach_dir"] = _file_path(
            _require_str("sqlite", "attach_dir", params["attach_dir"])
        )
    return params


def _validate_postgres(params: dict[str, Any]) -> dict[str, Any]:
    for key in ("host", "user", "database"):
        _require_str("postgres", key, params[key])
    params["port"] = _require_int("postgres", "port", params["port"], 1, 65535)
    params["connect_timeout"] = _require_int(
        "postgres", "connect_timeout", params["connect_timeout"], 1, 3600
    )
    if params["password"] is not None and not isinstance(params["password"], str):
        params["password"] = str(params["password"])
    if params["schema"] is not None:
        # search_path takes any identifier, but plain ones keep quoting simple and obvious.
        params["schema"] = _require_str("postgres", "schema", params["schema"])
    if params["sslmode"] is not None and params["sslmode"] not in _SSLMODES:
        raise InvalidOption(
            f"Parameter 'sslmode' of engine 'postgres' must be one of {', '.join(_SSLMODES)}."
        )
    return params


def validate(engine: str, parameters: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check PARAMETERS for ``engine``; return the canonical engine name and the parameters
    with defaults filled in (and file paths made absolute)."""
    name = _engine_name(engine)
    spec = ENGINES[name]
    given = {str(k).strip().lower(): v for k, v in (parameters or {}).items()}
    known = (*spec.required, *spec.optional)
    for key in given:
        if key not in known:
            suggestion = did_you_mean(key, known)
            hint = f" Did you mean {suggestion}?" if suggestion else ""
            raise InvalidOption(
                f"Unknown parameter '{key}' for engine '{name}'.{hint} "
                f"Expected: {spec.expected()}.",
                suggestion=suggestion,
            )
    missing = [k for k in spec.required if given.get(k) is None]
    if missing:
        raise InvalidOption(
            f"Missing parameter {', '.join(repr(k) for k in missing)} for engine '{name}'. "
            f"Expected: {spec.expected()}."
        )
    params = {**spec.optional, **given}
    # Whether the gateway may write: an admin's choice at CREATE DATABASE (see guards).
    params["read_only"] = _require_bool(name, "read_only", params["read_only"])
    params = _validate_sqlite(params) if name == "sqlite" else _validate_postgres(params)
    return name, params
