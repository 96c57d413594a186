"""GitHub deliveries to ``POST /hooks/{workflow}`` over real HTTP: a workflow's ``github`` trigger.

Requests are signed here as GitHub documents it, independently of switchboard code:
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``, with ``X-GitHub-Event``
and ``X-GitHub-Delivery`` (a GUID) beside it, unsigned.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest

from storage.runs import RunStore
from tests.bot.test_commands import GREET
from tests.bot.test_webhooks import add_secret, nothing_started, run_rows
from tests.helpers.bot_server import Bot

WORKFLOW = "greet-github"
HOOK = f"/hooks/{WORKFLOW}"
#: GREET, started by issues opened in acme/api: greets the issue's author.
GREET_GITHUB: dict[str, Any] = {
    **GREET,
    "name": WORKFLOW,
    "inputs": {
        **GREET["inputs"],  # type: ignore[dict-item]
        "title": {"type": "string"},
        "delivery": {"type": "string"},
    },
    "triggers": [
        {
            "github": {"events": ["issues.opened"], "repos": ["acme/api"]},
            "inputs": {
                "name": "{{ event.issue.user.login }}",
                "times": "{{ event.issue.number }}",
                "title": "#{{ event.issue.number }} {{ event.issue.title }}",
                "delivery": "{{ headers.x_github_delivery }}",
            },
        }
    ],
}

# What the bot answers, spelled out here rather than imported.
MISMATCH = (
    "the signature does not match (a wrong secret, a workflow without a webhook secret, "
    "or the body changed after signing)"
)
MISSING = "missing X-Hub-Signature-256 header (set the webhook's secret in GitHub's webhook settings)"
MALFORMED = "X-Hub-Signature-256 must look like sha256=<64 hex digits>"

USER = {
    "login": "octocat",
    "id": 583231,
    "node_id": "MDQ6VXNlcjU4MzIzMQ==",
    "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
    "html_url": "https://github.com/octocat",
    "type": "User",
    "site_admin": False,
}
ORGANIZATION = {
    "login": "acme",
    "id": 9919,
    "node_id": "MDEyOk9yZ2FuaXphdGlvbjk5MTk=",
    "html_url": "https://github.com/acme",
    "type": "Organization",
    "site_admin": False,
}


def repository(full_name: str = "acme/api") -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": {**ORGANIZATION, "login": owner},
        "html_url": f"https://github.com/{full_name}",
        "description": "The Acme API",
        "fork": False,
        "url": f"https://api.github.com/repos/{full_name}",
        "created_at": "2021-03-04T10:00:00Z",
        "updated_at": "2024-06-10T08:12:40Z",
        "pushed_at": "2024-06-10T08:12:38Z",
        "default_branch": "main",
        "visibility": "public",
    }


def issues_payload(action: str = "opened", *, repo: str = "acme/api", user: dict[str, Any] | None = None) -> bytes:
    """An ``issues`` delivery's body as GitHub sends it (compact JSON, UTF-8)."""
    number = 42
    payload = {
        "action": action,
        "issue": {
            "url": f"https://api.github.com/repos/{repo}/issues/{number}",
            "repository_url": f"https://api.github.com/repos/{repo}",
            "html_url": f"https://github.com/{repo}/issues/{number}",
            "id": 2345678901,
            "node_id": "I_kwDOABCD5M6Lxyz",
            "number": number,
            "title": "App crashes on start",
            "body": "Stack trace attached:\n\n```\nKeyError: 'region'\n```",
            "user": USER if user is None else user,
            "labels": [
                {
                    "id": 208045946,
                    "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=",
                    "name": "bug",
                    "color": "d73a4a",
                    "default": True,
                    "description": "Something isn't working",
                }
            ],
            "state": "closed" if action == "closed" else "open",
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": 0,
            "created_at": "2024-06-10T08:12:40Z",
            "updated_at": "2024-06-10T08:12:40Z",
            "closed_at": None,
            "author_association": "CONTRIBUTOR",
        },
        "repository": repository(repo),
        "organization": ORGANIZATION,
        "sender": USER,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def ping_payload() -> bytes:
    """The ``ping`` GitHub sends when a webhook is created."""
    payload = {
        "zen": "Keep it logically awesome.",
        "hook_id": 480219354,
        "hook": {
            "type": "Repository",
            "id": 480219354,
            "name": "web",
            "active": True,
            "events": ["issues"],
            "config": {
                "content_type": "json",
                "insecure_ssl": "0",
                "secret": "********",
                "url": f"https://bot.example.com{HOOK}",
            },
            "updated_at": "2024-06-10T08:00:00Z",
            "created_at": "2024-06-10T08:00:00Z",
            "url": "https://api.github.com/repos/acme/api/hooks/480219354",
            "test_url": "https://api.github.com/repos/acme/api/hooks/480219354/test",
            "ping_url": "https://api.github.com/repos/acme/api/hooks/480219354/pings",
            "deliveries_url": "https://api.github.com/repos/acme/api/hooks/480219354/deliveries",
            "last_response": {"code": None, "status": "unused", "message": None},
        },
        "repository": repository(),
        "organization": ORGANIZATION,
        "sender": USER,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def github_headers(secret: str, body: bytes, *, event: str = "issues", delivery: str | None = None) -> dict[str, str]:
    """GitHub's headers for ``body``: the documented signature, computed here."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "480219354",
        "X-GitHub-Hook-Installation-Target-ID": "1296269",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-Hub-Signature-256": f"sha256={digest}",
    }


async def hooked(bot: Bot, definition: dict[str, Any] = GREET_GITHUB) -> str:
    """Store ``definition`` and give it a webhook secret (returned)."""
    await bot.apply(definition)
    return await add_secret(bot, definition["name"])


async def test_a_signed_issues_opened_delivery_runs_with_inputs_from_the_payload(bot: Bot) -> None:
    secret = await hooked(bot)
    body = issues_payload()
    headers = github_headers(secret, body)
    response = await bot.post(headers, body, path=HOOK)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert set(answer) == {"run_id"}
    await bot.settle()

    record = await RunStore(bot.engine).get(answer["run_id"])
    delivery = headers["X-GitHub-Delivery"]
    assert (record.workflow, record.version, record.status, record.error) == (WORKFLOW, 1, "completed", None)
    assert (record.trigger, record.triggered_by) == ("github", f"github:{delivery}")
    # Natively rendered (an integer stays one), mixed text as a string, headers by their scope name.
    assert record.inputs == {
        "name": "octocat",
        "times": 42,
        "title": "#42 App crashes on start",
        "delivery": delivery,
    }
    assert [r.id for r in await run_rows(bot)] == [answer["run_id"]]


async def test_deliveries_not_signed_with_the_workflows_secret_get_401_and_run_nothing(bot: Bot) -> None:
    secret = await hooked(bot)
    body = issues_payload()
    good = github_headers(secret, body)
    digest = good["X-Hub-Signature-256"].removeprefix("sha256=")
    unsigned = {k: v for k, v in good.items() if k != "X-Hub-Signature-256"}
    sha1 = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    cases: dict[str, tuple[dict[str, str], bytes, str]] = {
        "wrong secret": (github_headers("not-the-secret", body), body, MISMATCH),
        "the secret's bytes reversed": (github_headers(secret[::-1], body), body, MISMATCH),
        "a zero digest": ({**good, "X-Hub-Signature-256": "sha256=" + "0" * 64}, body, MISMATCH),
        "body changed after signing": (good, issues_payload(user={**USER, "login": "mallory"}), MISMATCH),
        "body with a byte appended": (good, body + b"\n", MISMATCH),
        "no signature header": (unsigned, body, MISSING),
        "an empty signature header": ({**good, "X-Hub-Signature-256": ""}, body, MISSING),
        "only the legacy SHA-1 header": ({**unsigned, "X-Hub-Signature": f"sha1={sha1}"}, body, MISSING),
        "no sha256= prefix": ({**good, "X-Hub-Signature-256": digest}, body, MALFORMED),
        "another prefix": ({**good, "X-Hub-Signature-256": f"sha1={digest}"}, body, MALFORMED),
        "not hex": ({**good, "X-Hub-Signature-256": "sha256=" + "g" * 64}, body, MALFORMED),
        "too short": ({**good, "X-Hub-Signature-256": f"sha256={digest[:-2]}"}, body, MALFORMED),
        "too long": ({**good, "X-Hub-Signature-256": f"sha256={digest}00"}, body, MALFORMED),
        "the secret itself": ({**good, "X-Hub-Signature-256": f"sha256={secret}"}, body, MALFORMED),
    }
    for case, (headers, sent, error) in cases.items():
        response = await bot.post(headers, sent, path=HOOK)
        assert response.status_code == 401, (case, response.text)
        assert response.json() == {"error": error}, case
        assert secret not in response.text, case
    await nothing_started(bot)


async def test_authenticated_deliveries_no_trigger_matches_are_ignored_with_the_reason(bot: Bot) -> None:
    secret = await hooked(bot)
    push = json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",
            "repository": repository(),
            "pusher": {"name": "octocat", "email": "octocat@example.com"},
            "sender": USER,
            "commits": [],
        },
        separators=(",", ":"),
    ).encode()
    cases = {
        "issues closed": (
            issues_payload("closed"),
            "issues",
            "triggers[0]: issues.closed is not one of its events (issues.opened)",
        ),
        "a push": (push, "push", "triggers[0]: push is not one of its events (issues.opened)"),
        "another repository": (
            issues_payload(repo="acme/web"),
            "issues",
            "triggers[0]: repository acme/web is not one of its repos (acme/api)",
        ),
    }
    for case, (body, event, reason) in cases.items():
        response = await bot.post(github_headers(secret, body, event=event), body, path=HOOK)
        assert response.status_code == 202, (case, response.text)
        assert response.json() == {"ignored": reason}, case
        # Filters apply only once the sender is authenticated.
        forged = await bot.post(github_headers("not-the-secret", body, event=event), body, path=HOOK)
        assert (forged.status_code, forged.json()) == (401, {"error": MISMATCH}), case
    await nothing_started(bot)


async def test_a_redelivery_returns_the_first_run_and_starts_nothing(bot: Bot) -> None:
    secret = await hooked(bot)
    delivery = str(uuid.uuid4())
    body = issues_payload()
    first = await bot.post(github_headers(secret, body, delivery=delivery), body, path=HOOK)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    await bot.settle()
    # GitHub's "Redeliver" button: the same delivery id and payload, sent again later.
    again = issues_payload()
    redelivered = await bot.post(github_headers(secret, again, delivery=delivery), again, path=HOOK)
    assert redelivered.status_code == 200, redelivered.text
    assert redelivered.json() == {"run_id": run_id, "duplicate": True}
    assert "Idempotent-Replayed" not in redelivered.headers
    await bot.settle()
    assert [r.id for r in await run_rows(bot)] == [run_id]


async def test_the_same_payload_under_a_new_delivery_id_is_a_new_run(bot: Bot) -> None:
    secret = await hooked(bot)
    body = issues_payload()
    answers = [await bot.post(github_headers(secret, body), body, path=HOOK) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    await bot.settle()
    ids = {a.json()["run_id"] for a in answers}
    assert len(ids) == 2
    assert {r.id for r in await run_rows(bot)} == ids


@pytest.mark.both_databases  # the delivery claim is one INSERT on the shared database
async def test_a_redelivery_to_another_bot_process_returns_the_first_run(two_bots: tuple[Bot, Bot]) -> None:
    one, other = two_bots
    secret = await hooked(one)
    delivery = str(uuid.uuid4())
    body = issues_payload()
    first = await one.post(github_headers(secret, body, delivery=delivery), body, path=HOOK)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    again = issues_payload()
    redelivered = await other.post(github_headers(secret, again, delivery=delivery), again, path=HOOK)
    assert redelivered.status_code == 200, redelivered.text
    assert redelivered.json() == {"run_id": run_id, "duplicate": True}
    await one.settle()
    await other.settle()
    assert other.runtime.running == {}
    (record,) = await run_rows(one)
    assert (record.id, record.status, record.triggered_by) == (run_id, "completed", f"github:{delivery}")


async def test_a_signed_ping_is_answered_with_the_zen_and_the_events_and_runs_nothing(bot: Bot) -> None:
    secret = await hooked(bot)
    body = ping_payload()
    response = await bot.post(github_headers(secret, body, event="ping"), body, path=HOOK)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "zen": "Keep it logically awesome.", "events": ["issues.opened"]}
    forged = await bot.post(github_headers("not-the-secret", body, event="ping"), body, path=HOOK)
    assert (forged.status_code, forged.json()) == (401, {"error": MISMATCH})
    await nothing_started(bot)


async def test_an_unknown_workflow_answers_exactly_what_a_wrong_signature_does(bot: Bot) -> None:
    secret = await hooked(bot)
    await bot.apply({**GREET_GITHUB, "name": "greet-unhooked"})  # a workflow without a webhook secret
    body, ping = issues_payload(), ping_payload()
    guessed = github_headers("a-guessed-secret", body)
    requests: dict[str, tuple[dict[str, str], bytes]] = {
        "signed with a guess": (guessed, body),
        "unsigned": ({k: v for k, v in guessed.items() if k != "X-Hub-Signature-256"}, body),
        "malformed": ({**guessed, "X-Hub-Signature-256": "sha256=xyz"}, body),
        "a ping signed with a guess": (github_headers("a-guessed-secret", ping, event="ping"), ping),
    }
    for case, (headers, sent) in requests.items():
        answers = {
            name: await bot.post(headers, sent, path=f"/hooks/{name}")
            for name in (WORKFLOW, "no-such-workflow", "greet-unhooked", "No.Such_Name")
        }
        known = answers.pop(WORKFLOW)
        assert known.status_code == 401, (case, known.text)
        for name, answer in answers.items():
            assert (answer.status_code, answer.json()) == (401, known.json()), (case, name)
            assert name not in answer.text, (case, name)
    # Another workflow's secret opens nothing else, and says no more than a guess.
    borrowed = github_headers(secret, body)
    for name in ("no-such-workflow", "greet-unhooked"):
        answer = await bot.post(borrowed, body, path=f"/hooks/{name}")
        assert (answer.status_code, answer.json()) == (401, {"error": MISMATCH}), name
        assert secret not in answer.text
    await nothing_started(bot)


async def test_inputs_the_payload_does_not_fit_get_400_naming_each_input_and_run_nothing(bot: Bot) -> None:
    definition = {
        **GREET_GITHUB,
        "name": "greet-assignee",
        "inputs": {**GREET_GITHUB["inputs"], "assignee": {"type": "string"}},
        "triggers": [
            {
                "github": {"events": ["issues.opened"]},
                "inputs": {
                    "name": "{{ event.issue.milestone }}",  # null on a new issue: the required input is missing
                    "times": "{{ event.issue.title }}",  # text for an integer
                    "assignee": "{{ event.issue.assignee.login }}",  # null has no attribute: the template fails
                },
            }
        ],
    }
    secret = await hooked(bot, definition)
    body = issues_payload()
    response = await bot.post(github_headers(secret, body), body, path="/hooks/greet-assignee")
    assert response.status_code == 400, response.text
    answer = response.json()
    assert set(answer) == {"error", "problems"}
    problems = {p["field"]: p["message"] for p in answer["problems"]}
    assert set(problems) == {"inputs.name", "inputs.times", "inputs.assignee"}, problems
    assert answer["problems"][0]["field"] == "inputs.assignee"  # what failed to render comes first
    assert "(from triggers[0].inputs.assignee)" in problems["inputs.assignee"]
    assert "login" in problems["inputs.assignee"]
    assert problems["inputs.name"] == "required string input is missing"
    assert "expected integer" in problems["inputs.times"]
    assert answer["error"].startswith("invalid inputs for workflow 'greet-assignee': ")
    assert all(field in answer["error"] for field in problems)
    assert secret not in response.text
    await nothing_started(bot)


async def test_an_idempotency_key_on_a_redelivery_stays_free_and_then_answers_its_own_run(bot: Bot) -> None:
    secret = await hooked(bot)
    delivery = str(uuid.uuid4())
    body = issues_payload()
    first = await bot.post(github_headers(secret, body, delivery=delivery), body, path=HOOK)
    assert first.status_code == 202, first.text
    # A proxy adds a key to the redelivery: the delivery id answers it, the key must not stay bound.
    redelivered = await bot.post(
        {**github_headers(secret, body, delivery=delivery), "Idempotency-Key": "gh-1"}, body, path=HOOK
    )
    assert redelivered.status_code == 200, redelivered.text
    assert redelivered.json() == {"run_id": first.json()["run_id"], "duplicate": True}
    assert "Idempotent-Replayed" not in redelivered.headers
    # A new delivery with that key runs, and the key then answers for it, whatever the delivery id.
    second = await bot.post({**github_headers(secret, body), "Idempotency-Key": "gh-1"}, body, path=HOOK)
    assert second.status_code == 202, second.text
    replayed = await bot.post({**github_headers(secret, body), "Idempotency-Key": "gh-1"}, body, path=HOOK)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"run_id": second.json()["run_id"], "duplicate": True}
    assert replayed.headers["Idempotent-Replayed"] == "true"
    other = issues_payload(user={**USER, "login": "hubot"})
    conflict = await bot.post({**github_headers(secret, other), "Idempotency-Key": "gh-1"}, other, path=HOOK)
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["run_id"] == second.json()["run_id"]
    await bot.settle()
    assert {r.id for r in await run_rows(bot)} == {first.json()["run_id"], second.json()["run_id"]}
