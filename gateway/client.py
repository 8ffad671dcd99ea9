"""A small synchronous Python client for a running gateway (``byom serve``).

    with Client("http://127.0.0.1:47334") as client:
        print(client.sql("SHOW MODELS").records())

Error answers come back as the same ``GatewayError`` subclass the server raised (chosen by
the stable ``code``), so ``except ModelNotFound`` works the same embedded or remote.
"""

from __future__ import annotations

import inspect
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from gateway.errors import GatewayError
from gateway.formatting import dumps_json
from gateway.result import Result

DEFAULT_URL = "http://127.0.0.1:47334"


def error_classes() -> dict[str, type[GatewayError]]:
    """``code -> class`` for every GatewayError subclass currently defined.

    Walked parent-first, so a subclass that does not set its own code maps to its parent.
    """
    classes: dict[str, type[GatewayError]] = {}
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        cls = pending.pop(0)
        classes.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return classes


def error_from_body(body: Any, status: int) -> GatewayError | None:
    """The exception an error body ``{"error": {"code", "message", ...}}`` stands for."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or "code" not in error or "message" not in error:
        return None
    code, message = str(error["code"]), str(error["message"])
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    cls = error_classes().get(code, GatewayError)
    # Subclass __init__s may re-format the message (ParseError appends line and col), and
    # the server already did that: build the instance with the base __init__ instead, then
    # fill the attributes a subclass __init__ would have set from its keyword arguments.
    exc = cls.__new__(cls)
    GatewayError.__init__(exc, message, code=code, **details)
    exc.status = status
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if param.kind is inspect.Parameter.KEYWORD_ONLY and name != "code":
            default = None if param.default is inspect.Parameter.empty else param.default
            setattr(exc, name, details.get(name, default))
    return exc


class Client:
    """Talks to the gateway's HTTP API; every method raises ``GatewayError`` on failure."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers={"Accept": "application/json"}
        )

    # -- plumbing ---------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        content = None if body is None else dumps_json(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise GatewayError(
                f"cannot reach the gateway at {self.url}; start it with `byom serve`",
                code="GATEWAY_UNREACHABLE",
                url=self.url,
            ) from exc
        except httpx.TimeoutException as exc:
            raise GatewayError(
                f"the gateway at {self.url} did not answer within {self.timeout:g} s",
                code="GATEWAY_TIMEOUT",
                url=self.url,
            ) from exc
        except httpx.TransportError as exc:
            raise GatewayError(
                f"lost the connection to the gateway at {self.url}: {exc}",
                code="GATEWAY_UNREACHABLE",
                url=self.url,
            ) from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_error:
            error = error_from_body(payload, response.status_code)
            if error is not None:
                raise error
        if payload is None or response.is_error:
            # Not the gateway's own answer: a proxy page, or another server on that port.
            raise GatewayError(
                f"unexpected answer from {self.url}{path}: HTTP {response.status_code} "
                f"{response.text[:200]!r}",
                code=f"HTTP_{response.status_code}",
                url=self.url,
            )
        return payload

    @staticmethod
    def _result(payload: dict[str, Any]) -> Result:
        return Result(
            columns=list(payload["columns"]),
            rows=[list(row) for row in payload["rows"]],
            message=payload.get("message"),
        )

    @staticmethod
    def _name(name: str) -> str:
        return quote(name, safe="")

    # -- API --------------------------------------------------------------------------

    def sql(self, query: str) -> Result:
        """Run SQL on the gateway; the last statement's result."""
        return self._result(self._request("POST", "/api/sql", {"query": query}))

    def register_predictor(self, **spec: Any) -> dict[str, Any]:
        """Register an external model (name, format, url_predict, dtype_dict, ...)."""
        return self._request("POST", "/api/predictors", spec)

    def list_predictors(self) -> list[dict[str, Any]]:
        """Every predictor as a dict."""
        return self._request("GET", "/api/predictors")

    def get_predictor(self, name: str) -> dict[str, Any]:
        """One predictor's row (status, error, ...) as a dict."""
        return self._request("GET", f"/api/predictors/{self._name(name)}")

    def drop_predictor(self, name: str) -> dict[str, Any]:
        """Drop a predictor; ``{"dropped": name}``."""
        return self._request("DELETE", f"/api/predictors/{self._name(name)}")

    def predict(self, name: str, rows: list[dict[str, Any]]) -> Result:
        """Predict ``rows`` with a model: input columns plus the prediction per row."""
        path = f"/api/predictors/{self._name(name)}/predict"
        return self._result(self._request("POST", path, {"rows": rows}))

    def health(self) -> dict[str, Any]:
        """The gateway's ``/healthz`` answer (raises when it is not ok)."""
        return self._request("GET", "/healthz")

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
