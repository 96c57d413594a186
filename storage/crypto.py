"""Encryption at rest for credentials: Fernet keys, several at once while rotating.

Keys come from ``SWITCHBOARD_SECRET_KEY`` (comma-separated; the first encrypts, all decrypt)
or, for the embedded default, from ``<home>/secret.key``, generated with mode 0600 on first use.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

logger = logging.getLogger("switchboard.crypto")


class SecretKeyError(RuntimeError):
    """The secret key is missing, malformed, or cannot decrypt a stored credential."""


def key_id(key: bytes) -> str:
    """A short, non-secret fingerprint of a key (stored beside each ciphertext)."""
    return hashlib.sha256(key).hexdigest()[:12]


@dataclass(frozen=True)
class Keyring:
    """The keys in use: ``keys[0]`` encrypts; every key decrypts."""

    keys: tuple[bytes, ...]

    @property
    def primary_id(self) -> str:
        return key_id(self.keys[0])

    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(k) for k in self.keys])

    def encrypt(self, plaintext: bytes) -> str:
        return self._fernet().encrypt(plaintext).decode()

    def decrypt(self, token: str) -> bytes:
        try:
            return self._fernet().decrypt(token.encode())
        except InvalidToken:
            raise SecretKeyError(
                "a stored credential cannot be decrypted with SWITCHBOARD_SECRET_KEY: "
                "the key that encrypted it is missing (keep old keys listed until rotate-key ran)"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a ciphertext under the primary key."""
        return self._fernet().rotate(token.encode()).decode()


def parse_keys(value: str) -> Keyring:
    keys = tuple(k.strip().encode() for k in value.split(",") if k.strip())
    if not keys:
        raise SecretKeyError("SWITCHBOARD_SECRET_KEY is empty")
    for i, key in enumerate(keys):
        try:
            Fernet(key)
        except ValueError:
            raise SecretKeyError(
                f"SWITCHBOARD_SECRET_KEY entry {i + 1} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return Keyring(keys)


def load_keyring(secret_key: str | None, home: Path) -> Keyring:
    """The configured keys, or the home directory's generated key (created with a warning)."""
    if secret_key:
        return parse_keys(secret_key)
    path = home / "secret.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())
        logger.warning(
            "SWITCHBOARD_SECRET_KEY is not set: generated a key in %s (mode 0600). Back it up: "
            "credentials cannot be decrypted without it. Production should set the variable.",
            path,
        )
    return parse_keys(path.read_text())
