"""Declared webhook signature schemes over real HTTP, each signed here as its provider documents.

A workflow's ``triggers: [{webhook: {signature: ...}}]`` (:class:`flows.triggers.Signature`)
replaces Switchboard's own scheme on ``POST /hooks/NAME``. Every signature below is computed in
the test with :mod:`hmac`, :mod:`hashlib` and :mod:`base64` from the provider's documentation,
never with switchboard's signing code:

* Stripe: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` (one ``v1``
  per active secret while a secret is rolled);
* Slack: ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>`` with
  ``X-Slack-Request-Timestamp``;
* HubSpot v3: ``X-HubSpot-Signature-v3: base64(HMAC-SHA256(secret, method + url + body +
  timestamp))``, ``X-HubSpot-Request-Timestamp`` in milliseconds, ``url`` the one HubSpot was given;
* a body-only SHA-1 scheme behind a prefix (``X-Hub-Signature: sha1=<hex>``).

Whatever is refused answers 401 and starts nothing; a signed request is one run (409 for a copy),
and a delivery id seen before is one run (200 with the first run's id).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from flows.plan import build_plan
from storage.runs import RunStore
from tests.bot.test_commands import GREET
from tests.bot.test_webhooks import add_secret, nothing_started, run_rows, signed
from tests.helpers.bot_server import Bot

PUBLIC_URL = "https://hooks.example.com"
JSON = {"Content-Type": "application/json"}

STRIPE = {"header": "Stripe-Signature", "pairs": {"signature": "v1", "timestamp": "t"}, "tolerance": 120}
SLACK = {
    "header": "X-Slack-Signature",
    "prefix": "v0=",
    "timestamp_header": "X-Slack-Request-Timestamp",
    "signed": "v0:{timestamp}:{body}",
}
HUBSPOT = {
    "header": "X-HubSpot-Signature-v3",
    "encoding": "base64",
    "timestamp_header": "X-HubSpot-Request-Timestamp",
    "timestamp_unit": "milliseconds",
    "signed": "{method}{url}{body}{timestamp}",
}
SHA1 = {"header": "X-Hub-Signature", "algorithm": "sha1", "prefix": "sha1="}

#: A Stripe event as Stripe posts it; the trigger maps the customer to the workflow's ``name``.
STRIPE_INPUTS = {"name": "{{ event.data.object.customer }}"}


def hooked(
    name: str, signature: dict[str, Any] | None, inputs: dict[str, Any] | None = None, *, delivery: str | None = None
) -> dict[str, Any]:
    """GREET (inputs name, times) as workflow ``name`` with one ``webhook`` trigger: ``signature``
    (None: Switchboard's own), ``inputs`` (None: the body is the inputs), ``delivery``. Checked by
    the planner here, since ``Bot.apply`` stores whatever it is given."""
    webhook: dict[str, Any] = {}
    if signature is not None:
        webhook["signature"] = signature
    if delivery is not None:
        webhook["delivery"] = delivery
    trigger: dict[str, Any] = {"webhook": webhook}
    if inputs is not None:
        trigger["inputs"] = inputs
    definition = {**GREET, "name": name, "triggers": [trigger]}
    build_plan(definition)  # raises DefinitionError naming what is wrong
    return definition


def stripe_event(event_id: str = "evt_1", customer: str = "cus_Ada") -> bytes:
    return json.dumps({"id": event_id, "type": "invoice.paid", "data": {"object": {"customer": customer}}}).encode()


def now() -> int:
    return int(time.time())


def hex_hmac(secret: str, message: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode(), message, getattr(hashlib, algorithm)).hexdigest()


def stripe_signed(
    secret: str, body: bytes, *, timestamp: int | str | None = None, others: tuple[str, ...] = ()
) -> dict[str, str]:
    """Stripe's header: ``t=``, then a ``v1=`` for each of ``others`` (secrets being rolled) and ours."""
    stamp = str(now() if timestamp is None else timestamp)
    v1 = [hex_hmac(key, f"{stamp}.".encode() + body) for key in (*others, secret)]
    return {**JSON, "Stripe-Signature": ",".join([f"t={stamp}", *(f"v1={value}" for value in v1)])}


def slack_signed(secret: str, body: bytes, *, timestamp: int | str | None = None) -> dict[str, str]:
    stamp = str(now() if timestamp is None else timestamp)
    digest = hex_hmac(secret, f"v0:{stamp}:".encode() + body)
    return {**JSON, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def hubspot_signed(secret: str, url: str, body: bytes, *, millis: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time() * 1000) if millis is None else millis)
    message = b"POST" + url.encode() + body + stamp.encode()
    digest = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {**JSON, "X-HubSpot-Request-Timestamp": stamp, "X-HubSpot-Signature-v3": digest}


async def nothing_ran(bot: Bot) -> None:
    """Nothing to poll for: a run, were one started, would be recorded by now."""
    await nothing_started(bot)


async def refused(bot: Bot, path: str, headers: dict[str, Any], body: bytes, secret: str) -> str:
    """Post, expect 401, and return the error (which never shows the secret)."""
    response = await bot.post(headers, body, path=path)
    assert response.status_code == 401, response.text
    assert secret not in response.text
    error: str = response.json()["error"]
    return error


# --- Stripe -------------------------------------------------------------------------------------


async def test_a_stripe_signed_event_runs_with_the_mapped_inputs(bot: Bot) -> None:
    await bot.apply(hooked("billing", STRIPE, STRIPE_INPUTS))
    secret = await add_secret(bot, "billing")
    body = stripe_event()
    response = await bot.post(stripe_signed(secret, body), body, path="/hooks/billing")
    assert response.status_code == 202, response.text
    await bot.settle()
    record = await RunStore(bot.engine).get(response.json()["run_id"])
    assert (record.workflow, record.status, record.trigger, record.triggered_by) == (
        "billing",
        "completed",
        "webhook",
        "webhook",
    )
    assert record.inputs == {"name": "cus_Ada", "times": 1}


async def test_a_stripe_timestamp_outside_the_declared_tolerance_is_refused(bot: Bot) -> None:
    await bot.apply(hooked("billing", STRIPE, STRIPE_INPUTS))
    secret = await add_secret(bot, "billing")
    body = stripe_event()
    for offset in (-200, +200):  # tolerance: 120 s, either way
        error = await refused(
            bot, "/hooks/billing", stripe_signed(secret, body, timestamp=now() + offset), body, secret
        )
        assert "the timestamp in Stripe-Signature t=" in error and "(allowed: ±120 s)" in error, error
    await nothing_ran(bot)


async def test_a_stripe_timestamp_inside_the_declared_tolerance_is_accepted(bot: Bot) -> None:
    await bot.apply(hooked("billing", STRIPE, STRIPE_INPUTS))
    secret = await add_secret(bot, "billing")
    body = stripe_event()
    response = await bot.post(stripe_signed(secret, body, timestamp=now() - 100), body, path="/hooks/billing")
    assert response.status_code == 202, response.text
    await bot.settle()
    assert [r.id for r in await run_rows(bot)] == [response.json()["run_id"]]


async def test_a_stripe_header_with_several_v1_signatures_is_accepted_when_one_matches(bot: Bot) -> None:
    await bot.apply(hooked("billing", STRIPE, STRIPE_INPUTS))
    secret = await add_secret(bot, "billing")
    body = stripe_event()
    # While a secret is rolled Stripe signs with each active one; ours comes second here. Stripe
    # test mode adds a v0= signature too: other keys are not signatures.
    headers = stripe_signed(secret, body, others=("whsec_the_previous_secret",))
    headers["Stripe-Signature"] += ",v0=" + "ab" * 32
    assert headers["Stripe-Signature"].count("v1=") == 2
    response = await bot.post(headers, body, path="/hooks/billing")
    assert response.status_code == 202, response.text
    await bot.settle()
    assert [r.id for r in await run_rows(bot)] == [response.json()["run_id"]]


async def test_a_stripe_header_with_only_wrong_signatures_is_refused(bot: Bot) -> None:
    await bot.apply(hooked("billing", STRIPE, STRIPE_INPUTS))
    secret = await add_secret(bot, "billing")
    body = stripe_event()
    stamp = now()
    tampered = stripe_event(customer="cus_Mallory")
    cases: dict[str, tuple[dict[str, str], bytes, str]] = {
        "every v1 from another secret": (
            stripe_signed("whsec_old_1", body, others=("whsec_old_2",)),
            body,
            "does not match",
        ),
        "the body changed after signing": (stripe_signed(secret, body), tampered, "does not match"),
        "only a v0 signature": (
            {**JSON, "Stripe-Signature": f"t={stamp},v0={hex_hmac(secret, f'{stamp}.'.encode() + body)}"},
            body,
            "Stripe-Signature has no v1=<signature>",
        ),
        "no t=": (
            {**JSON, "Stripe-Signature": f"v1={hex_hmac(secret, f'{stamp}.'.encode() + body)}"},
            body,
            "Stripe-Signature must have one t=<timestamp>",
        ),
        "t= twice": (
            {
                **JSON,
                "Stripe-Signature": f"t={stamp}," + stripe_signed(secret, body, timestamp=stamp)["Stripe-Signature"],
            },
            body,
            "Stripe-Signature must have one t=<timestamp>",
        ),
        "not key=value pairs": ({**JSON, "Stripe-Signature": "garbage"}, body, "must be key=value pairs"),
        "more than 20 pairs": (
            {**JSON, "Stripe-Signature": stripe_signed(secret, body)["Stripe-Signature"] + ",v0=x" * 20},
            body,
            "more than 20 key=value pairs",
        ),
        # At most 8 signatures are tried (MAX_SIGNATURES): a ninth, even the right one, is not.
        "the match is the ninth v1": (
            stripe_signed(secret, body, others=tuple(f"whsec_other_{n}" for n in range(8))),
            body,
            "does not match",
        ),
        "no header": (JSON, body, "missing Stripe-Signature header"),
    }
    for case, (headers, sent, expected) in cases.items():
        error = await refused(bot, "/hooks/billing", headers, sent, secret)
        assert expected in error, (case, error)
    await nothing_ran(bot)


async def test_the_same_stripe_request_twice_is_a_replay_answered_409_with_the_first_run(bot: Bot) -> None:
    await bot.apply(hooked("billing", STRIPE, STRIPE_INPUTS))  # no `delivery`: the replay guard decides
    secret = await add_secret(bot, "billing")
    body = stripe_event()
    headers = stripe_signed(secret, body)
    first = await bot.post(headers, body, path="/hooks/billing")
    assert first.status_code == 202, first.text
    again = await bot.post(headers, body, path="/hooks/billing")
    assert again.status_code == 409, again.text
    assert again.json()["run_id"] == first.json()["run_id"]
    assert "accepted already" in again.json()["error"]
    # The same signed request with a bogus extra v1 (or the pairs reordered) is still that request.
    signature = headers["Stripe-Signature"]
    respelled = {
        "an extra v1": {**headers, "Stripe-Signature": signature + ",v1=" + "00" * 32},
        "pairs reordered": {**headers, "Stripe-Signature": ",".join(reversed(signature.split(",")))},
    }
    for case, copy in respelled.items():
        answer = await bot.post(copy, body, path="/hooks/billing")
        assert answer.status_code == 409, (case, answer.text)
        assert answer.json()["run_id"] == first.json()["run_id"], case
    await bot.settle()
    assert [r.id for r in await run_rows(bot)] == [first.json()["run_id"]]


# --- Slack --------------------------------------------------------------------------------------


async def test_a_slack_signed_request_runs(bot: Bot) -> None:
    await bot.apply(hooked("slacked", SLACK))  # no `inputs`: the body is the inputs
    secret = await add_secret(bot, "slacked")
    body = b'{"name": "Ada", "times": 2}'
    response = await bot.post(slack_signed(secret, body), body, path="/hooks/slacked")
    assert response.status_code == 202, response.text
    await bot.settle()
    record = await RunStore(bot.engine).get(response.json()["run_id"])
    assert (record.status, record.trigger, record.inputs) == ("completed", "webhook", {"name": "Ada", "times": 2})


async def test_wrong_slack_signatures_are_refused(bot: Bot) -> None:
    await bot.apply(hooked("slacked", SLACK))
    secret = await add_secret(bot, "slacked")
    body = b'{"name": "Mallory"}'
    good = slack_signed(secret, body)
    stamp = int(good["X-Slack-Request-Timestamp"])
    cases: dict[str, tuple[dict[str, str], str]] = {
        "wrong secret": (slack_signed("not-the-signing-secret", body), "does not match"),
        "timestamp changed after signing": ({**good, "X-Slack-Request-Timestamp": str(stamp + 1)}, "does not match"),
        "signed as Switchboard's own": (
            {**good, "X-Slack-Signature": "v0=" + hex_hmac(secret, f"{stamp}.".encode() + body)},
            "does not match",
        ),
        "no v0= prefix": (
            {**good, "X-Slack-Signature": good["X-Slack-Signature"].removeprefix("v0=")},
            "X-Slack-Signature must look like v0=<signature>",
        ),
        "no timestamp": (
            {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
            "missing X-Slack-Request-Timestamp header",
        ),
        "no signature": (
            {k: v for k, v in good.items() if k != "X-Slack-Signature"},
            "missing X-Slack-Signature header",
        ),
        "stale": (slack_signed(secret, body, timestamp=stamp - 400), "(allowed: ±300 s)"),
        "Switchboard's own headers": (signed(secret, body), "missing X-Slack-Signature header"),
    }
    for case, (headers, expected) in cases.items():
        error = await refused(bot, "/hooks/slacked", headers, body, secret)
        assert expected in error, (case, error)
    await nothing_ran(bot)


# --- HubSpot v3 ---------------------------------------------------------------------------------


async def test_a_hubspot_v3_request_signed_over_the_public_url_runs(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    # HubSpot signs the URL it was given: SWITCHBOARD_PUBLIC_URL + /hooks/NAME (+ the query).
    monkeypatch.setattr(bot.runtime.settings, "public_url", PUBLIC_URL + "/")
    await bot.apply(hooked("crm", HUBSPOT, {"name": "contact {{ event[0].objectId }}"}))
    secret = await add_secret(bot, "crm")
    body = b'[{"objectId": 1246965, "subscriptionType": "contact.creation"}]'
    plain = await bot.post(hubspot_signed(secret, f"{PUBLIC_URL}/hooks/crm", body), body, path="/hooks/crm")
    assert plain.status_code == 202, plain.text
    queried = await bot.post(
        hubspot_signed(secret, f"{PUBLIC_URL}/hooks/crm?portalId=42", body), body, path="/hooks/crm?portalId=42"
    )
    assert queried.status_code == 202, queried.text
    await bot.settle()
    record = await RunStore(bot.engine).get(plain.json()["run_id"])
    assert (record.status, record.inputs) == ("completed", {"name": "contact 1246965", "times": 1})
    assert {r.id for r in await run_rows(bot)} == {plain.json()["run_id"], queried.json()["run_id"]}


async def test_a_hubspot_v3_request_to_a_bot_without_a_public_url_is_signed_over_the_url_it_reached(
    bot: Bot,
) -> None:
    assert not bot.runtime.settings.public_url
    await bot.apply(hooked("crm", HUBSPOT, {"name": "contact {{ event[0].objectId }}"}))
    secret = await add_secret(bot, "crm")
    body = b'[{"objectId": 7}]'
    plain = await bot.post(hubspot_signed(secret, f"{bot.url}/hooks/crm", body), body, path="/hooks/crm")
    assert plain.status_code == 202, plain.text
    # The query is part of the URL HubSpot was given and signs, with or without a public URL.
    queried = await bot.post(
        hubspot_signed(secret, f"{bot.url}/hooks/crm?portalId=42", body), body, path="/hooks/crm?portalId=42"
    )
    assert queried.status_code == 202, queried.text
    await bot.settle()
    assert len(await run_rows(bot)) == 2


async def test_stale_or_misdirected_hubspot_v3_requests_are_refused(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.runtime.settings, "public_url", PUBLIC_URL)
    await bot.apply(hooked("crm", HUBSPOT, {"name": "contact {{ event[0].objectId }}"}))
    secret = await add_secret(bot, "crm")
    body = b'[{"objectId": 7}]'
    url = f"{PUBLIC_URL}/hooks/crm"
    millis = int(time.time() * 1000)
    good = hubspot_signed(secret, url, body, millis=millis)
    cases: dict[str, tuple[dict[str, str], str]] = {
        "stale (5 minutes and more)": (hubspot_signed(secret, url, body, millis=millis - 400_000), "(allowed: ±300 s)"),
        "seconds where HubSpot sends milliseconds": (
            hubspot_signed(secret, url, body, millis=millis // 1000),
            "from the server's clock",
        ),
        "signed over the URL the bot listens on": (
            hubspot_signed(secret, f"{bot.url}/hooks/crm", body),
            "does not match",
        ),
        "signed over another workflow's URL": (
            hubspot_signed(secret, f"{PUBLIC_URL}/hooks/other", body),
            "does not match",
        ),
        "signed as GET": (
            {
                **good,
                "X-HubSpot-Signature-v3": base64.b64encode(
                    hmac.new(secret.encode(), b"GET" + url.encode() + body + str(millis).encode(), "sha256").digest()
                ).decode(),
            },
            "does not match",
        ),
        "hex, not base64": (
            {
                **good,
                "X-HubSpot-Signature-v3": hex_hmac(secret, b"POST" + url.encode() + body + str(millis).encode()),
            },
            "does not match",
        ),
        "timestamp changed after signing": ({**good, "X-HubSpot-Request-Timestamp": str(millis + 1)}, "does not match"),
    }
    for case, (headers, expected) in cases.items():
        error = await refused(bot, "/hooks/crm", headers, body, secret)
        assert expected in error, (case, error)
    await nothing_ran(bot)


# --- SHA-1 behind a prefix ----------------------------------------------------------------------


async def test_a_sha1_prefixed_signature_over_the_body_runs(bot: Bot) -> None:
    await bot.apply(hooked("legacy", SHA1))
    secret = await add_secret(bot, "legacy")
    body = b'{"name": "Ada"}'
    headers = {**JSON, "X-Hub-Signature": "sha1=" + hex_hmac(secret, body, "sha1")}
    response = await bot.post(headers, body, path="/hooks/legacy")
    assert response.status_code == 202, response.text
    await bot.settle()
    record = await RunStore(bot.engine).get(response.json()["run_id"])
    assert (record.status, record.inputs) == ("completed", {"name": "Ada", "times": 1})


async def test_wrong_sha1_prefixed_signatures_are_refused(bot: Bot) -> None:
    await bot.apply(hooked("legacy", SHA1))
    secret = await add_secret(bot, "legacy")
    body = b'{"name": "Mallory"}'
    cases: dict[str, tuple[dict[str, str], str]] = {
        "wrong secret": ({**JSON, "X-Hub-Signature": "sha1=" + hex_hmac("guess", body, "sha1")}, "does not match"),
        "sha256 where sha1 is declared": (
            {**JSON, "X-Hub-Signature": "sha1=" + hex_hmac(secret, body, "sha256")},
            "does not match",
        ),
        "no prefix": ({**JSON, "X-Hub-Signature": hex_hmac(secret, body, "sha1")}, "must look like sha1=<signature>"),
        "not hex": ({**JSON, "X-Hub-Signature": "sha1=" + "zz" * 20}, "does not match"),
        "body changed after signing": (
            {**JSON, "X-Hub-Signature": "sha1=" + hex_hmac(secret, b'{"name": "Eve"}', "sha1")},
            "does not match",
        ),
        "no header": (JSON, "missing X-Hub-Signature header"),
    }
    for case, (headers, expected) in cases.items():
        error = await refused(bot, "/hooks/legacy", headers, body, secret)
        assert expected in error, (case, error)
    await nothing_ran(bot)


# --- delivery ids -------------------------------------------------------------------------------


async def test_a_delivery_id_seen_before_returns_the_first_run(bot: Bot) -> None:
    await bot.apply(hooked("billing", STRIPE, STRIPE_INPUTS, delivery="{{ event.id }}"))
    secret = await add_secret(bot, "billing")
    body = stripe_event("evt_42")
    first = await bot.post(stripe_signed(secret, body), body, path="/hooks/billing")
    assert first.status_code == 202, first.text
    # Stripe retries the event: signed again, another second, the same event id.
    retry = stripe_signed(secret, body, timestamp=now() + 2)
    assert retry["Stripe-Signature"] != stripe_signed(secret, body)["Stripe-Signature"]
    again = await bot.post(retry, body, path="/hooks/billing")
    assert again.status_code == 200, again.text
    assert again.json() == {"run_id": first.json()["run_id"], "duplicate": True}
    await bot.settle()
    rows = await run_rows(bot)
    assert [r.id for r in rows] == [first.json()["run_id"]]
    assert rows[0].triggered_by == "webhook:evt_42"

    other = stripe_event("evt_43")
    third = await bot.post(stripe_signed(secret, other), other, path="/hooks/billing")
    assert third.status_code == 202, third.text
    await bot.settle()
    assert {r.id for r in await run_rows(bot)} == {first.json()["run_id"], third.json()["run_id"]}


@pytest.mark.both_databases
async def test_a_delivery_id_seen_by_another_bot_process_returns_the_first_run(two_bots: tuple[Bot, Bot]) -> None:
    one, other = two_bots
    await one.apply(hooked("billing", STRIPE, STRIPE_INPUTS, delivery="{{ event.id }}"))
    secret = await add_secret(one, "billing")
    body = stripe_event("evt_7")
    first = await one.post(stripe_signed(secret, body), body, path="/hooks/billing")
    assert first.status_code == 202, first.text
    again = await other.post(stripe_signed(secret, body, timestamp=now() + 1), body, path="/hooks/billing")
    assert again.status_code == 200, again.text
    assert again.json() == {"run_id": first.json()["run_id"], "duplicate": True}
    await one.settle()
    await other.settle()
    assert [r.id for r in await RunStore(one.engine).list(limit=50)] == [first.json()["run_id"]]


# --- Switchboard's own scheme with inputs ---------------------------------------------------------


async def test_switchboards_own_scheme_with_an_inputs_mapping_runs_with_the_mapped_values(bot: Bot) -> None:
    inputs = {"name": "{{ event.user.name }}", "times": "{{ event.count }}"}
    await bot.apply(hooked("mapped", None, inputs))
    secret = await add_secret(bot, "mapped")
    body = json.dumps({"user": {"name": "Ada", "id": 7}, "count": 3, "other": "not an input"}).encode()
    response = await bot.post(signed(secret, body), body, path="/hooks/mapped")
    assert response.status_code == 202, response.text
    await bot.settle()
    record = await RunStore(bot.engine).get(response.json()["run_id"])
    assert (record.status, record.trigger, record.triggered_by) == ("completed", "webhook", "webhook")
    assert record.inputs == {"name": "Ada", "times": 3}  # rendered natively: 3 stays an integer

    # An event the mapping cannot read is a 400 naming the input and the template, and runs nothing.
    missing = b'{"count": 1}'
    bad = await bot.post(signed(secret, missing), missing, path="/hooks/mapped")
    assert bad.status_code == 400, bad.text
    (problem,) = bad.json()["problems"]
    assert problem["field"] == "inputs.name" and "triggers[0].inputs.name" in problem["message"]
    assert [r.id for r in await run_rows(bot)] == [response.json()["run_id"]]


# --- hostile headers ----------------------------------------------------------------------------


async def test_hostile_slack_style_headers_are_refused_and_run_nothing(bot: Bot) -> None:
    await bot.apply(hooked("slacked", SLACK))
    secret = await add_secret(bot, "slacked")
    body = b'{"name": "Mallory"}'
    good = slack_signed(secret, body)
    stamp = good["X-Slack-Request-Timestamp"]
    digest = good["X-Slack-Signature"].removeprefix("v0=")
    arabic = stamp.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    # Each respelled timestamp is signed as sent: only the timestamp's own check may refuse it.
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "signature longer than 1024": (
            {**good, "X-Slack-Signature": "v0=" + digest * 17},
            "X-Slack-Signature is longer than 1024 characters",
        ),
        "timestamp longer than 1024": (
            {**good, "X-Slack-Request-Timestamp": "1" * 1025},
            "X-Slack-Request-Timestamp is longer than 1024 characters",
        ),
        "non-ASCII signature": (
            {**good, "X-Slack-Signature": ("v0=" + digest[:-1] + "é").encode()},
            "does not match",
        ),
        "non-ASCII (UTF-8) timestamp": (
            {**good, "X-Slack-Request-Timestamp": arabic.encode()},
            "must be unix seconds: ASCII digits, no sign or leading zero",
        ),
        "leading zero": (slack_signed(secret, body, timestamp="0" + stamp), "no sign or leading zero"),
        "negative": (slack_signed(secret, body, timestamp="-" + stamp), "no sign or leading zero"),
        "plus sign": (slack_signed(secret, body, timestamp="+" + stamp), "no sign or leading zero"),
        "zero": (slack_signed(secret, body, timestamp="0"), "no sign or leading zero"),
        "huge (16 digits)": (slack_signed(secret, body, timestamp="9" * 16), "from the server's clock"),
        "huger (40 digits)": (slack_signed(secret, body, timestamp="9" * 40), "ASCII digits"),
        "fractional": (slack_signed(secret, body, timestamp=stamp + ".5"), "ASCII digits"),
    }
    for case, (headers, expected) in cases.items():
        error = await refused(bot, "/hooks/slacked", headers, body, secret)
        assert expected in error, (case, error)
    await nothing_ran(bot)


async def test_hostile_stripe_style_headers_are_refused_and_run_nothing(bot: Bot) -> None:
    await bot.apply(hooked("billing", STRIPE, STRIPE_INPUTS))
    secret = await add_secret(bot, "billing")
    body = stripe_event()
    stamp = str(now())
    good = stripe_signed(secret, body, timestamp=stamp)["Stripe-Signature"]
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "longer than 1024": ({**JSON, "Stripe-Signature": good + ",v0=" + "a" * 1024}, "longer than 1024 characters"),
        "non-ASCII": ({**JSON, "Stripe-Signature": (good[:-1] + "ü").encode()}, "does not match"),
        "leading zero": (stripe_signed(secret, body, timestamp="0" + stamp), "no sign or leading zero"),
        "negative": (stripe_signed(secret, body, timestamp="-" + stamp), "no sign or leading zero"),
        "huge": (stripe_signed(secret, body, timestamp="9" * 16), "from the server's clock"),
        "huger": (stripe_signed(secret, body, timestamp="9" * 30), "ASCII digits"),
    }
    for case, (headers, expected) in cases.items():
        error = await refused(bot, "/hooks/billing", headers, body, secret)
        assert "Stripe-Signature" in error or expected == "does not match", (case, error)
        assert expected in error, (case, error)
    await nothing_ran(bot)


async def test_hostile_headers_on_switchboards_own_scheme_are_refused_and_run_nothing(bot: Bot) -> None:
    await bot.apply(hooked("mapped", None, {"name": "{{ event.name }}"}))
    secret = await add_secret(bot, "mapped")
    body = b'{"name": "Mallory"}'
    good = signed(secret, body)
    stamp = good["X-Switchboard-Timestamp"]

    def at(timestamp: str) -> dict[str, str]:
        digest = hex_hmac(secret, timestamp.encode() + b"." + body)
        return {**JSON, "X-Switchboard-Timestamp": timestamp, "X-Switchboard-Signature": f"sha256={digest}"}

    cases: dict[str, tuple[dict[str, Any], str]] = {
        "signature longer than 1024": (
            {**good, "X-Switchboard-Signature": good["X-Switchboard-Signature"] + "0" * 1024},
            "does not match",
        ),
        "non-ASCII signature": (
            {**good, "X-Switchboard-Signature": (good["X-Switchboard-Signature"][:-1] + "é").encode()},
            "does not match",
        ),
        "leading zero": (at("0" + stamp), "unix seconds"),
        "negative": (at("-" + stamp), "unix seconds"),
        "huge": (at("9" * 12), "from the server's clock"),
        "huger": (at("9" * 40), "unix seconds"),
    }
    for case, (headers, expected) in cases.items():
        error = await refused(bot, "/hooks/mapped", headers, body, secret)
        assert expected in error, (case, error)
    await nothing_ran(bot)
