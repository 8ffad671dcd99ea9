"""The gateway's global knobs: one ``Settings`` object, read once, passed down explicitly.

Each knob has an environment variable and a ``byom serve`` flag (the flag wins). Values are
checked when they are read, so a typo fails at start-up with a message that names the
variable (or the flag), never later in the middle of a JOIN. A statement can still override
the JOIN knobs for itself with ``USING batch_size=..., concurrency=..., timeout=...``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.http import HttpSettings
from byom.errors import InvalidOption


@dataclass(frozen=True)
class Knob:
    """One setting: its field, environment variable, ``byom serve`` flag and type."""

    field: str
    env: str
    flag: str
    kind: type  # int or float
    zero_ok: bool  # 0 is allowed (else the value must be positive)
    help: str

    def parse(self, raw: Any, source: str) -> int | float:
        """``raw`` (a string from the environment, or a flag's value) as a checked number."""
        what = "an integer" if self.kind is int else "a number"
        bound = "0 or more" if self.zero_ok else "positive"
        try:
            value = self.kind(raw)
        except (TypeError, ValueError):
            raise InvalidOption(
                f"{source} must be {what} ({bound}), got {raw!r}.", option=source, value=raw
            ) from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not self.zero_ok):
            raise InvalidOption(f"{source} must be {bound}, got {raw!r}.", option=source, value=raw)
        return value


KNOBS: tuple[Knob, ...] = (
    Knob("batch_size", "BYOM_BATCH_SIZE", "--batch-size", int, False,
         "rows per JOIN batch sent to a model (default 1000)"),
    Knob("concurrency", "BYOM_CONCURRENCY", "--concurrency", int, False,
         "JOIN batches in flight at once (default 4)"),
    Knob("batch_timeout", "BYOM_BATCH_TIMEOUT", "--batch-timeout", float, False,
         "seconds one JOIN batch may take, all models together (default: no limit)"),
    Knob("predict_timeout", "BYOM_PREDICT_TIMEOUT", "--predict-timeout", float, False,
         "seconds one predict HTTP call may take, retries included (default 60)"),
    Knob("connect_timeout", "BYOM_CONNECT_TIMEOUT", "--connect-timeout", float, False,
         "seconds to connect to a model endpoint (default 5)"),
    Knob("train_timeout", "BYOM_TRAIN_TIMEOUT", "--train-timeout", float, False,
         "seconds one train HTTP call may take (default 3600)"),
    Knob("predict_retries", "BYOM_PREDICT_RETRIES", "--predict-retries", int, True,
         "extra attempts of a failed predict call (default 2; train is never retried)"),
    Knob("max_response_bytes", "BYOM_MAX_RESPONSE_BYTES", "--max-response-bytes", int, False,
         "largest answer read from a model endpoint, in bytes (default 67108864: 64 MiB)"),
    Knob("breaker_failures", "BYOM_BREAKER_FAILURES", "--breaker-failures", int, True,
         "consecutive failed calls after which an endpoint's calls fail fast (default 5; "
         "0: never)"),
    Knob("breaker_cooldown", "BYOM_BREAKER_COOLDOWN", "--breaker-cooldown", float, False,
         "seconds an endpoint's calls fail fast before one probe call is let through "
         "(default 30)"),
    Knob("train_cpus", "BYOM_TRAIN_CPUS", "--train-cpus", float, False,
         "CPUs a built-in model's training task reserves on Ray (default 1)"),
    Knob("replica_cpus", "BYOM_REPLICA_CPUS", "--replica-cpus", float, False,
         "CPUs each Serve replica of a built-in model reserves (default 0.2)"),
    Knob("batch_wait_ms", "BYOM_BATCH_WAIT_MS", "--batch-wait-ms", float, True,
         "milliseconds a built-in model's Serve replica holds a request to batch it with "
         "later ones (default 0: requests that arrive while the model works are batched "
         "anyway; a lone request goes at once)"),
    Knob("serve_port", "BYOM_SERVE_PORT", "--serve-port", int, False,
         "port of Ray Serve's HTTP proxy when the gateway starts Serve (default 8000)"),
    Knob("heartbeat_interval", "BYOM_HEARTBEAT_INTERVAL", "--heartbeat-interval", float, False,
         "seconds between a gateway's heartbeats for the training jobs it owns (default 5)"),
    Knob("heartbeat_timeout", "BYOM_HEARTBEAT_TIMEOUT", "--heartbeat-timeout", float, False,
         "seconds without a heartbeat after which a job's owner counts as lost (default 30)"),
    Knob("ray_join_rows", "BYOM_RAY_JOIN_ROWS", "--ray-join-rows", int, True,
         "on a Ray cluster, JOINs over more source rows run on Ray Data (default 1000000; "
         "0: only with USING engine='ray')"),
    Knob("ray_join_workers", "BYOM_RAY_JOIN_WORKERS", "--ray-join-workers", int, False,
         "Ray workers calling the models in an engine='ray' JOIN (default 4)"),
    Knob("max_body_bytes", "BYOM_MAX_BODY_BYTES", "--max-body-bytes", int, False,
         "largest HTTP request body accepted, in bytes (default 16777216: 16 MiB)"),
    Knob("max_statement_bytes", "BYOM_MAX_STATEMENT_BYTES", "--max-statement-bytes", int, False,
         "largest SQL text of one statement, in bytes (default 1048576: 1 MiB)"),
    Knob("max_statements", "BYOM_MAX_STATEMENTS", "--max-statements", int, False,
         "most statements in one script (default 10000)"),
    Knob("statement_timeout", "BYOM_STATEMENT_TIMEOUT", "--statement-timeout", float, True,
         "seconds one statement may run, a JOIN's rows included (default 3600; 0: no limit; "
         "USING statement_timeout=N sets a statement's own)"),
    Knob("max_statement_timeout", "BYOM_MAX_STATEMENT_TIMEOUT", "--max-statement-timeout",
         float, True,
         "most seconds a statement may ask for with USING statement_timeout (default 0: no "
         "cap; over it the statement is refused)"),
    Knob("max_in_flight", "BYOM_MAX_IN_FLIGHT", "--max-in-flight", int, False,
         "statements running at once over HTTP; more are answered 503 (default 64)"),
    Knob("max_in_flight_per_client", "BYOM_MAX_IN_FLIGHT_PER_CLIENT",
         "--max-in-flight-per-client", int, False,
         "statements one client (token, else address) runs at once; more are answered 429 "
         "(default 16)"),
)  # fmt: skip

