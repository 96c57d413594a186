"""``POST /hooks/{workflow}``: start a run of a stored workflow from a signed HTTP request.

The request body is a JSON object: the run's inputs, validated against the workflow's typed
inputs as JSON values (``"3"`` is not an integer). An empty body means no inputs. Two headers
authenticate it, with the workflow's webhook secret (``switchboard webhooks add NAME``)::

    X-Switchboard-Timestamp: <unix seconds>
    X-Switchboard-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + raw body)>

Answers (always JSON):

- ``202 {"run_id": "..."}`` at once; the run goes on in the bot, its live message in the
  workflow's ``notify: {channel}`` if it has one;
- ``401 {"error": ...}``: no secret for the workflow, a missing or malformed header, a wrong
  signature, or a timestamp more than 300 s from the bot's clock — nothing runs;
- ``409 {"error": ..., "run_id": ...}``: the same signed request (signature and timestamp)
  was accepted before; nothing runs again, and the first run's id is returned;
- ``400 {"error": ..., "problems": [{"field", "message"}, ...]}``: the body is not a JSON
  object, or the inputs do not fit the workflow (every problem listed);
- ``404``: no stored workflow of that name; ``413``: a body over 1 MiB.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.runtime import BotRuntime, workflow_of
from flows.model import DefinitionError, InputError
from storage.workflows import WorkflowNotFoundError
from switchboard import webhooks
from switchboard.webhooks import SignatureError, WebhookSecrets

logger = logging.getLogger(__name__)

#: The largest body accepted (inputs, not file uploads).
MAX_BODY_BYTES = 1024 * 1024

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class AcceptedRequests:
    """Signed requests already accepted, kept while their timestamp is inside the window.

    A request outside the window fails its timestamp check anyway, so nothing older needs
    remembering. In-process memory: each bot process guards its own requests.
    """

    window: float = webhooks.TOLERANCE_SECONDS
    _runs: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    _pruned: float = 0.0

    def seen(self, key: tuple[str, str]) -> str | None:
        """The run id a request with ``key`` (signature, timestamp) started, if any."""
        found = self._runs.get(key)
        return found[1] if found else None

    def remember(self, key: tuple[str, str], timestamp: int, run_id: str) -> None:
        now = time.time()
        if now - self._pruned > 1.0:  # at most once a second: cheap under a burst
            self._runs = {k: v for k, v in self._runs.items() if v[0] + self.window >= now - 1}
            self._pruned = now
        self._runs[key] = (timestamp, run_id)

    def forget(self, key: tuple[str, str]) -> None:
        self._runs.pop(key, None)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def webhook_endpoint(runtime: BotRuntime) -> Endpoint:
    """The Starlette endpoint for ``POST /hooks/{workflow}`` on ``runtime``."""
    accepted = AcceptedRequests()
    secrets: list[WebhookSecrets] = []  # the key is loaded on the first webhook, not at start-up

    async def receive(request: Request) -> Response:
        name = request.path_params["workflow"]
        try:
            stored = await runtime.workflows.get(name)
        except WorkflowNotFoundError:
            return _error(404, f"no workflow named {name!r} (see `switchboard list`)")
        if not secrets:
            secrets.append(WebhookSecrets.on(runtime.engine, runtime.settings))
        secret = await secrets[0].get(name)
        if secret is None:
            return _error(401, f"no webhook secret for {name!r} (switchboard webhooks add {name})")

        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _error(413, f"the body is over {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"the body is over {MAX_BODY_BYTES} bytes")
        timestamp = request.headers.get(webhooks.TIMESTAMP_HEADER)
        signature = request.headers.get(webhooks.SIGNATURE_HEADER)
        try:
            stamp = webhooks.verify(secret, timestamp=timestamp, signature_header=signature, body=body)
        except SignatureError as exc:
            logger.warning("refused a webhook for %s from %s: %s", name, _client(request), exc)
            return _error(401, str(exc))

        try:
            given = json.loads(body) if body.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(
                400, f'the body is not JSON ({exc}); send a JSON object of inputs, e.g. {{"repo": "acme/api"}}'
            )
        if not isinstance(given, dict):
            return _error(400, f"the body is a JSON {_json_kind(given)}; send a JSON object of inputs")
        workflow = workflow_of(stored)
        try:
            inputs = workflow.resolve_inputs(given)
        except InputError as exc:
            problems = [{"field": p.field, "message": p.message} for p in exc.problems]
            listed = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in exc.problems)
            return _error(400, f"invalid inputs for workflow {name!r}: {listed}", problems=problems)
        key = (signature or "", timestamp or "")
        first_run = accepted.seen(key)
        if first_run is not None:
            logger.warning("ignored a replayed webhook for %s (run %s)", name, first_run)
            return _error(
                409, "this signed request was accepted already; sign a new one to run again", run_id=first_run
            )
        accepted.remember(key, stamp, "")  # claimed before the first await: a concurrent copy gets 409
        try:
            started = await runtime.start_unattended(stored, inputs, trigger="webhook")
        except DefinitionError as exc:  # the stored version no longer validates (a node was removed)
            accepted.forget(key)
            return _error(500, f"workflow {name!r} v{stored.version} does not validate: {exc}")
        accepted.remember(key, stamp, started.run_id)
        return JSONResponse({"run_id": started.run_id}, status_code=202)

    return receive


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), "null")
