"""Internal callers: service accounts, their secrets and their client-credentials tokens.

Plain Python over the store and the token issuer (no gRPC, no SQL). An account has a
name and scopes; its secret is shown once and kept only as an argon2id hash. A rotation
keeps the previous secret valid for a grace period; a disable kills every token at once
(the version the tokens carry moves on, and the account is read on every call).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from wallet_service.auth import TokenClaims, TokenIssuer, hash_secret, verify_password
from wallet_service.errors import InvalidArgument, PermissionDenied, Unauthenticated
from wallet_service.ids import uuid7
from wallet_service.models import Role, ServiceAccount, User, utc_now
from wallet_service.store_contract import WalletStore

SCOPES = frozenset(
    {"balances:read", "transactions:read", "deposits:write", "withdrawals:write", "transfers:write"}
)
MAX_GRACE_SECONDS = 30 * 24 * 3600
DEFAULT_GRACE_SECONDS = 24 * 3600
SECRET_PREFIX = "wsk_"  # recognisable in a leaked log or a secret scanner
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{2,63}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INVALID_CLIENT = "Invalid client credentials"


@dataclass(frozen=True)
class IssuedSecret:
    account: ServiceAccount
    secret: str  # shown to the admin once; never stored


class ServiceAccounts:
    def __init__(
        self,
        *,
        store: WalletStore,
        tokens: TokenIssuer,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.clock = clock  # injectable, so a test can step past a grace period

    # -- administration (admins only) ----------------------------------------------------

    def create(self, caller: User, *, name: str, scopes: Iterable[str]) -> IssuedSecret:
        _require_admin(caller)
        secret = _new_secret()
        account = ServiceAccount(
            id=uuid7(),
            name=_check_name(name),
            scopes=check_scopes(scopes),
            created_at=self.clock(),
            created_by=caller.id,
            secret_hash=hash_secret(secret),
        )
        return IssuedSecret(self.store.create_service_account(account), secret)

    def list(self, caller: User) -> list[ServiceAccount]:
        _require_admin(caller)
        return self.store.list_service_accounts()

    def rotate(self, caller: User, *, account_id: str, grace_seconds: int) -> IssuedSecret:
        """A new secret; the one it replaces stays valid for `grace_seconds` (0: not at
        all), so the service can roll its instances over without an outage."""
        _require_admin(caller)
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise InvalidArgument(
                "invalid_grace_period", f"grace_seconds must be 0 to {MAX_GRACE_SECONDS}"
            )
        secret = _new_secret()
        account = self.store.rotate_service_account_secret(
            account_id=_check_id(account_id),
            secret_hash=hash_secret(secret),
            previous_valid_until=self.clock() + timedelta(seconds=grace_seconds),
        )
        return IssuedSecret(account, secret)

    def disable(self, caller: User, *, account_id: str) -> ServiceAccount:
        _require_admin(caller)
        return self.store.disable_service_account(
            account_id=_check_id(account_id), disabled_by=caller.id, now=self.clock()
        )

    # -- the client-credentials grant and the check on every call -------------------------

    def issue_token(self, *, client_id: str, client_secret: str) -> tuple[str, int, frozenset[str]]:
        """(token, seconds until it expires, scopes). One answer for every failure, so it
        does not tell which ids exist or which are disabled."""
        account = self.store.get_service_account(client_id) if _UUID.fullmatch(client_id) else None
        if (
            account is None
            or account.is_disabled
            or not self._secret_matches(account, client_secret)
        ):
            raise Unauthenticated("invalid_client", _INVALID_CLIENT)
        token = self.tokens.issue_service(
            account_id=account.id,
            credentials_version=account.credentials_version,
            scopes=account.scopes,
            now=self.clock(),
        )
        return token, self.tokens.ttl_seconds, account.scopes

    def authenticate(self, claims: TokenClaims) -> ServiceAccount:
        """The live account behind a verified service token, with the scopes both the token
        and the database still grant (a scope removed since stops at once)."""
        account = self.store.get_service_account(claims.user_id)
        if account is None or account.is_disabled:
            raise Unauthenticated("token_revoked", "Token has been revoked")
        if claims.credentials_version != account.credentials_version:
            raise Unauthenticated("token_revoked", "Token has been revoked")
        return replace(account, scopes=account.scopes & claims.scopes)

    def _secret_matches(self, account: ServiceAccount, secret: str) -> bool:
        if verify_password(account.secret_hash, secret or ""):
            return True
        expires = account.previous_secret_expires_at
        if account.previous_secret_hash is None or expires is None or self.clock() >= expires:
            return False
        return verify_password(account.previous_secret_hash, secret or "")


def scoped_key(account: ServiceAccount, key: str) -> str:
    """The stored form of a service's idempotency key: a digest of (service, key) after a
    prefix no user key can hold (users' keys are printable ASCII), so a service's key and
    the acted-for user's own keys never collide; "" (no key) stays "". Fits the column."""
    if not key:
        return ""
    digest = hashlib.sha256(f"{account.id}\n{key}".encode()).hexdigest()
    return f"svc\u00a7{digest}"


def require_scope(account: ServiceAccount, scope: str) -> None:
    if scope not in account.scopes:
        raise PermissionDenied("insufficient_scope", f"This call needs the {scope!r} scope")


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(scopes)
    unknown = wanted - SCOPES
    if not wanted or unknown:
        raise InvalidArgument(
            "invalid_scope",
            f"Scopes must be a non-empty subset of {', '.join(sorted(SCOPES))}",
        )
    return wanted


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise InvalidArgument(
            "invalid_name", "Name must be 3-64 characters: a-z, 0-9, '_', '.' or '-'"
        )
    return name


def _check_id(account_id: str) -> str:
    if not _UUID.fullmatch(account_id or ""):
        raise InvalidArgument("invalid_service_account_id", "Not a service account id")
    return account_id


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _require_admin(caller: User) -> None:
    if caller.role is not Role.ADMIN:
        raise PermissionDenied("admin_required", "Admin role required")
