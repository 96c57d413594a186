"""Triggers declared in a workflow (``triggers:``): which HTTP deliveries start a run, and its inputs.

.. code-block:: yaml

    triggers:
      - github: {events: [issues.opened], repos: [acme/api]}
        inputs: {repo: "{{ event.repository.full_name }}", issue: "{{ event.issue.number }}"}
      - webhook:
          signature: {header: Stripe-Signature, pairs: {signature: v1, timestamp: t}}
          delivery: "{{ event.id }}"
        inputs: {customer: "{{ event.data.object.customer }}"}

Each entry is exactly one of ``github:`` (GitHub's own signature, filtered on ``X-GitHub-Event``,
the payload's ``action`` and ``repository.full_name``) or ``webhook:`` (any other HMAC scheme,
:class:`Signature`; without ``signature``, Switchboard's own). ``inputs:`` maps the workflow's
inputs to values or templates; the templates read ``event`` (the parsed JSON body) and
``headers`` (the request's headers, names lower-cased with ``-`` spelled ``_``:
``{{ headers.x_github_delivery }}``), and render in the same sandbox as node params
(:mod:`flows.expressions`). A ``webhook`` trigger without ``inputs`` takes the body as the
inputs, as a workflow without triggers does.

This module is the format and the pure parts of handling a delivery (matching a GitHub event,
rendering inputs). Checking signatures and starting runs is the library's
(:mod:`switchboard.triggers`); checking trigger inputs against the workflow's is the planner's
(:func:`problems`, called by :mod:`flows.plan`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from flows.expressions import Compiled, ExpressionError, RenderLimits, compile_value
from flows.github_events import EVENTS
from flows.render_limits import rendering

#: The most triggers a workflow may declare, events and repos a ``github`` trigger may list, and
#: inputs a trigger may set.
MAX_TRIGGERS = 20
MAX_EVENTS = 50
MAX_REPOS = 100
MAX_TRIGGER_INPUTS = 100
#: The names a trigger's templates may read.
SCOPE = frozenset({"event", "headers"})
#: Headers never put in a template's scope (credentials a proxy may have passed on).
HIDDEN_HEADERS = frozenset({"authorization", "proxy_authorization", "cookie"})
#: Headers in scope: at most this many, each value at most this long (longer ones are left out).
MAX_SCOPE_HEADERS = 100
MAX_SCOPE_HEADER_CHARS = 4096
#: What a delivery id may be (``webhook.delivery`` rendered, ``X-GitHub-Delivery``).
DELIVERY_PATTERN = re.compile(r"[\x21-\x7e]{1,80}")

#: The placeholders of :attr:`Signature.signed`.
PLACEHOLDERS = ("{body}", "{timestamp}", "{method}", "{url}")
_SIGNED_PARTS = re.compile(r"\{[a-z]+\}|[^{}]+")
_PRESETS = {"body": "{body}", "timestamp.body": "{timestamp}.{body}"}
_EVENT_PATTERN = re.compile(r"[a-z_]{1,60}(?:\.[a-z_]{1,60})?")

HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", max_length=100)]
RepoName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$", max_length=201)]
#: A short piece of printable ASCII (a prefix such as ``sha256=``, a key such as ``v1``).
Token = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]+$", max_length=40)]
InputName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _github_event(value: str) -> str:
    if not _EVENT_PATTERN.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not an event name or event.action (e.g. issues or issues.opened)")
    event = value.partition(".")[0]
    if event == "ping":
        raise ValueError("`ping` is answered by the bot itself (200) and never starts a run: leave it out")
    if event not in EVENTS:
        close = difflib.get_close_matches(event, sorted(EVENTS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown GitHub event {event!r}{hint}; see docs/triggers.md")
    return value


GitHubEvent = Annotated[str, StringConstraints(max_length=121), AfterValidator(_github_event)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GitHubFilter(_Strict):
    """``github: {events, repos?}``: deliveries from a GitHub webhook, checked with
    ``X-Hub-Signature-256``. An event ``issues`` matches every action, ``issues.opened`` only
    the payload's ``action: opened``; ``repos`` (``owner/name``, any case) the payload's
    ``repository.full_name``."""

    events: list[GitHubEvent] = Field(min_length=1, max_length=MAX_EVENTS)
    repos: list[RepoName] | None = Field(default=None, min_length=1, max_length=MAX_REPOS)

    def mismatch(self, event: str, action: str | None, repo: str | None) -> str | None:
        """Why a delivery of ``event`` (with the payload's ``action`` and repository) does not
        match, or None when it does."""
        if event not in self.events and (action is None or f"{event}.{action}" not in self.events):
            shown = f"{event}.{action}" if action else event
            return f"{shown} is not one of its events ({', '.join(self.events)})"
        if self.repos is not None and (repo is None or repo.lower() not in {r.lower() for r in self.repos}):
            what = f"repository {repo}" if repo else "a delivery without a repository"
            return f"{what} is not one of its repos ({', '.join(self.repos)})"
        return None


class SignaturePairs(_Strict):
    """The signature header is a comma-separated list of ``key=value`` pairs (Stripe:
    ``t=1718000000,v1=<hex>,v1=<hex>``): the signature is any value of ``signature``, the
    timestamp the value of ``timestamp``."""

    signature: Token
    timestamp: Token | None = None


class Signature(_Strict):
    """How a ``webhook`` trigger's sender signs: an HMAC of :attr:`signed` keyed by the
    workflow's webhook secret, in :attr:`header`.

    ``signed`` is ``body``, ``timestamp.body`` (``<timestamp>.<body>``) or a pattern of literal
    text and the placeholders ``{body}`` (the raw body, exactly once), ``{timestamp}`` (the
    timestamp's text as received), ``{method}`` (``POST``) and ``{url}`` (the URL the sender
    was given: ``SWITCHBOARD_PUBLIC_URL`` + ``/hooks/<workflow>``, with the query if any).
    Default: ``timestamp.body`` with a timestamp, else ``body``.
    """

    header: HeaderName = Field(description="The header carrying the signature.")
    algorithm: Literal["sha256", "sha1"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: Token | None = Field(default=None, description="Text before the signature, e.g. `sha256=` or `v0=`.")
    pairs: SignaturePairs | None = None
    timestamp_header: HeaderName | None = Field(default=None, description="The header carrying the timestamp.")
    timestamp_unit: Literal["seconds", "milliseconds"] = "seconds"
    tolerance: int | None = Field(
        default=None, ge=1, le=86_400, description="Seconds the timestamp may be off the bot's clock (default 300)."
    )
    signed: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> Signature:
        if self.prefix is not None and self.pairs is not None:
            raise ValueError("`prefix` and `pairs` exclude each other (pairs name the signature's key instead)")
        if self.timestamp_header is not None and self.pairs is not None and self.pairs.timestamp is not None:
            raise ValueError("the timestamp comes from `timestamp_header` or from `pairs.timestamp`, not both")
        if not self.timestamped and (self.tolerance is not None or self.timestamp_unit != "seconds"):
            raise ValueError("`tolerance` and `timestamp_unit` need a timestamp (`timestamp_header` or `pairs`)")
        parts = self.parts()  # raises ValueError naming what is wrong with `signed`
        if parts.count("{body}") != 1:
            raise ValueError("`signed` must contain {body} exactly once (an unsigned body could be anything)")
        if self.timestamped and "{timestamp}" not in parts:
            raise ValueError(
                "`signed` must contain {timestamp} when there is a timestamp (else the timestamp is not signed "
                "and a captured request could be replayed forever)"
            )
        if not self.timestamped and "{timestamp}" in parts:
            raise ValueError("`signed` uses {timestamp}: set `timestamp_header` or `pairs.timestamp`")
        return self

    @property
    def timestamped(self) -> bool:
        """Whether requests carry a timestamp (checked against the clock, part of what is signed)."""
        return self.timestamp_header is not None or (self.pairs is not None and self.pairs.timestamp is not None)

    @property
    def window(self) -> int:
        """Seconds a timestamp may be off the bot's clock, either way."""
        return self.tolerance if self.tolerance is not None else 300

    def parts(self) -> list[str]:
        """:attr:`signed` as literal texts and placeholders, in order; ValueError when it is not
        a preset or a pattern of known placeholders."""
        pattern = self.signed if self.signed is not None else ("timestamp.body" if self.timestamped else "body")
        pattern = _PRESETS.get(pattern, pattern)
        parts = _SIGNED_PARTS.findall(pattern)
        if "".join(parts) != pattern:
            raise ValueError("`signed` has a lone { or }: write placeholders as {body}, {timestamp}, {method}, {url}")
        unknown = sorted({p for p in parts if p.startswith("{") and p not in PLACEHOLDERS})
        if unknown:
            raise ValueError(f"`signed` has unknown placeholders {unknown} (known: {', '.join(PLACEHOLDERS)})")
        return parts


class WebhookTrigger(_Strict):
    """``webhook: {signature?, delivery?}``: deliveries signed by :class:`Signature` (without it,
    Switchboard's own ``X-Switchboard-Timestamp``/``X-Switchboard-Signature``). ``delivery``, a
    template over ``event`` and ``headers`` (``{{ event.id }}``), names each delivery: one
    seen before starts nothing new."""

    signature: Signature | None = None
    delivery: str | None = Field(default=None, min_length=1, max_length=1000)


class Trigger(_Strict):
    """One entry of ``triggers:``: exactly one of ``github`` or ``webhook``, with ``inputs``."""

    github: GitHubFilter | None = None
    webhook: WebhookTrigger | None = None
    #: Input name -> value or template over ``event`` and ``headers``. None: a ``webhook``
    #: trigger's body is the inputs, a ``github`` trigger sets none.
    inputs: dict[InputName, Any] | None = Field(default=None, max_length=MAX_TRIGGER_INPUTS)

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        if (self.github is None) == (self.webhook is None):
            raise ValueError(
                "a trigger is exactly one of `github: {events: [...]}` or `webhook: {...}` "
                "(`webhook: {}` for Switchboard's own signature)"
            )
        return self

    @property
    def kind(self) -> Literal["github", "webhook"]:
        return "github" if self.github is not None else "webhook"


class DeclaredInput(Protocol):
    """What :func:`problems` reads of a workflow input (:class:`flows.model.InputSpec`)."""

    @property
    def required(self) -> bool: ...
    @property
    def default(self) -> Any: ...


@dataclass(frozen=True)
class CompiledTrigger:
    """A trigger with its templates parsed: ``inputs`` per input name (None: the body is the
    inputs), ``delivery`` (None: no delivery id)."""

    index: int
    trigger: Trigger
    inputs: dict[str, Compiled] | None
    delivery: Compiled | None

    @property
    def where(self) -> str:
        return f"triggers[{self.index}]"


def compile_trigger(trigger: Trigger, index: int) -> CompiledTrigger:
    """Parse ``trigger``'s templates; :class:`ExpressionError` whose path names the string
    (``triggers[0].inputs.title``)."""
    where = f"triggers[{index}]"
    inputs = trigger.inputs
    if inputs is None and trigger.github is not None:
        inputs = {}
    compiled = (
        None
        if inputs is None
        else {name: compile_value(value, f"{where}.inputs.{name}", scope=SCOPE) for name, value in inputs.items()}
    )
    delivery = trigger.webhook.delivery if trigger.webhook is not None else None
    return CompiledTrigger(
        index,
        trigger,
        compiled,
        compile_value(delivery, f"{where}.webhook.delivery", scope=SCOPE) if delivery is not None else None,
    )


def problems(triggers: list[Trigger], declared: Mapping[str, DeclaredInput]) -> list[tuple[str, str]]:
    """Everything wrong with ``triggers`` for a workflow with inputs ``declared``, as
    ``(field, message)``: template errors, inputs it does not declare, required inputs a
    trigger leaves unset, a second ``webhook`` trigger."""
    found: list[tuple[str, str]] = []
    first_webhook: int | None = None
    for index, trigger in enumerate(triggers):
        where = f"triggers[{index}]"
        if trigger.webhook is not None:
            if first_webhook is not None:
                found.append((where, f"a workflow has at most one `webhook` trigger (triggers[{first_webhook}])"))
            first_webhook = index if first_webhook is None else first_webhook
        inputs = trigger.inputs if trigger.inputs is not None or trigger.github is None else {}
        templates: list[tuple[str, Any]] = [(f"{where}.inputs.{name}", value) for name, value in (inputs or {}).items()]
        if trigger.webhook is not None and trigger.webhook.delivery is not None:
            templates.append((f"{where}.webhook.delivery", trigger.webhook.delivery))
        for path, value in templates:
            try:
                compile_value(value, path, scope=SCOPE)
            except ExpressionError as exc:
                found.append((exc.path or path, exc.message))
        if inputs is None:
            continue
        known = ", ".join(sorted(declared)) or "none"
        for name in inputs:
            if name not in declared:
                found.append((f"{where}.inputs.{name}", f"unknown input (declared inputs: {known})"))
        unset = [
            name for name, spec in declared.items() if spec.required and spec.default is None and name not in inputs
        ]
        if unset:
            found.append((f"{where}.inputs", f"required inputs not set by this trigger: {', '.join(unset)}"))
    return found


def header_scope(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The ``headers`` templates read: lower-cased names with ``-`` spelled ``_``, the first of
    repeated ones, without :data:`HIDDEN_HEADERS` and values over :data:`MAX_SCOPE_HEADER_CHARS`."""
    scope: dict[str, str] = {}
    for name, value in headers:
        key = name.lower().replace("-", "_")
        if key in HIDDEN_HEADERS or key in scope or len(value) > MAX_SCOPE_HEADER_CHARS:
            continue
        scope[key] = value
        if len(scope) >= MAX_SCOPE_HEADERS:
            break
    return scope


def render_inputs(
    compiled: CompiledTrigger, event: Any, headers: Mapping[str, str], *, limits: RenderLimits
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The inputs ``compiled`` sets for a delivery of ``event`` with ``headers``, and the
    ``(input field, message)`` of each that failed to render; all share one clock (``limits``)."""
    context = {"event": event, "headers": headers}
    given: dict[str, Any] = {}
    failed: list[tuple[str, str]] = []
    with rendering(limits):
        for name, value in (compiled.inputs or {}).items():
            try:
                given[name] = value.render(context)
            except ExpressionError as exc:
                failed.append((f"inputs.{name}", f"{exc.message} (from {compiled.where}.inputs.{name})"))
    return given, failed


def render_delivery(
    compiled: CompiledTrigger, event: Any, headers: Mapping[str, str], *, limits: RenderLimits
) -> str | None:
    """The delivery id ``compiled.delivery`` renders to (None without one); ValueError when it
    fails or is not 1-80 printable ASCII characters without blanks."""
    if compiled.delivery is None:
        return None
    try:
        value = compiled.delivery.render({"event": event, "headers": headers}, limits=limits)
    except ExpressionError as exc:
        raise ValueError(f"{compiled.where}.webhook.delivery: {exc.message}") from None
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    if text is None or not DELIVERY_PATTERN.fullmatch(text):
        raise ValueError(
            f"{compiled.where}.webhook.delivery must render to 1-80 printable ASCII characters without blanks"
        )
    return text
