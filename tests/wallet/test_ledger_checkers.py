"""The checkers are tested too: `verify_ledger` and `chaos.checker.check` are fed a real
ledger (written by a real wallet on a real SQLite file / PostgreSQL database), then a
deliberately broken copy of it, one rule at a time, and must report exactly that breakage.

The corruptions go around the database's own guards on purpose (SQLite's
`ignore_check_constraints`, a dropped PostgreSQL constraint, a table rebuilt without its
unique constraint): the checkers are the last line behind those guards. Where a rule can be
broken alone (balances kept equal to their entries, currencies kept summing to zero), the
corruption does so, so each test names exactly one rule.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from chaos.checker import check
from chaos.workload import Op
from tests.support import (
    STORES,
    CreateDatabase,
    database_url,
    new_user,
    start_wallet,
    wallet_settings,
)
from wallet_service.database import create_db_engine
from wallet_service.ledger import verify_ledger
from wallet_service.schema import transactions
from wallet_service.store import SqlStore


@dataclass
class Books:
    """A small sound ledger: alice and bob funded in USD and EUR, alice paid bob 30 USD."""

    backend: str
    url: str
    ops: list[Op]
    tx: dict[str, str]  # idempotency key -> transaction id
    account: dict[tuple[str, str], int]  # (alice|bob|external, currency) -> account id

    @contextmanager
    def raw(self) -> Iterator[Any]:
        """A plain DB-API connection in autocommit mode, around the application's engine."""
        if self.backend == "sqlite":
            path = make_url(self.url).database
            assert path
            with closing(sqlite3.connect(path, isolation_level=None)) as conn:
                yield conn
        else:
            dsn = self.url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn, autocommit=True) as conn:
                yield conn

    def sql(self, *statements: str) -> None:
        with self.raw() as conn:
            if self.backend == "sqlite":
                conn.execute("PRAGMA ignore_check_constraints = ON")
            else:
                conn.execute("ALTER TABLE accounts DROP CONSTRAINT ck_accounts_no_overdraft")
            for statement in statements:
                conn.execute(statement)

    def add_to_balance(self, account_id: int, delta: int) -> str:
        return (
            f"UPDATE accounts SET balance_minor = balance_minor + {delta} WHERE id = {account_id}"
        )

    def unpay_bob(self, *, drop_transaction: bool) -> str:
        """Take alice's 30 USD to bob out of the ledger: its entries deleted (and its
        transaction row too when `drop_transaction`), both balances put back to match.
        Returns the payment's transaction id."""
        pay = self.tx["pay-bob"]
        alice, bob = self.account[("alice", "USD")], self.account[("bob", "USD")]
        drop = [f"DELETE FROM transactions WHERE id = '{pay}'"] if drop_transaction else []
        self.sql(
            f"DELETE FROM ledger_entries WHERE transaction_id = '{pay}'",
            *drop,
            self.add_to_balance(alice, 3000),
            self.add_to_balance(bob, -3000),
        )
        return pay

    def entry_id(self, tx_id: str, account_id: int) -> int:
        with self.raw() as conn:
            row = conn.execute(
                f"SELECT id FROM ledger_entries WHERE transaction_id = '{tx_id}' "
                f"AND account_id = {account_id}"
            ).fetchone()
        return int(row[0])

    def violations(self) -> list[str]:
        engine = create_db_engine(self.url, pool_size=1)
        try:
            return sorted(verify_ledger(SqlStore(engine)))
        finally:
            engine.dispose()

    def chaos_violations(self, ops: list[Op] | None = None) -> dict[str, int]:
        report = check(self.url, self.ops if ops is None else ops, None)
        return dict(report.violations)


MOVES = [
    # (key, kind, who, to, amount, currency)
    ("dep-a-usd", "deposit", "alice", "", "100.00", "USD"),
    ("dep-b-usd", "deposit", "bob", "", "50.00", "USD"),
    ("dep-a-eur", "deposit", "alice", "", "10.00", "EUR"),
    ("dep-b-eur", "deposit", "bob", "", "20.00", "EUR"),
    ("pay-bob", "transfer", "alice", "bob", "30.00", "USD"),
]


def _move(stub: wallet_pb2_grpc.WalletServiceStub, meta: Any, move: tuple[str, ...]) -> str:
    key, kind, _, to, amount, currency = move
    if kind == "deposit":
        reply = stub.Deposit(
            pb.DepositRequest(amount=amount, currency=currency, idempotency_key=key),
            metadata=meta,
        )
    else:
        reply = stub.Transfer(
            pb.TransferRequest(
                to_username=to, amount=amount, currency=currency, idempotency_key=key
            ),
            metadata=meta,
        )
    return str(reply.transaction.id)


