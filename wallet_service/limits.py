"""The wallet's request limits, as the use cases see them (no SQL, no gRPC here).

- `Quota`: a rate limit on a key (a peer address, a user id) through the shared limiter
  (common.ratelimit: memory, or Redis when REDIS_URL is set, so replicas share it).
- `LoginAttempts`: the login lockout per username. An attempt is reserved atomically BEFORE
  the password is verified, so a parallel burst gets exactly `LOGIN_MAX_FAILURES`
  verifications, not one per request in flight; the state lives in the database, which
  every replica shares (wallet_service.store.lockout).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from common.limits import MAX_USERNAME_INPUT_LENGTH
from common.ratelimit import RateLimit, RateLimiter
from wallet_service.errors import ResourceExhausted
from wallet_service.identity import canonical_username


def lockout_key(username: str) -> str:
    """The one identity a lockout counts against: every spelling of a name (case, Unicode
    compatibility forms) shares it. A digest keeps the column fixed-width and any input
    (even an invalid, huge name) storable."""
    canonical = canonical_username((username or "")[:MAX_USERNAME_INPUT_LENGTH])
    return hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()


class LoginAttempts(Protocol):
    def reserve(self, key: str, *, now: datetime) -> float | None:
        """Count one attempt on `key` atomically (across threads and replicas). Returns
        None if it may be verified, else the seconds until the lockout ends."""
        ...

    def clear(self, key: str) -> None:
        """A successful login: forget the failures counted on `key`."""
        ...


@dataclass(frozen=True)
class Quota:
    """One limit: `check` counts an event on `key` or refuses with a delay."""

    limiter: RateLimiter
    rule: RateLimit
    message: str

    def check(self, key: str) -> None:
        decision = self.limiter.hit(key, self.rule)
        if not decision.allowed:
            raise ResourceExhausted(
                "rate_limited", self.message, retry_after_seconds=decision.retry_after_seconds
            )
