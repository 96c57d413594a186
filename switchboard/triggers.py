"""What a request to ``POST /hooks/<workflow>`` starts: the scheme that checks it, and the run
it asks for (the ``triggers:`` of :mod:`flows.triggers`).

The bot reads the request, looks up the workflow's secret and latest version, and calls
:func:`verify` then :func:`decide`; it claims :attr:`Start.claim` in the replay guard and
starts the run. Which scheme checks a request:

* one with ``X-GitHub-Event`` or ``X-Hub-Signature-256`` is GitHub's
  (:func:`switchboard.signatures.verify_github`), whatever the workflow declares;
* any other, the workflow's ``webhook`` trigger's ``signature`` if it declares one
  (:func:`switchboard.signatures.verify_declared`), else Switchboard's own
  (:func:`switchboard.webhooks.verify`).

A name with no workflow is checked the same way, against a decoy secret, so before
authentication it answers what a wrong signature to a workflow without a declared scheme
answers. :func:`decide` then answers a GitHub ``ping`` (200), a delivery no trigger matches
(202 ``{"ignored": reason}``) and a body or inputs that do not fit (400), or returns the
run to start: inputs rendered from the event and resolved against the workflow, the trigger
(``github`` / ``webhook``), ``triggered_by`` (``github:<delivery id>``, ``webhook:<delivery
id>`` or ``webhook``) and the claim that makes it happen once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flows import triggers
from flows.expressions import RenderLimits
from flows.model import InputError, Workflow
from nodes import safe_json
from switchboard import signatures, webhooks
from switchboard.settings import Settings

GITHUB_EVENT_HEADER = "X-GitHub-Event"
GITHUB_DELIVERY_HEADER = "X-GitHub-Delivery"
#: How long a delivery id is remembered: GitHub lets you redeliver what it sent in the last 3 days.
DELIVERY_SECONDS = 7 * 24 * 3600
#: The longest a delivery's templates may render (the bot answers while it waits).
RENDER_SECONDS = 1.0
_EVENT_NAME = re.compile(r"[a-z_]{1,64}")
_GITHUB_DELIVERY = re.compile(r"[A-Za-z0-9-]{1,64}")


@dataclass(frozen=True)
class Delivery:
    """One request to ``POST /hooks/<workflow>``, as received."""

    workflow: str
    method: str
    #: The URL the sender was given (what a ``{url}`` in a declared scheme stands for).
    url: str
    #: Header names lower-cased (the first of repeated ones).
    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def of(cls, workflow: str, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes) -> Delivery:
        """A delivery from raw header pairs."""
        first: dict[str, str] = {}
        for name, value in headers:
            first.setdefault(name.lower(), value)
        return cls(workflow, method, url, first, body)

    @property
    def from_github(self) -> bool:
        return GITHUB_EVENT_HEADER.lower() in self.headers or signatures.GITHUB_SIGNATURE_HEADER.lower() in self.headers


@dataclass(frozen=True)
class Claim:
    """A replay-guard key the run must win first, and until when it holds.

    ``kind`` says what losing means: ``delivery`` (a delivery id seen before: GitHub
    redelivers on purpose; answer 200 with the first run) or ``replay`` (a copy of a signed
    request inside its window: 409 as for Switchboard's own scheme).
    """

    key: str
    until: int
    kind: Literal["delivery", "replay"]


@dataclass(frozen=True)
class Verified:
    """An authenticated request: which scheme vouched for it, and its replay claim (timestamped schemes)."""

    scheme: Literal["switchboard", "github", "webhook"]
    replay: Claim | None


@dataclass(frozen=True)
class Answer:
    """An answer that starts nothing."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Start:
    """The run a delivery asks for."""

    inputs: dict[str, Any]
    trigger: Literal["github", "webhook"]
    triggered_by: str
    claim: Claim | None


def webhook_trigger(workflow: Workflow | None) -> tuple[int, triggers.Trigger] | None:
    """The workflow's ``webhook`` trigger and its index (a workflow has at most one)."""
    for index, trigger in enumerate(workflow.triggers if workflow is not None else ()):
        if trigger.webhook is not None:
            return index, trigger
    return None


def verify(delivery: Delivery, secret: str, workflow: Workflow | None, *, now: float | None = None) -> Verified:
    """Check ``delivery``'s signature with ``secret`` by the scheme it calls for (see the
    module); raises :class:`~switchboard.webhooks.SignatureError` saying what is wrong."""
    name, headers, body = delivery.workflow, delivery.headers, delivery.body
    if delivery.from_github:
        signatures.verify_github(secret, headers, body)
        return Verified("github", None)
    declared = webhook_trigger(workflow)
    spec = declared[1].webhook.signature if declared is not None and declared[1].webhook is not None else None
    if spec is not None:
        signed = signatures.verify_declared(
            spec, secret, headers, body, method=delivery.method, url=delivery.url, now=now
        )
        replay = None
        if signed.expires is not None:
            replay = Claim(f"webhook:{name}:{signed.digest.hex()}", signed.expires, "replay")
        return Verified("webhook", replay)
    stamp = webhooks.verify(
        secret,
        timestamp=headers.get(webhooks.TIMESTAMP_HEADER.lower()),
        signature_header=headers.get(webhooks.SIGNATURE_HEADER.lower()),
        body=body,
        now=now,
    )
    key = webhooks.replay_key(name, secret, stamp, body)
    return Verified("switchboard", Claim(key, webhooks.replay_expiry(stamp), "replay"))


def decide(
    delivery: Delivery,
    verified: Verified,
    workflow: Workflow,
    *,
    max_bytes: int,
    limits: RenderLimits,
    now: float | None = None,
) -> Start | Answer:
    """What an authenticated ``delivery`` to ``workflow`` does: the run to start, or the
    answer (200 ping, 202 ignored, 400 with every problem)."""
    body = delivery.body
    try:
        event = safe_json.loads(body, what="the body", max_bytes=max_bytes) if body.strip() else {}
    except safe_json.UnsafeJSONError as exc:
        hint = "send GitHub's JSON (content type application/json)" if verified.scheme == "github" else ""
        hint = hint or 'send a JSON object of inputs, e.g. {"repo": "acme/api"}'
        return _bad(f"{exc}; {hint}")
    if verified.scheme == "github":
        return _github(delivery, event, workflow, limits, now)
    declared = webhook_trigger(workflow)
    compiled = triggers.compile_trigger(declared[1], declared[0]) if declared is not None else None
    scope = triggers.header_scope(delivery.headers.items())
    if compiled is None or compiled.inputs is None:
        if not isinstance(event, dict):
            return _bad(f"the body is a JSON {_json_kind(event)}; send a JSON object of inputs")
        given: Mapping[str, Any] = event
        failed: list[tuple[str, str]] = []
    else:
        given, failed = triggers.render_inputs(compiled, event, scope, limits=limits)
    inputs = _resolve(workflow, given, failed)
    if isinstance(inputs, Answer):
        return inputs
    try:
        delivery_id = triggers.render_delivery(compiled, event, scope, limits=limits) if compiled else None
    except ValueError as exc:
        return _bad(str(exc))
    if delivery_id is None:
        return Start(inputs, "webhook", "webhook", verified.replay)
    until = int(time.time() if now is None else now) + DELIVERY_SECONDS
    claim = Claim(f"webhook:{workflow.name}:delivery:{delivery_id}", until, "delivery")
    return Start(inputs, "webhook", f"webhook:{delivery_id}", claim)


def _github(
    delivery: Delivery, event: Any, workflow: Workflow, limits: RenderLimits, now: float | None
) -> Start | Answer:
    """A GitHub delivery: ping, filtered, or the run of the first ``github`` trigger it matches."""
    headers = delivery.headers
    name = headers.get(GITHUB_EVENT_HEADER.lower(), "")
    if not _EVENT_NAME.fullmatch(name):
        return _bad(f"{GITHUB_EVENT_HEADER} must be a GitHub event name (e.g. issues)")
    if not isinstance(event, dict):
        return _bad(f"the body is a JSON {_json_kind(event)}; GitHub sends a JSON object")
    github = [(index, t) for index, t in enumerate(workflow.triggers) if t.github is not None]
    if name == "ping":
        zen = event.get("zen")
        events = sorted({e for _, t in github if t.github is not None for e in t.github.events})
        return Answer(200, {"ok": True, "zen": zen[:200] if isinstance(zen, str) else None, "events": events})
    delivery_id = headers.get(GITHUB_DELIVERY_HEADER.lower(), "")
    if not _GITHUB_DELIVERY.fullmatch(delivery_id):
        return _bad(f"missing or malformed {GITHUB_DELIVERY_HEADER} header (GitHub sends a GUID)")
    action = event.get("action") if isinstance(event.get("action"), str) else None
    repository = event.get("repository")
    repo = repository.get("full_name") if isinstance(repository, dict) else None
    repo = repo if isinstance(repo, str) else None
    if not github:
        return Answer(202, {"ignored": f"workflow {workflow.name!r} has no github trigger"})
    reasons = []
    for index, trigger in github:
        assert trigger.github is not None
        why = trigger.github.mismatch(name, action, repo)
        if why is None:
            compiled = triggers.compile_trigger(trigger, index)
            scope = triggers.header_scope(headers.items())
            given, failed = triggers.render_inputs(compiled, event, scope, limits=limits)
            inputs = _resolve(workflow, given, failed)
            if isinstance(inputs, Answer):
                return inputs
            until = int(time.time() if now is None else now) + DELIVERY_SECONDS
            claim = Claim(f"github:{workflow.name}:{delivery_id}", until, "delivery")
            return Start(inputs, "github", f"github:{delivery_id}", claim)
        reasons.append(f"triggers[{index}]: {why}")
    return Answer(202, {"ignored": "; ".join(reasons)[:1000]})


def _resolve(workflow: Workflow, given: Mapping[str, Any], failed: list[tuple[str, str]]) -> dict[str, Any] | Answer:
    """``given`` resolved against the workflow's inputs, or a 400 listing every problem (the
    inputs that failed to render first; they are not reported missing as well)."""
    problems: list[dict[str, Any]] = [{"field": field, "message": message} for field, message in failed]
    try:
        resolved = workflow.resolve_inputs(given)
    except InputError as exc:
        broken = {field for field, _ in failed}
        problems += [{"field": p.field, "message": p.message} for p in exc.problems if p.field not in broken]
    else:
        if not problems:
            return resolved
    listed = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
    return _bad(f"invalid inputs for workflow {workflow.name!r}: {listed}", problems=problems)


def _bad(message: str, **extra: Any) -> Answer:
    return Answer(400, {"error": message, **extra})


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", dict: "object"}
    return kinds.get(type(value), "null")


def signed_url(workflow: str, settings: Settings, *, received: str, query: str) -> str:
    """The URL a sender was given for ``workflow`` (``SWITCHBOARD_PUBLIC_URL`` + the path, and
    the query if any); without a public URL, the one the request was ``received`` at."""
    url = webhooks.hook_url(workflow, settings) if settings.public_url else received
    return f"{url}?{query}" if query else url


def render_limits(settings: Settings) -> RenderLimits:
    """The bounds of rendering one delivery's inputs: the operator's template limits, and at
    most :data:`RENDER_SECONDS`."""
    return RenderLimits(
        timeout_seconds=min(settings.template_timeout, RENDER_SECONDS), max_size=settings.template_max_size
    )
