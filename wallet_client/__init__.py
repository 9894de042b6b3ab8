"""A typed client of the wallet for internal callers (see README "Calling the wallet from
another service"): Decimal money, idempotency keys reused across retries, deadlines,
service-account token refresh, errors as exceptions carrying the ErrorInfo reason."""

from wallet_client.client import (
    Movement,
    ServiceCredentials,
    WalletClient,
    WalletError,
)

__all__ = ["Movement", "ServiceCredentials", "WalletClient", "WalletError"]
