"""Who may read what through the Slack bot, forged inputs-form submissions, refused cancels
and OAuth states used at another provider's callback (issue 11 items 10, 11 and 18).

Everything goes through the real bot server over signed HTTP with the fake Slack; the tests
assert on what Slack received (ephemeral answers, posts, modal acks) and on audit rows.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from storage.audit import AuditEntry, entries
from storage.runs import RunRecord, RunStore
from tests.bot.test_connect import Provider, authorize, command, link_of
from tests.bot.test_connect import github as github
from tests.bot.test_connect import provider_http as provider_http
from tests.fakes.slack import block_action, interaction, slash_command, view_submission
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until

#: Fails with its input in the error: what a reader of the run would learn.
PAYROLL: dict[str, Any] = {
    "name": "payroll",
    "inputs": {"salary": {"type": "string", "required": True}},
    "permissions": {"run": ["U1"]},
    "nodes": [{"id": "pay", "type": "core.fail", "params": {"message": "salary {{ inputs.salary }} rejected"}}],
}
HELLO: dict[str, Any] = {
    "name": "hello",
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi"}}],
}
SLOW: dict[str, Any] = {
    "name": "slow-payroll",
    "permissions": {"run": ["U1"]},
    "nodes": [{"id": "nap", "type": "core.wait", "params": {"seconds": 60}}],
}
FORM: dict[str, Any] = {
    "name": "guarded",
    "inputs": {"name": {"type": "string", "required": True}},
    "permissions": {"run": ["U1"]},
    "nodes": [{"id": "hello", "type": "text.template", "params": {"template": "Hello {{ inputs.name }}"}}],
}

_names = itertools.count()


async def ask(bot: Bot, text: str, *, user: str, channel: str = "C1") -> str:
    """Type ``/flow text`` as ``user``; the (single, ephemeral) answer's text."""
    name = f"answer{next(_names)}"
    headers, body = slash_command(text, user=user, channel=channel, response_url=bot.slack.response_url(name))
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: bot.slack.responses(name), message=f"the answer to {text!r}")
    (answer,) = bot.slack.responses(name)
    assert answer["response_type"] == "ephemeral", answer
    return str(answer["text"])


async def click(bot: Bot, action_id: str, value: str, *, user: str) -> str:
    """Click a run button as ``user``; the ephemeral answer's text."""
    name = f"click{next(_names)}"
    payload = block_action(action_id, value, user=user, response_url=bot.slack.response_url(name))
    headers, body = interaction(payload)
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: bot.slack.responses(name), message=f"the answer to the {action_id} click")
    (answer,) = bot.slack.responses(name)
    assert answer["response_type"] == "ephemeral", answer
    return str(answer["text"])


async def run_to_end(bot: Bot, text: str, *, user: str, channel: str) -> RunRecord:
    headers, body = slash_command(text, user=user, channel=channel)
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: bot.slack.channel_messages(channel), message=f"the message of {text!r}")
    await bot.settle()
    return (await RunStore(bot.engine).list(limit=1))[0]


async def audit_rows(bot: Bot, action: str) -> list[AuditEntry]:
    return [e for e in await entries(bot.engine, limit=500) if e.action == action]


async def test_a_run_the_user_may_not_read_answers_like_a_run_that_does_not_exist(bot: Bot) -> None:
    await bot.apply(PAYROLL)
    hidden = await run_to_end(bot, "run payroll salary=987654", user="U1", channel="CP")
    assert hidden.status == "failed"
    fake = "a1b2c3d4e5f6"

    for verb in ("status {}", "logs {}", "logs {} pay"):
        seen = await ask(bot, verb.format(hidden.id), user="U9")
        unknown = await ask(bot, verb.format(fake), user="U9")
        assert seen.replace(hidden.id, "RUN") == unknown.replace(fake, "RUN"), (seen, unknown)
    answer = await ask(bot, f"status {hidden.id}", user="U9")
    assert answer == f"No run `{hidden.id}` that you can see. `/flow status last` shows your latest."
    for leaked in ("987654", "payroll", "U1", "failed"):
        assert leaked not in answer

    refused = await audit_rows(bot, "refused-read")
    assert {(e.actor, e.target) for e in refused} == {("slack:U9", "payroll"), ("slack:U9", fake)}
    assert all(e.detail["run_id"] in (hidden.id, fake) for e in refused)

    for reader in ("U1", "UADMIN"):  # the runner and an admin still see everything
        shown = await ask(bot, f"status {hidden.id}", user=reader)
        assert "*payroll*" in shown and "salary 987654 rejected" in shown


async def test_status_last_is_the_latest_run_the_user_may_read(bot: Bot) -> None:
    await bot.apply(PAYROLL)
    await bot.apply(HELLO)
    mine = await run_to_end(bot, "run hello", user="U9", channel="CH")
    await run_to_end(bot, "run payroll salary=987654", user="U1", channel="CP")  # the newest run

    latest = await ask(bot, "status", user="U9")
    assert f"Run `{mine.id}` of *hello*" in latest and "987654" not in latest
    assert "*payroll*" in await ask(bot, "status last", user="U1")
    assert await ask(bot, "status last", user="U8") == latest  # hello is everyone's


