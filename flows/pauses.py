"""Pausing a run for a person's answer, and answering it: Prefect's pause with typed input.

The runner hands each node a :class:`Pauser` (``NodeContext.wait_for_input``). It announces
the question to the run's listeners (a ``waiting`` node event; the Slack bot posts buttons),
then pauses the *flow run* from inside the node's task run with
``prefect.flow_runs.apause_flow_run(wait_for_input=<RunInput model>, key=...)`` — measured with
prefect 3.9: the flow run goes ``Paused``, other nodes' task runs already started keep going,
and ``resume_flow_run(id, run_input={...})`` from any process delivers the typed answer. The
node stays its own task run in the Prefect UI.

Two facts shape this module:

* One flow run has one state, so one pause at a time: pauses in one run queue on a lock.
* A pause that times out leaves the flow run ``Paused``; Prefect would then end the run
  ``Failed`` ("never resumed") even if the workflow continues (``on_error: continue``), so
  :class:`Pauser` puts the flow run back to ``Running`` itself.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.flow_runs import apause_flow_run, aresume_flow_run
from prefect.input import RunInput
from prefect.states import Running
from pydantic import BaseModel

from nodes.context import InputTimeoutError

M = TypeVar("M", bound=BaseModel)
logger = logging.getLogger(__name__)

#: Seconds between the paused run's checks for an answer (the worst-case resume delay).
POLL_SECONDS = 1

#: Prefix of the flow-run input under which a pause publishes its question (the pause key
#: follows): a process following the run through Prefect (the bot, for a run on a worker)
#: reads it to ask the question.
QUESTION_KEY_PREFIX = "switchboard-question-"

#: How long :func:`answer` waits for a just-announced pause to reach Prefect.
PAUSE_SETTLE_SECONDS = 5.0


class NotWaitingError(RuntimeError):
    """The run is not waiting for this answer (it was answered, timed out, or ended)."""


def pause_key(label: str, attempt: int) -> str:
    """A flow-run-input key for one node (or ``for_each`` item) attempt: Prefect allows only
    lowercase letters, digits and dashes, so the label is slugged and a digest keeps it unique."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "node"
    digest = hashlib.sha256(label.encode()).hexdigest()[:6]
    return f"{slug}-{digest}-{attempt}"


@functools.cache
def _run_input_model(model: type[BaseModel]) -> type[RunInput]:
    """The Prefect ``RunInput`` subclass of a node's answer model (one class per model)."""
    return RunInput.subclass_from_base_model_type(model)


@dataclass
class Pauser:
    """``NodeContext.wait_for_input`` for one node attempt (built by the runner)."""

    key: str
    #: Held while the flow run is paused: one pause at a time per run.
    lock: asyncio.Lock
    #: Tells the run's listeners what is being asked (the runner emits a ``waiting`` event).
    announce: Callable[[dict[str, Any]], None]
    #: The node asking (published with the question).
    node_id: str = ""
    #: Pauses so far in this node attempt (an ``ai.agent`` asks once per approved tool call):
    #: the first uses ``key``, later ones ``key-2``, ``key-3``..., each answered on its own.
    asked: int = 0

    async def __call__(self, model: type[M], *, request: Mapping[str, Any], timeout: int) -> M:
        """Pause the flow run until an answer of type ``model`` arrives; raises
        :class:`~nodes.context.InputTimeoutError` after ``timeout`` seconds."""
        self.asked += 1
        key = self.key if self.asked == 1 else f"{self.key}-{self.asked}"
        async with self.lock:
            question = {**request, "key": key, "timeout": timeout}
            self.announce(question)
            await _publish(key, {**question, "node_id": self.node_id})
            try:
                answer = await apause_flow_run(
                    wait_for_input=_run_input_model(model), timeout=timeout, poll_interval=POLL_SECONDS, key=key
                )
            except FlowPauseTimeout as exc:
                await _unpause(key)
                raise InputTimeoutError(f"no answer within {timeout} s") from exc
        return model.model_validate(answer.model_dump(include=set(model.model_fields)))


async def _publish(key: str, question: dict[str, Any]) -> None:
    """Store the question as a flow-run input of the paused run (see :data:`QUESTION_KEY_PREFIX`)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    try:
        async with get_client() as client:
            await client.create_flow_run_input(
                context.flow_run.id, key=QUESTION_KEY_PREFIX + key, value=json.dumps(question, default=str)
            )
    except Exception:  # only followers elsewhere miss it; the pause itself goes on
        logger.warning("could not publish the question of pause %s", key, exc_info=True)


async def read_question(flow_run_id: UUID, key: str) -> dict[str, Any] | None:
    """The question a run paused under ``key`` published (None: none was)."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    async with get_client() as client:
        try:
            value = await client.read_flow_run_input(flow_run_id, QUESTION_KEY_PREFIX + key)
        except ObjectNotFound:
            return None
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 404:
                return None
            raise
    question = json.loads(value)
    return question if isinstance(question, dict) else None


async def _unpause(key: str) -> None:
    """Put a flow run whose pause ``key`` timed out back to Running, so the workflow goes on."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    async with get_client() as client:
        flow_run = await client.read_flow_run(context.flow_run.id)
        state = flow_run.state
        if state is not None and state.is_paused() and state.state_details.pause_key == key:
            # `force`: the orchestrator refuses to leave an expired pause except towards Failed.
            await client.set_flow_run_state(context.flow_run.id, Running(), force=True)


async def answer(flow_run_id: str, key: str, values: Mapping[str, Any]) -> None:
    """Resume the flow run paused under ``key`` with ``values`` as its typed input.

    The question is announced just before the pause reaches Prefect, so a pause that is not
    there yet is waited for a few seconds. Raises :class:`NotWaitingError` when the run is not
    (or no longer) paused for this key.
    """
    run_id = UUID(flow_run_id)
    deadline = time.monotonic() + PAUSE_SETTLE_SECONDS
    async with get_client() as client:
        while True:
            flow_run = await client.read_flow_run(run_id)
            state = flow_run.state
            if state is not None and state.is_paused():
                if state.state_details.pause_key != key:
                    raise NotWaitingError("the run is waiting for another answer now")
                break
            if state is None or state.is_final() or time.monotonic() > deadline:
                raise NotWaitingError(f"the run is {state.name if state else 'gone'}, not waiting for an answer")
            await asyncio.sleep(0.2)
    try:
        await aresume_flow_run(run_id, run_input=dict(values))
    except (NotPausedError, FlowPauseTimeout) as exc:
        raise NotWaitingError(str(exc) or "the run is no longer waiting") from exc
