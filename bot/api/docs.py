"""``GET /api/v1/docs``: the OpenAPI document as a plain HTML page.

FastAPI's Swagger and ReDoc pages load their scripts from a CDN, which a bot on a closed
network cannot reach; this page is rendered on the server from the same document, with no
script at all, and links to ``openapi.json`` for tools.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "h2{margin-top:2rem;border-bottom:1px solid #ddd}code,pre{background:#f5f5f5;padding:.1rem .3rem}"
    "pre{padding:.6rem;overflow:auto}.method{font-weight:bold;text-transform:uppercase}"
)


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    parts = [
        f'<h2 id="{html.escape(operation.get("operationId", ""))}"><span class="method">{html.escape(method)}</span> '
        f"<code>{html.escape(path)}</code></h2>",
        f"<p><b>{html.escape(operation.get('summary', ''))}</b> "
        f"(<code>{html.escape(operation.get('operationId', ''))}</code>)</p>",
        f"<p>{html.escape(operation.get('description', ''))}</p>",
    ]
    parameters = operation.get("parameters") or []
    if parameters:
        rows = "".join(
            f"<li><code>{html.escape(p['name'])}</code> ({html.escape(p['in'])}"
            f"{', required' if p.get('required') else ''}): {html.escape(p.get('description', ''))}</li>"
            for p in parameters
        )
        parts.append(f"<p>Parameters:</p><ul>{rows}</ul>")
    body = (operation.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        parts.append(f"<p>Body (JSON):</p><pre>{html.escape(json.dumps(body, indent=2))}</pre>")
    answers = "".join(
        f"<li><code>{html.escape(str(code))}</code> {html.escape(answer.get('description', ''))}</li>"
        for code, answer in sorted((operation.get("responses") or {}).items())
    )
    parts.append(f"<p>Answers:</p><ul>{answers}</ul>")
    return "\n".join(parts)


def docs_page(api: FastAPI) -> Callable[[Request], Awaitable[HTMLResponse]]:
    """The endpoint that renders ``api``'s OpenAPI document."""

    async def page(request: Request) -> HTMLResponse:
        document = api.openapi()
        info = document.get("info", {})
        sections = [
            _operation(method, path, operation)
            for path, methods in document.get("paths", {}).items()
            for method, operation in methods.items()
        ]
        root = request.scope.get("root_path", "")
        body = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(info.get('title', ''))}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(info.get('title', ''))} "
            f"v{html.escape(str(info.get('version', '')))}</h1><p>{html.escape(info.get('description', ''))}</p>"
            f'<p>The machine-readable document: <a href="{html.escape(root)}/openapi.json">openapi.json</a></p>'
            + "\n".join(sections)
            + "</body></html>"
        )
        return HTMLResponse(body)

    return page
