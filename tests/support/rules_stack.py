"""A fraud service, wallet and gateway of a test's own: rule-set activations (which change
what every later score decides) must not reach the shared servers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from fraud_service.server import FraudServer, create_server
from fraud_service.settings import FraudSettings
from tests.support.database import CreateDatabase, database_url
from tests.support.gateway import StartGateway
from tests.support.servers import RunningWallet, start_wallet, wallet_settings

READY_GUARD_SECONDS = 60.0


@contextmanager
def own_fraud_gateway(
    backend: str, tmp_path: Path, create_pg_database: CreateDatabase, start_gateway: StartGateway
) -> Iterator[str]:
    """The base URL of a gateway in front of its own wallet and fraud service (each store
    on `backend`, each its own database), once the gateway reaches the wallet."""
    fraud_url = database_url(backend, tmp_path, create_pg_database)
    fraud: FraudServer = create_server(FraudSettings(addr="127.0.0.1:0", database_url=fraud_url))
    fraud.start()
    url = database_url(backend, tmp_path, create_pg_database)
    wallet: RunningWallet = start_wallet(wallet_settings(url, f"127.0.0.1:{fraud.port}"), backend)
    try:
        base_url = start_gateway(wallet.addr)
        with httpx.Client(base_url=base_url, timeout=15) as client:
            wait_until_ready(client)
        yield base_url
    finally:
        wallet.server.stop(0)
        fraud.stop(None)


def wait_until_ready(client: httpx.Client) -> None:
    """The gateway's channel to the fresh wallet answers (/readyz); a hang guard only."""
    deadline = time.monotonic() + READY_GUARD_SECONDS
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the gateway never reached the wallet"
        time.sleep(0.05)
