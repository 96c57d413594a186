"""A fake OpenAI-compatible chat completions endpoint on a FakeHTTP server."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.http import FakeHTTP, Recorded, Reply

PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"


def completion(text: str, *, model: str = "fake-model", prompt_tokens: int = 11, completion_tokens: int = 7) -> Reply:
    return Reply(
        200,
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


def tool_calls(
    *calls: tuple[str, dict[str, Any] | str],
    model: str = "fake-model",
    prompt_tokens: int = 20,
    completion_tokens: int = 10,
) -> Reply:
    """A reply asking for tool calls: ``(name, arguments)`` each, arguments as a dict (sent as
    JSON) or a raw string (to send what a misbehaving model would)."""
    return Reply(
        200,
        {
            "id": "chatcmpl-fake-tools",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": f"call_{index}",
                                "type": "function",
                                "function": {
                                    "name": name,
                                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                                },
                            }
                            for index, (name, arguments) in enumerate(calls)
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


def embeddings(vectors: list[list[float]], *, model: str = "fake-embed", prompt_tokens: int = 5) -> Reply:
    """An embeddings response (the items deliberately out of order, as the API allows)."""
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return Reply(
        200,
        {
            "object": "list",
            "data": list(reversed(data)),
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        },
    )


class FakeOpenAI:
    def __init__(self, http: FakeHTTP) -> None:
        self.http = http

    @property
    def base_url(self) -> str:
        return self.http.url("/v1")

    def reply(self, *replies: Reply) -> None:
        self.http.script("POST", PATH, *replies)

    def reply_embeddings(self, *replies: Reply) -> None:
        self.http.script("POST", EMBEDDINGS_PATH, *replies)

    def requests(self) -> list[Recorded]:
        return self.http.calls(PATH, "POST")

    def embedding_requests(self) -> list[Recorded]:
        return self.http.calls(EMBEDDINGS_PATH, "POST")

    def sent(self, index: int) -> dict[str, Any]:
        """The body of the ``index``-th chat completion request."""
        body: dict[str, Any] = self.requests()[index].json()
        return body

    def last_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.requests()[-1].json()["messages"]
        return messages
