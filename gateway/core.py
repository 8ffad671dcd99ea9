"""The gateway as one object: owns the catalog, the HTTP client and the executor.

``Gateway.sql`` is the whole data path of a statement: ``parse`` (gateway.parser) ->
``plan`` (gateway.planner, names resolved once per statement) -> ``Executor.run``
(gateway.executor, the only part that talks to the catalog, datasources and adapters). The
HTTP server, the CLI (embedded mode) and the demo all go through this class and nothing else.

The methods that run SQL take a ``gateway.session.Session`` (what ``USE`` sets); without
one, each call is a session of its own, so ``USE`` holds for the rest of that script.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx

from adapters.base import AdapterContext
from adapters.http import make_client
from adapters.registry import AdapterRegistry
from byom.errors import Forbidden, GatewayError, InvalidOption, NotFound, UserError
from catalog.db import catalog_url as default_catalog_url
from catalog.db import default_home
from catalog.records import PredictorSpec, TokenRecord
from catalog.repository import Catalog
from catalog.secrets import SecretBox
from datasources import DatasourcePool, FilePolicy
from gateway import audit, auth, heatwave, postgresml
from gateway import statements as st
from gateway.audit import AuditLog
from gateway.deadlines import gateway_limit, run_within, statement_limit
from gateway.executor import Executor, Services
from gateway.executor.liveness import heartbeat, make_owner, recover
from gateway.parse_tokens import MAX_IDENTIFIER
from gateway.parser import ParseLimits, ScriptStatement
from gateway.planner import plan
from gateway.plans import Plan, Resolver
from gateway.progress import ProgressRegistry, QueryProgress
from gateway.result import Result, StreamResult
from gateway.scripts import INLINE_PARSE_CHARS, parse_off_loop, run_statements
from gateway.session import CatalogSessionStore, Session
from gateway.settings import Settings

log = logging.getLogger("byom.gateway")

# Fields of the JSON twin of CREATE PREDICTOR (POST /api/predictors): the PredictorSpec's
# own (but ``kind``, which the gateway decides), plus the short names of the FROM clause.
_JSON_ALIASES = {"datasource": "training_datasource", "query": "training_query"}
_SPEC_FIELDS = frozenset(f.name for f in fields(PredictorSpec)) - {"kind"} | set(_JSON_ALIASES)
# Spec fields that are USING options in SQL.
_USING_FIELDS = {"url_predict": "url.predict", "url_train": "url.train", "format": "format",
                 "dtype_dict": "dtype_dict", "task": "task"}  # fmt: skip


class Gateway:
    """A running gateway. Create with ``await Gateway.start(...)``; end with ``await close()``."""

    def __init__(
        self, executor: Executor, client: httpx.AsyncClient, owner: str | None = None
    ) -> None:
        self.executor = executor
        self._client = client
        self._started = time.time()
        self._restoring: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        # This gateway among the replicas sharing its catalog: recorded on the jobs it
        # starts and the statements it runs (gateway.executor.liveness).
        self.owner = owner or make_owner()
        # The HTTP server's sessions (X-Byom-Session), kept in the catalog.
        self.session_store = CatalogSessionStore(executor.services.catalog)
        # Bearer tokens of the HTTP API (gateway.auth) and the audit log of DDL statements.
        self.authenticator = auth.Authenticator(executor.services.catalog)
        self.audit = AuditLog(executor.services.home)

    @property
    def services(self) -> Services:
        """The catalog, datasources, adapters and settings this gateway runs on."""
        return self.executor.services

    @property
    def catalog(self) -> Catalog:
        return self.executor.services.catalog

    @property
    def parse_limits(self) -> ParseLimits:
        """How much SQL a script may hold ($BYOM_MAX_STATEMENT_BYTES, $BYOM_MAX_STATEMENTS)."""
        settings = self.services.settings
        return ParseLimits(settings.max_statement_bytes, settings.max_statements)

    @classmethod
    async def start(
        cls,
        home: Path | None = None,
        catalog_url: str | None = None,
        settings: Settings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        serving: bool = True,
    ) -> Gateway:
        """Open the catalog (``$BYOM_HOME``), mark the jobs of gateways that are gone as
        error, make the client, and start beating for this gateway's own jobs.

        ``settings`` defaults to ``Settings.load()`` (the environment, read once, here).
        ``transport`` replaces the network under the shared HTTP client (tests pass an
        ``httpx.MockTransport``). ``serving=False``: an admin command's gateway (``byom
        token``, ``byom status``), which only reads and writes the catalog - no recovery
        of other gateways' jobs, no heartbeat, built-in models not served again (no Ray).
        """
        settings = settings if settings is not None else Settings.load()
        home = Path(home) if home is not None else default_home()
        home.mkdir(parents=True, exist_ok=True)
        owner = make_owner()
        url = catalog_url or default_catalog_url(home)
        # Datasource secrets: $BYOM_SECRET_KEY, else this home's key file.
        catalog = await asyncio.to_thread(Catalog, url, owner, SecretBox(home))
        # Not every running job: other live replicas may share this catalog.
        interrupted: list[str] = []
        if serving:
            interrupted = await asyncio.to_thread(
                recover, catalog, owner, settings.heartbeat_timeout
            )
        if interrupted:
            log.warning("marked interrupted training as error: %s", ", ".join(interrupted))
        http = settings.http()
        client = make_client(http, transport=transport)
        services = Services(
            catalog=catalog,
            # SQLite files only under this home or $BYOM_DATA_DIRS, never the catalog's own.
            datasources=DatasourcePool(policy=FilePolicy.for_gateway(home, url)),
            adapters=AdapterRegistry(AdapterContext(http=client, settings=http)),
            home=home,
            settings=settings,
            progress=ProgressRegistry(store=catalog, owner=owner),
        )
        gateway = cls(Executor(services), client, owner)
        if not serving:
            return gateway
        gateway._heartbeat = asyncio.get_running_loop().create_task(
            heartbeat(
                catalog,
                owner,
                settings.heartbeat_interval,
                settings.heartbeat_timeout,
                on_cancel=gateway.executor.builtin.cancel,
            )  # fmt: skip
        )
        if any(p.kind == "builtin" and p.version for p in catalog.list_predictors()):
            # Serve the active versions of built-in models again (Ray starts: seconds), in
            # the background; a prediction meanwhile waits for its own model's deployment.
            gateway._restoring = asyncio.get_running_loop().create_task(
                gateway.executor.builtin.restore()
            )
        return gateway

    async def close(self) -> None:
        """Cancel background training, then close the client, the pools and the catalog."""
        if self._restoring is not None:
            self._restoring.cancel()
            await asyncio.gather(self._restoring, return_exceptions=True)
        await self.executor.trainer.close()
        await self.executor.builtin.close()
        if self._heartbeat is not None:  # after training ended: its jobs are finished
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        await self._client.aclose()
        self.services.datasources.close_all()
        await asyncio.to_thread(self.services.progress.close)
        self.catalog.close()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def sql(self, text: str, session: Session | None = None) -> Result:
        """Run a script of one or more statements; return the last statement's result."""
        result = await self.sql_stream(text, session=session)
        return await result.collect() if isinstance(result, StreamResult) else result

    async def sql_stream(
        self, text: str, query_id: str | None = None, session: Session | None = None
    ) -> Result | StreamResult:
        """Like ``sql``, but a JOIN's rows come as a ``StreamResult`` (flat memory).

        ``query_id`` names the progress entry of a streaming statement so a client can poll
        ``query_progress(query_id)`` while it runs. Earlier statements of a script run to
        their end (streamed rows read and dropped) before the next one starts; use
        ``run_script`` for the answer of each. ``session``: see ``run_script``.
        """
        script = await parse_off_loop(text, self.parse_limits)
        last: Result | StreamResult = Result()
        results = self.run_script(script, query_id=query_id, session=session)
        try:
            async for item, result in results:
                if item.index == len(script):
                    last = result  # the last stream is the caller's to read
                    break
        finally:
            await results.aclose()
        return last

    async def run_script(
        self,
        script: str | list[ScriptStatement],
        query_id: str | None = None,
        session: Session | None = None,
    ) -> AsyncIterator[tuple[ScriptStatement, Result | StreamResult]]:
        """Run the statements of a script in order, yielding each with its result.

        ``script`` is SQL text, parsed whole before anything runs (a syntax error in any
        statement runs none), or what ``gateway.parser.parse_script`` returned. One statement
        runs at a time: a ``StreamResult`` is the caller's to read to the end (or close)
        before asking for the next item, and what the caller left unread is read and dropped
        before the next statement starts. In a script of several statements every error,
        raised here or by a stream's batches, names the failing statement and the ones that
        took effect (``gateway.scripts``). ``query_id`` names the progress entry of each
        streaming statement in turn. ``session`` is what ``USE`` changes and the later
        statements see (and, given, the caller's to keep for its next call); without one the
        script is a session of its own.
        """
        items = script
        if isinstance(script, str):
            items = await parse_off_loop(script, self.parse_limits)
        execute = self.statement_runner(session if session is not None else Session(), query_id)
        async for item, result in run_statements(items, execute):
            yield item, result

    def statement_runner(
        self, session: Session, query_id: str | None = None
    ) -> Callable[[ScriptStatement], Awaitable[Result | StreamResult]]:
        """What runs one statement of a script of ``session`` (``run_script``'s step, for a
        caller that runs some statements itself with ``gateway.scripts.run_statements``)."""
        settings = self.services.settings

        def execute(item: ScriptStatement) -> Awaitable[Result | StreamResult]:
            # Each statement within its time limit (gateway.deadlines), its rows included.
            limit = statement_limit(
                item.statement, settings.statement_timeout, settings.max_statement_timeout
            )
            run = self._execute(item.statement, query_id=query_id, session=session)
            return run_within(run, limit)

        return execute

    async def _execute(
        self,
        statement: st.Statement,
        query_id: str | None = None,
        session: Session | None = None,
    ) -> Result | StreamResult:
        """One parsed statement of ``session``: its session variables read and a HeatWave
        or PostgresML form translated (``heatwave.resolve``, ``postgresml.translate``: in a
        thread, as pgml.tune asks the datasource for its relation's columns), plan it (each
        name looked up once, the session's defaults applied), then run the plan."""
        session = session if session is not None else Session()
        resolver = self.executor.resolver(session)
        statement = heatwave.resolve(statement, session, resolver)
        note = ""  # a PostgresML form's errors name the native statement it became
        if isinstance(statement, st.PostgresMLCall):
            statement, note = await asyncio.to_thread(postgresml.translate, statement, resolver)
        try:
            planned = await _plan(statement, resolver)
        except UserError as e:
            if note:
                e.amend(after=note)
            raise
        label = statement.sql if isinstance(statement, st.Query) else type(statement).__name__
        # Authorization and the audit log see the plan: whether SELECT ... reads a datasource
        # or writes back into one is only known once it is planned.
        event = audit.ddl_event(planned)
        principal = auth.current.get()
        try:
            auth.authorize(planned)
            result = await self.executor.run(
                planned, label=label, query_id=query_id, session=session
            )
        except Exception as exc:
            denied = isinstance(exc, Forbidden)
            if event is not None or denied:
                kind, obj = event or (type(planned).__name__, None)
                code = exc.code if isinstance(exc, GatewayError) else "INTERNAL_ERROR"
                outcome = "denied" if denied else "error"
                self._audit(kind, obj, outcome, principal, code)
            raise
        if event is not None:
            self._audit(*event, "ok", principal)
        return result

    def _audit(
        self,
        kind: str,
        obj: str | None,
        outcome: str,
        principal: auth.Principal | None,
        code: str | None = None,
    ) -> None:
        name = principal.name if principal is not None else None
        self.audit.record(kind, obj, outcome, token=name, code=code, client=auth.client.get())

    def create_token(self, name: str, role: str) -> tuple[TokenRecord, str]:
        """A new API token (admin only): its record and its secret, shown only now. The
        first token turns authentication on for every gateway on this catalog."""
        auth.require_admin("creating a token")
        try:
            record, secret = self.catalog.create_token(name, role)
        except GatewayError as exc:
            self._audit("CREATE TOKEN", name, "error", auth.current.get(), exc.code)
            raise
        self._audit("CREATE TOKEN", record.name, "ok", auth.current.get())
        return record, secret

    def list_tokens(self) -> list[TokenRecord]:
        """Every API token, revoked ones too (admin only); never their secrets."""
        auth.require_admin("listing tokens")
        return self.catalog.list_tokens()

    def revoke_token(self, name: str) -> TokenRecord:
        """Revoke an API token (admin only): it stops working within a second."""
        auth.require_admin("revoking a token")
        try:
            record = self.catalog.revoke_token(name)
        except GatewayError as exc:
            self._audit("REVOKE TOKEN", name, "error", auth.current.get(), exc.code)
            raise
        self._audit("REVOKE TOKEN", record.name, "ok", auth.current.get())
        return record

    def queries(self) -> list[QueryProgress]:
        """Running and recently finished streaming statements, oldest first."""
        return self.services.progress.list()

    def query_progress(self, query_id: str) -> QueryProgress:
        """One statement's progress, or ``NotFound`` (code QUERY_NOT_FOUND)."""
        entry = self.services.progress.get(query_id)
        if entry is None:
            raise NotFound(
                f"No query '{query_id}' is running or recently finished.", code="QUERY_NOT_FOUND"
            )
        return entry

    def cancel_query(self, query_id: str) -> QueryProgress:
        """Stop this gateway's running JOIN or write-back ``query_id`` at its next batch
        (``DELETE /api/queries/{id}``, MySQL's KILL QUERY). Returns the live entry: it ends
        ``cancelled`` once the executor sees the flag, and the statement's client gets a
        ``QUERY_CANCELLED`` error saying how many rows were done (a write-back's written
        batches stay). ``NotFound`` when unknown; 409 when it finished or runs on another
        replica (see ``ProgressRegistry.cancel``).

        Who may: writers and admins any statement; a reader only the ones its own token
        started (a reader must not stop another user's work).
        """
        progress = self.services.progress
        principal = auth.current.get()
        entry = progress.own(query_id)
        if principal is not None and principal.role == "reader":
            if entry is not None and entry.started_by != principal.name:
                raise Forbidden(
                    f"Token '{principal.name}' has role reader, which may cancel only the "
                    f"queries it started; query '{query_id}' was started by another token.",
                    role=principal.role, required_role="writer",
                )  # fmt: skip
        return progress.cancel(query_id)

    async def register_predictor(self, spec: dict[str, Any]) -> Result:
        """The JSON twin of CREATE PREDICTOR: the fields of ``catalog.records.PredictorSpec``
        (``datasource``/``query`` may stand for ``training_datasource``/``training_query``).

        It becomes the same statement SQL would, so both are checked by the same code.
        """
        unknown = set(spec) - _SPEC_FIELDS
        if unknown:
            raise InvalidOption(
                f"Unknown predictor field(s): {', '.join(sorted(unknown))}. "
                f"Known: {', '.join(sorted(_SPEC_FIELDS))}."
            )
        spec = {_JSON_ALIASES.get(k, k): v for k, v in spec.items()}
        if not spec.get("name"):
            raise InvalidOption("A predictor needs a name.")
        for field in ("name", "namespace"):  # SQL's parser checks its names; JSON here
            value = spec.get(field)
            if isinstance(value, str) and len(value) > MAX_IDENTIFIER:
                raise InvalidOption(
                    f"The predictor's {field} is {len(value)} characters long; at most "
                    f"{MAX_IDENTIFIER} are allowed.",
                    option=field,
                )
        options = dict(spec.get("options") or {})
        for field, key in _USING_FIELDS.items():
            if spec.get(field) is not None:
                options[key] = spec[field]
        statement = st.CreatePredictor(
            name=str(spec["name"]).lower(),
            namespace=spec.get("namespace"),
            datasource=spec.get("training_datasource"),
            query=spec.get("training_query"),
            target=spec.get("target"),
            options=options,
        )
        return await self._within_default_limit(self._execute(statement))

    async def describe_predictor(self, name: str) -> Result:
        return self.executor.describe(name.lower())

    async def list_predictors(self) -> Result:
        return await self._execute(st.ShowModels())

    async def drop_predictor(self, name: str) -> Result:
        return await self._execute(st.DropModel(name=name.lower()))

    async def predict(self, name: str, rows: list[dict[str, Any]]) -> Result:
        """Predict JSON rows with a model: input columns + prediction (+ extra) per row."""
        return await self._within_default_limit(self.executor.predict_rows(name.lower(), rows))

    async def _within_default_limit(self, run: Awaitable[Result]) -> Result:
        """A JSON route's work under the gateway's statement timeout, as its SQL twin runs
        (``BYOM_STATEMENT_TIMEOUT``; these routes have no USING to set their own)."""
        limit = gateway_limit(self.services.settings.statement_timeout)
        result = await run_within(run, limit)
        assert isinstance(result, Result)  # only a JOIN streams
        return result

    async def wait_for_training(self, name: str, timeout: float = 120.0) -> Result:
        """Block until the model's training ended (a built-in model: its latest version);
        return its DESCRIBE answer."""
        deadline = time.monotonic() + timeout
        busy = ("generating", "training")
        while True:
            record = self.catalog.get_predictor(name.lower())
            status = record.status
            if record.kind == "builtin":
                versions = self.catalog.list_versions(record.name)
                status = versions[-1].status if versions else status
            if status not in busy:
                return self.executor.describe(name.lower())
            if time.monotonic() > deadline:
                raise GatewayError(
                    f"Model '{name}' is still '{status}' after {timeout:.0f}s.",
                    code="TRAINING_TIMEOUT",
                )
            await asyncio.sleep(0.1)

    def training(self, name: str) -> bool:
        """Whether model ``name`` trains in this gateway now (external or built-in)."""
        key = name.lower()
        return key in self.executor.trainer.in_flight() or self.executor.builtin.training(key)

    def training_in_flight(self) -> list[str]:
        """Names of the models training in this gateway now (external and built-in)."""
        return sorted(self.executor.trainer.in_flight() + self.executor.builtin.in_flight())

    async def wait_idle(self) -> list[str]:
        """Wait until no training runs in the background; return the names that were trained."""
        names = self.training_in_flight()
        await self.executor.trainer.wait()
        await self.executor.builtin.wait()
        return names

    def health(self) -> dict[str, Any]:
        """``GET /healthz``. ``endpoints``: the model endpoints whose circuit breaker is
        open or half-open (``adapters.breaker``), by ``scheme://host:port/path``; an open
        breaker is the endpoint's trouble, not the gateway's, so ``status`` stays ok."""
        breakers = self.services.adapters.context.breakers
        return {
            "status": "ok",
            "uptime_s": round(time.time() - self._started, 1),
            "catalog_schema_version": self.catalog.schema_version,
            "training_in_flight": self.training_in_flight(),
            "endpoints": {key: s.to_dict() for key, s in breakers.not_closed().items()},
        }

    def status_report(self) -> dict[str, Any]:
        """``GET /api/status``: this replica (its owner id), the Ray cluster and Serve when
        this process is on Ray (else null), and the catalog's running training jobs - any
        replica's, with their owner and last heartbeat."""
        from gateway.status import cluster_status, running_jobs

        return {
            "gateway": {**self.health(), "replica": self.owner},
            "cluster": cluster_status(),
            "jobs": running_jobs(self.catalog.list_jobs()),
        }


async def _plan(statement: st.Statement, resolver: Resolver) -> Plan:
    """``plan``, in a worker thread for a long query: planning walks and copies the tree,
    ~0.5 s for a 20,000-value IN list, which must not stall the event loop."""
    if isinstance(statement, st.Query) and len(statement.sql) > INLINE_PARSE_CHARS:
        return await asyncio.to_thread(plan, statement, resolver)
    return plan(statement, resolver)
