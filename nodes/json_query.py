"""JSON nodes: query data with JMESPath."""

from __future__ import annotations

from typing import Any

import jmespath
import jmespath.exceptions
from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.errors import NodeConfigError
from nodes.params import Params
from nodes.registry import node


class QueryParams(Params):
    data: Any = Field(description="The JSON data to query (usually an earlier node's output).")
    expression: str = Field(description="A JMESPath expression, e.g. `items[?state=='open'].id`.")


class QueryOutput(BaseModel):
    result: Any = Field(description="What the expression selected (null when nothing matched).")


@node("json.query", pure=True)
async def query(ctx: NodeContext, params: QueryParams) -> QueryOutput:
    """Select and reshape JSON data with a JMESPath expression."""
    try:
        compiled = jmespath.compile(params.expression)
    except jmespath.exceptions.ParseError as exc:
        raise NodeConfigError(f"expression {params.expression!r} is not valid JMESPath: {exc}") from exc
    try:
        return QueryOutput(result=compiled.search(params.data))
    except jmespath.exceptions.JMESPathError as exc:
        raise NodeConfigError(f"expression {params.expression!r} failed: {exc}") from exc
