"""Services acting on behalf of a user (the ...For RPCs): the scope check, the user named,
then exactly the user's own use case (wallet_service.service), so scoring, frozen checks,
limits and the ledger are the same; only the recorded initiator and the key scope differ.
No gRPC here."""

from __future__ import annotations

from dataclasses import replace

from wallet_service.errors import NotFound
from wallet_service.identity import canonical_if_valid
from wallet_service.models import MovementOutcome, Role, ServiceAccount, User
from wallet_service.service import ListFilters, Page, WalletService
from wallet_service.service_accounts import require_scope


class OnBehalf:
    def __init__(self, wallet: WalletService) -> None:
        self._wallet = wallet

    def user(self, service: ServiceAccount, scope: str, username: str) -> User:
        """The live user a service names, once its scope allows the call: a service without
        the scope learns nothing, not even whether the user exists."""
        require_scope(service, scope)
        canonical = canonical_if_valid(username)
        user = self._wallet.store.get_user_by_username(canonical) if canonical else None
        if user is None:
            raise NotFound("user_not_found", "User not found")
        # A service acts with the user's own rights, never an admin's: acting for an admin
        # account must not show it fraud and review fields or admin-only listings.
        return replace(user, role=Role.USER)

    def deposit(
        self, service: ServiceAccount, *, username: str, amount: str, currency: str, key: str
    ) -> MovementOutcome:
        user = self.user(service, "deposits:write", username)
        return self._wallet.deposit(user, amount=amount, currency=currency, key=key, acting=service)

    def withdraw(
        self, service: ServiceAccount, *, username: str, amount: str, currency: str, key: str
    ) -> MovementOutcome:
        user = self.user(service, "withdrawals:write", username)
        return self._wallet.withdraw(
            user, amount=amount, currency=currency, key=key, acting=service
        )

    def transfer(
        self,
        service: ServiceAccount,
        *,
        username: str,
        to_username: str,
        amount: str,
        currency: str,
        key: str,
    ) -> MovementOutcome:
        user = self.user(service, "transfers:write", username)
        return self._wallet.transfer(
            user,
            to_username=to_username,
            amount=amount,
            currency=currency,
            key=key,
            acting=service,
        )

    def balance(self, service: ServiceAccount, *, username: str, currency: str) -> tuple[User, int]:
        user = self.user(service, "balances:read", username)
        return user, self._wallet.balance(user, currency)

    def transactions(self, service: ServiceAccount, *, username: str, filters: ListFilters) -> Page:
        """The user's own listing, as the user sees it (no admin-only fields or filters)."""
        user = self.user(service, "transactions:read", username)
        return self._wallet.list_transactions(user, filters)
