"""The HTTP API over real HTTP on the bot's server: tokens, scopes, runs, idempotency, OpenAPI."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from storage.audit import entries
from storage.runs import RunStore
from tests.bot.test_commands import GREET
from tests.bot.test_run_management import flaky
from tests.fakes.http import FakeHTTP, Reply
from tests.helpers.bot_server import Bot, serve_runtime
from tests.helpers.polling import apoll_until

API = "/api/v1"
SLOW = {
    "name": "slow",
    "nodes": [{"id": "pause", "type": "core.wait", "params": {"seconds": 60}}],
}
SQUARE = {
    "name": "square",
    "inputs": {"n": {"type": "integer", "required": True}},
    "outputs": {"square": "{{ nodes.calc.output.text }}"},
    "nodes": [{"id": "calc", "type": "text.template", "params": {"template": "{{ inputs.n * inputs.n }}"}}],
}


async def token(bot: Bot, name: str, scope: str, **options: Any) -> str:
    _, secret = await bot.runtime.core.tokens.create(name, scope=scope, **options)
    return secret


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def call(bot: Bot, method: str, path: str, secret: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {**(auth(secret) if secret else {}), **kwargs.pop("headers", {})}
    return await bot.http.request(method, bot.url + API + path, headers=headers, **kwargs)


async def refusals(bot: Bot) -> list[dict[str, Any]]:
    return [e.to_dict() for e in await entries(bot.engine, limit=100) if e.action == "refused-api"]


async def test_a_run_token_starts_a_run_waits_for_it_and_reads_its_result(bot: Bot) -> None:
    await bot.apply(SQUARE)
    secret = await token(bot, "ci", "run")

    started = await call(bot, "POST", "/workflows/square/runs", secret, json={"inputs": {"n": 7}, "wait": 60})
    assert started.status_code == 201, started.text
    run = started.json()
    assert (run["status"], run["outputs"], run["trigger"], run["triggered_by"]) == (
        "completed",
        {"square": "49"},
        "api",
        "api:ci",
    )
    assert run["nodes"]["calc"]["status"] == "completed"
    assert re.fullmatch(r"[0-9a-f]{32}", started.headers["x-request-id"])

    read = await call(bot, "GET", f"/runs/{run['run_id']}", secret)
    assert read.status_code == 200
    assert (read.json()["status"], read.json()["outputs"]) == ("completed", {"square": "49"})
    listed = await call(bot, "GET", "/runs", secret, params={"workflow": "square", "status": "completed"})
    assert [r["run_id"] for r in listed.json()["runs"]] == [run["run_id"]]

    # Without `wait` the answer comes at once; the run goes on and is read later.
    quick = await call(bot, "POST", "/workflows/square/runs", secret, json={"inputs": {"n": 3}})
    assert quick.status_code == 201 and quick.json()["status"] in ("queued", "running", "completed")
    await bot.settle()
    later = await call(bot, "GET", f"/runs/{quick.json()['run_id']}", secret)
    assert later.json()["outputs"] == {"square": "9"}


async def test_tokens_are_refused_by_scope_expiry_and_revocation_and_every_refusal_is_audited(bot: Bot) -> None:
    await bot.apply(SQUARE)
    reader = await token(bot, "reader", "read")

    assert (await call(bot, "GET", "/workflows", reader)).json()["workflows"][0]["name"] == "square"
    detail = (await call(bot, "GET", "/workflows/square", reader)).json()
    assert (detail["version"], detail["inputs"]["n"]["type"], detail["outputs"]) == (1, "integer", ["square"])
    refused = await call(bot, "POST", "/workflows/square/runs", reader, json={"inputs": {"n": 2}})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "scope read" in refused.json()["error"]["message"]

    missing = await call(bot, "GET", "/workflows")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = await call(bot, "GET", "/workflows", "sbt_" + "x" * 43)
    assert (wrong.status_code, wrong.json()["error"]["message"]) == (401, "unknown API token")

    expired = await token(bot, "old", "admin", expires_in=timedelta(seconds=1))
    await apoll_until(lambda: _refused(bot, expired), message="the token to expire", timeout=10, interval=0.25)
    answer = await call(bot, "GET", "/workflows", expired)
    assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]

    revoked = await token(bot, "gone", "admin")
    assert (await call(bot, "GET", "/workflows", revoked)).status_code == 200
    await bot.runtime.core.tokens.revoke("gone")
    answer = await call(bot, "GET", "/workflows", revoked)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]

    audited = await refusals(bot)
    assert {(e["actor"], e["detail"]["status"]) for e in audited} >= {
        ("api:reader", 403),
        ("api:?", 401),
        ("api:old", 401),
        ("api:gone", 401),
    }
    presented = (reader, "sbt_" + "x" * 43, expired, revoked)
    assert not [e for e in audited if any(secret[4:] in str(e) for secret in presented)]  # never a token
    assert not await RunStore(bot.engine).list(limit=5)


async def _refused(bot: Bot, secret: str) -> bool:
    return (await call(bot, "GET", "/workflows", secret)).status_code == 401


async def test_a_token_limited_to_workflows_sees_and_runs_only_those(bot: Bot) -> None:
    await bot.apply(SQUARE)
    await bot.apply(GREET)
    secret = await token(bot, "squares", "run", workflows=["square"])

    assert [w["name"] for w in (await call(bot, "GET", "/workflows", secret)).json()["workflows"]] == ["square"]
    hidden = await call(bot, "GET", "/workflows/greet", secret)
    unknown = await call(bot, "GET", "/workflows/nope", secret)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["message"].replace("greet", "X") == unknown.json()["error"]["message"].replace(
        "nope", "X"
    )
    started = await call(bot, "POST", "/workflows/greet/runs", secret, json={"inputs": {"name": "Ada"}})
    assert started.status_code == 404


async def test_an_owned_token_acts_as_its_owner_for_permissions(bot: Bot) -> None:
    await bot.apply({**SQUARE, "permissions": {"run": ["U-OPS"], "read": ["U-OPS", "U-SEE"]}})
    viewer = await token(bot, "viewer", "run", owner="USEE")
    ops = await token(bot, "ops", "run", owner="UOPS")
    await bot.apply({**SQUARE, "permissions": {"run": ["UOPS"], "read": ["UOPS", "USEE"]}})

    assert (await call(bot, "GET", "/workflows/square", viewer)).status_code == 200
    refused = await call(bot, "POST", "/workflows/square/runs", viewer, json={"inputs": {"n": 2}})
    assert refused.status_code == 403 and "USEE may not run" in refused.json()["error"]["message"]
    started = await call(bot, "POST", "/workflows/square/runs", ops, json={"inputs": {"n": 2}, "wait": 60})
    assert started.status_code == 201, started.text
    assert (started.json()["status"], started.json()["triggered_by"]) == ("completed", "slack:UOPS")


async def test_bad_bodies_and_inputs_name_every_problem(bot: Bot) -> None:
    await bot.apply(GREET)
    secret = await token(bot, "ci", "run")

    invalid = await call(bot, "POST", "/workflows/greet/runs", secret, json={"inputs": {"times": "3", "extra": 1}})
    assert invalid.status_code == 422
    fields = {p["field"] for p in invalid.json()["error"]["problems"]}
    assert {"inputs.name", "inputs.times", "inputs.extra"} <= fields, invalid.json()
    shape = await call(bot, "POST", "/workflows/greet/runs", secret, json={"input": {}, "wait": 1000})
    assert shape.status_code == 422
    assert {p["field"] for p in shape.json()["error"]["problems"]} == {"input", "wait"}
    broken = await call(bot, "POST", "/workflows/greet/runs", secret, content=b'{"inputs": {"name": ')
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "bad_request"
    deep = await call(bot, "POST", "/workflows/greet/runs", secret, content=b"[" * 50_000 + b"]" * 50_000)
    assert deep.status_code == 400
    huge = await call(bot, "POST", "/workflows/greet/runs", secret, content=b" " * (2 * 1024 * 1024))
    assert huge.status_code == 413
    limit = await call(bot, "GET", "/runs", secret, params={"limit": 0, "status": "nope"})
    assert limit.status_code == 422
    assert not await RunStore(bot.engine).list(limit=5)


async def test_the_same_idempotency_key_gives_the_same_run_across_bot_processes(
    two_bots: tuple[Bot, Bot],
) -> None:
    first, second = two_bots
    await first.apply(SQUARE)
    secret = await token(first, "ci", "run")
    body = {"inputs": {"n": 4}}
    key = {"Idempotency-Key": "order-1234"}

    answers = await asyncio.gather(
        *(call(bot, "POST", "/workflows/square/runs", secret, json=body, headers=key) for bot in (first, second, first))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 201], [a.text for a in answers]
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert [a.headers.get("idempotent-replayed") for a in answers if a.status_code == 200] == ["true", "true"]

    other = await call(second, "POST", "/workflows/square/runs", secret, json={"inputs": {"n": 5}}, headers=key)
    assert other.status_code == 409
    assert other.json()["error"]["run_id"] == answers[0].json()["run_id"]
    fresh = await call(second, "POST", "/workflows/square/runs", secret, json=body, headers={"Idempotency-Key": "2"})
    assert fresh.status_code == 201 and fresh.json()["run_id"] != answers[0].json()["run_id"]
    await first.settle()
    await second.settle()
    assert len(await RunStore(first.engine).list(workflow="square", limit=10)) == 2


async def test_a_run_is_cancelled_and_a_failed_one_retried(bot: Bot, fake_http: FakeHTTP, monkeypatch: Any) -> None:
    monkeypatch.setattr(bot.runtime.settings, "http_allow_hosts", "127.0.0.1")
    await bot.apply(SLOW)
    secret = await token(bot, "ops", "run")
    started = (await call(bot, "POST", "/workflows/slow/runs", secret)).json()

    async def running() -> bool:
        answer = await call(bot, "GET", f"/runs/{started['run_id']}", secret)
        return answer.status_code == 200 and answer.json()["status"] == "running"

    await apoll_until(running, message="the slow run to be recorded running", interval=0.2)
    cancelled = await call(bot, "POST", f"/runs/{started['run_id']}/cancel", secret)
    assert cancelled.status_code == 202, cancelled.text
    await bot.settle()
    record = await RunStore(bot.engine).get(started["run_id"])
    assert record.status == "cancelled"
    again = await call(bot, "POST", f"/runs/{started['run_id']}/cancel", secret)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_running")

    fake_http.script("GET", "/flaky", Reply(404, "not yet"), Reply(200, {"ok": True}))
    await bot.apply(flaky(fake_http.url("/flaky")))
    failed = (await call(bot, "POST", "/workflows/flaky/runs", secret, json={"wait": 60})).json()
    assert failed["status"] == "failed"
    retried = await call(bot, "POST", f"/runs/{failed['run_id']}/retry", secret)
    assert retried.status_code == 201, retried.text
    await bot.settle()
    resumed = (await call(bot, "GET", f"/runs/{retried.json()['run_id']}", secret)).json()
    assert (resumed["status"], resumed["resumed_from"]) == ("completed", failed["run_id"])
    reader = await token(bot, "reader", "read")
    assert (await call(bot, "POST", f"/runs/{failed['run_id']}/retry", reader)).status_code == 403


async def test_each_token_is_rate_limited_with_retry_after(bot: Bot) -> None:
    settings = bot.runtime.settings.model_copy(update={"api_rate_limit": 3})
    async with serve_runtime(settings, bot.slack, bot.http) as limited:
        secret = await token(limited, "busy", "read")
        other = await token(limited, "calm", "read")
        answers = [await call(limited, "GET", "/workflows", secret) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert answers[-1].json()["error"]["code"] == "rate_limited"
        assert (await call(limited, "GET", "/workflows", other)).status_code == 200


async def test_every_answer_has_a_request_id_and_errors_one_shape(bot: Bot) -> None:
    secret = await token(bot, "ci", "read")
    mine = await call(bot, "GET", "/workflows", secret, headers={"X-Request-Id": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42"
    hostile = await call(bot, "GET", "/workflows", secret, headers={"X-Request-Id": "a b\tc" * 30})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])
    for answer in (
        await call(bot, "GET", "/nowhere", secret),
        await call(bot, "DELETE", "/workflows", secret),
        await call(bot, "GET", "/runs/nope", secret),
    ):
        error = answer.json()["error"]
        assert set(error) >= {"code", "message", "request_id"}, answer.text
        assert error["request_id"] == answer.headers["x-request-id"]


async def test_the_openapi_document_lists_every_route_and_a_client_built_from_it_works(bot: Bot) -> None:
    await bot.apply(SQUARE)
    secret = await token(bot, "ci", "run")
    document = (await bot.http.get(bot.url + API + "/openapi.json")).json()
    operations = {
        op["operationId"]: (method.upper(), path)
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    }
    assert set(operations) == {
        "list_workflows",
        "get_workflow",
        "start_run",
        "list_runs",
        "get_run",
        "cancel_run",
        "retry_run",
    }
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    server = document.get("servers", [{"url": API}])[0]["url"]

    async def invoke(operation: str, body: Any = None, **path: str) -> httpx.Response:
        """A client knowing nothing but the document: operation id -> method and path."""
        method, template = operations[operation]
        return await bot.http.request(
            method, bot.url + server + template.format(**path), json=body, headers=auth(secret)
        )

    started = await invoke("start_run", {"inputs": {"n": 12}, "wait": 60}, name="square")
    assert started.status_code == 201, started.text
    assert (await invoke("get_run", run_id=started.json()["run_id"])).json()["outputs"] == {"square": "144"}
    assert [w["name"] for w in (await invoke("list_workflows")).json()["workflows"]] == ["square"]

    page = await bot.http.get(bot.url + API + "/docs")
    assert page.status_code == 200 and "<script" not in page.text
    assert all(operation in page.text for operation in operations)


@pytest.mark.parametrize("presented", ["", "Basic abc", "Bearer", "Bearer sbt_short", "Bearer " + "x" * 5000])
async def test_malformed_authorization_is_401(bot: Bot, presented: str) -> None:
    answer = await call(bot, "GET", "/workflows", headers={"Authorization": presented} if presented else {})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
