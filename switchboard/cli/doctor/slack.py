"""Doctor checks of Slack (tokens, signing secret, ``auth.test``) and the public URL."""

from __future__ import annotations

from typing import Any

import httpx

from switchboard.cli.doctor.checks import TIMEOUT, Check, reason
from switchboard.settings import Settings


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


async def slack(settings: Settings, *, call_api: bool) -> list[Check]:
    bot_token = _secret(settings.slack_bot_token)
    signing = _secret(settings.slack_signing_secret)
    app_token = _secret(settings.slack_app_token)
    client_secret = _secret(settings.slack_client_secret)
    client_id = settings.slack_client_id or ""
    if not (bot_token or signing or app_token or client_id or client_secret):
        return [Check("slack", "info", "Slack is not configured (the bot is not used)")]
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    if bool(client_id) != bool(client_secret):
        problems.append(
            ("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together", "set both (the app's Basic Information page)")
        )
    multi = bool(client_id and client_secret)
    if multi:
        notes.append("multi-workspace (each workspace installs the app)")
        if bot_token:
            notes.append("SLACK_BOT_TOKEN is not used in multi-workspace mode")
    elif not bot_token:
        problems.append(
            (
                "no bot token",
                "set SLACK_BOT_TOKEN (xoxb-..., one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (any)",
            )
        )
    elif not bot_token.startswith("xoxb-"):
        problems.append(("SLACK_BOT_TOKEN is not a bot token (xoxb-...)", "copy the Bot User OAuth Token"))
    if app_token and not app_token.startswith("xapp-"):
        problems.append(
            ("SLACK_APP_TOKEN is not an app-level token (xapp-...)", "create an app-level token with connections:write")
        )
    if not signing:
        if app_token:
            notes.append("Socket Mode only (`switchboard bot --socket`): no SLACK_SIGNING_SECRET for HTTP requests")
        else:
            problems.append(
                (
                    "SLACK_SIGNING_SECRET is not set: requests from Slack cannot be verified",
                    "set SLACK_SIGNING_SECRET (the app's Basic Information page), or SLACK_APP_TOKEN for Socket Mode",
                )
            )
    elif app_token:
        notes.append("HTTP and Socket Mode possible")
    if problems:
        return [Check("slack", "fail", "; ".join(p for p, _ in problems), "; ".join(f for _, f in problems))]
    checks = [Check("slack", "ok", "settings consistent" + (f": {'; '.join(notes)}" if notes else ""))]
    if call_api and bot_token and not multi:
        checks.append(await _auth_test(settings.slack_api_url, bot_token))
    return checks


async def _auth_test(api_url: str, token: str) -> Check:
    url = api_url.rstrip("/") + "/auth.test"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(url, headers={"Authorization": f"Bearer {token}"})
        body = response.json()
    except Exception as exc:
        return Check(
            "slack auth.test",
            "fail",
            f"Slack's Web API at {api_url} cannot be reached ({reason(exc, token)})",
            "check the network, or SWITCHBOARD_SLACK_API_URL",
        )
    if not isinstance(body, dict) or not body.get("ok"):
        code = (
            body.get("error", f"HTTP {response.status_code}")
            if isinstance(body, dict)
            else f"HTTP {response.status_code}"
        )
        return Check(
            "slack auth.test",
            "fail",
            f"Slack refused the bot token ({code})",
            "copy the current Bot User OAuth Token (reinstalling the app issues a new one)",
        )
    return Check(
        "slack auth.test",
        "ok",
        f"bot token valid: team {body.get('team')} ({body.get('team_id')}), user {body.get('user')}",
    )


def public_url(settings: Settings, *, webhooks: bool) -> Check:
    users = []
    if webhooks:
        users.append("webhooks")
    if settings.oauth_providers():
        users.append("/flow connect")
    if settings.slack_multi_workspace:
        users.append("the Slack install flow")
    url = settings.public_url
    if not users:
        return Check(
            "public url", "info", f"SWITCHBOARD_PUBLIC_URL {url or 'not set'} (no webhooks, connect or install flow)"
        )
    used = ", ".join(users)
    if not url:
        return Check(
            "public url",
            "fail",
            f"SWITCHBOARD_PUBLIC_URL is not set, but {used} need it",
            "set SWITCHBOARD_PUBLIC_URL to where Slack and browsers reach the bot (https://...)",
        )
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return Check(
            "public url", "fail", f"SWITCHBOARD_PUBLIC_URL {url!r} is not an http(s) URL", "use https://host[:port]"
        )
    if parsed.scheme == "http" and parsed.host not in ("127.0.0.1", "localhost"):
        return Check(
            "public url", "warn", f"SWITCHBOARD_PUBLIC_URL {url} is plain http ({used})", "serve the bot over https"
        )
    return Check("public url", "ok", f"SWITCHBOARD_PUBLIC_URL {url} ({used})")