async def test_list_describe_and_run_show_only_readable_workflows_and_ask_slack_once_per_group(bot: Bot) -> None:
    bot.slack.groups["SOPS"] = ["U5"]
    bot.slack.channels["CAUDIT"] = ["U6"]
    await bot.apply(HELLO)
    await bot.apply(PAYROLL)
    for n in range(12):
        await bot.apply({**HELLO, "name": f"ops-{n:02d}", "permissions": {"run": ["SOPS", "CAUDIT"]}})
    await bot.apply({**HELLO, "name": "ledger", "permissions": {"run": ["U1"], "read": ["SOPS"]}})
    await bot.apply({**HELLO, "name": "deploy", "permissions": {"run": ["U1"], "approve": ["U7"]}})
    await bot.apply(
        {
            **HELLO,
            "name": "gate",
            "permissions": {"run": ["U1"]},
            "nodes": [{"id": "ok", "type": "core.approval", "params": {"message": "?", "approvers": ["U4"]}}],
        }
    )
    await run_to_end(bot, "run payroll salary=987654", user="U1", channel="CP")

    def shown(text: str) -> list[str]:
        return [line.split("*")[1] for line in text.splitlines()]

    before = len(bot.slack.calls("usergroups.users.list"))
    member = await ask(bot, "list", user="U5")
    assert shown(member) == ["hello", "ledger", *[f"ops-{n:02d}" for n in range(12)]]
    assert len(bot.slack.calls("usergroups.users.list")) - before == 1  # membership cached per request
    assert shown(await ask(bot, "list", user="U6")) == ["hello", *[f"ops-{n:02d}" for n in range(12)]]
    assert shown(await ask(bot, "list", user="U7")) == ["deploy", "hello"]  # approvers read
    assert shown(await ask(bot, "list", user="U4")) == ["gate", "hello"]  # a node's approvers too
    outsider = await ask(bot, "list", user="U9")
    assert shown(outsider) == ["hello"] and "payroll" not in outsider
    runner = (await ask(bot, "list", user="U1")).splitlines()
    assert "last run failed" in next(line for line in runner if "*payroll*" in line)

    unknown = await ask(bot, "describe no-such-thing", user="U9")
    assert unknown == "No workflow named `no-such-thing`. Known: `hello`"
    assert (await ask(bot, "describe payroll", user="U9")) == unknown.replace("no-such-thing", "payroll")
    assert (await ask(bot, "run payroll salary=1", user="U9")) == unknown.replace("no-such-thing", "payroll")
    described = await ask(bot, "describe ledger", user="U5")
    assert "*May run:* <@U1>" in described and "*May read:* <!subteam^SOPS>" in described
    assert (await ask(bot, "run ledger", user="U5")).startswith("You may not run `ledger`; ask one of: <@U1>")
    assert bot.slack.calls("chat.postMessage")[-1].args["channel"] == "CP"  # no run started since
    assert {e.target for e in await audit_rows(bot, "refused-read")} == {"payroll"}
    assert [e.target for e in await audit_rows(bot, "refused-run")] == ["ledger", "payroll"]


def form_submission(meta: dict[str, Any] | str, *, user: str, name: str = "Mallory") -> tuple[dict[str, str], bytes]:
    values = {"name": {"value": {"type": "plain_text_input", "value": name}}}
    metadata = meta if isinstance(meta, str) else json.dumps(meta)
    return interaction(view_submission("run_inputs", values, private_metadata=metadata, user=user))


def modal_text(ack: dict[str, Any]) -> str:
    assert ack["response_action"] == "update", ack
    return "\n".join(b["text"]["text"] for b in ack["view"]["blocks"] if b.get("type") == "section")


async def test_a_forged_or_stale_inputs_form_starts_nothing(bot: Bot) -> None:
    await bot.apply(FORM)
    meta = {"workflow": "guarded", "version": 1, "channel": "C1", "given": {}}

    forged = await bot.post(*form_submission(meta, user="U9"))  # U9 may not even read `guarded`
    assert forged.status_code == 200
    assert modal_text(forged.json()) == "No workflow named `guarded` that you can see."

    # U1 opens the form honestly; while it is open U1 loses the right to run it
    headers, body = slash_command("run guarded", user="U1", channel="CF", trigger_id="t-1")
    await bot.post(headers, body)
    await apoll_until(lambda: bot.slack.calls("views.open"), message="the inputs form")
    honest_meta = bot.slack.calls("views.open")[0].args["view"]["private_metadata"]
    await bot.apply({**FORM, "permissions": {"run": ["U2"], "read": ["U1"]}})
    stale = await bot.post(*form_submission(honest_meta, user="U1"))
    assert modal_text(stale.json()).startswith("You may not run `guarded`; ask one of: <@U2>")

    # U2 may run it, but not a version that was never stored, nor an archived workflow
    missing = await bot.post(*form_submission({**meta, "version": 7}, user="U2"))
    assert "`guarded` v7 is no longer stored" in modal_text(missing.json())
    from storage.workflows import WorkflowStore

    await WorkflowStore(bot.engine).archive("guarded", actor="test")
    archived = await bot.post(*form_submission({**meta, "version": 2}, user="U2"))
    assert "`guarded` is archived" in modal_text(archived.json())

    await asyncio.sleep(0.3)  # a run would have posted by now (it is started before the ack)
    await bot.settle()
    assert bot.slack.calls("chat.postMessage") == [] and bot.runtime.running == {}
    assert await RunStore(bot.engine).list() == []
    refused = await audit_rows(bot, "refused-run")
    assert sorted((e.actor, e.target, e.detail.get("via")) for e in refused) == [
        ("slack:U1", "guarded", "inputs-form"),
        ("slack:U2", "guarded", "inputs-form"),
        ("slack:U2", "guarded", "inputs-form"),
        ("slack:U9", "guarded", "inputs-form"),
    ]


