"""A recording fake of Slack: the Web API methods the bot calls, response URLs, and helpers
that build correctly signed slash-command and interactivity requests.

>>> slack = FakeSlack(fake_http)              # Web API at slack.api_url (".../api/")
>>> slack.calls("chat.postMessage")[0].args["channel"]
>>> headers, body = slash_command(SECRET, "/flow", "run hello name=Ada", user="U1")

Several workspaces (the multi-workspace install flow): ``authorize_url`` is Slack's OAuth
authorize page, which approves at once and sends the browser back with a code;
``oauth.v2.access`` exchanges it for a new bot token of that workspace, and every Web API call
records the workspace its token belongs to (``SlackCall.team``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.http import FakeHTTP, Recorded, Reply

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
TEAM = "T0TEAM"
BOT_USER = "UBOT"
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "test-client-secret"
APP_ID = "A0APP"


@dataclass(frozen=True)
class SlackCall:
    """One Web API call: the method, its arguments (blocks decoded), the bearer token."""

    method: str
    args: dict[str, Any]
    token: str | None
    #: The workspace the token belongs to (None: no token, or one Slack does not know).
    team: str | None = None


@dataclass(frozen=True)
class Grant:
    """An authorization the user approved on the authorize page, waiting for ``oauth.v2.access``."""

    team: str
    team_name: str
    user: str
    scope: str
    user_scope: str
    redirect_uri: str | None


@dataclass
class Message:
    """A message as the channel shows it now (after every chat.update)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    updates: int = 0


