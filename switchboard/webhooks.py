"""Webhook triggers from the client (``client.webhooks``): per-workflow secrets, and signing and checking requests.

``POST /hooks/<workflow>`` on the bot starts a run of the workflow's latest version with the
request's JSON body (an object) as its inputs. Every request is signed with the workflow's
webhook secret (a workflow's ``triggers:`` add GitHub's and other schemes, with inputs from the
event: :mod:`switchboard.triggers`, docs/triggers.md); Switchboard's own is::

    X-Switchboard-Timestamp: 1718000000          (unix seconds, when the request was made)
    X-Switchboard-Signature: sha256=<hex>        (HMAC-SHA256, key: the secret,
                                                  message: b"<timestamp>." + the raw body)

The bot refuses (401) a missing or malformed header, a wrong signature, and a timestamp more
than :data:`TOLERANCE_SECONDS` before or after its clock. :func:`signed_headers` builds the
two headers for a Python sender.

The timestamp is checked, signed and verified as one exact text: ASCII digits, no sign, no
blanks, no leading zero (:func:`canonical_timestamp`). Python's ``int()`` also reads ``0<ts>``,
``+<ts>``, ``1_7...`` or Arabic-Indic digits as the same number: accepting those would let
anyone turn one signed request into many that all verify. For the same reason the bot's
replay guard keys a request on :func:`replay_key`, derived from what was verified (the
workflow and the signature over the canonical timestamp and the body), never on raw headers.

Secrets are stored encrypted in the credential store (provider ``webhook``, credential name
``webhook:<workflow>``); one generated here is shown once, by :meth:`WebhookSecrets.add` and
:meth:`WebhookSecrets.rotate`, one chosen elsewhere (GitHub's, a provider's signing secret) is
given to them and never shown; none is listed, logged or posted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.credentials import CredentialError, CredentialStore
from storage.workflows import WorkflowStore
from switchboard.credentials import credential_store
from switchboard.settings import Settings

#: The credential-store provider of webhook secrets.
PROVIDER = "webhook"
#: Credential names are ``webhook:<workflow>``.
PREFIX = "webhook:"
TIMESTAMP_HEADER = "X-Switchboard-Timestamp"
SIGNATURE_HEADER = "X-Switchboard-Signature"
#: How far a request's timestamp may be from the receiver's clock, either way.
TOLERANCE_SECONDS = 300
#: Unix seconds, spelled one way only (at most 12 digits: beyond the year 33000).
TIMESTAMP_PATTERN = re.compile(r"[1-9][0-9]{0,11}")
#: How long a secret chosen elsewhere (``add(secret=...)``) may be, in characters.
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 512


class WebhookError(RuntimeError):
    """A webhook secret is missing, exists already, or its workflow is unknown."""


class SignatureError(ValueError):
    """A webhook request is not correctly signed; the message says what is wrong."""


def credential_name(workflow: str) -> str:
    """The credential holding ``workflow``'s webhook secret."""
    return PREFIX + workflow


