"""The base class of every node's ``Params`` model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Node params: unknown fields are errors (typos surface at validation time), and a
    number rendered from a template into a text field becomes its text (``"{{ n }}"`` keeps
    ``n``'s native type, so ``template: "{{ nodes.a.output.count }}"`` is an int)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
