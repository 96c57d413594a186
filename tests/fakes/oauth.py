"""A fake OAuth 2 provider: authorize and token endpoints, and a provider API fake (on the
same FakeHTTP) that only accepts the tokens it issued.

>>> oauth = FakeOAuth(fake_http)          # the provider's API on the same fake server
>>> secret = oauth.credential_secret()   # OAuth material whose access token is refused
>>> oauth.revoke()                       # refreshing now fails with invalid_grant

The authorization-code flow: ``GET oauth.authorize_url?client_id=&redirect_uri=&state=
&code_challenge=`` answers 302 to ``redirect_uri?code=&state=`` (the user said yes); the token
endpoint trades that code once (redirect URI, client secret and PKCE verifier checked) for
``user-token-N`` plus the refresh token, and the provider API starts accepting it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from typing import Any
from urllib.parse import parse_qs, urlencode

from tests.fakes.http import FakeHTTP, Recorded, Reply

TOKEN_PATH = "/oauth/token"
AUTHORIZE_PATH = "/oauth/authorize"
CLIENT_ID = "client-0"
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
        #: Authorization codes handed out: code -> (redirect_uri, code_challenge).
        self._codes: dict[str, tuple[str, str | None]] = {}
        self._code_counter = itertools.count(1)
        #: Access tokens issued for authorization codes.
        self.user_tokens: list[str] = []
        http.require_token(open_paths=(TOKEN_PATH, AUTHORIZE_PATH))
        http.route("POST", TOKEN_PATH, self._token)
        http.route("GET", AUTHORIZE_PATH, self._authorize)

    @property
    def token_url(self) -> str:
        return self.http.url(TOKEN_PATH)

    @property
    def authorize_url(self) -> str:
        return self.http.url(AUTHORIZE_PATH)

    def credential_secret(self, *, expires_at: float | None = None) -> str:
        """OAuth material (JSON) whose access token the provider no longer accepts."""
        material: dict[str, Any] = {
            "access_token": self.stale_token,
            "refresh_token": REFRESH_TOKEN,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "token_url": self.token_url,
        }
        if expires_at is not None:
            material["expires_at"] = expires_at
        return json.dumps(material)

    def revoke(self) -> None:
        """The user revoked access: refresh requests now fail with ``invalid_grant``."""
        self.revoked = True

    def expire_codes(self) -> None:
        """Every authorization code handed out so far is now refused (``invalid_grant``)."""
        with self._lock:
            self._codes.clear()

    def token_requests(self) -> list[Recorded]:
        return self.http.calls(TOKEN_PATH, "POST")

    def _authorize(self, request: Recorded) -> Reply:
        """The user approves at once: back to ``redirect_uri`` with a fresh code and the state."""
        query = {k: v[0] for k, v in request.query.items()}
        if query.get("client_id") != CLIENT_ID or not query.get("redirect_uri") or query.get("response_type") != "code":
            return Reply(400, "bad authorization request")
        with self._lock:
            code = f"code-{next(self._code_counter)}"
            self._codes[code] = (query["redirect_uri"], query.get("code_challenge"))
        back = urlencode({"code": code, "state": query.get("state", "")})
        return Reply(302, "", {"Location": f"{query['redirect_uri']}?{back}"})

    def _code_grant(self, form: dict[str, str]) -> Reply:
        with self._lock:
            redirect, challenge = self._codes.pop(form.get("code", ""), ("", None))
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (
            not redirect
            or form.get("redirect_uri") != redirect
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
            or (challenge is not None and digest != challenge)
        ):
            return Reply(400, {"error": "invalid_grant", "error_description": "Bad authorization code."})
        with self._lock:
            token = f"user-token-{len(self.user_tokens) + 1}"
            self.user_tokens.append(token)
        self.http.accept_token(token)
        return Reply(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": REFRESH_TOKEN,
                "scope": "repo,read:org",
            },
        )

    def _token(self, request: Recorded) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") == "authorization_code":
            return self._code_grant(form)
        if self.revoked or form.get("refresh_token") != REFRESH_TOKEN or form.get("grant_type") != "refresh_token":
            return Reply(400, {"error": "invalid_grant", "error_description": "Token has been revoked."})
        with self._lock:
            token = f"fresh-token-{next(self._counter)}"
            self.issued.append(token)
        self.http.accept_token(token, only=True)
        return Reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
