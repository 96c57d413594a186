"""Settings, read from ``SWITCHBOARD_*`` environment variables by entry points only.

Everything the library needs from the environment is read when a :class:`Settings` is built
(:meth:`Settings.from_env`, at the edge): the fields, and a snapshot of the variables that are
not fields (``PREFECT_API_URL`` for ``execution: auto``, the ``template_env`` names, the
``SWITCHBOARD_OAUTH_*`` clients). Nothing reads the environment later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.usage import PriceTable, load_prices
from nodes.http_guard import DEFAULT_MAX_RESPONSE_BYTES
from switchboard.oauth_settings import ENV_PREFIX as OAUTH_ENV_PREFIX
from switchboard.oauth_settings import OAuthProvider, configured_providers, read_provider


class Settings(BaseSettings):
    """Switchboard's configuration. Prefect's own settings (``PREFECT_*``) stay Prefect's."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    home: Path = Field(default=Path("~/.switchboard"), description="Where the embedded default keeps its data.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in home.")
    files_dir: Path | None = Field(default=None, description="The blob store for files; default: <home>/files.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s), comma-separated, first one encrypts; default: <home>/secret.key.",
    )
    http_allow_hosts: str = Field(
        default="",
        description="Comma-separated destinations that http.request may reach although they are private, "
        "loopback or otherwise not public: a host name, an IPv4 or IPv6 address, or a CIDR range, each "
        "optionally with a port that limits it to that port (`api.internal`, `db.internal:5432`, "
        "`10.0.0.0/8`, `10.1.0.0/16:443`, `fd00::/8`, `[fd00::1]:8080`: IPv6 in brackets when a port "
        "follows).",
    )
    http_max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=1,
        description="The most bytes of a response body http.request reads (after decompression); a "
        "larger response fails the node (not retried) without being read further.",
    )
    max_parallel_nodes: int = Field(
        default=64, ge=1, le=10_000, description="Node tasks running at once in one run (for_each items included)."
    )
    max_workflow_depth: int = Field(
        default=5,
        ge=1,
        le=50,
        description="How deep `core.workflow` sub-workflows may nest (a run calling a run calling ...); "
        "deeper calls fail the node that makes them.",
    )
    template_env: str = Field(
        default="",
        description="Comma-separated environment variable names exposed to templates as `env`.",
    )
    template_timeout: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="Seconds a node's templates may take to render (90% of the node's own timeout, if shorter).",
    )
    template_max_size: int = Field(
        default=1_000_000,
        ge=1_000,
        le=100_000_000,
        description="Characters and items, nested ones counted, of any value a template builds or renders.",
    )
    mcp_commands: str = Field(
        default="",
        description="Comma-separated executables an `ai.agent` may start as stdio MCP servers (`npx`, `uvx`, "
        "or a full path, which then must match exactly); empty: none (MCP servers over HTTP still work, "
        "through the SSRF guard).",
    )
    prices: Path | None = Field(
        default=None,
        description="A YAML or JSON file of model prices, `{model: {input: N, output: N}}` in USD per "
        "million prompt and completion tokens, overriding and extending the built-in list prices for the "
        "cost in each run's usage and for `budget: {usd: ...}` (read once per process).",
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        description="`switchboard cleanup` deletes run records (and their Prefect flow runs) that ended "
        "more than this many days ago, unless given --older-than.",
    )
    cleanup_schedule: str = Field(
        default="15 3 * * *",
        description="When the scheduled clean-up (deployment switchboard-cleanup/daily, made by "
        "`switchboard deploy`) deletes runs older than retention_days: a cron expression in UTC, "
        "or `off` for none.",
    )
    execution: Literal["auto", "local", "remote"] = Field(
        default="auto",
        description="Where runs triggered from Slack and webhooks execute: remote (flow runs of the "
        "run-workflow deployment, picked up by `switchboard worker`s), local (in the triggering "
        "process) or auto (remote when the PREFECT_API_URL environment variable is set).",
    )
    rate_limits: Literal["auto", "prefect", "local", "off"] = Field(
        default="auto",
        description="Where per-credential rate limits are kept: prefect (global concurrency limits), "
        "local (this process), auto (prefect with a Prefect server, else local) or off.",
    )

    # --- Slack (bot/) ---------------------------------------------------------------------
    slack_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SWITCHBOARD_SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN"),
        description="The bot token (xoxb-...) of a single-workspace install.",
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SWITCHBOARD_SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET"),
        description="Verifies that HTTP requests come from Slack.",
    )
    slack_app_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SWITCHBOARD_SLACK_APP_TOKEN", "SLACK_APP_TOKEN"),
        description="The app-level token (xapp-...) for Socket Mode.",
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="Slack's Web API base URL (a fake's in tests)."
    )
    slack_client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SWITCHBOARD_SLACK_CLIENT_ID", "SLACK_CLIENT_ID"),
        description="The app's client id: with the client secret, the bot serves any workspace that installs it.",
    )
    slack_client_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SWITCHBOARD_SLACK_CLIENT_SECRET", "SLACK_CLIENT_SECRET"),
        description="The app's client secret (multi-workspace install flow).",
    )
    slack_oauth_url: str = Field(
        default="https://slack.com/oauth/v2/authorize",
        description="Where /slack/install sends the browser to authorize the app (a fake's in tests).",
    )
    slack_command: str = Field(default="/flow", pattern=r"^/[a-z0-9_-]+$", description="The slash command's name.")
    slack_admins: str = Field(default="", description="Comma-separated Slack user ids that may do anything.")
    public_url: str | None = Field(
        default=None, description="Where Slack and browsers reach the bot (links to OAuth callbacks and webhooks)."
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="The largest request body the bot's HTTP server reads, on every route (Slack, webhooks, "
        "OAuth callbacks); a larger one gets 413 without being read.",
    )
    api_rate_limit: int = Field(
        default=120,
        ge=1,
        le=100_000,
        description="Requests a minute one API token may make to /api/v1 (per bot process); more get 429.",
    )

    #: The environment variables read besides the fields, as they were when these settings were built.
    _environ: dict[str, str] = PrivateAttr(default_factory=dict)
    _price_table: PriceTable | None = PrivateAttr(default=None)

    def model_post_init(self, context: object, /) -> None:
        names = {n.strip() for n in self.template_env.split(",") if n.strip()}
        self._environ = {
            key: value
            for key, value in os.environ.items()
            if key == "PREFECT_API_URL" or key in names or key.startswith(OAUTH_ENV_PREFIX)
        }

    def with_current_environment(self) -> Settings:
        """A copy with the same fields whose snapshot of the other variables (PREFECT_API_URL,
        template env, SWITCHBOARD_OAUTH_*) is taken now: for an edge that re-reads them."""
        copy = self.model_copy()
        copy.model_post_init(None)
        return copy

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from ``SWITCHBOARD_*`` environment variables: what entry points call, once."""
        return cls()

    @property
    def slack_multi_workspace(self) -> bool:
        """Client id and secret set: workspaces install the app (OAuth), each with its own bot token."""
        return bool(self.slack_client_id and self.slack_client_secret and self.slack_client_secret.get_secret_value())

    @property
    def slack_admin_ids(self) -> frozenset[str]:
        return frozenset(user.strip() for user in self.slack_admins.split(",") if user.strip())

    @property
    def runs_remotely(self) -> bool:
        """Whether Slack and webhook runs go to workers (see ``execution``)."""
        if self.execution == "auto":
            return bool(self._environ.get("PREFECT_API_URL"))
        return self.execution == "remote"

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def files_path(self) -> Path:
        return (self.files_dir or self.home_dir / "files").expanduser()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.home_dir / 'switchboard.db'}"

    def oauth_provider(self, name: str) -> OAuthProvider | None:
        """``SWITCHBOARD_OAUTH_<NAME>_*``: the OAuth client of a provider (None if not configured)."""
        return read_provider(name, self._environ)

    def oauth_providers(self) -> list[str]:
        """The providers ``/flow connect`` can connect (those with a client id)."""
        return configured_providers(self._environ)

    @property
    def mcp_command_set(self) -> frozenset[str]:
        return frozenset(command.strip() for command in self.mcp_commands.split(",") if command.strip())

    def price_table(self) -> PriceTable:
        """The model prices: the built-in ones, overridden by the ``prices`` file (read on first
        use; a bad file raises :class:`flows.usage.PriceError` naming the model and field)."""
        if self._price_table is None:
            self._price_table = load_prices(self.prices.expanduser() if self.prices else None)
        return self._price_table

    def template_env_values(self) -> dict[str, str]:
        names = [n.strip() for n in self.template_env.split(",") if n.strip()]
        return {name: self._environ[name] for name in names if name in self._environ}
