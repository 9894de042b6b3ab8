"""Wallet settings: read once from the environment at start, validated, passed explicitly."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from common.config import (
    ConfigError,
    env_bool,
    env_choice,
    env_decimal,
    env_int,
    env_str,
)
from common.ratelimit import RateLimit, env_rate_limit
from common.telemetry import TelemetrySettings
from common.tls import TlsSettings
from wallet_service.auth import MIN_SECRET_BYTES
from wallet_service.money import DEFAULT_CURRENCIES, DEFAULT_MAX_AMOUNT, CurrencyBook
from wallet_service.notify_settings import NotifySettings

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///data/wallet.db"
DEV_SECRET_FILE = Path("data/dev_jwt_secret")
# The gateway beside the wallet in `make run` dials it over loopback. Only peers in this list
# may name the client behind them (x-forwarded-for metadata); anyone else is limited as
# itself, so a direct gRPC caller cannot dodge the per-peer limits by sending the header.
DEFAULT_TRUSTED_PROXIES = "127.0.0.1/32,::1/128"
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_WEAK_SECRETS = {"secret", "changeme", "change-me", "password", "jwt_secret", "dev", "test"}


@dataclass(frozen=True)
class WalletSettings:
    address: str
    database_url: str
    db_pool_size: int
    sqlite_synchronous: str
    workers: int
    group_commit: bool
    group_commit_max_batch: int
    grace_seconds: int
    environment: str
    jwt_secret: str
    jwt_secret_generated: bool
    jwt_ttl_seconds: int
    fraud_address: str  # empty: score in-process with the seed threshold rule
    fraud_timeout_ms: int
    fraud_fail_closed: bool
    fraud_threshold: Decimal
    currencies: CurrencyBook
    admin_username: str
    admin_password: str
    login_max_failures: int
    login_lockout_seconds: int
    redis_url: str | None  # shares the per-peer and per-user limits between replicas
    trusted_proxies: tuple[IpNetwork, ...]
    register_per_peer: RateLimit
    login_per_peer: RateLimit
    money_per_user: RateLimit
    log_level: str
    notify: NotifySettings
    # Wallet processes serving the one port (SO_REUSEPORT) under one supervisor. Default 1:
    # tests, chaos and the bench start `python -m wallet_service` and watch its one pid;
    # `make run` on PostgreSQL asks for the number of cores. SQLite: always 1 (one process
    # serves a SQLite file: its sender turns are in-process locks).
    processes: int = 1
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    # WALLET_TLS_*: its server (mTLS with a CA) and its calls to the fraud service.
    tls: TlsSettings = field(default_factory=TlsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WalletSettings:
        environment = env_choice(
            env, "APP_ENV", "development", {"development", "test", "production"}
        )
        secret, generated = _jwt_secret(env, production=environment == "production")
        return cls(
            address=env_str(env, "WALLET_ADDR", "127.0.0.1:50051"),
            database_url=env_str(env, "WALLET_DATABASE_URL", DEFAULT_DATABASE_URL),
            db_pool_size=env_int(env, "WALLET_DB_POOL_SIZE", 20, minimum=1),
            sqlite_synchronous=env_choice(
                env, "WALLET_SQLITE_SYNCHRONOUS", "full", {"full", "normal", "extra"}
            ).upper(),
            workers=env_int(env, "WALLET_WORKERS", 32, minimum=1),
            group_commit=env_bool(env, "WALLET_GROUP_COMMIT", True),
            group_commit_max_batch=env_int(env, "WALLET_GROUP_COMMIT_MAX_BATCH", 64, minimum=1),
            grace_seconds=env_int(env, "WALLET_GRACE_SECONDS", 10),
            environment=environment,
            jwt_secret=secret,
            jwt_secret_generated=generated,
            jwt_ttl_seconds=env_int(env, "JWT_TTL_SECONDS", 3600, minimum=60),
            fraud_address=env.get("FRAUD_ADDR", "127.0.0.1:50052").strip(),
            fraud_timeout_ms=env_int(env, "FRAUD_TIMEOUT_MS", 200, minimum=1),
            fraud_fail_closed=env_choice(env, "FRAUD_FAIL_MODE", "open", {"open", "closed"})
            == "closed",
            fraud_threshold=env_decimal(env, "FRAUD_THRESHOLD", Decimal("10000")),
            currencies=_currencies(env),
            admin_username=env_str(env, "ADMIN_USERNAME", ""),
            admin_password=env_str(env, "ADMIN_PASSWORD", ""),
            login_max_failures=env_int(env, "LOGIN_MAX_FAILURES", 5, minimum=1),
            login_lockout_seconds=env_int(env, "LOGIN_LOCKOUT_SECONDS", 300, minimum=1),
            redis_url=env.get("REDIS_URL", "").strip() or None,
            trusted_proxies=_networks(
                "WALLET_TRUSTED_PROXIES", env.get("WALLET_TRUSTED_PROXIES", DEFAULT_TRUSTED_PROXIES)
            ),
            register_per_peer=env_rate_limit(
                env, "WALLET_REGISTER_RATE_LIMIT_PER_PEER", RateLimit(10, 3600)
            ),
            login_per_peer=env_rate_limit(
                env, "WALLET_LOGIN_RATE_LIMIT_PER_PEER", RateLimit(30, 60)
            ),
            money_per_user=env_rate_limit(env, "MONEY_RATE_LIMIT_PER_USER", RateLimit(60, 60)),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            notify=NotifySettings.from_env(env, environment=environment),
            processes=_processes(env),
            telemetry=TelemetrySettings.from_env(env, "WALLET_METRICS_PORT"),
            tls=TlsSettings.from_env(env, "WALLET"),
        )

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _processes(env: Mapping[str, str]) -> int:
    url = env_str(env, "WALLET_DATABASE_URL", DEFAULT_DATABASE_URL)
    on_sqlite = url.startswith("sqlite")
    processes = env_int(env, "WALLET_PROCESSES", 1, minimum=1)
    if processes > 1 and on_sqlite:
        raise ConfigError(
            "WALLET_PROCESSES > 1 needs PostgreSQL: a SQLite database is served by one "
            "wallet process (its sender turns are in-process locks)"
        )
    return processes


def _jwt_secret(env: Mapping[str, str], *, production: bool) -> tuple[str, bool]:
    """A short secret is refused in every environment: a test or staging deployment signed
    with a guessable key is one copied .env away from production."""
    secret = env.get("JWT_SECRET_KEY", "").strip()
    if secret:
        if len(secret.encode()) < MIN_SECRET_BYTES or secret.lower() in _WEAK_SECRETS:
            raise ConfigError(
                f"JWT_SECRET_KEY is too weak: use at least {MIN_SECRET_BYTES} random bytes, "
                "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        return secret, False
    if production:
        raise ConfigError("JWT_SECRET_KEY is required when APP_ENV=production")
    return _development_secret(), True


def _development_secret() -> str:
    """A random secret kept under data/, so development tokens survive a restart."""
    if DEV_SECRET_FILE.exists():
        return DEV_SECRET_FILE.read_text().strip()
    DEV_SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    DEV_SECRET_FILE.write_text(secret)
    DEV_SECRET_FILE.chmod(0o600)
    return secret


def _currencies(env: Mapping[str, str]) -> CurrencyBook:
    raw = env.get("SUPPORTED_CURRENCIES", "").strip()
    codes = [c.strip() for c in raw.split(",") if c.strip()] if raw else list(DEFAULT_CURRENCIES)
    try:
        return CurrencyBook.of(codes, env_decimal(env, "MAX_AMOUNT", DEFAULT_MAX_AMOUNT))
    except ValueError as exc:
        raise ConfigError(f"SUPPORTED_CURRENCIES/MAX_AMOUNT: {exc}") from exc


def _networks(name: str, raw: str) -> tuple[IpNetwork, ...]:
    """Comma-separated addresses or CIDR blocks; empty trusts no peer."""
    try:
        return tuple(
            ipaddress.ip_network(item.strip(), strict=False)
            for item in raw.split(",")
            if item.strip()
        )
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from exc
