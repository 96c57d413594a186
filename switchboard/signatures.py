"""The signature schemes ``POST /hooks/<workflow>`` checks besides Switchboard's own (:mod:`switchboard.webhooks`).

* **GitHub** (:func:`verify_github`): ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret,
  raw body)>``. GitHub signs only the body: no timestamp, and its ``X-GitHub-Event`` and
  ``X-GitHub-Delivery`` headers are not signed.
* **A declared scheme** (:func:`verify_declared`, a workflow's
  ``triggers: [{webhook: {signature: ...}}]``, :class:`flows.triggers.Signature`): an HMAC
  (SHA-256 or SHA-1) of a pattern over the body, the timestamp, the method and the URL, hex
  or base64, in one header, bare, after a prefix, or among ``key=value`` pairs (Stripe).

Every signature is decoded and compared as bytes with :func:`hmac.compare_digest`; header
values are bounded before anything is done with them (:data:`MAX_HEADER_CHARS`). A refusal is
a :class:`~switchboard.webhooks.SignatureError` saying what is wrong, never the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from flows.triggers import Signature
from switchboard.webhooks import SignatureError

GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
#: The longest signature (or timestamp) header read; a longer one is malformed.
MAX_HEADER_CHARS = 1024
#: At most this many signatures in one header are tried (Stripe sends one per active secret).
MAX_SIGNATURES = 8
#: A timestamp: ASCII digits, no sign, no leading zero (seconds or milliseconds).
TIMESTAMP_PATTERN = re.compile(r"[1-9][0-9]{0,15}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_MISMATCH = (
    "the signature does not match (a wrong secret, a workflow without a webhook secret, "
    "or the body changed after signing)"
)


@dataclass(frozen=True)
class Signed:
    """What a verified signature vouches for: the digest (the replay guard keys on it) and,
    for a timestamped scheme, the unix second after which the request fails its own check."""

    digest: bytes
    expires: int | None = None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name.lower())
    if value is not None and len(value) > MAX_HEADER_CHARS:
        raise SignatureError(f"{name} is longer than {MAX_HEADER_CHARS} characters")
    return value


def verify_github(secret: str, headers: Mapping[str, str], body: bytes) -> Signed:
    """Check ``X-Hub-Signature-256`` (``headers``: lower-cased names) over the raw ``body``."""
    given = _header(headers, GITHUB_SIGNATURE_HEADER)
    if not given:
        raise SignatureError(
            f"missing {GITHUB_SIGNATURE_HEADER} header (set the webhook's secret in GitHub's webhook settings)"
        )
    hex_digest = given.removeprefix("sha256=")
    if hex_digest == given or not _HEX_SHA256.fullmatch(hex_digest):
        raise SignatureError(f"{GITHUB_SIGNATURE_HEADER} must look like sha256=<64 hex digits>")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(bytes.fromhex(hex_digest), expected):
        raise SignatureError(_MISMATCH)
    return Signed(expected)


def verify_declared(
    spec: Signature,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    now: float | None = None,
) -> Signed:
    """Check a request against the declared scheme ``spec`` (``headers``: lower-cased names);
    ``url`` is what ``{url}`` stands for. Returns what was verified, or raises SignatureError."""
    value = _header(headers, spec.header)
    if not value:
        raise SignatureError(f"missing {spec.header} header")
    stamp: str | None = None
    if spec.pairs is not None:
        pairs = _pairs(value, spec.header)
        candidates = pairs.get(spec.pairs.signature, [])
        if not candidates:
            raise SignatureError(f"{spec.header} has no {spec.pairs.signature}=<signature>")
        if spec.pairs.timestamp is not None:
            stamps = pairs.get(spec.pairs.timestamp, [])
            if len(stamps) != 1:
                raise SignatureError(f"{spec.header} must have one {spec.pairs.timestamp}=<timestamp>")
            stamp = stamps[0]
    else:
        if spec.prefix is not None:
            if not value.startswith(spec.prefix):
                raise SignatureError(f"{spec.header} must look like {spec.prefix}<signature>")
            value = value[len(spec.prefix) :]
        candidates = [value]
        if spec.timestamp_header is not None:
            stamp = _header(headers, spec.timestamp_header)
            if not stamp:
                raise SignatureError(f"missing {spec.timestamp_header} header")
    expires = _check_time(spec, stamp, now) if stamp is not None else None

    pieces = {"{body}": body, "{timestamp}": (stamp or "").encode(), "{method}": method.upper().encode()}
    pieces["{url}"] = url.encode()
    message = b"".join(pieces.get(part, part.encode()) for part in spec.parts())
    expected = hmac.new(secret.encode(), message, getattr(hashlib, spec.algorithm)).digest()
    matched = False
    for candidate in candidates[:MAX_SIGNATURES]:
        decoded = _decode(candidate.strip(), spec.encoding)
        matched |= decoded is not None and hmac.compare_digest(decoded, expected)
    if not matched:
        raise SignatureError(_MISMATCH)
    return Signed(expected, expires)


def _pairs(value: str, header: str) -> dict[str, list[str]]:
    """``k=v,k=v`` as ``{k: [v, ...]}`` (Stripe-Signature), at most 20 pairs."""
    found: dict[str, list[str]] = {}
    items = value.split(",")
    if len(items) > 20:
        raise SignatureError(f"{header} has more than 20 key=value pairs")
    for item in items:
        key, sep, text = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"{header} must be key=value pairs separated by commas")
        found.setdefault(key, []).append(text)
    return found


def _check_time(spec: Signature, stamp: str, now: float | None) -> int:
    """The unix second after which a request signed at ``stamp`` fails; SignatureError when
    ``stamp`` is not canonical digits or is outside the window."""
    where = spec.timestamp_header or f"{spec.header} {spec.pairs.timestamp if spec.pairs else ''}="
    if not TIMESTAMP_PATTERN.fullmatch(stamp):
        raise SignatureError(f"{where} must be unix {spec.timestamp_unit}: ASCII digits, no sign or leading zero")
    seconds = int(stamp) / (1000 if spec.timestamp_unit == "milliseconds" else 1)
    now = time.time() if now is None else now
    if abs(now - seconds) > spec.window:
        raise SignatureError(
            f"the timestamp in {where} is {now - seconds:+.0f} s from the server's clock "
            f"(allowed: ±{spec.window} s); sign each request when you send it"
        )
    return int(seconds) + spec.window + 1


def _decode(text: str, encoding: str) -> bytes | None:
    try:
        if encoding == "hex":
            return bytes.fromhex(text) if text.isascii() else None
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None
