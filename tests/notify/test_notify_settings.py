"""The notification settings refuse what would post or mail somewhere unintended."""

from __future__ import annotations

import pytest

from common.config import ConfigError
from wallet_service.notify_settings import NotifySettings


def settings(environment: str = "development", **env: str) -> NotifySettings:
    return NotifySettings.from_env(env, environment=environment)


def test_webhooks_need_secrets_and_stay_on_loopback_outside_production() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_SECRETS"):
        settings(WEBHOOK_URLS="http://127.0.0.1:9000/hook")
    with pytest.raises(ConfigError, match="WEBHOOK_ALLOWED_HOSTS"):
        settings(WEBHOOK_URLS="https://hooks.example.com/x", WEBHOOK_SECRETS="s")
    allowed = settings(
        WEBHOOK_URLS="https://hooks.example.com/x,http://[::1]:8080/y",
        WEBHOOK_SECRETS="old,new",
        WEBHOOK_ALLOWED_HOSTS="hooks.example.com",
    )
    assert allowed.webhook_secrets == ("old", "new") and len(allowed.webhook_urls) == 2
    production = settings("production", WEBHOOK_URLS="https://h.example.com", WEBHOOK_SECRETS="s")
    assert production.webhook_urls == ("https://h.example.com",)


def test_alerts_default_to_a_local_address_and_smtp_urls_are_checked() -> None:
    assert settings().fraud_alert_emails == ("fraud-alerts@localhost",)
    assert settings(FRAUD_ALERT_EMAILS="").fraud_alert_emails == ()
    with pytest.raises(ConfigError, match="SMTP_URL"):
        settings(SMTP_URL="http://mail.example.com")
