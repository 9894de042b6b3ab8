"""`python -m gateway`: serve the REST gateway with uvicorn (SIGTERM drains and exits 0)."""

from __future__ import annotations

import signal

import uvicorn

from common.config import current_env, load_env_file
from common.logs import setup_logging
from common.telemetry import Telemetry
from gateway.app import create_app
from gateway.settings import GatewaySettings


def server_config(settings: GatewaySettings, telemetry: Telemetry | None = None) -> uvicorn.Config:
    """The uvicorn set-up, shared by `main` and the tests' in-thread servers."""
    return uvicorn.Config(
        create_app(settings, telemetry),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON logging set up by common.logs
        access_log=False,  # the app writes one structured access line per request
        # Believe X-Forwarded-For only from configured proxies (uvicorn trusts 127.0.0.1 by
        # default, which would let local clients pick their own IP for the login limit).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        server_header=False,
        lifespan="on",
    )


def main() -> None:
    load_env_file()
    settings = GatewaySettings.from_env(current_env())
    setup_logging(settings.log_level)
    # uvicorn drains on SIGTERM, then re-raises the signal to whatever handler was there
    # before it; a no-op handler makes that a normal return, so the process exits 0.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    uvicorn.Server(server_config(settings)).run()


if __name__ == "__main__":
    main()
