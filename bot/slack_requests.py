"""Slack's HTTP requests, checked before Bolt sees them: the signature first, then the body.

Bolt parses a body (``slack_bolt.request.internals.parse_body``) while it builds its request
object, which is before its own signature check and outside its error handling: a body that
is not UTF-8, broken JSON, a JSON array, 100k-deep nesting or a 5000-digit integer each made
a 500 with a traceback, signed or not. So ``POST /slack/events`` checks, in this order:

1. the size (:mod:`bot.request_limits`: over the cap, 413 before more is read);
2. the signature over the raw bytes (:func:`signature_ok`), the timestamp spelled as unix
   seconds only: anything else gets Bolt's own 401 ``{"error": "invalid request"}``, whatever
   its body, so an unsigned sender learns nothing about how the body would be read;
3. the body, parsed the way Bolt will parse it but with bounds (:func:`parse_body`,
   :mod:`nodes.safe_json`): 400 saying what is wrong. Only Slack, or whoever holds the signing
   secret, gets this far.

The one exception is Bolt's own: a body with ``ssl_check=1`` (Slack's certificate probe) skips
Bolt's signature check, and Bolt acknowledges it and runs nothing, so :func:`is_ssl_check`
lets such a body (well-formed) through unsigned as before.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from nodes import safe_json

#: Slack refuses requests older than this, and so does Bolt; a replay can only come inside it.
TOLERANCE_SECONDS = 300
#: Unix seconds, as Slack sends them: ASCII digits, no sign, blanks or leading zero.
_TIMESTAMP = re.compile(r"[1-9][0-9]{0,11}")
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
#: A request Bolt can route has one of these: an event or interaction type, a slash command,
#: or Slack's certificate probe.
_ROUTABLE = ("type", "command", "ssl_check")


class MalformedSlackRequestError(ValueError):
    """The body is not a Slack request Bolt can read; the message says why (safe to show)."""


def signature_ok(
    secret: str, body: bytes, *, timestamp: str | None, signature: str | None, now: float | None = None
) -> bool:
    """Whether ``signature`` is Slack's ``v0=`` HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the
    signing secret, and ``timestamp`` canonical unix seconds within five minutes of ``now``."""
    if not timestamp or not signature or not _TIMESTAMP.fullmatch(timestamp):
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(("v0=" + digest).encode(), signature.encode("utf-8", "surrogatepass"))


def replay_key(signature: str) -> str:
    """The replay guard's key of a verified request (its signature covers timestamp and body)."""
    return f"slack:{signature}"


def replay_expiry(timestamp: str) -> int:
    """The unix second after which a request signed at ``timestamp`` fails :func:`signature_ok`."""
    return int(timestamp) + TOLERANCE_SECONDS + 1


def parse_body(body: bytes, content_type: str | None, *, max_bytes: int) -> dict[str, Any]:
    """The body as Bolt will read it, or :class:`MalformedSlackRequestError`.

    It follows Bolt's own choice of parser (``parse_body``: JSON when the content type is
    exactly ``application/json`` or the text starts with ``{``; else the ``payload`` field's
    JSON when the text mentions ``payload``; else the form fields), so what passes here is what
    Bolt gets, with every JSON bounded by :func:`nodes.safe_json.loads`.
    """
    if not content_type:
        raise MalformedSlackRequestError(f"the request has no Content-Type; Slack sends {FORM} or {JSON}")
    media = content_type.split(";")[0]  # what Bolt compares (extract_content_type)
    if media.strip().lower() not in (FORM, JSON):
        raise MalformedSlackRequestError(f"the Content-Type is {media[:60]!r}; Slack sends {FORM} or {JSON}")
    try:
        text = body.decode("utf-8")  # strictly, as Bolt's adapter decodes
    except UnicodeDecodeError as exc:
        raise MalformedSlackRequestError(f"the body is not UTF-8 (byte {exc.start})") from None
    if not text:
        raise MalformedSlackRequestError("the body is empty")
    parsed: Any
    if media == JSON or text.startswith("{"):
        parsed = _json_object(text, "the JSON body", max_bytes)
    elif "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        parsed = {} if payload is None else _json_object(payload, "the payload field", max_bytes)
    else:
        parsed = dict(parse_qsl(text, keep_blank_values=True))
    if not any(key in parsed for key in _ROUTABLE):
        raise MalformedSlackRequestError(
            "the body is not a Slack request: no payload field, slash command or event type"
        )
    return parsed


def is_ssl_check(parsed: dict[str, Any]) -> bool:
    """Bolt's test for the certificate probe it answers without a signature check."""
    return parsed.get("ssl_check") == "1"


def _json_object(text: str, what: str, max_bytes: int) -> dict[str, Any]:
    try:
        value = safe_json.loads(text, what=what, max_bytes=max_bytes)
    except safe_json.UnsafeJSONError as exc:
        raise MalformedSlackRequestError(str(exc)) from None
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")
        raise MalformedSlackRequestError(f"{what} is a JSON {kind}, not an object")
    return value
