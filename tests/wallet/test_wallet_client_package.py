"""The client package installs on its own (`pip install ./wallet_client`) and works from
outside the repository: it imports nothing of this checkout but its own modules and the
wallet.v1 stubs its build generates; a fresh venv holding only the built wheel (and the
dependencies it declares) imports both from its own site-packages and moves money through
a real wallet with a service account."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support import (
    Account,
    RunningWallet,
    Stub,
    clean_environ,
    create_service_account,
    install_wallet_client,
    new_user,
    top_level_imports,
)

REPO = Path(__file__).resolve().parents[2]

OUTSIDE = """
import json, os, sys
from decimal import Decimal

import grpc
import wallet_client
from wallet.v1 import wallet_pb2
from wallet_client import ServiceCredentials, WalletClient, WalletError

creds = ServiceCredentials(os.environ["CLIENT_ID"], os.environ["CLIENT_SECRET"])
with grpc.insecure_channel(os.environ["WALLET_ADDR"]) as channel:
    client = WalletClient(channel, credentials=creds)
    moved = client.deposit_for(os.environ["USERNAME"], Decimal("12.34"), "USD")
    try:
        client.withdraw_for(os.environ["USERNAME"], Decimal("99.00"), "USD")
        refused = None
    except WalletError as error:
        refused = [error.code.name, error.reason]
print(json.dumps({
    "files": [wallet_client.__file__, wallet_pb2.__file__],
    "path": sys.path,
    "balance": str(moved.balance),
    "service": moved.initiated_by_service,
    "refused": refused,
}))
"""


def test_the_package_imports_nothing_of_the_repository_but_itself_and_the_stubs() -> None:
    first_party = {p.parent.name for p in REPO.glob("*/__init__.py")} | {"wallet", "fraud"}
    imported = top_level_imports((REPO / "wallet_client").glob("*.py"))
    assert imported & first_party == {"wallet_client", "wallet"}
    dependencies = {"grpc", "google"}  # grpcio; protobuf and googleapis-common-protos
    assert imported - first_party - set(sys.stdlib_module_names) == dependencies


@pytest.mark.slow
def test_the_installed_package_works_outside_the_repository(
    tmp_path: Path, stub: Stub, admin: Account, wallet: RunningWallet
) -> None:
    python = install_wallet_client(tmp_path)
    service = create_service_account(stub, admin.metadata, ["deposits:write", "withdrawals:write"])
    username, _ = new_user(stub)
    env = clean_environ() | {
        "CLIENT_ID": service.client_id,
        "CLIENT_SECRET": service.secret,
        "WALLET_ADDR": wallet.addr,
        "USERNAME": username,
    }
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        [str(python), "-c", OUTSIDE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    venv = str(tmp_path / "venv")
    assert all(file.startswith(venv) for file in seen["files"]), seen["files"]
    assert not [p for p in seen["path"] if p and Path(p).resolve() == REPO], seen["path"]
    assert Decimal(seen["balance"]) == Decimal("12.34")
    assert seen["service"] == service.client_id
    assert seen["refused"] == ["FAILED_PRECONDITION", "insufficient_funds"]