@dataclass
class FakeSlack:
    """Slack's Web API on a FakeHTTP, under ``/api/``; ``response_url`` posts under ``/responses/``."""

    http: FakeHTTP
    token: str = BOT_TOKEN
    #: User-group id -> member user ids (``usergroups.users.list``).
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: Channel id -> member user ids (``conversations.members``).
    channels: dict[str, list[str]] = field(default_factory=dict)
    #: What ``apps.connections.open`` returns (a local WebSocket URL for Socket Mode).
    socket_url: str | None = None
    #: Bot token -> the workspace (team id) it belongs to; ``token`` belongs to ``TEAM``.
    teams: dict[str, str] = field(default_factory=dict)
    #: The OAuth app ``oauth.v2.access`` accepts.
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    calls_made: list[SlackCall] = field(default_factory=list)
    _grants: dict[str, Grant] = field(default_factory=dict)
    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.teams.setdefault(self.token, TEAM)
        self.http.observers.append(self._record_call)
        self.http.route("GET", "/oauth/v2/authorize", self._authorize)
        self.http.route("POST", "/api/", self._api, prefix=True)
        self.http.route("GET", "/api/", self._api, prefix=True)  # slack_sdk GETs some read methods
        self.http.route("POST", "/responses/", self._response, prefix=True)

    @property
    def api_url(self) -> str:
        """The Web API base URL (``SWITCHBOARD_SLACK_API_URL``)."""
        return self.http.url("/api/")

    @property
    def authorize_url(self) -> str:
        """Slack's OAuth authorize page (``SWITCHBOARD_SLACK_OAUTH_URL``)."""
        return self.http.url("/oauth/v2/authorize")

    def tokens_of(self, team: str) -> list[str]:
        """The bot tokens issued to workspace ``team``, oldest first."""
        with self._lock:
            return [token for token, owner in self.teams.items() if owner == team]

    def response_url(self, name: str = "r1") -> str:
        return self.http.url(f"/responses/{name}")

    def fail_next(self, method: str, *replies: Reply) -> None:
        """Answer the next calls of ``method`` with ``replies`` (e.g. :func:`ratelimited`, :func:`error`)."""
        for reply in replies:
            self.http.fail_next(reply, path=f"/api/{method}", prefix=False)

    def clear_failures(self, method: str | None = None) -> None:
        """Drop the failures still queued (for ``method``, or all): Slack is back."""
        self.http.clear_faults(None if method is None else f"/api/{method}")

    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._lock:
            return [c for c in self.calls_made if method is None or c.method == method]

    def responses(self, name: str | None = None) -> list[dict[str, Any]]:
        """What was posted to response URLs (``respond()``), oldest first."""
        prefix = "/responses/" + (name or "")
        return [r.json() for r in self.http.requests if r.path.startswith(prefix) and r.method == "POST"]

    def message(self, channel: str, ts: str) -> Message:
        with self._lock:
            return self.messages[(channel, ts)]

    def channel_messages(self, channel: str) -> list[Message]:
        with self._lock:
            return [m for (c, _), m in self.messages.items() if c == channel]

    # --- the server side ------------------------------------------------------------------

    def _response(self, request: Recorded) -> Reply:
        return Reply(200, "ok")

    def _authorize(self, request: Recorded) -> Reply:
        """The user approves the install at once: back to the redirect URI with a code and the state.

        ``team`` (Bolt passes on ``/slack/install?team=T...``) picks the workspace; default ``TEAM``.
        """
        query = {key: values[-1] for key, values in request.query.items()}
        if query.get("client_id") != self.client_id:
            return Reply(400, "invalid_client_id")
        redirect = query.get("redirect_uri")
        if not redirect:
            return Reply(400, "this fake needs a redirect_uri (set the bot's public URL)")
        team = query.get("team") or TEAM
        code = secrets.token_urlsafe(12)
        grant = Grant(
            team=team,
            team_name=f"Workspace {team}",
            user=f"U{team}ADMIN",
            scope=query.get("scope", ""),
            user_scope=query.get("user_scope", ""),
            redirect_uri=redirect,
        )
        with self._lock:
            self._grants[code] = grant
        back = urlencode({"code": code, "state": query.get("state", "")})
        separator = "&" if urlsplit(redirect).query else "?"
        return Reply(302, "", {"Location": f"{redirect}{separator}{back}"})

    def _oauth_v2_access(self, request: Recorded, args: dict[str, Any]) -> dict[str, Any]:
        """The code for a new bot token (the documented response shape; single-use codes)."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        client_id, client_secret = args.get("client_id"), args.get("client_secret")
        if scheme.lower() == "basic":
            client_id, _, client_secret = base64.b64decode(credentials).decode().partition(":")
        if client_id != self.client_id:
            return _error("invalid_client_id")
        if client_secret != self.client_secret:
            return _error("bad_client_secret")
        with self._lock:
            grant = self._grants.pop(str(args.get("code")), None)
        if grant is None:
            return _error("invalid_code")
        if grant.redirect_uri and args.get("redirect_uri") != grant.redirect_uri:
            return _error("bad_redirect_uri")
        token = f"xoxb-{grant.team}-{secrets.token_hex(8)}"
        with self._lock:
            self.teams[token] = grant.team
        installer: dict[str, Any] = {"id": grant.user}
        if grant.user_scope:
            installer.update(scope=grant.user_scope, access_token=f"xoxp-{secrets.token_hex(8)}", token_type="user")
        return {
            "ok": True,
            "access_token": token,
            "token_type": "bot",
            "scope": grant.scope,
            "bot_user_id": BOT_USER,
            "app_id": APP_ID,
            "team": {"id": grant.team, "name": grant.team_name},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": installer,
        }

    @staticmethod
    def _token(request: Recorded) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else ""

    def _record_call(self, request: Recorded) -> None:
        """Every Web API call, answered by a fault (:meth:`fail_next`) or not."""
        if not request.path.startswith("/api/"):
            return
        token = self._token(request)
        with self._lock:
            method, team = request.path.removeprefix("/api/"), self.teams.get(token)
            self.calls_made.append(SlackCall(method, _arguments(request), token or None, team))

    def _api(self, request: Recorded) -> Reply:
        method = request.path.removeprefix("/api/")
        args = _arguments(request)
        token = self._token(request)
        with self._lock:
            team = self.teams.get(token)
        if method == "apps.connections.open":
            return Reply(200, {"ok": True, "url": self.socket_url} if self.socket_url else _error("not_configured"))
        if method == "oauth.v2.access":
            return Reply(200, self._oauth_v2_access(request, args))
        if team is None:
            return Reply(200, _error("invalid_auth"))
        if method == "auth.test":
            return Reply(200, self._auth_test(args, team))
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return Reply(200, _error("unknown_method"))
        body: dict[str, Any] = handler(args)
        return Reply(200, body)

    def _auth_test(self, args: dict[str, Any], team: str = TEAM) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.example/",
            "team": "Fake",
            "user": "switchboard",
            "team_id": team,
            "user_id": BOT_USER,
            "bot_id": "BBOT",
        }

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel:
            return _error("channel_not_found")
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        message = Message(channel, ts, str(args.get("text", "")), args.get("blocks") or [], args.get("thread_ts"))
        with self._lock:
            self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": message.text, "ts": ts}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        with self._lock:
            message = self.messages.get(key)
            if message is None:
                return _error("message_not_found")
            message.text = str(args.get("text", message.text))
            message.blocks = args.get("blocks") or message.blocks
            message.updates += 1
        return {"ok": True, "channel": key[0], "ts": key[1], "text": message.text}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        return {"ok": True, "view": {"id": f"V{next(self._ts)}", **(view if isinstance(view, dict) else {})}}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "view": args.get("view") or {}}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup"))
        if group not in self.groups:
            return _error("no_such_subteam")
        return {"ok": True, "users": self.groups[group]}

    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        if channel not in self.channels:
            return _error("channel_not_found")
        return {"ok": True, "members": self.channels[channel], "response_metadata": {"next_cursor": ""}}


def _error(code: str) -> dict[str, Any]:
    return {"ok": False, "error": code}


def error(code: str, **extra: Any) -> Reply:
    """Slack's answer to a refused call: HTTP 200 with ``{"ok": false, "error": code}``."""
    return Reply(200, {**_error(code), **extra})


