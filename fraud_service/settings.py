"""The fraud service's settings, read once at start from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.config import env_choice, env_float, env_int, env_str
from common.telemetry import TelemetrySettings
from common.tls import TlsSettings
from fraud_service.config import load_config
from fraud_service.rules import FraudConfig

LOG_LEVELS = {"debug", "info", "warning", "error"}
DEFAULT_DATABASE_URL = "sqlite:///data/fraud.db"


@dataclass(frozen=True, kw_only=True)
class FraudSettings:
    addr: str = "127.0.0.1:50052"
    max_workers: int = 8
    grace_seconds: float = 5.0
    log_level: str = "info"
    # The seed: version 1 of the rule sets when the store is empty (from FRAUD_RULES_FILE
    # and FRAUD_THRESHOLD); without a store, the fixed rules.
    rules: FraudConfig = field(default_factory=FraudConfig)
    # Empty: no store, the `rules` above score forever and FraudAdmin is not served
    # (embedding and unit tests). The process always has one (FRAUD_DATABASE_URL).
    database_url: str = ""
    db_pool_size: int = 8
    # How long a replica trusts its snapshot before reading the store's generation again;
    # 0 (default) reads it before every score, so an activation is in force at once.
    state_cache_seconds: float = 0.0
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    # FRAUD_TLS_*: its server; with a CA, callers must present a certificate (mTLS).
    tls: TlsSettings = field(default_factory=TlsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FraudSettings:
        """Raises common.config.ConfigError on any invalid value, including the rules file."""
        return cls(
            addr=env_str(env, "FRAUD_ADDR", cls.addr),
            max_workers=env_int(env, "FRAUD_MAX_WORKERS", cls.max_workers, minimum=1),
            grace_seconds=env_float(env, "FRAUD_GRACE_SECONDS", cls.grace_seconds),
            log_level=env_choice(env, "LOG_LEVEL", cls.log_level, LOG_LEVELS),
            rules=load_config(env),
            database_url=env_str(env, "FRAUD_DATABASE_URL", DEFAULT_DATABASE_URL),
            db_pool_size=env_int(env, "FRAUD_DB_POOL_SIZE", cls.db_pool_size, minimum=1),
            state_cache_seconds=env_int(env, "FRAUD_STATE_CACHE_MS", 0) / 1000,
            telemetry=TelemetrySettings.from_env(env, "FRAUD_METRICS_PORT"),
            tls=TlsSettings.from_env(env, "FRAUD"),
        )
