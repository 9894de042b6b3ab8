"""Stateful property test of the ledger: random sequences of deposits, withdrawals,
transfers (both directions), idempotent replays, reused keys, reversals and soft
deletions, run through the real WalletService and SqlStore on a temporary SQLite file.
After every step the store agrees with a simple model and `verify_ledger` finds nothing.
"""

from __future__ import annotations

import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from wallet_service.errors import AlreadyExists, FailedPrecondition, WalletError
from wallet_service.ledger import verify_ledger
from wallet_service.models import MovementOutcome, Role, User, utc_now
from wallet_service.money import CurrencyBook
from wallet_service.server import build_service
from wallet_service.service import WalletService
from wallet_service.settings import WalletSettings
from wallet_service.store import SqlStore

CURRENCIES = ("USD", "JPY", "KWD")
BOOK = CurrencyBook.of(CURRENCIES, Decimal("1000000"))  # the same as the settings below
_SERVICE: WalletService | None = None


def shared_service() -> WalletService:
    """One migrated SQLite file per test session, wired exactly as the server wires it
    (real SqlStore, the configured movement writer); each machine run uses fresh users."""
    global _SERVICE
    if _SERVICE is None:
        path = Path(tempfile.mkdtemp(prefix="ledger-fuzz-")) / "wallet.db"
        settings = WalletSettings.from_env(
            {
                "APP_ENV": "test",
                "WALLET_DATABASE_URL": f"sqlite:///{path}",
                "JWT_SECRET_KEY": "fuzz-" + "s" * 40,
                "FRAUD_ADDR": "",  # in-process threshold rule
                "FRAUD_THRESHOLD": "500",  # some movements get flagged
                "SUPPORTED_CURRENCIES": ",".join(CURRENCIES),
                "MAX_AMOUNT": "1000000",
                "MONEY_RATE_LIMIT_PER_USER": "0",  # machines move far faster than people
            }
        )
        _SERVICE = build_service(settings)
        assert isinstance(_SERVICE.store, SqlStore)
    return _SERVICE


