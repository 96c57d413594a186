"""A fake OAuth 2 token endpoint, and a provider fake that only accepts the tokens it issued.

>>> oauth = FakeOAuth(fake_http)          # the provider's API on the same fake server
>>> secret = oauth.credential_secret()   # OAuth material whose access token is refused
>>> oauth.revoke()                       # refreshing now fails with invalid_grant
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.http import FakeHTTP, Recorded, Reply

TOKEN_PATH = "/oauth/token"
REFRESH_TOKEN = "refresh-0"
CLIENT_SECRET = "client-secret-0"


class FakeOAuth:
    """Issues ``fresh-token-N`` for a valid refresh token and makes the provider accept it."""

    def __init__(self, http: FakeHTTP, *, stale_token: str = "stale-token") -> None:
        self.http = http
        self.stale_token = stale_token
        self.revoked = False
        self.issued: list[str] = []
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        http.require_token(open_paths=(TOKEN_PATH,))
        http.route("POST", TOKEN_PATH, self._token)

    @property
    def token_url(self) -> str:
        return self.http.url(TOKEN_PATH)

    def credential_secret(self, *, expires_at: float | None = None) -> str:
        """OAuth material (JSON) whose access token the provider no longer accepts."""
        material: dict[str, Any] = {
            "access_token": self.stale_token,
            "refresh_token": REFRESH_TOKEN,
            "client_id": "client-0",
            "client_secret": CLIENT_SECRET,
            "token_url": self.token_url,
        }
        if expires_at is not None:
            material["expires_at"] = expires_at
        return json.dumps(material)

    def revoke(self) -> None:
        """The user revoked access: refresh requests now fail with ``invalid_grant``."""
        self.revoked = True

    def token_requests(self) -> list[Recorded]:
        return self.http.calls(TOKEN_PATH, "POST")

    def _token(self, request: Recorded) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if self.revoked or form.get("refresh_token") != REFRESH_TOKEN or form.get("grant_type") != "refresh_token":
            return Reply(400, {"error": "invalid_grant", "error_description": "Token has been revoked."})
        with self._lock:
            token = f"fresh-token-{next(self._counter)}"
            self.issued.append(token)
        self.http.accept_token(token, only=True)
        return Reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
