"""The browser session and its CSRF tokens.

The session is the wallet's own JWT, kept in an `HttpOnly; SameSite=Strict` cookie that
page scripts never see. The JSON API ignores the cookie (it reads only `Authorization:
Bearer`), so CSRF cannot reach the API through it.

CSRF tokens are HMAC-SHA256 tags keyed with a secret the browser holds in an HttpOnly
cookie and a cross-site attacker can neither read nor set: the session JWT once logged in,
a random pre-session value on the login and register forms. The gateway holds no secret of
its own (the design keeps secrets in the wallet), so any replica verifies any token, and a
token dies with its session (logout, password change).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

SESSION_COOKIE = "wallet_session"
PRESESSION_COOKIE = "wallet_presession"
# Display only ("show the admin menu"): the wallet checks the role on every admin call.
ROLE_COOKIE = "wallet_role"
CSRF_FIELD = "csrf_token"

_SESSION_PURPOSE = b"wallet-web csrf v1: session"
_PRESESSION_PURPOSE = b"wallet-web csrf v1: pre-session"


class CsrfRejected(Exception):
    """A state-changing form without a valid token: answered 403, nothing done."""


def _tag(key: str, purpose: bytes) -> str:
    digest = hmac.new(key.encode("utf-8"), purpose, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "replace"))


@dataclass(frozen=True)
class WebSession:
    """A logged-in browser: the token the wallet issued and what the menu shows."""

    token: str
    is_admin: bool

    @property
    def authorization(self) -> str:
        return f"Bearer {self.token}"

    @property
    def csrf_token(self) -> str:
        return _tag(self.token, _SESSION_PURPOSE)

    def check_csrf(self, given: str) -> None:
        if not _matches(self.csrf_token, given):
            raise CsrfRejected


def session_of(request: Request) -> WebSession | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    return WebSession(token=token, is_admin=request.cookies.get(ROLE_COOKIE) == "admin")


def _secure(request: Request) -> bool:
    settings = request.app.state.services.settings
    return bool(settings.web_cookie_secure) or request.url.scheme == "https"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def start_session(
    request: Request, response: Response, *, token: str, expires_in: int, is_admin: bool
) -> None:
    """Set the session cookies (and drop the pre-session one: it has served its form)."""
    max_age = max(1, expires_in)
    _set_cookie(request, response, SESSION_COOKIE, token, max_age)
    _set_cookie(request, response, ROLE_COOKIE, "admin" if is_admin else "user", max_age)
    response.delete_cookie(PRESESSION_COOKIE, path="/")


def end_session(response: Response) -> None:
    for name in (SESSION_COOKIE, ROLE_COOKIE):
        response.delete_cookie(name, path="/", httponly=True, samesite="strict")


# --- before login: the login and register forms -------------------------------------------------


def presession_value(request: Request) -> tuple[str, bool]:
    """(the pre-session secret, whether it is new and must be set on the response)."""
    current = request.cookies.get(PRESESSION_COOKIE, "")
    if current:
        return current, False
    return secrets.token_urlsafe(32), True


def presession_token(value: str) -> str:
    return _tag(value, _PRESESSION_PURPOSE)


def set_presession(request: Request, response: Response, value: str) -> None:
    _set_cookie(request, response, PRESESSION_COOKIE, value, 3600)


def check_presession_csrf(request: Request, given: str) -> None:
    value = request.cookies.get(PRESESSION_COOKIE, "")
    if not value or not _matches(presession_token(value), given):
        raise CsrfRejected