@pytest.fixture(params=STORES)
def books(
    request: pytest.FixtureRequest,
    fraud_addr: str,
    tmp_path: Path,
    pg_database_factory: CreateDatabase,
) -> Iterator[Books]:
    backend = request.param
    url = database_url(backend, tmp_path, pg_database_factory)
    running = start_wallet(wallet_settings(url, fraud_addr), backend)
    try:
        stub = wallet_pb2_grpc.WalletServiceStub(grpc.insecure_channel(running.addr))
        names, metas = {}, {}
        for who in ("alice", "bob"):
            names[who], metas[who] = new_user(stub)
        ops: list[Op] = []
        tx: dict[str, str] = {}
        for seq, move in enumerate(MOVES, start=1):
            key, kind, who, to, amount, currency = move
            real = (key, kind, who, names.get(to, ""), amount, currency)
            tx[key] = _move(stub, metas[who], real)
            ops.append(
                Op(seq, kind, names[who], names.get(to, ""), amount, currency, key,
                   attempts=1, outcome="acked", tx_id=tx[key], tx_ids_seen={tx[key]})
            )  # fmt: skip
    finally:
        running.server.stop(0)
    books = Books(backend, url, ops, tx, {})
    with books.raw() as conn:
        rows = conn.execute(
            "SELECT a.id, a.currency, a.kind, u.username FROM accounts a "
            "LEFT JOIN users u ON u.id = a.owner_user_id"
        ).fetchall()
    owner = {name: who for who, name in names.items()}
    for account_id, currency, kind, username in rows:
        holder = "external" if kind == "external" else owner.get(username)
        if holder:
            books.account[(holder, currency)] = int(account_id)
    # The starting point is sound for both checkers: every failure below is the corruption's.
    assert books.violations() == []
    assert books.chaos_violations() == {}
    yield books


# -- verify_ledger, one rule each -------------------------------------------------------------


def test_a_balance_off_by_one_is_reported(books: Books) -> None:
    alice = books.account[("alice", "USD")]
    books.sql(books.add_to_balance(alice, 1))
    assert books.violations() == sorted(
        [f"account {alice} balance 7001 != entries 7000", "USD balances sum to 1, not 0"]
    )


def test_a_missing_entry_is_reported(books: Books) -> None:
    pay, bob = books.tx["pay-bob"], books.account[("bob", "USD")]
    books.sql(f"DELETE FROM ledger_entries WHERE id = {books.entry_id(pay, bob)}")
    assert books.violations() == sorted(
        [
            f"transaction {pay} entries sum to -3000, not 0",
            f"account {bob} balance 8000 != entries 5000",
            f"transaction {pay} has 1 entries",
        ]
    )


def test_a_negative_user_balance_is_reported(books: Books) -> None:
    # The transfer becomes 101.00 instead of 30.00 in its entries and both balances: the
    # books still balance, only alice's USD account is below zero.
    pay = books.tx["pay-bob"]
    alice, bob = books.account[("alice", "USD")], books.account[("bob", "USD")]
    books.sql(
        f"UPDATE ledger_entries SET amount_minor = -10100 WHERE id = {books.entry_id(pay, alice)}",
        f"UPDATE ledger_entries SET amount_minor = 10100 WHERE id = {books.entry_id(pay, bob)}",
        books.add_to_balance(alice, -7100),
        books.add_to_balance(bob, 7100),
    )
    assert books.violations() == [f"user account {alice} is negative: -100"]


def test_a_completed_transaction_without_entries_is_reported(books: Books) -> None:
    pay = books.unpay_bob(drop_transaction=False)
    assert books.violations() == [f"transaction {pay} has 0 entries"]


def test_entries_not_summing_to_zero_are_reported(books: Books) -> None:
    pay, bob = books.tx["pay-bob"], books.account[("bob", "USD")]
    books.sql(
        f"UPDATE ledger_entries SET amount_minor = 3001 WHERE id = {books.entry_id(pay, bob)}",
        books.add_to_balance(bob, 1),  # balance == entries still
    )
    assert books.violations() == sorted(
        [f"transaction {pay} entries sum to 1, not 0", "USD balances sum to 1, not 0"]
    )