def new_secret() -> str:
    """A fresh secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def check_secret(secret: str) -> str:
    """``secret`` if it can be a webhook secret chosen elsewhere (GitHub's, a provider's
    signing secret): :data:`MIN_SECRET_CHARS` to :data:`MAX_SECRET_CHARS` printable ASCII
    characters, no blanks at either end. Else :class:`WebhookError`, never showing it."""
    if len(secret) < MIN_SECRET_CHARS:
        raise WebhookError(
            f"the secret is {'empty' if not secret else f'{len(secret)} characters'}: "
            f"use at least {MIN_SECRET_CHARS} (e.g. `openssl rand -hex 32`)"
        )
    if len(secret) > MAX_SECRET_CHARS:
        raise WebhookError(f"the secret is longer than {MAX_SECRET_CHARS} characters")
    if not all(" " <= char <= "~" for char in secret):
        raise WebhookError("the secret must be one line of printable ASCII characters (no tabs or control characters)")
    if secret != secret.strip():
        raise WebhookError("the secret starts or ends with a blank; senders would not sign with it")
    return secret


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers a sender adds to ``POST /hooks/<workflow>`` (``timestamp``: now)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: signature(secret, stamp, body),
    }


def canonical_timestamp(text: str) -> int:
    """The unix seconds ``text`` spells, if it is spelled canonically; else :class:`SignatureError`."""
    if not TIMESTAMP_PATTERN.fullmatch(text):
        raise SignatureError(
            f"{TIMESTAMP_HEADER} must be unix seconds: ASCII digits only, "
            "with no sign, blanks or leading zeros (e.g. 1718000000)"
        )
    return int(text)


def verify(
    secret: str, *, timestamp: str | None, signature_header: str | None, body: bytes, now: float | None = None
) -> int:
    """Check a request's two headers; returns its timestamp, or raises :class:`SignatureError`.

    The timestamp must be canonical (:func:`canonical_timestamp`), and the signature is checked
    over that exact text, in constant time.
    """
    if not timestamp:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header (unix seconds)")
    if not signature_header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header (sha256=<hex HMAC-SHA256>)")
    stamp = canonical_timestamp(timestamp)
    now = time.time() if now is None else now
    if abs(now - stamp) > TOLERANCE_SECONDS:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {now - stamp:+.0f} s from the server's clock "
            f"(allowed: ±{TOLERANCE_SECONDS} s); sign each request when you send it"
        )
    if not signature_header.startswith("sha256="):
        raise SignatureError(f"{SIGNATURE_HEADER} must look like sha256=<hex>")
    expected = signature(secret, timestamp, body)
    if not hmac.compare_digest(signature_header.encode("utf-8", "surrogatepass"), expected.encode()):
        raise SignatureError(
            "the signature does not match (a wrong secret, a workflow without a webhook secret, "
            "or the body changed after signing)"
        )
    return stamp


def replay_key(workflow: str, secret: str, timestamp: int, body: bytes) -> str:
    """What identifies a verified request to the replay guard: one key per signed request,
    however its headers were spelled (it is derived from what :func:`verify` checked)."""
    return f"webhook:{workflow}:{signature(secret, timestamp, body)}"


def replay_expiry(timestamp: int) -> int:
    """The unix second after which a request signed at ``timestamp`` fails :func:`verify`."""
    return timestamp + TOLERANCE_SECONDS + 1


@dataclass
class WebhookSecrets:
    """Webhook secrets in the (encrypted) credential store."""

    credentials: CredentialStore
    workflows: WorkflowStore

    @classmethod
    def on(cls, engine: AsyncEngine, settings: Settings) -> WebhookSecrets:
        return cls(credential_store(engine, settings), WorkflowStore(engine))

    async def get(self, workflow: str) -> str | None:
        """The decrypted secret of ``workflow``'s webhook, or None when it has none."""
        try:
            data = await self.credentials.resolve(credential_name(workflow), PROVIDER)
        except CredentialError:
            return None
        token = data.get("token")
        return token if isinstance(token, str) else None

    async def add(self, workflow: str, *, actor: str, secret: str | None = None) -> str:
        """Create ``workflow``'s secret and return it (the only time it is shown).

        ``secret``: one chosen elsewhere (GitHub's webhook settings ask you to type one, other
        providers issue a signing secret), checked by :func:`check_secret`; default: a fresh
        :func:`new_secret`.
        """
        if secret is not None:
            check_secret(secret)
        await self.workflows.get(workflow)  # WorkflowNotFoundError names the fix
        if workflow in await self.names():
            raise WebhookError(
                f"workflow {workflow!r} has a webhook secret already; "
                f"`switchboard webhooks rotate {workflow}` replaces it"
            )
        secret = secret if secret is not None else new_secret()
        await self.credentials.add(credential_name(workflow), provider=PROVIDER, secret=secret, actor=actor)
        return secret

    async def rotate(self, workflow: str, *, actor: str, secret: str | None = None) -> str:
        """Replace ``workflow``'s secret (the old one stops working at once); return the new one
        (``secret``: one chosen elsewhere, as for :meth:`add`)."""
        if secret is not None:
            check_secret(secret)
        await self.remove(workflow, actor=actor)
        secret = secret if secret is not None else new_secret()
        await self.credentials.add(credential_name(workflow), provider=PROVIDER, secret=secret, actor=actor)
        return secret

    async def remove(self, workflow: str, *, actor: str) -> None:
        """Delete ``workflow``'s secret: its webhook refuses every request until `add`."""
        if workflow not in await self.names():
            raise WebhookError(f"workflow {workflow!r} has no webhook secret (`switchboard webhooks add {workflow}`)")
        await self.credentials.remove(credential_name(workflow), actor=actor)

    async def names(self) -> list[str]:
        """The workflows that have a webhook secret (never the secrets)."""
        return sorted(
            info.name.removeprefix(PREFIX)
            for info in await self.credentials.list()
            if info.provider == PROVIDER and info.name.startswith(PREFIX) and not info.owner
        )


def hook_url(workflow: str, settings: Settings) -> str:
    """Where senders post: ``<SWITCHBOARD_PUBLIC_URL>/hooks/<workflow>`` (default: the local bot)."""
    base = settings.public_url or "http://127.0.0.1:3000"
    return f"{base.rstrip('/')}/hooks/{workflow}"


def curl_example(workflow: str, secret: str, settings: Settings) -> str:
    """A shell snippet that signs and sends a request (bash, openssl and curl)."""
    return "\n".join(
        [
            f"SECRET='{secret}'",
            "BODY='{}'   # the run's inputs, a JSON object",
            "TS=$(date +%s)",
            'SIG=$(printf \'%s.%s\' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed \'s/^.*= //\')',
            f"curl -sS -X POST '{hook_url(workflow, settings)}' \\",
            "  -H 'Content-Type: application/json' \\",
            f'  -H "{TIMESTAMP_HEADER}: $TS" \\',
            f'  -H "{SIGNATURE_HEADER}: sha256=$SIG" \\',
            '  --data-binary "$BODY"',
        ]
    )
