"""``POST /hooks/{workflow}``: start a run of a stored workflow from a signed HTTP request.

The request body is a JSON object: the run's inputs, validated against the workflow's typed
inputs as JSON values (``"3"`` is not an integer). An empty body means no inputs. Two headers
authenticate it, with the workflow's webhook secret (``switchboard webhooks add NAME``)::

    X-Switchboard-Timestamp: <unix seconds>
    X-Switchboard-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + raw body)>

Answers (always JSON):

- ``202 {"run_id": "..."}`` at once; the run goes on in the bot, its live message in the
  workflow's ``notify: {channel}`` if it has one;
- ``401 {"error": ...}``: a missing or malformed header, a wrong signature, or a timestamp more
  than 300 s from the bot's clock — nothing runs. A name with no workflow, or a workflow with
  no webhook secret, is checked against a random secret nobody holds, so before
  authentication it gets exactly the answer a wrong signature gets (the bot's log says which);
- ``409 {"error": ..., "run_id": ...}``: the same signed request was accepted before, by this
  bot process or another one on the same database; nothing runs again, and the first run's id
  is returned;
- ``400 {"error": ..., "problems": [{"field", "message"}, ...]}``: the body is not a JSON
  object within bounds (:mod:`nodes.safe_json`: depth, integer digits, no NaN, no key twice),
  or the inputs do not fit the workflow (every problem listed);
- ``404``: authenticated, but the workflow is gone (its secret outlived it);
- ``413``: a body over ``SWITCHBOARD_MAX_REQUEST_BYTES`` (1 MiB), refused unread by
  :mod:`bot.request_limits` before this endpoint runs.

The order is: size cap, secret lookup, signature, workflow, body, inputs, replay claim.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.runtime import BotRuntime, workflow_of
from flows.model import DefinitionError, InputError
from nodes import safe_json
from switchboard import webhooks
from switchboard.errors import WorkflowNotFoundError
from switchboard.execution import new_run_id
from switchboard.webhooks import SignatureError, WebhookSecrets

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def webhook_endpoint(runtime: BotRuntime) -> Endpoint:
    """The Starlette endpoint for ``POST /hooks/{workflow}`` on ``runtime``."""
    replays = runtime.core.slack.replays()
    secrets: list[WebhookSecrets] = []  # the key is loaded on the first webhook, not at start-up
    # What a name without a webhook secret is verified against: the same checks and the same
    # HMAC as a real one, so neither the answer nor its timing says whether the name exists.
    decoy = webhooks.new_secret()
    max_bytes = runtime.settings.max_request_bytes

    async def receive(request: Request) -> Response:
        name = request.path_params["workflow"]
        body = await request.body()  # at most max_bytes: bot.request_limits refuses more unread
        if not secrets:
            secrets.append(runtime.core.webhooks)
        secret = await secrets[0].get(name)
        timestamp = request.headers.get(webhooks.TIMESTAMP_HEADER)
        signature = request.headers.get(webhooks.SIGNATURE_HEADER)
        try:
            stamp = webhooks.verify(secret or decoy, timestamp=timestamp, signature_header=signature, body=body)
        except SignatureError as exc:
            why = f"no webhook secret for {name[:100]!r} (switchboard webhooks add NAME)" if secret is None else exc
            logger.warning("refused a webhook for %r from %s: %s", name[:100], _client(request), why)
            return _error(401, str(exc))
        if secret is None:  # nobody holds the decoy: unreachable, but never run on it
            return _error(401, "the signature does not match")

        try:
            stored = await runtime.core.workflows.get(name)
        except WorkflowNotFoundError:
            return _error(404, f"no workflow named {name!r} (see `switchboard list`)")
        try:
            given = safe_json.loads(body, what="the body", max_bytes=max_bytes) if body.strip() else {}
        except safe_json.UnsafeJSONError as exc:
            return _error(400, f'{exc}; send a JSON object of inputs, e.g. {{"repo": "acme/api"}}')
        if not isinstance(given, dict):
            return _error(400, f"the body is a JSON {_json_kind(given)}; send a JSON object of inputs")
        workflow = workflow_of(stored)
        try:
            inputs = workflow.resolve_inputs(given)
        except InputError as exc:
            problems = [{"field": p.field, "message": p.message} for p in exc.problems]
            listed = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in exc.problems)
            return _error(400, f"invalid inputs for workflow {name!r}: {listed}", problems=problems)

        key = webhooks.replay_key(name, secret, stamp, body)
        run_id = new_run_id()
        # One INSERT decides, across every bot process on this database: a copy of this request
        # (here or in another process, at the same moment or later in the window) loses.
        if not await replays.claim(key, until=webhooks.replay_expiry(stamp), run_id=run_id):
            first_run = await replays.holder(key)
            logger.warning("ignored a replayed webhook for %s (run %s)", name, first_run)
            return _error(
                409, "this signed request was accepted already; sign a new one to run again", run_id=first_run
            )
        try:
            started = await runtime.start_unattended(stored, inputs, trigger="webhook", run_id=run_id)
        except DefinitionError as exc:  # the stored version no longer validates (a node was removed)
            await replays.release(key)
            return _error(500, f"workflow {name!r} v{stored.version} does not validate: {exc}")
        except Exception:
            await replays.release(key)  # nothing started: the sender may send it again
            raise
        return JSONResponse({"run_id": started.run_id}, status_code=202)

    return receive


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), "null")
