"""The one place AI nodes talk to a model server: client construction and error mapping.

The SDK's own retries are off (``max_retries=0``): retries are Prefect's, per node, and visible.
The SDK is imported on the first call, not with the node registry: ``openai`` and its types cost
about a second of CPU, which every process that only lists or validates nodes would pay.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import jsonschema

from nodes.auth import with_token
from nodes.context import NodeContext
from nodes.errors import NodeConfigError, ProviderError
from nodes.provider_errors import connection_error, error_for_status, timeout_error
from nodes.providers import Provider, register_provider

if TYPE_CHECKING:
    import openai
    from openai import AsyncOpenAI

DESCRIPTOR = register_provider(
    Provider(
        name="openai",
        title="OpenAI",
        # Any OpenAI-compatible server: a credential's base_url (self-hosted models, proxies).
        base_url="https://api.openai.com/v1",
        # Servers vary by tier: only bursts are smoothed.
        per_second=50.0,
        timeout=120.0,
        nodes="ai.*",
    )
)
PROVIDER = DESCRIPTOR.name
TIMEOUT_SECONDS = DESCRIPTOR.timeout

T = TypeVar("T")


def client(key: str, base_url: str | None) -> AsyncOpenAI:
    """A client for a credential; its ``base_url`` selects any OpenAI-compatible server
    (without one, OpenAI's own: the SDK's ``OPENAI_BASE_URL`` is not read in a node)."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(api_key=key, base_url=base_url or DESCRIPTOR.base_url, max_retries=0, timeout=TIMEOUT_SECONDS)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    return str((error or {}).get("message") or exc.message)


def translate(exc: openai.OpenAIError, ctx: NodeContext) -> Exception:
    """Map an SDK failure onto the node error tree."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return timeout_error(PROVIDER, TIMEOUT_SECONDS)
    if isinstance(exc, openai.APIConnectionError):
        return connection_error(PROVIDER, exc)
    if isinstance(exc, openai.APIStatusError):
        request = exc.response.request
        return error_for_status(
            PROVIDER,
            exc.status_code,
            message=_message(exc),
            headers=dict(exc.response.headers),
            body=exc.body,
            credential=ctx.credential_name,
            request=f"{request.method} {request.url.path}",
        )
    return ProviderError(str(exc), provider=PROVIDER)


async def request(ctx: NodeContext, call: Callable[[AsyncOpenAI], Awaitable[T]]) -> T:
    """Await ``call(client)`` with the node's credential, translating SDK errors (an OAuth
    token refused with 401 is refreshed once)."""
    import openai

    async def attempt(key: str, base_url: str | None) -> T:
        async with client(key, base_url) as openai_client:
            try:
                return await call(openai_client)
            except openai.OpenAIError as exc:
                raise translate(exc, ctx) from exc

    return await with_token(ctx, attempt)


def usage(response: Any) -> dict[str, int]:
    """The token usage a response reports (``prompt_tokens``, ``completion_tokens``, ``total_tokens``)."""
    used = getattr(response, "usage", None)
    if used is None:
        return {}
    # Only counts that are whole numbers: a provider's body is as untrusted as any input.
    return {
        k: value
        for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        if isinstance(value := getattr(used, k, None), int) and not isinstance(value, bool) and value >= 0
    }


@dataclass(frozen=True)
class Reply:
    """One chat completion: the reply text, the answering model and the token usage."""

    text: str
    model: str
    usage: dict[str, int]


def estimate_tokens(*texts: str) -> int:
    """About how many tokens ``texts`` are (4 characters a token, OpenAI's rule of thumb for
    English, plus a few a message): what a budget is checked against before a call."""
    return sum(len(text) // 4 + 4 for text in texts)


def counted(ctx: NodeContext, model: str, response: Any) -> dict[str, int]:
    """The usage ``response`` reports, logged and counted in the run's usage (per answering model)."""
    used = usage(response)
    answered = str(getattr(response, "model", None) or model)
    ctx.record_usage(answered, used)
    ctx.logger.info("%s: model %s used %s tokens", ctx.node_id, answered, used.get("total_tokens", "?"))
    return used


async def chat_completion(
    ctx: NodeContext, model: str, messages: list[dict[str, Any]], *, prompt_extra: str = "", **options: Any
) -> Any:
    """One chat completion (the SDK's response), held to the run's budget and counted.
    ``prompt_extra``: text sent besides the messages (tool schemas), for the budget estimate."""
    texts = [json.dumps(m["content"]) if not isinstance(m.get("content"), str) else m["content"] for m in messages]
    ctx.before_model_call(model, prompt_tokens=estimate_tokens(*texts, prompt_extra))
    response = await request(
        ctx,
        lambda client: client.chat.completions.create(model=model, messages=messages, **options),  # type: ignore[arg-type]
    )
    counted(ctx, model, response)
    if not getattr(response, "choices", None):
        raise ProviderError("the reply has no choices", provider=PROVIDER)
    return response


async def complete(ctx: NodeContext, model: str, messages: list[dict[str, str]], **options: Any) -> Reply:
    """One chat completion for the node, held to the run's budget; counts its token usage."""
    response = await chat_completion(ctx, model, list(messages), **options)
    return Reply(text=response.choices[0].message.content or "", model=response.model, usage=usage(response))


async def conversation(
    ctx: NodeContext, prompt: str, *, system: str | None, memory_session: str | None, turns: int = 50
) -> list[dict[str, Any]]:
    """The messages of a call: the system message, the memory session's earlier turns, the prompt."""
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    if memory_session:
        for turn in await ctx.memory.history(memory_session, turns):
            messages.append({"role": turn.role, "content": turn.content})
    messages.append({"role": "user", "content": prompt})
    return messages


async def remember(ctx: NodeContext, memory_session: str | None, prompt: str, answer: str) -> None:
    """Keep this turn (the prompt and the answer) in the memory session, when there is one."""
    if memory_session:
        await ctx.memory.append(memory_session, "user", prompt)
        await ctx.memory.append(memory_session, "assistant", answer)


def json_schema_format(schema: dict[str, Any], name: str = "reply") -> dict[str, Any]:
    """The ``response_format`` asking for a JSON reply that matches ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def check_schema(schema: dict[str, Any], field: str = "json_schema") -> None:
    """Refuse an invalid JSON schema before any tokens are spent on it."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise NodeConfigError(f"`{field}` is not a valid JSON schema at {where}: {exc.message}") from exc


def parse_json_reply(text: str, schema: dict[str, Any]) -> Any:
    """Parse a JSON reply and validate it; an invalid one names the schema path that failed."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProviderError(f"the reply is not JSON: {exc.msg}", provider=PROVIDER) from exc
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ProviderError(
            f"the reply does not match json_schema at {where}: {exc.message}", provider=PROVIDER
        ) from exc
    return data
