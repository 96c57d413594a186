"""The node catalogue: every registered node's params and outputs as rows and as Markdown.

``docs/nodes.md`` is this module's output (``make docs``); a test keeps the two equal, so
the reference never drifts from the code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from nodes.registry import NodeSpec

#: One row per field: name, type, "required" or the default, description.
FieldRow = tuple[str, str, str, str]


def type_label(prop: dict[str, Any]) -> str:
    """A short human name for a JSON-schema property's type."""
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop or "oneOf" in prop:
        options = [type_label(p) for p in prop.get("anyOf", prop.get("oneOf", []))]
        return " | ".join(dict.fromkeys(options))
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items")
        return f"list[{type_label(items)}]" if isinstance(items, dict) and items else "list"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"dict[str, {type_label(values)}]" if isinstance(values, dict) and values else "object"
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "string" and prop.get("format"):
        return f"string ({prop['format']})"
    return str(kind) if kind else "any"


def _rows(schema: dict[str, Any], *, defaults: bool) -> list[FieldRow]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        if name in required:
            presence = "required"
        elif defaults and "default" in prop:
            presence = f"default {json.dumps(prop['default'])}"
        else:
            presence = "optional"
        rows.append((name, type_label(prop), presence, str(prop.get("description", ""))))
    return rows


def param_rows(spec: NodeSpec) -> list[FieldRow]:
    """The node's params (by alias, as workflow files spell them)."""
    return _rows(spec.params_model.model_json_schema(by_alias=True), defaults=True)


def output_rows(spec: NodeSpec) -> list[FieldRow]:
    """The top-level fields of the node's output (empty when the output is not an object)."""
    return _rows(spec.output_schema, defaults=False) if spec.output_schema.get("type") == "object" else []


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _table(rows: list[FieldRow], header: tuple[str, str, str, str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(_cell(c) for c in (f"`{r[0]}`", r[1], r[2], r[3])) + " |" for r in rows]
    return lines


def markdown(specs: Iterable[NodeSpec]) -> str:
    """The whole catalogue as Markdown, grouped by family (``docs/nodes.md``)."""
    specs = list(specs)
    families: dict[str, list[NodeSpec]] = {}
    for spec in specs:
        families.setdefault(spec.type.split(".", 1)[0], []).append(spec)
    lines = [
        "# Node reference",
        "",
        "Generated from the node registry by `make docs` (`switchboard nodes --markdown`); do not edit by hand.",
        "`switchboard nodes TYPE` shows the same for one node.",
        "",
        " · ".join(f"[{family}](#{family})" for family in families),
    ]
    for family, members in families.items():
        lines += ["", f"## {family}"]
        for spec in members:
            title = f"### `{spec.type}`" + (f" (version {spec.version})" if spec.version != 1 else "")
            lines += ["", title, "", spec.description.strip()]
            if spec.credential:
                lines += ["", f"Credential: a `{spec.credential}` credential (`credential:` on the node)."]
            params = param_rows(spec)
            if params:
                lines += ["", "Params:", "", *_table(params, ("name", "type", "presence", "description"))]
            outputs = output_rows(spec)
            if outputs:
                lines += ["", "Output:", "", *_table(outputs, ("field", "type", "presence", "description"))]
            elif spec.output_schema:
                lines += ["", f"Output: {type_label(spec.output_schema)}."]
    return "\n".join(lines) + "\n"
