"""A typed client of the wallet for internal callers (see README "Calling the wallet from
another service"): Decimal money, idempotency keys reused across retries, deadlines,
service-account token refresh, errors as exceptions carrying the ErrorInfo reason.

Installable on its own (`pip install ./wallet_client`: see wallet_client/pyproject.toml);
it imports nothing of this repository but the generated `wallet.v1` stubs, which its build
generates into the distribution."""

from wallet_client.client import (
    Movement,
    ServiceCredentials,
    WalletClient,
    WalletError,
)
from wallet_client.errors import RpcErrorDetails, decode_rpc_error, error_reason

__all__ = [
    "Movement",
    "RpcErrorDetails",
    "ServiceCredentials",
    "WalletClient",
    "WalletError",
    "decode_rpc_error",
    "error_reason",
]
