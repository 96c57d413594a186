"""ai.chat: one chat completion, with optional chat memory and a JSON-schema'd reply."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from nodes.ai import transport
from nodes.ai.fallback import MODELS_DESCRIPTION, Fallback, Models, first_answer
from nodes.context import NodeContext
from nodes.params import Params
from nodes.registry import node

#: Earlier turns read from memory for a `memory_session`.
MEMORY_TURNS = 50


class ChatParams(Params):
    model: Models = Field(default="gpt-4o-mini", description=MODELS_DESCRIPTION)
    prompt: str = Field(min_length=1, description="The user message.")
    system: str | None = Field(default=None, description="A system message placed first.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int | None = Field(default=None, ge=1, description="Longest reply, in tokens.")
    memory_session: str | None = Field(
        default=None, description="Continue this chat memory session: earlier turns are sent, this turn is kept."
    )
    json_schema: dict[str, Any] | None = Field(
        default=None, description="Ask for JSON matching this schema; the parsed reply is `data`."
    )


class ChatOutput(BaseModel):
    text: str = Field(description="The reply text.")
    data: Any = Field(default=None, description="The parsed reply, with `json_schema`.")
    usage: dict[str, int] = Field(description="Token usage reported by the server.")
    model: str = Field(description="The model that answered.")
    fallbacks: list[Fallback] = Field(default_factory=list, description="Models passed over (transient failures).")


@node("ai.chat", credential="openai")
async def chat(ctx: NodeContext, params: ChatParams) -> ChatOutput:
    """Ask a chat model (any OpenAI-compatible server); optionally remember the conversation."""
    messages = await transport.conversation(
        ctx, params.prompt, system=params.system, memory_session=params.memory_session, turns=MEMORY_TURNS
    )
    options: dict[str, Any] = {}
    if params.temperature is not None:
        options["temperature"] = params.temperature
    if params.max_tokens is not None:
        options["max_tokens"] = params.max_tokens
    if params.json_schema is not None:
        transport.check_schema(params.json_schema)
        options["response_format"] = transport.json_schema_format(params.json_schema)
    passed: list[Fallback] = []
    reply = await first_answer(
        ctx, params.model, lambda on, model: transport.complete(on, model, messages, **options), passed
    )
    data = transport.parse_json_reply(reply.text, params.json_schema) if params.json_schema is not None else None
    text = reply.text
    await transport.remember(ctx, params.memory_session, params.prompt, text)
    return ChatOutput(text=text, data=data, usage=reply.usage, model=reply.model, fallbacks=passed)
