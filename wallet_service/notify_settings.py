"""Settings of the outbox's delivery worker and its channels (part of WalletSettings)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from common.config import ConfigError, env_bool, env_int, env_str

# Unset: alerts go somewhere visible with zero set-up (an .eml file under MAIL_DIR when
# SMTP_URL is unset too); set it empty to send no alert emails.
DEFAULT_ALERT_EMAIL = "fraud-alerts@localhost"


@dataclass(frozen=True)
class NotifySettings:
    enabled: bool  # run the delivery worker in this wallet process
    smtp_url: str  # empty: write each email as an .eml file under mail_dir
    mail_from: str
    mail_dir: Path
    fraud_alert_emails: tuple[str, ...]
    admin_url: str  # where an alert's "review it" link points (the gateway)
    webhook_urls: tuple[str, ...]
    webhook_secrets: tuple[str, ...]
    max_attempts: int
    lease_seconds: int
    poll_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, environment: str) -> NotifySettings:
        urls = _list(env, "WEBHOOK_URLS")
        secrets = _list(env, "WEBHOOK_SECRETS")
        if urls and not secrets:
            raise ConfigError("WEBHOOK_URLS needs WEBHOOK_SECRETS (receivers verify signatures)")
        allowed = set(_list(env, "WEBHOOK_ALLOWED_HOSTS"))
        for url in urls:
            _check_webhook_url(url, allowed, production=environment == "production")
        smtp_url = env_str(env, "SMTP_URL", "")
        if smtp_url and urlsplit(smtp_url).scheme not in ("smtp", "smtps"):
            raise ConfigError("SMTP_URL must be smtp://[user:password@]host[:port] or smtps://...")
        return cls(
            enabled=env_bool(env, "NOTIFY_WORKER", True),
            smtp_url=smtp_url,
            mail_from=env_str(env, "MAIL_FROM", "wallet@localhost"),
            mail_dir=Path(env_str(env, "MAIL_DIR", "data/mail")),
            fraud_alert_emails=_list(env, "FRAUD_ALERT_EMAILS", DEFAULT_ALERT_EMAIL),
            admin_url=env_str(env, "ADMIN_URL", "http://127.0.0.1:5000"),
            webhook_urls=urls,
            webhook_secrets=secrets,
            max_attempts=env_int(env, "NOTIFY_MAX_ATTEMPTS", 8, minimum=1),
            lease_seconds=env_int(env, "NOTIFY_LEASE_SECONDS", 60, minimum=1),
            poll_seconds=env_int(env, "NOTIFY_POLL_MS", 1000, minimum=10) / 1000,
        )


def _list(env: Mapping[str, str], name: str, default: str = "") -> tuple[str, ...]:
    return tuple(p.strip() for p in env.get(name, default).split(",") if p.strip())


def _check_webhook_url(url: str, allowed: set[str], *, production: bool) -> None:
    """Outside production a webhook may only reach loopback or an explicitly allowed host,
    so a development wallet with a copied configuration posts nowhere it should not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"WEBHOOK_URLS: {url!r} is not an http(s) URL")
    if production or parts.hostname in allowed or parts.hostname == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"WEBHOOK_URLS: {parts.hostname} is neither loopback nor in WEBHOOK_ALLOWED_HOSTS "
            "(required outside APP_ENV=production)"
        )
