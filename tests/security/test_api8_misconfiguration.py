"""API8:2023 Security Misconfiguration: a short JWT signing secret is refused in every
environment, not only in production (a test or staging key is one copied .env away from
signing real tokens). The real process is started and must exit with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import ConfigError
from tests.support import SpawnService, run_to_exit
from wallet_service.settings import WalletSettings

SHORT = "s" * 31  # one byte under the minimum


def _start_wallet(spawn: SpawnService, tmp_path: Path, **env: str) -> tuple[int, str]:
    """`python -m wallet_service` with `env` on a new SQLite file, run until it exits."""
    return run_to_exit(
        spawn(
            "wallet",
            "wallet_service",
            WALLET_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
            WALLET_ADDR="127.0.0.1:0",
            FRAUD_ADDR="",
            **env,
        )
    )


@pytest.mark.parametrize("app_env", ["development", "test", "production"])
@pytest.mark.parametrize("secret", [SHORT, "changeme", "short-secret"])
def test_a_short_secret_stops_the_wallet_in_every_environment(
    spawn: SpawnService, tmp_path: Path, app_env: str, secret: str
) -> None:
    code, output = _start_wallet(spawn, tmp_path, APP_ENV=app_env, JWT_SECRET_KEY=secret)
    assert code == 2, output
    assert output.strip().splitlines() == [
        "wallet_service: configuration error: JWT_SECRET_KEY is too weak: use at least 32 "
        "random bytes, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    ]
    assert not (tmp_path / "x.db").exists()  # refused before touching the database


@pytest.mark.parametrize("app_env", ["development", "test"])
def test_a_32_byte_secret_is_accepted_and_no_secret_means_a_generated_one(
    app_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the generated development secret is kept under data/
    settings = WalletSettings.from_env({"APP_ENV": app_env, "JWT_SECRET_KEY": "k" * 32})
    assert settings.jwt_secret == "k" * 32
    generated = WalletSettings.from_env({"APP_ENV": app_env})
    assert generated.jwt_secret_generated
    assert len(generated.jwt_secret.encode()) >= 32
    with pytest.raises(ConfigError, match="too weak"):
        WalletSettings.from_env({"APP_ENV": app_env, "JWT_SECRET_KEY": SHORT})


def test_production_refuses_to_start_without_a_secret(spawn: SpawnService, tmp_path: Path) -> None:
    # Elsewhere a development secret is generated and kept (README); production needs one.
    code, output = _start_wallet(spawn, tmp_path, APP_ENV="production", JWT_SECRET_KEY="")
    assert code == 2, output
    assert "JWT_SECRET_KEY is required" in output
    assert "Traceback" not in output
    assert not (tmp_path / "x.db").exists()
