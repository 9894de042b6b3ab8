"""`python -m gateway`: serve the REST gateway with uvicorn (SIGTERM drains and exits 0)."""

from __future__ import annotations

import uvicorn

from common.config import current_env, load_env_file
from common.logs import setup_logging
from gateway.app import create_app
from gateway.settings import GatewaySettings


def main() -> None:
    load_env_file()
    settings = GatewaySettings.from_env(current_env())
    setup_logging(settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON logging set up above
        access_log=False,  # the app writes one structured access line per request
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        server_header=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