def ratelimited(retry_after: int = 1) -> Reply:
    """Slack's rate limit: HTTP 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``."""
    return Reply(429, _error("ratelimited"), {"Retry-After": str(retry_after)})


def _arguments(request: Recorded) -> dict[str, Any]:
    """The call's arguments from a JSON or form body (JSON-encoded fields such as ``blocks`` decoded)."""
    if "json" in request.headers.get("content-type", ""):
        args: dict[str, Any] = request.json() if request.body else {}
    else:
        args = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        args.update({k: v[-1] for k, v in request.query.items()})
    for key in ("blocks", "view", "attachments"):
        if isinstance(args.get(key), str):
            with contextlib.suppress(json.JSONDecodeError):
                args[key] = json.loads(args[key])
    return args


# --- requests from Slack to the bot --------------------------------------------------------


def sign(body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with a request: a timestamp and ``v0=`` HMAC-SHA256 signature."""
    when = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + when.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": when,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash_command(
    text: str,
    *,
    command: str = "/flow",
    user: str = "U1",
    channel: str = "C1",
    response_url: str = "http://127.0.0.1:1/responses/none",
    trigger_id: str = "trigger-1",
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    team: str = TEAM,
) -> tuple[dict[str, str], bytes]:
    """A signed slash-command request (form fields as Slack documents them) from workspace ``team``."""
    body = urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": team,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0APP",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    ).encode()
    return sign(body, secret=secret, timestamp=timestamp), body


def event_callback(
    event: dict[str, Any],
    *,
    event_id: str = "Ev001",
    team: str = TEAM,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    """A signed Events API delivery (JSON) of ``event`` from workspace ``team``."""
    body = json.dumps(
        {
            "token": "deprecated-verification-token",
            "team_id": team,
            "api_app_id": "A0APP",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}],
            "event": event,
        }
    ).encode()
    return {**sign(body, secret=secret, timestamp=timestamp), "Content-Type": "application/json"}, body


def mention(
    text: str, *, user: str = "U1", channel: str = "C1", ts: str = "1700000000.000100", **options: Any
) -> tuple[dict[str, str], bytes]:
    """A signed ``app_mention`` of the bot (``UBOT``) saying ``text``."""
    event = {"type": "app_mention", "user": user, "channel": channel, "ts": ts, "text": f"<@UBOT> {text}"}
    return event_callback(event, **options)


def interaction(
    payload: dict[str, Any], *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> tuple[dict[str, str], bytes]:
    """A signed interactivity request: the payload JSON in one form field, ``payload``."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return sign(body, secret=secret, timestamp=timestamp), body


def block_action(
    action_id: str,
    value: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    message_ts: str = "1.000001",
    response_url: str = "http://127.0.0.1:1/responses/none",
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button click."""
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "trigger-2",
        "channel": {"id": channel, "name": "general"},
        "message": {"ts": message_ts, "text": "", "blocks": []},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "actions",
                "value": value,
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }


def view_submission(
    callback_id: str, values: dict[str, dict[str, dict[str, Any]]], *, private_metadata: str = "", user: str = "U1"
) -> dict[str, Any]:
    """A ``view_submission`` payload: ``values`` is ``{block_id: {action_id: {type, value...}}}``."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "deprecated-verification-token",
        "trigger_id": "trigger-3",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": "h1",
        },
    }