async def test_malformed_form_metadata_gets_a_clear_answer_not_a_traceback(bot: Bot) -> None:
    await bot.apply(FORM)
    good = {"workflow": "guarded", "version": 1, "channel": "C1", "given": {}}
    cases: dict[str, str] = {
        "not json": "not valid JSON",
        "[" * 5000: "more than",  # Slack allows 3000 characters
        "[" * 200 + "]" * 200: "nests deeper",
        json.dumps([1, 2]): "workflow",
        json.dumps({**good, "workflow": 5}): "workflow",
        json.dumps({**good, "version": "1; drop"}): "version",
        json.dumps({**good, "channel": "<!channel>"}): "channel",
        json.dumps({**good, "given": {"name": 5}}): "given.name",
        json.dumps({**good, "given": {"name": {"nested": True}}}): "nests deeper",
        json.dumps({"workflow": "guarded"}): "version",
        json.dumps({**good, "extra": 1}): "extra",
    }
    for metadata, expected in cases.items():
        response = await bot.post(*form_submission(metadata, user="U1"))
        assert response.status_code == 200, (metadata[:40], response.text)
        text = modal_text(response.json())
        assert text.startswith("This form cannot be used") and expected in text, (metadata[:40], text)
    await asyncio.sleep(0.3)  # a run would have posted by now (it is started before the ack)
    assert bot.slack.calls("chat.postMessage") == [] and await RunStore(bot.engine).list() == []
    assert len(await audit_rows(bot, "refused-run")) == len(cases)

    ok = await bot.post(*form_submission(good, user="U1", name="Ada"))  # the honest form still works
    assert ok.status_code == 200 and ok.text == ""
    await apoll_until(lambda: bot.slack.channel_messages("C1"), message="the run message")
    await bot.settle()
    assert (await RunStore(bot.engine).list())[0].inputs == {"name": "Ada"}


async def test_a_refused_cancel_or_retry_says_the_same_whether_the_run_runs_ended_or_never_was(bot: Bot) -> None:
    await bot.apply(PAYROLL)
    await bot.apply(SLOW)
    ended = await run_to_end(bot, "run payroll salary=1", user="U1", channel="CP")
    headers, body = slash_command("run slow-payroll", user="U1", channel="CS")
    await bot.post(headers, body)
    await apoll_until(lambda: bot.runtime.running, message="the slow run")
    running = next(iter(bot.runtime.running))
    never = "0123456789ab"

    async def both_recorded() -> bool:  # its record is written once its flow run starts
        return len(await RunStore(bot.engine).list()) == 2

    await apoll_until(both_recorded, timeout=60, message="the slow run's record")

    def same(answers: dict[str, str]) -> set[str]:
        return {text.replace(run, "RUN") for run, text in answers.items()}

    for verb, action in (("cancel", "cancel_run"), ("retry", "retry_run")):
        typed = {run: await ask(bot, f"{verb} {run}", user="U9") for run in (running, ended.id, never)}
        clicked = {run: await click(bot, action, run, user="U9") for run in (running, ended.id, never)}
        assert same(typed) | same(clicked) == {"No run `RUN` that you can see."}, (typed, clicked)
    assert running in bot.runtime.running
    assert len(await RunStore(bot.engine).list()) == 2  # nothing retried
    assert {e.target for e in await audit_rows(bot, "refused-cancel")} == {"payroll", "slow-payroll", never}
    assert {e.target for e in await audit_rows(bot, "refused-retry")} == {"payroll", "slow-payroll", never}

    # someone who may run the workflow learns the run's state
    assert await ask(bot, f"cancel {ended.id}", user="U1") == f"Run `{ended.id}` is not running here."
    assert await ask(bot, f"cancel {running}", user="U1") == f"Cancelled run `{running}`."


async def test_an_oauth_state_is_consumed_only_at_the_callback_of_its_provider(bot: Bot, github: Provider) -> None:
    link = link_of(await command(bot, "connect github"))
    callback = await authorize(bot, link)  # .../oauth/github/callback?code=...&state=...
    elsewhere = await bot.http.get(callback.replace("/oauth/github/", "/oauth/gdrive/"))
    assert elsewhere.status_code == 400 and "expired" in elsewhere.text
    page = await bot.http.get(callback)  # the state still works where it was made for
    assert page.status_code == 200 and "GitHub is connected" in page.text
