"""The one client every front end uses: settings, the database, Prefect and where runs execute.

::

    settings = Settings.from_env()            # once, at the edge (CLI, bot, worker, entrypoint)
    async with Client(settings) as client:
        stored = await client.workflows.apply("examples/branching.yaml")
        result = await client.runs.run(stored.name, {"count": 7})
        for record in await client.runs.list(workflow=stored.name):
            ...

A :class:`Client` owns one database engine (opened by ``async with``, schema checked; or one
the caller already has), reaches Prefect through :meth:`Client.prefect`, and decides whether a
run executes in this process or on workers (:attr:`Settings.runs_remotely`). Its parts group
what front ends do: :attr:`workflows`, :attr:`runs`, :attr:`credentials`, :attr:`webhooks`,
:attr:`tokens` (API tokens), :attr:`idempotency`, :attr:`audit`, :attr:`retention`,
:meth:`pool_runs` for warm workers, and :attr:`slack` for the bot's own records. None of them
reads the environment: everything comes from the :class:`Settings` the client was given.

:func:`default_client` is the one place in the library that builds settings from the
environment itself, for ``switchboard.run(...)`` and the other module-level conveniences.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AsyncExitStack
from types import TracebackType

from prefect.client.orchestration import PrefectClient
from sqlalchemy.ext.asyncio import AsyncEngine

from switchboard import embedded_prefect
from switchboard.actors import default_actor
from switchboard.audit import Audit
from switchboard.credentials import Credentials
from switchboard.database import open_engine
from switchboard.errors import ClientClosedError
from switchboard.idempotency import IdempotentRequests
from switchboard.pool_runs import PoolRuns
from switchboard.remote import RemoteRun
from switchboard.retention import Retention
from switchboard.runs import Runs
from switchboard.settings import Settings
from switchboard.slack_records import SlackRecords
from switchboard.tokens import ApiTokens
from switchboard.webhooks import WebhookSecrets
from switchboard.workflows import Workflows


class Client:
    """Switchboard for one process: give it settings, open it, use its parts.

    ``engine``: a database engine the caller owns (the client uses it and never disposes of
    it); without one, ``async with`` opens an engine on ``settings.effective_database_url``
    (the embedded SQLite migrates itself; Postgres must be at the current migration) and
    closes it at the end. ``actor`` is who acts when a call names nobody (default: the
    logged-in user, ``cli:<login>``).
    """

    def __init__(self, settings: Settings, *, engine: AsyncEngine | None = None, actor: str | None = None) -> None:
        self.settings = settings
        self.actor = actor or default_actor()
        self._engine = engine
        #: Holds the engine the client opened itself (None: none, or the caller's).
        self._opened: AsyncExitStack | None = None
        #: Runs handed to workers that this client follows (``client.runs.cancel`` reaches them).
        self._on_workers: dict[str, RemoteRun] = {}

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the database engine (if the client has none yet) and check its schema."""
        if self._engine is not None:
            return
        stack = AsyncExitStack()
        self._engine = await stack.enter_async_context(open_engine(self.settings))
        self._opened = stack

    async def close(self) -> None:
        """Dispose of the engine the client opened (one given to it stays the caller's)."""
        stack, self._opened = self._opened, None
        if stack is not None:
            self._engine = None
            await stack.aclose()

    @property
    def engine(self) -> AsyncEngine:
        """The database engine (for the library's own parts; front ends use the parts)."""
        if self._engine is None:
            raise ClientClosedError
        return self._engine

    def prefect(self) -> AbstractAsyncContextManager[PrefectClient]:
        """A Prefect API client: the configured server, or the embedded one (started on demand)."""
        return embedded_prefect.client()

    @property
    def workflows(self) -> Workflows:
        """Stored workflows and their versions."""
        return Workflows(self.engine, self.actor)

    @property
    def runs(self) -> Runs:
        """Start, follow, cancel, retry and list runs (here or on workers).

        Usable before :meth:`open`: a run then opens the database for itself (or, with
        ``record=False``, not at all); listing runs needs the client open.
        """
        return Runs(self._engine, self.settings, self._on_workers)

    @property
    def credentials(self) -> Credentials:
        """Encrypted credentials and the resolver runs use."""
        return Credentials(self.engine, self.settings, self.actor)

    @property
    def webhooks(self) -> WebhookSecrets:
        """Webhook secrets of stored workflows."""
        return WebhookSecrets.on(self.engine, self.settings)

    @property
    def tokens(self) -> ApiTokens:
        """API tokens: create, list, revoke, authenticate."""
        return ApiTokens(self.engine, self.actor)

    @property
    def idempotency(self) -> IdempotentRequests:
        """Idempotency keys of run requests, shared by every process on the database."""
        return IdempotentRequests(self.engine)

    @property
    def audit(self) -> Audit:
        """The audit log."""
        return Audit(self.engine)

    @property
    def retention(self) -> Retention:
        """Deleting runs that ended long ago."""
        return Retention(self.engine, self.settings, self.actor)

    def pool_runs(self, prefect: PrefectClient) -> PoolRuns:
        """The work pool's flow runs as warm workers see them (owners, orphans, ending runs),
        through the Prefect client the caller holds open."""
        return PoolRuns(self.engine, prefect)

    @property
    def slack(self) -> SlackRecords:
        """What the Slack bot keeps: installed workspaces, OAuth states, replay keys, messages."""
        return SlackRecords(self.engine, self.settings)


def default_client() -> Client:
    """A client on settings read from the environment (``SWITCHBOARD_*``), not yet open.

    The Python conveniences (``switchboard.run``, ``arun``, ``retry``) use it; applications
    that hold settings of their own build ``Client(settings)`` instead.
    """
    return Client(Settings.from_env())