#: The MySQL protocol's port (gateway.mysql_server): off unless given, so not one of KNOBS.
MYSQL_PORT = Knob("mysql_port", "BYOM_MYSQL_PORT", "--mysql-port", int, False,
                  "also serve the MySQL protocol on this port (default: off)")  # fmt: skip

#: Knobs that are JSON objects of Ray resources (``{"trainer": 1}``): environment only.
RESOURCE_KNOBS = {"train_resources": "BYOM_TRAIN_RESOURCES",
                  "replica_resources": "BYOM_REPLICA_RESOURCES"}  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Global defaults of the gateway (see ``KNOBS`` for their variables and flags)."""

    batch_size: int = 1000
    concurrency: int = 4
    batch_timeout: float | None = None  # None: only the per-call HTTP timeouts apply
    predict_timeout: float = 60.0
    connect_timeout: float = 5.0
    train_timeout: float = 3600.0
    predict_retries: int = 2
    train_cpus: float = 1.0
    replica_cpus: float = 0.2
    serve_port: int = 8000
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 30.0
    ray_join_rows: int = 1_000_000
    ray_join_workers: int = 4
    # Calls to model endpoints (adapters.http): answer cap, circuit breakers.
    max_response_bytes: int = 64 * 1024 * 1024
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    # Limits of the statement path and the HTTP server (gateway.limits).
    max_body_bytes: int = 16 * 1024 * 1024
    max_statement_bytes: int = 1024 * 1024
    max_statements: int = 10_000
    statement_timeout: float = 3600.0  # 0: no limit
    max_in_flight: int = 64
    max_in_flight_per_client: int = 16
    batch_wait_ms: float = 0.0  # built-in models' Serve replicas (see KNOBS)
    max_statement_timeout: float = 0.0  # 0: no cap on USING statement_timeout
    #: Custom Ray resources each built-in training task / model replica asks for, on top
    #: of its CPUs ($BYOM_TRAIN_RESOURCES / $BYOM_REPLICA_RESOURCES, JSON objects): how a
    #: cluster pins training to the nodes that declare them (``ray start --resources``).
    train_resources: Mapping[str, float] = field(default_factory=dict)
    replica_resources: Mapping[str, float] = field(default_factory=dict)
    #: MLflow tracking URI of built-in models' runs ($BYOM_TRACKING_URI; None: a SQLite
    #: store under $BYOM_HOME).
    tracking_uri: str | None = None
    #: Where new MLflow experiments keep the models ($BYOM_ARTIFACT_ROOT: ``s3://...``, or a
    #: path every Ray node mounts; None: next to a SQLite store, else the tracking server's).
    artifact_root: str | None = None
    #: Port of the MySQL protocol ($BYOM_MYSQL_PORT, ``byom serve --mysql-port``; None: off).
    #: Not in ``KNOBS``: it has no default to override, and ``byom serve --ray`` has none.
    mysql_port: int | None = None

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, flags: argparse.Namespace | None = None
    ) -> Settings:
        """Defaults, overridden by the environment, overridden by ``byom serve`` flags.

        Raises ``InvalidOption`` naming the variable or flag of the first bad value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for knob in KNOBS:
            if env.get(knob.env, "").strip():
                values[knob.field] = knob.parse(env[knob.env].strip(), knob.env)
            flag_value = getattr(flags, knob.field, None) if flags is not None else None
            if flag_value is not None:
                values[knob.field] = knob.parse(flag_value, knob.flag)
        for name, variable in RESOURCE_KNOBS.items():
            if env.get(variable, "").strip():
                values[name] = parse_resources(env[variable], variable)
        if env.get("BYOM_TRACKING_URI", "").strip():
            values["tracking_uri"] = env["BYOM_TRACKING_URI"].strip()
        if env.get("BYOM_ARTIFACT_ROOT", "").strip():
            values["artifact_root"] = env["BYOM_ARTIFACT_ROOT"].strip()
        mysql_port = getattr(flags, "mysql_port", None) if flags is not None else None
        if mysql_port is not None:
            values["mysql_port"] = MYSQL_PORT.parse(mysql_port, MYSQL_PORT.flag)
        elif env.get(MYSQL_PORT.env, "").strip():
            values["mysql_port"] = MYSQL_PORT.parse(env[MYSQL_PORT.env].strip(), MYSQL_PORT.env)
        return cls(**values)

    def http(self) -> HttpSettings:
        """The adapters' share of the settings."""
        return HttpSettings(
            connect_timeout=self.connect_timeout,
            read_timeout=self.predict_timeout,
            train_timeout=self.train_timeout,
            retries=self.predict_retries,
            max_response_bytes=self.max_response_bytes,
            breaker_failures=self.breaker_failures,
            breaker_cooldown=self.breaker_cooldown,
        )


def parse_resources(raw: str, source: str) -> dict[str, float]:
    """A JSON object of Ray resource names to positive amounts, checked."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidOption(
            f"{source} must be a JSON object such as '{{\"trainer\": 1}}', got {raw!r}: {exc}.",
            option=source,
            value=raw,
        ) from None
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and v > 0
        for k, v in value.items()
    )
    if not ok:
        raise InvalidOption(
            f"{source} must map resource names to positive numbers, got {raw!r}.",
            option=source,
            value=raw,
        )
    if "CPU" in value:
        raise InvalidOption(
            f"{source} names CPU; CPUs have knobs of their own (BYOM_TRAIN_CPUS, "
            "BYOM_REPLICA_CPUS).",
            option=source,
            value=raw,
        )
    return {k: float(v) for k, v in value.items()}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per knob to ``parser`` (``byom serve``); unset flags stay None."""
    group = parser.add_argument_group("tuning (each flag overrides its environment variable)")
    for knob in KNOBS:
        # Parsed as text here and checked by Knob.parse, so both sources give one message.
        group.add_argument(
            knob.flag, dest=knob.field, default=None, metavar="N", help=f"{knob.help}; ${knob.env}"
        )
