"""``POST /hooks/{workflow}``: start a run of a stored workflow from a signed HTTP request.

Without ``triggers:`` the request body is a JSON object: the run's inputs, validated against
the workflow's typed inputs as JSON values (``"3"`` is not an integer). An empty body means no
inputs. Two headers authenticate it, with the workflow's webhook secret
(``switchboard webhooks add NAME``)::

    X-Switchboard-Timestamp: <unix seconds>
    X-Switchboard-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + raw body)>

A workflow's ``triggers:`` (:mod:`flows.triggers`, docs/triggers.md) add GitHub deliveries
(``X-Hub-Signature-256`` over the body, filtered on ``X-GitHub-Event``, the payload's
``action`` and repository) and other HMAC schemes (a ``webhook`` trigger's ``signature``,
which then replaces Switchboard's own), each with inputs rendered from the event;
:mod:`switchboard.triggers` picks the scheme and decides.

Answers (always JSON):

- ``202 {"run_id": "..."}`` at once; the run goes on in the bot, its live message in the
  workflow's ``notify: {channel}`` if it has one. Its record has trigger ``webhook`` or
  ``github`` and ``triggered_by`` ``webhook``, ``webhook:<delivery id>`` or
  ``github:<X-GitHub-Delivery>``;
- ``200 {"ok": true, "zen": ..., "events": [...]}``: GitHub's ``ping``; nothing runs;
- ``202 {"ignored": "<reason>"}``: authenticated, but no trigger's filter matches (another
  event, action or repository, or no ``github`` trigger); nothing runs;
- ``200 {"run_id": "...", "duplicate": true}``: a delivery id (``X-GitHub-Delivery``, a
  ``webhook`` trigger's ``delivery``) accepted in the last 7 days, by this bot process or
  another one on the same database: nothing runs again, the first run's id is returned (a
  2xx, so the sender does not retry);
- ``200 {"run_id": "...", "duplicate": true}`` (and ``Idempotent-Replayed: true``): an
  ``Idempotency-Key`` header seen with the same body in the last 24 h; nothing runs again.
  The same key with another body is a ``409 {"error": ..., "run_id": ...}``, a malformed key
  (not 1-255 printable ASCII characters) a 400;
- ``401 {"error": ...}``: a missing or malformed header, a wrong signature, or a timestamp
  outside the scheme's window (300 s for Switchboard's own) — nothing runs. A name with no
  workflow, or a workflow with no webhook secret, is checked against a random secret nobody
  holds, by the scheme the request's own headers call for, so before authentication it gets
  exactly the answer a wrong signature gets (the bot's log says which);
- ``409 {"error": ..., "run_id": ...}``: the same signed request (a timestamped scheme) was
  accepted before, by this bot process or another one on the same database; nothing runs
  again, and the first run's id is returned;
- ``400 {"error": ..., "problems": [{"field", "message"}, ...]}``: the body is not JSON
  within bounds (:mod:`nodes.safe_json`: depth, integer digits, no NaN, no key twice), not
  an object where one is needed, a GitHub header is malformed, or the inputs do not fit the
  workflow (every problem listed, a template that failed to render included);
- ``404``: authenticated, but the workflow is gone (its secret outlived it);
- ``413``: a body over ``SWITCHBOARD_MAX_REQUEST_BYTES`` (1 MiB), refused unread by
  :mod:`bot.request_limits` before this endpoint runs.

The order is: size cap, secret and workflow lookup, signature, workflow, body, trigger filter
(ping, ignored), inputs, Idempotency-Key, delivery or replay claim.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.runtime import BotRuntime, workflow_of
from flows.model import NAME_PATTERN, DefinitionError
from switchboard import triggers, webhooks
from switchboard.errors import WorkflowNotFoundError
from switchboard.execution import new_run_id
from switchboard.idempotency import IdempotencyConflictError
from switchboard.webhooks import SignatureError, WebhookSecrets
from switchboard.workflows import StoredVersion

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
#: Optional on every scheme: the same key and body within 24 h start one run, across bot processes.
IDEMPOTENCY_HEADER = "Idempotency-Key"
_NAME = re.compile(NAME_PATTERN)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def webhook_endpoint(runtime: BotRuntime) -> Endpoint:
    """The Starlette endpoint for ``POST /hooks/{workflow}`` on ``runtime``."""
    replays = runtime.core.slack.replays()
    secrets: list[WebhookSecrets] = []  # the key is loaded on the first webhook, not at start-up
    # What a name without a webhook secret is verified against: the same checks and the same
    # HMAC as a real one, so neither the answer nor its timing says whether the name exists.
    decoy = webhooks.new_secret()

    async def stored_version(name: str) -> StoredVersion | None:
        if len(name) > 100 or not _NAME.fullmatch(name):
            return None  # no workflow can have that name
        try:
            return await runtime.core.workflows.get(name)
        except WorkflowNotFoundError:
            return None

    async def receive(request: Request) -> Response:
        name = request.path_params["workflow"]
        body = await request.body()  # at most max_bytes: bot.request_limits refuses more unread
        if not secrets:
            secrets.append(runtime.core.webhooks)
        secret = await secrets[0].get(name)
        stored = await stored_version(name)
        # The workflow's declared scheme decides how a request is checked (an unknown name: the
        # scheme the request's headers call for), before anything else is told.
        try:
            workflow = workflow_of(stored) if stored is not None else None
        except ValueError:  # the stored version no longer validates: answered once authenticated
            workflow = None
        url = triggers.signed_url(
            name, runtime.settings, received=str(request.url.replace(query="")), query=request.url.query
        )
        delivery = triggers.Delivery.of(name, request.method, url, request.headers.items(), body)
        try:
            verified = triggers.verify(delivery, secret or decoy, workflow)
        except SignatureError as exc:
            why = f"no webhook secret for {name[:100]!r} (switchboard webhooks add NAME)" if secret is None else exc
            logger.warning("refused a webhook for %r from %s: %s", name[:100], _client(request), why)
            return _error(401, str(exc))
        if secret is None:  # nobody holds the decoy: unreachable, but never run on it
            return _error(401, "the signature does not match")
        if stored is None:
            return _error(404, f"no workflow named {name!r} (see `switchboard list`)")
        if workflow is None:
            return _error(500, f"workflow {name!r} v{stored.version} does not validate; apply a fixed version")

        decision = triggers.decide(
            delivery,
            verified,
            workflow,
            max_bytes=runtime.settings.max_request_bytes,
            limits=triggers.render_limits(runtime.settings),
        )
        if isinstance(decision, triggers.Answer):
            if "ignored" in decision.body:
                logger.info("ignored a %s delivery for %s: %s", verified.scheme, name, decision.body["ignored"])
            return JSONResponse(decision.body, status_code=decision.status)

        claim = decision.claim
        run_id = new_run_id()
        key = delivery.headers.get(IDEMPOTENCY_HEADER.lower())
        idempotency = runtime.core.idempotency
        scope = f"webhook:{name}"
        if key is not None:
            try:
                held = await idempotency.claim(scope, key, request=body, run_id=run_id)
            except IdempotencyConflictError as exc:
                return _error(409, str(exc), run_id=exc.run_id)
            except ValueError as exc:  # a malformed key
                return _error(400, str(exc), problems=[{"field": IDEMPOTENCY_HEADER, "message": str(exc)}])
            if not held.won:
                logger.info("an Idempotency-Key repeated to %s started nothing: run %s", name, held.run_id)
                return JSONResponse(
                    {"run_id": held.run_id, "duplicate": True}, status_code=200, headers={"Idempotent-Replayed": "true"}
                )

        async def release() -> None:
            """Nothing started: the sender may send it again."""
            if claim is not None:
                await replays.release(claim.key)
            if key is not None:
                await idempotency.release(scope, key)

        # One INSERT decides, across every bot process on this database: a copy of this request
        # or a redelivery (here or in another process, at the same moment or later) loses.
        if claim is not None and not await replays.claim(claim.key, until=claim.until, run_id=run_id):
            first_run = await replays.holder(claim.key)
            if key is not None:
                await idempotency.release(scope, key)
            if claim.kind == "delivery":
                logger.info("a redelivery to %s (%s) started nothing: run %s", name, decision.triggered_by, first_run)
                return JSONResponse({"run_id": first_run, "duplicate": True}, status_code=200)
            logger.warning("ignored a replayed webhook for %s (run %s)", name, first_run)
            return _error(
                409, "this signed request was accepted already; sign a new one to run again", run_id=first_run
            )
        try:
            started = await runtime.start_unattended(
                stored, decision.inputs, trigger=decision.trigger, triggered_by=decision.triggered_by, run_id=run_id
            )
        except DefinitionError as exc:  # the stored version no longer validates (a node was removed)
            await release()
            return _error(500, f"workflow {name!r} v{stored.version} does not validate: {exc}")
        except BaseException:
            await release()
            raise
        return JSONResponse({"run_id": started.run_id}, status_code=202)

    return receive


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
