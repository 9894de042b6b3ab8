"""TLS and mutual TLS on every hop (gateway -> wallet -> fraud), with certificates made by the
code behind `make certs`: plaintext, certificate-less and wrong-CA clients are refused; the
dev certificates work, and a movement still gets a real fraud verdict over the TLS hop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from common.processes import grpc_serving
from common.tls import TlsSettings, channel
from fraud_service.server import FraudServer
from scripts.make_certs import make_certs
from tests.support import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    RunningWallet,
    StartGateway,
    new_user,
    seen_by_admin,
    start_fraud,
    unique_name,
)

HANG_GUARD = 20.0
PASSWORD = "correct-horse-battery"
MakeWallet = Callable[..., tuple[RunningWallet, wallet_pb2_grpc.WalletServiceStub]]


@pytest.fixture(scope="module")
def foreign_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same names, signed by another CA."""
    directory = tmp_path_factory.mktemp("foreign-certs")
    make_certs(directory)
    return directory


def identity(directory: Path, name: str, ca: Path | None = None) -> TlsSettings:
    return TlsSettings(
        cert=directory / f"{name}.crt", key=directory / f"{name}.key", ca=ca or directory / "ca.crt"
    )


def tls_env(prefix: str, directory: Path, name: str) -> dict[str, str]:
    return {
        f"{prefix}_TLS_CERT": str(directory / f"{name}.crt"),
        f"{prefix}_TLS_KEY": str(directory / f"{name}.key"),
        f"{prefix}_TLS_CA": str(directory / "ca.crt"),
    }


def health_code(addr: str, settings: TlsSettings) -> grpc.StatusCode:
    """OK when a health Check goes through, else the code the call failed with."""
    with channel(addr, settings) as chan:
        try:
            health_pb2_grpc.HealthStub(chan).Check(
                health_pb2.HealthCheckRequest(), timeout=HANG_GUARD
            )
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def assert_mtls_enforced(addr: str, certs: Path, foreign: Path, client: str) -> None:
    ca = certs / "ca.crt"
    assert health_code(addr, TlsSettings()) == grpc.StatusCode.UNAVAILABLE  # plaintext
    assert health_code(addr, TlsSettings(ca=ca)) == grpc.StatusCode.UNAVAILABLE  # no cert
    # A certificate from another CA (the client still trusts the server's CA).
    assert health_code(addr, identity(foreign, client, ca=ca)) == grpc.StatusCode.UNAVAILABLE
    # A client that does not trust the server's CA refuses the server.
    assert health_code(addr, identity(foreign, client)) == grpc.StatusCode.UNAVAILABLE
    assert health_code(addr, identity(certs, client)) == grpc.StatusCode.OK


@pytest.fixture
def tls_fraud(certs: Path) -> Iterator[str]:
    server: FraudServer = start_fraud(**tls_env("FRAUD", certs, "fraud"))
    yield f"127.0.0.1:{server.port}"
    server.stop(0)


def test_fraud_server_requires_a_certificate_from_its_ca(
    tls_fraud: str, certs: Path, foreign_certs: Path
) -> None:
    assert_mtls_enforced(tls_fraud, certs, foreign_certs, client="wallet")
    # The readiness probe of `make run` dials with the process's own identity.
    assert grpc_serving(tls_fraud, tls=identity(certs, "fraud"))
    assert not grpc_serving(tls_fraud)


def test_wallet_server_requires_a_certificate_and_scores_over_tls(
    make_wallet: MakeWallet, tls_fraud: str, certs: Path, foreign_certs: Path
) -> None:
    running, _ = make_wallet(tls_fraud, **tls_env("WALLET", certs, "wallet"))
    assert_mtls_enforced(running.addr, certs, foreign_certs, client="gateway")
    with channel(running.addr, identity(certs, "gateway")) as chan:
        stub = wallet_pb2_grpc.WalletServiceStub(chan)
        _, auth = new_user(stub)
        reply = stub.Deposit(pb.DepositRequest(amount="10000.00", currency="USD"), metadata=auth)
        # The wallet -> fraud hop is mTLS too: a real verdict, not UNSCORED (fail open).
        tx = seen_by_admin(stub, reply.transaction.id)
        assert tx.fraud_decision == "REVIEW", tx
        assert "large_amount" in {r.rule_id for r in tx.fraud_reasons}


def test_gateway_reaches_the_wallet_over_mtls(
    make_wallet: MakeWallet, tls_fraud: str, certs: Path, start_gateway: StartGateway
) -> None:
    running, _ = make_wallet(tls_fraud, **tls_env("WALLET", certs, "wallet"))
    url = start_gateway(running.addr, tls=identity(certs, "gateway"))
    username = unique_name("tls")
    with httpx.Client(base_url=url, timeout=HANG_GUARD) as api:
        assert api.post("/register", json={"username": username, "password": PASSWORD}).is_success
        login = api.post("/login", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        moved = api.post("/deposit", json={"amount": "25.00", "currency": "USD"}, headers=auth)
        assert moved.status_code == 201, moved.text
        assert moved.json()["balance"] == "25.00"
    with channel(running.addr, identity(certs, "gateway")) as chan:
        tx = seen_by_admin(wallet_pb2_grpc.WalletServiceStub(chan), moved.json()["transaction_id"])
        assert tx.fraud_decision == "ALLOW", tx


def test_gateway_without_tls_cannot_reach_an_mtls_wallet(
    make_wallet: MakeWallet, tls_fraud: str, certs: Path, start_gateway: StartGateway
) -> None:
    running, _ = make_wallet(tls_fraud, **tls_env("WALLET", certs, "wallet"))
    url = start_gateway(running.addr)
    with httpx.Client(base_url=url, timeout=HANG_GUARD) as api:
        response = api.post("/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert response.status_code == 503, response.text