def test_a_currency_not_summing_to_zero_is_reported(books: Books) -> None:
    # The transfer's credit lands on bob's EUR account: every transaction sums to zero and
    # every balance equals its entries, yet USD lost 30.00 and EUR gained 3000 minor units.
    pay = books.tx["pay-bob"]
    bob_usd, bob_eur = books.account[("bob", "USD")], books.account[("bob", "EUR")]
    credit = books.entry_id(pay, bob_usd)
    books.sql(
        f"UPDATE ledger_entries SET account_id = {bob_eur} WHERE id = {credit}",
        books.add_to_balance(bob_usd, -3000),
        books.add_to_balance(bob_eur, 3000),
    )
    assert books.violations() == sorted(
        ["EUR balances sum to 3000, not 0", "USD balances sum to -3000, not 0"]
    )


# -- the chaos checker: the client's view against the ledger ------------------------------------


def test_a_phantom_operation_is_reported(books: Books) -> None:
    # In the ledger, but no client ever asked for it.
    ops = [op for op in books.ops if op.key != "pay-bob"]
    assert books.chaos_violations(ops) == {"phantom_transaction": 1}


def test_an_acknowledged_operation_missing_from_the_ledger_is_reported(books: Books) -> None:
    books.unpay_bob(drop_transaction=True)
    assert books.violations() == []  # the books are sound: only the client's view tells
    assert books.chaos_violations() == {"acked_missing": 1}


def test_an_operation_moved_twice_is_reported(books: Books) -> None:
    # bob's deposit is in the ledger twice under one idempotency key (the unique constraint
    # that normally forbids it is taken away), with entries and balances to match.
    original, copy = books.tx["dep-b-usd"], "dddddddd-0000-4000-8000-000000000001"
    columns = [c.name for c in transactions.columns]
    values = ", ".join(f"'{copy}'" if c == "id" else c for c in columns)
    bob, external = books.account[("bob", "USD")], books.account[("external", "USD")]
    _drop_idempotency_uniqueness(books)
    books.sql(
        f"INSERT INTO transactions ({', '.join(columns)}) "
        f"SELECT {values} FROM transactions WHERE id = '{original}'",
        "INSERT INTO ledger_entries (transaction_id, account_id, amount_minor) "
        f"SELECT '{copy}', account_id, amount_minor FROM ledger_entries "
        f"WHERE transaction_id = '{original}' ORDER BY id",
        books.add_to_balance(bob, 5000),
        books.add_to_balance(external, -5000),
    )
    assert books.violations() == []  # money is conserved: only the duplicate is wrong
    assert books.chaos_violations() == {"acked_duplicated": 1}


def _drop_idempotency_uniqueness(books: Books) -> None:
    with books.raw() as conn:
        if books.backend == "postgres":
            conn.execute("ALTER TABLE transactions DROP CONSTRAINT uq_transactions_idempotency")
            return
        # SQLite cannot drop a table constraint: rebuild the table without any.
        conn.execute("CREATE TABLE transactions_loose AS SELECT * FROM transactions")
        conn.execute("DROP TABLE transactions")
        conn.execute("ALTER TABLE transactions_loose RENAME TO transactions")


# -- the database's own guard -------------------------------------------------------------------


@pytest.mark.parametrize("backend", STORES)
def test_the_database_refuses_a_negative_user_balance(
    backend: str, tmp_path: Path, pg_database_factory: CreateDatabase, fraud_addr: str
) -> None:
    """ck_accounts_no_overdraft is live on both stores: a raw UPDATE cannot go around the
    code to overdraw a user account (the external account may go negative)."""
    url = database_url(backend, tmp_path, pg_database_factory)
    running = start_wallet(wallet_settings(url, fraud_addr), backend)
    stub = wallet_pb2_grpc.WalletServiceStub(grpc.insecure_channel(running.addr))
    try:
        _, meta = new_user(stub)
        stub.Deposit(pb.DepositRequest(amount="1.00", currency="USD", idempotency_key="k"),
                     metadata=meta)  # fmt: skip
    finally:
        running.server.stop(0)
    engine = create_db_engine(url, pool_size=1)
    try:
        with pytest.raises(sqlalchemy.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                sqlalchemy.text("UPDATE accounts SET balance_minor = -1 WHERE kind = 'user'")
            )
        with engine.begin() as conn:
            conn.execute(
                sqlalchemy.text(
                    "UPDATE accounts SET balance_minor = balance_minor - 1 WHERE kind = 'external'"
                )
            )
    finally:
        engine.dispose()
