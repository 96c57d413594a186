"""ai.embed: embedding vectors for a batch of texts."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from nodes.ai import transport
from nodes.context import NodeContext
from nodes.errors import ProviderError
from nodes.params import Params
from nodes.registry import node


class EmbedParams(Params):
    model: str = Field(default="text-embedding-3-small", description="The embedding model the server knows.")
    texts: list[str] = Field(min_length=1, max_length=2048, description="The texts to embed (at most 2048).")
    dimensions: int | None = Field(default=None, ge=1, description="Shorter vectors, for models that support it.")

    @field_validator("texts")
    @classmethod
    def _not_blank(cls, texts: list[str]) -> list[str]:
        blank = [i for i, text in enumerate(texts) if not text.strip()]
        if blank:
            raise ValueError(f"texts must not be empty (item {blank[0]} is)")
        return texts


class EmbedOutput(BaseModel):
    vectors: list[list[float]] = Field(description="One vector per text, in the order of `texts`.")
    dimensions: int = Field(description="The length of each vector.")
    usage: dict[str, int] = Field(description="Token usage reported by the server.")
    model: str = Field(description="The model that answered.")


@node("ai.embed", credential="openai")
async def embed(ctx: NodeContext, params: EmbedParams) -> EmbedOutput:
    """Turn texts into embedding vectors (for search, clustering or deduplication)."""
    from openai import omit

    dimensions = params.dimensions if params.dimensions is not None else omit
    ctx.before_model_call(params.model, prompt_tokens=transport.estimate_tokens(*params.texts))
    response = await transport.request(
        ctx, lambda client: client.embeddings.create(model=params.model, input=params.texts, dimensions=dimensions)
    )
    items = sorted(response.data, key=lambda item: item.index)
    if len(items) != len(params.texts):
        raise ProviderError(
            f"asked for {len(params.texts)} embeddings, the server returned {len(items)}", provider=transport.PROVIDER
        )
    vectors = [list(item.embedding) for item in items]
    used = transport.counted(ctx, params.model, response)
    return EmbedOutput(vectors=vectors, dimensions=len(vectors[0]), usage=used, model=response.model)
