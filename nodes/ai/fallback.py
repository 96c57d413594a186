"""Model fallback: ``model`` as a list of models (each on the node's credential, or its own),
tried in order while they fail transiently.

``model: [gpt-4o, {model: llama-3-70b, credential: local-llm}]``: a call goes to the first; a
transient failure (429, 5xx, a timeout, a connection error) moves it to the next at once; a
permanent one (400, 401, a budget refusal) ends it there. When every model failed transiently
the last error is raised, so the node's own ``retries`` try the whole list again. What answered
is the output's ``model``; the models passed over are listed in ``fallbacks``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from nodes.context import NodeContext
from nodes.errors import TransientError

T = TypeVar("T")
#: The most models one node may fall back through.
MAX_MODELS = 5


class ModelOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="The model name the server knows.")
    credential: str | None = Field(default=None, description="Its credential (default: the node's).")


#: A node's ``model`` param: one model name, or models to fall back through.
Models = str | Annotated[list[str | ModelOption], Field(min_length=1, max_length=MAX_MODELS)]

MODELS_DESCRIPTION = (
    "The model name the server knows, or a list to fall back through when one fails transiently: "
    "names (on the node's credential) or `{model, credential}`."
)


class Fallback(BaseModel):
    model: str = Field(description="The model passed over.")
    credential: str | None = Field(default=None, description="Its credential, when not the node's.")
    error: str = Field(description="Why: its transient error.")


def options(models: Models) -> list[ModelOption]:
    if isinstance(models, str):
        return [ModelOption(model=models)]
    return [ModelOption(model=m) if isinstance(m, str) else m for m in models]


async def first_answer(
    ctx: NodeContext, models: Models, call: Callable[[NodeContext, str], Awaitable[T]], fallbacks: list[Fallback]
) -> T:
    """``call(ctx, model)`` for each model in turn until one answers; models that failed
    transiently are appended to ``fallbacks``."""
    chain = options(models)
    for index, option in enumerate(chain):
        on = ctx if option.credential is None else dataclasses.replace(ctx, credential_name=option.credential)
        try:
            return await call(on, option.model)
        except TransientError as exc:
            fallbacks.append(Fallback(model=option.model, credential=option.credential, error=str(exc)[:500]))
            if index == len(chain) - 1:
                raise
            ctx.logger.warning(
                "%s: model %s failed (%s); trying %s", ctx.node_id, option.model, exc, chain[index + 1].model
            )
    raise AssertionError("unreachable: a model list is never empty")


def as_dicts(fallbacks: list[Fallback]) -> list[dict[str, Any]]:
    return [f.model_dump() for f in fallbacks]