AMOUNTS = st.integers(min_value=1, max_value=80_000)
USER = st.integers(min_value=0, max_value=2)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.service = shared_service()
        self.store = self.service.store
        self.users: list[User] = []
        for _ in range(3):
            self.users.append(
                self.store.create_user(
                    user_id=str(uuid.uuid4()),
                    username=f"fz_{uuid.uuid4().hex[:12]}",
                    password_hash="not-a-hash",
                    role=Role.USER,
                    now=utc_now(),
                )
            )
        self.admin = self.store.create_user(
            user_id=str(uuid.uuid4()),
            username=f"fzadmin_{uuid.uuid4().hex[:8]}",
            password_hash="not-a-hash",
            role=Role.ADMIN,
            now=utc_now(),
        )
        self.model: dict[tuple[int, str], int] = {}
        # key -> (user index, request, tx id) for replays
        self.done: list[tuple[int, str, tuple[str, str, str, int], str]] = []
        self.completed: list[tuple[str, str, int, int | None, int | None]] = []
        self.reversed: set[str] = set()

    def _amount(self, minor: int, currency: str) -> str:
        return BOOK.format_minor(minor, currency)

    def _call(
        self, kind: str, caller: User, to: int | None, amount: str, currency: str, key: str
    ) -> MovementOutcome:
        """The use case of `kind` (deposit, withdrawal, transfer to user `to`)."""
        if kind == "deposit":
            return self.service.deposit(caller, amount=amount, currency=currency, key=key)
        if kind == "withdrawal":
            return self.service.withdraw(caller, amount=amount, currency=currency, key=key)
        assert to is not None
        return self.service.transfer(
            caller, to_username=self.users[to].username, amount=amount, currency=currency, key=key
        )

    def _move(
        self, kind: str, user: int, to: int | None, minor: int, currency: str, key: str
    ) -> None:
        caller = self.users[user]
        amount = self._amount(minor, currency)
        before = dict(self.model)
        try:
            outcome = self._call(kind, caller, to, amount, currency, key)
        except FailedPrecondition as error:
            assert error.code == "insufficient_funds", error.code
            assert kind != "deposit"
            assert self.model.get((user, currency), 0) < minor
            assert self.model == before
            return
        assert not outcome.replayed
        assert outcome.transaction.amount_minor == minor
        debit = None if kind == "deposit" else user
        credit = user if kind == "deposit" else to
        if debit is not None:
            assert self.model.get((debit, currency), 0) >= minor
            self.model[(debit, currency)] = self.model.get((debit, currency), 0) - minor
        if credit is not None:
            self.model[(credit, currency)] = self.model.get((credit, currency), 0) + minor
        self.done.append(
            (
                user,
                key,
                (kind, currency, amount, to if to is not None else -1),
                outcome.transaction.id,
            )
        )
        self.completed.append((outcome.transaction.id, currency, minor, debit, credit))

    @rule(user=USER, minor=AMOUNTS, currency=st.sampled_from(CURRENCIES))
    def deposit(self, user: int, minor: int, currency: str) -> None:
        self._move("deposit", user, None, minor, currency, uuid.uuid4().hex)

    @rule(user=USER, minor=AMOUNTS, currency=st.sampled_from(CURRENCIES))
    def withdraw(self, user: int, minor: int, currency: str) -> None:
        self._move("withdrawal", user, None, minor, currency, uuid.uuid4().hex)

    @rule(
        user=USER,
        step=st.sampled_from((1, 2)),
        minor=AMOUNTS,
        currency=st.sampled_from(CURRENCIES),
    )
    def transfer(self, user: int, step: int, minor: int, currency: str) -> None:
        self._move("transfer", user, (user + step) % 3, minor, currency, uuid.uuid4().hex)

    @rule(user=USER, currency=st.sampled_from(CURRENCIES))
    def withdraw_everything(self, user: int, currency: str) -> None:
        held = self.model.get((user, currency), 0)
        if held:
            self._move("withdrawal", user, None, held, currency, uuid.uuid4().hex)

    @precondition(lambda self: bool(self.done))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        user, key, (kind, currency, amount, to), tx_id = data.draw(st.sampled_from(self.done))
        outcome = self._call(kind, self.users[user], to, amount, currency, key)
        assert outcome.replayed
        assert outcome.transaction.id == tx_id

    @precondition(lambda self: bool(self.done))
    @rule(data=st.data(), minor=AMOUNTS)
    def reuse_key_differently(self, data: st.DataObject, minor: int) -> None:
        user, key, (_, currency, amount, _to), _ = data.draw(st.sampled_from(self.done))
        other = self._amount(minor, currency)
        if other == amount:
            return
        try:
            self.service.deposit(self.users[user], amount=other, currency=currency, key=key)
        except AlreadyExists as error:
            assert error.code == "idempotency_key_reused"
        else:
            raise AssertionError("a reused key with another request moved money")

    @precondition(lambda self: bool(self.completed))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        tx_id, currency, minor, debit, credit = data.draw(st.sampled_from(self.completed))
        try:
            self.service.reverse(self.admin, tx_id=tx_id, reason="fuzz", key=uuid.uuid4().hex)
        except WalletError as error:
            if tx_id in self.reversed:
                assert error.code == "already_reversed", error.code
            else:
                # Only a lack of funds on the credited side may stop a reversal.
                assert error.code == "insufficient_funds", error.code
                assert credit is not None and self.model.get((credit, currency), 0) < minor
            return
        assert tx_id not in self.reversed
        self.reversed.add(tx_id)
        if credit is not None:
            self.model[(credit, currency)] -= minor
        if debit is not None:
            self.model[(debit, currency)] = self.model.get((debit, currency), 0) + minor

    @precondition(lambda self: bool(self.completed))
    @rule(data=st.data())
    def soft_delete(self, data: st.DataObject) -> None:
        tx_id = data.draw(st.sampled_from(self.completed))[0]
        self.service.delete_transaction(self.admin, tx_id)  # never changes a balance

    @invariant()
    def balances_match_model(self) -> None:
        for index, user in enumerate(self.users):
            for currency in CURRENCIES:
                held = self.store.balance(user_id=user.id, currency=currency)
                assert held >= 0
                assert held == self.model.get((index, currency), 0), (index, currency)

    @invariant()
    def ledger_is_sound(self) -> None:
        assert verify_ledger(self.store) == []  # type: ignore[arg-type]


LedgerMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ledger_state_machine = LedgerMachine.TestCase
