"""The fraud service's settings, read once at start from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.config import env_choice, env_float, env_int, env_str
from common.telemetry import TelemetrySettings
from fraud_service.config import load_config
from fraud_service.rules import FraudConfig

LOG_LEVELS = {"debug", "info", "warning", "error"}


@dataclass(frozen=True, kw_only=True)
class FraudSettings:
    addr: str = "127.0.0.1:50052"
    max_workers: int = 8
    grace_seconds: float = 5.0
    log_level: str = "info"
    rules: FraudConfig = field(default_factory=FraudConfig)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FraudSettings:
        """Raises common.config.ConfigError on any invalid value, including the rules file."""
        return cls(
            addr=env_str(env, "FRAUD_ADDR", cls.addr),
            max_workers=env_int(env, "FRAUD_MAX_WORKERS", cls.max_workers, minimum=1),
            grace_seconds=env_float(env, "FRAUD_GRACE_SECONDS", cls.grace_seconds),
            log_level=env_choice(env, "LOG_LEVEL", cls.log_level, LOG_LEVELS),
            rules=load_config(env),
            telemetry=TelemetrySettings.from_env(env, "FRAUD_METRICS_PORT"),
        )
