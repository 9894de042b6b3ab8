"""Passwords and tokens: argon2id hashes and HS256 JWTs with pinned algorithms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from wallet_service.errors import InvalidArgument, Unauthenticated
from wallet_service.identity import canonical_if_valid

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256  # bounds the hashing work an attacker can ask for
JWT_ALGORITHM = "HS256"
JWT_ISSUER = "wallet_service"
MIN_SECRET_BYTES = 32
CREDENTIALS_VERSION_CLAIM = "cv"
# Who a token speaks for: a user (no claim, as every token issued before service accounts)
# or a service account; the two ids live in different tables and are never confused.
KIND_CLAIM = "typ"
SERVICE_KIND = "service"
SCOPES_CLAIM = "scope"  # space-separated, as OAuth 2.0 writes scopes

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane).
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the username is unknown, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def validate_username(username: str) -> str:
    """The canonical form (wallet_service.identity) of a name that may be registered."""
    canonical = canonical_if_valid(username)
    if canonical is None:
        raise InvalidArgument(
            "invalid_username",
            "Username must be 3-32 characters: letters, digits, '_', '.' or '-'",
        )
    return canonical


def validate_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < PASSWORD_MIN_LENGTH:
        raise InvalidArgument(
            "weak_password", f"Password must be at least {PASSWORD_MIN_LENGTH} characters"
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise InvalidArgument(
            "invalid_password", f"Password must be at most {PASSWORD_MAX_LENGTH} characters"
        )
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def hash_secret(secret: str) -> str:
    """A service account's secret, hashed like a password."""
    return _hasher.hash(secret)


@dataclass(frozen=True)
class TokenClaims:
    user_id: str  # the subject: a user's id, or a service account's when is_service
    credentials_version: int
    is_service: bool = False
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TokenIssuer:
    secret: str
    ttl_seconds: int

    def issue_service(
        self, *, account_id: str, credentials_version: int, scopes: frozenset[str], now: datetime
    ) -> str:
        """A client-credentials token: the scopes granted when issued (the database still
        decides on every call) and the account's credentials version."""
        claims = self._claims(account_id, credentials_version, now)
        claims[KIND_CLAIM] = SERVICE_KIND
        claims[SCOPES_CLAIM] = " ".join(sorted(scopes))
        return jwt.encode(claims, self.secret, algorithm=JWT_ALGORITHM)

    def issue(self, *, user_id: str, credentials_version: int, now: datetime) -> str:
        claims = self._claims(user_id, credentials_version, now)
        return jwt.encode(claims, self.secret, algorithm=JWT_ALGORITHM)

    def _claims(self, user_id: str, credentials_version: int, now: datetime) -> dict[str, Any]:
        return {
            "sub": user_id,
            # The user's credentials version when issued: a password or role change, or a
            # log-out-everywhere, bumps it and so revokes every older token.
            CREDENTIALS_VERSION_CLAIM: credentials_version,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.ttl_seconds)).timestamp()),
            "iss": JWT_ISSUER,
        }

    def verify(self, token: str) -> TokenClaims:
        """The subject and credentials version of a valid token; Unauthenticated otherwise.
        Whether that version is still the user's is for the caller to check."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[JWT_ALGORITHM],  # pinned: no "none", no RS/HS confusion
                issuer=JWT_ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", CREDENTIALS_VERSION_CLAIM]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token_expired", "Token has expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token_invalid", "Token is invalid") from exc
        subject = claims.get("sub")
        version = claims.get(CREDENTIALS_VERSION_CLAIM)
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("token_invalid", "Token is invalid")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise Unauthenticated("token_invalid", "Token is invalid")
        kind = claims.get(KIND_CLAIM)
        if kind not in (None, SERVICE_KIND):
            raise Unauthenticated("token_invalid", "Token is invalid")
        scopes = claims.get(SCOPES_CLAIM, "")
        if not isinstance(scopes, str):
            raise Unauthenticated("token_invalid", "Token is invalid")
        return TokenClaims(
            user_id=subject,
            credentials_version=version,
            is_service=kind == SERVICE_KIND,
            scopes=frozenset(scopes.split()),
        )
