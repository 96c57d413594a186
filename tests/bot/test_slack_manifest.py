"""The shipped Slack app manifest matches the bot: its command, its routes, its docs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml
from slack_sdk.web.async_client import AsyncWebClient
from starlette.routing import Route

from bot.runtime import BotRuntime
from bot.server import create_web_app
from storage.db import create_engine
from switchboard.settings import Settings
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "bot" / "slack-app-manifest.yaml"


def test_manifest_points_slack_at_routes_the_bot_serves(tmp_path: Path) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
    )
    runtime = BotRuntime(
        settings=settings,
        engine=create_engine(settings.effective_database_url),
        client=AsyncWebClient(token=BOT_TOKEN),
    )
    served = {
        (route.path, method)
        for route in create_web_app(runtime).routes
        if isinstance(route, Route)
        for method in route.methods or ()
    }

    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == Settings.model_fields["slack_command"].default
    events = manifest["settings"]["event_subscriptions"]
    assert sorted(events["bot_events"]) == ["app_mention", "message.im"]
    for url in (command["url"], manifest["settings"]["interactivity"]["request_url"], events["request_url"]):
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.netloc == "YOUR_HOST"
        assert (parts.path, "POST") in served
    assert manifest["settings"]["socket_mode_enabled"] is False


def test_manifest_asks_only_for_the_documented_scopes_and_is_quoted_in_the_docs() -> None:
    text = MANIFEST.read_text()
    scopes = yaml.safe_load(text)["oauth_config"]["scopes"]["bot"]
    assert sorted(scopes) == sorted(
        [
            "commands",
            "chat:write",
            "chat:write.public",
            "usergroups:read",
            "channels:read",
            "groups:read",
            "app_mentions:read",
            "im:history",
        ]
    )
    docs = (ROOT / "docs" / "slack.md").read_text()
    assert f"```yaml\n{text}```" in docs, "docs/slack.md quotes the manifest as shipped"
    for scope in scopes:
        assert f"`{scope}`" in docs, f"docs/slack.md explains the {scope} scope"
