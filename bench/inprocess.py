"""The wallet's own use cases called in-process (no gRPC hop), for the benchmarks that
measure stages or count round trips."""

from __future__ import annotations

import uuid

from wallet_service.service import WalletService

PASSWORD = "bench-password-123"


def funded_users(
    service: WalletService, prefix: str, amount: str, count: int = 2
) -> tuple[list[str], list[str]]:
    """`count` new users `<prefix>_<i>_<random>`, each logged in and holding `amount` USD:
    their names and their tokens."""
    names = [f"{prefix}_{i}_{uuid.uuid4().hex[:6]}" for i in range(count)]
    tokens = []
    for name in names:
        service.register(username=name, password=PASSWORD)
        token, _ = service.login(username=name, password=PASSWORD)
        tokens.append(token)
        service.deposit(service.authenticate_user(token), amount=amount, currency="USD", key="")
    return names, tokens
