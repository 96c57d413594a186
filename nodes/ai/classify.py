"""ai.classify and ai.extract: structured answers about a text, validated before use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from nodes.ai import transport
from nodes.context import NodeContext
from nodes.params import Params
from nodes.registry import node

MODEL_FIELD = Field(default="gpt-4o-mini", description="The model name the server knows.")


class ClassifyParams(Params):
    model: str = MODEL_FIELD
    text: str = Field(min_length=1, description="The text to classify.")
    labels: list[str] = Field(min_length=2, max_length=200, description="The labels to choose from (at least two).")
    instructions: str | None = Field(default=None, description="What the labels mean, or how to choose.")
    scores: bool = Field(default=False, description="Also ask for a confidence between 0 and 1 for every label.")

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels) or any(not label.strip() for label in labels):
            raise ValueError("labels must be distinct, non-empty strings")
        return labels


class ClassifyOutput(BaseModel):
    label: str = Field(description="The chosen label (always one of `labels`).")
    scores: dict[str, float] | None = Field(default=None, description="Confidence per label, with `scores: true`.")
    usage: dict[str, int] = Field(description="Token usage reported by the server.")
    model: str = Field(description="The model that answered.")


def _classify_schema(labels: list[str], scores: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": labels}},
        "required": ["label"],
        "additionalProperties": False,
    }
    if scores:
        schema["properties"]["scores"] = {
            "type": "object",
            "properties": {label: {"type": "number", "minimum": 0, "maximum": 1} for label in labels},
            "required": labels,
            "additionalProperties": False,
        }
        schema["required"] = ["label", "scores"]
    return schema


@node("ai.classify", credential="openai")
async def classify(ctx: NodeContext, params: ClassifyParams) -> ClassifyOutput:
    """Put a text into one of the given labels (optionally with a confidence per label)."""
    schema = _classify_schema(params.labels, params.scores)
    system = (
        "Classify the user's text into exactly one of these labels: "
        + ", ".join(repr(label) for label in params.labels)
        + '. Answer with JSON: {"label": <label>'
        + (', "scores": {<label>: <confidence 0..1> for every label}' if params.scores else "")
        + "}."
    )
    if params.instructions:
        system += "\n" + params.instructions
    messages = [{"role": "system", "content": system}, {"role": "user", "content": params.text}]
    reply = await transport.complete(
        ctx, params.model, messages, response_format=transport.json_schema_format(schema, "classification")
    )
    data = transport.parse_json_reply(reply.text, schema)
    return ClassifyOutput(label=data["label"], scores=data.get("scores"), usage=reply.usage, model=reply.model)


class ExtractParams(Params):
    model: str = MODEL_FIELD
    text: str = Field(min_length=1, description="The text to extract from.")
    schema_: dict[str, Any] = Field(
        alias="schema", description="A JSON schema (an object) describing the fields to extract."
    )
    instructions: str | None = Field(default=None, description="Extra guidance for the model.")


class ExtractOutput(BaseModel):
    data: Any = Field(description="The extracted data; it matches `schema`.")
    usage: dict[str, int] = Field(description="Token usage reported by the server.")
    model: str = Field(description="The model that answered.")


@node("ai.extract", credential="openai")
async def extract(ctx: NodeContext, params: ExtractParams) -> ExtractOutput:
    """Pull structured data out of a text, shaped and validated by a JSON schema."""
    transport.check_schema(params.schema_, "schema")
    system = (
        "Extract the information described by the JSON schema from the user's text. "
        "Answer with JSON only; use null for anything the text does not say."
    )
    if params.instructions:
        system += "\n" + params.instructions
    messages = [{"role": "system", "content": system}, {"role": "user", "content": params.text}]
    reply = await transport.complete(
        ctx, params.model, messages, response_format=transport.json_schema_format(params.schema_, "extraction")
    )
    data = transport.parse_json_reply(reply.text, params.schema_)
    return ExtractOutput(data=data, usage=reply.usage, model=reply.model)
