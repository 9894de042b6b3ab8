"""Gateway settings: read once at start from the environment, then passed in explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.config import ConfigError, env_bool, env_float, env_int, env_str
from common.ratelimit import RateLimit as RateLimit  # re-exported: tests and callers use it
from common.ratelimit import env_rate_limit
from common.telemetry import TelemetrySettings
from common.tls import TlsSettings


@dataclass(frozen=True)
class GatewaySettings:
    wallet_addr: str = "127.0.0.1:50051"
    host: str = "127.0.0.1"
    port: int = 5000
    rpc_timeout_seconds: float = 5.0
    ready_timeout_seconds: float = 1.0
    cors_origins: tuple[str, ...] = ()
    redis_url: str | None = None
    max_body_bytes: int = 64 * 1024
    # POST /transfers/batch: 1,000 items of the longest fields (name, amount, key) fit.
    max_batch_body_bytes: int = 512 * 1024
    # Keyed on the client address (as uvicorn resolved it, see forwarded_allow_ips). Each
    # register costs the wallet an argon2 hash, hence its tight default. The money limit is
    # not here: it is keyed on the authenticated user, which only the wallet knows.
    register_per_ip: RateLimit = RateLimit(limit=10, window_seconds=3600)
    login_per_ip: RateLimit = RateLimit(limit=30, window_seconds=60)
    login_per_username: RateLimit = RateLimit(limit=5, window_seconds=60)
    # Peers whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips); empty trusts none,
    # so a client cannot dodge the per-IP login limit by sending its own header.
    forwarded_allow_ips: str = ""
    log_level: str = "INFO"
    # The web pages' cookies carry `Secure` when this is set, or when the request itself
    # came over TLS (set it behind a TLS-terminating proxy that is not in forwarded_allow_ips).
    web_cookie_secure: bool = False
    # Traces only: the gateway's metrics are served on its own port at GET /metrics.
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    # GATEWAY_TLS_*: its calls to the wallet (verify it with the CA, present the certificate).
    tls: TlsSettings = field(default_factory=TlsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        defaults = cls()
        return cls(
            wallet_addr=env_str(env, "WALLET_ADDR", defaults.wallet_addr),
            host=env_str(env, "GATEWAY_HOST", defaults.host),
            port=_port(env_int(env, "GATEWAY_PORT", defaults.port)),
            rpc_timeout_seconds=_positive(
                "GATEWAY_RPC_TIMEOUT_SECONDS",
                env_float(env, "GATEWAY_RPC_TIMEOUT_SECONDS", defaults.rpc_timeout_seconds),
            ),
            ready_timeout_seconds=_positive(
                "GATEWAY_READY_TIMEOUT_SECONDS",
                env_float(env, "GATEWAY_READY_TIMEOUT_SECONDS", defaults.ready_timeout_seconds),
            ),
            cors_origins=_csv(env.get("CORS_ORIGINS", "")),
            redis_url=env.get("REDIS_URL", "").strip() or None,
            max_body_bytes=env_int(env, "MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1),
            max_batch_body_bytes=env_int(
                env, "MAX_BATCH_BODY_BYTES", defaults.max_batch_body_bytes, minimum=1
            ),
            register_per_ip=env_rate_limit(
                env, "REGISTER_RATE_LIMIT_PER_IP", defaults.register_per_ip
            ),
            login_per_ip=env_rate_limit(env, "LOGIN_RATE_LIMIT_PER_IP", defaults.login_per_ip),
            login_per_username=env_rate_limit(
                env, "LOGIN_RATE_LIMIT_PER_USERNAME", defaults.login_per_username
            ),
            forwarded_allow_ips=env.get("GATEWAY_FORWARDED_ALLOW_IPS", "").strip(),
            log_level=env_str(env, "LOG_LEVEL", defaults.log_level),
            web_cookie_secure=env_bool(env, "WEB_COOKIE_SECURE", defaults.web_cookie_secure),
            telemetry=TelemetrySettings.from_env(env, None),
            tls=TlsSettings.from_env(env, "GATEWAY"),
        )


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _port(value: int) -> int:
    if value > 65535:
        raise ConfigError(f"GATEWAY_PORT must be <= 65535, got {value}")
    return value


def _positive(name: str, value: float) -> float:
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value
