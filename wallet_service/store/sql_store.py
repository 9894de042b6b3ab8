"""`SqlStore`: the wallet's storage contract (wallet_service.store_contract.WalletStore)
on SQLAlchemy Core. The same statements serve SQLite and PostgreSQL.

It is assembled from parts, each the methods along one seam of the store, all running
their SQL through one `Db` (db.py: transactions, retries, the dialect):
- users.py         UserQueries: users and identity
- balances.py      BalanceQueries: balances and the fraud features
- movements.py     MovementWrites: the movement write path (locks, reads,
                   ledger.decide_movement, bulk write)
- transactions.py  TransactionQueries: lookups, listings, reviews, soft deletion
- audit.py         LedgerAudit: the audit behind ledger.verify_ledger
- outbox.py        OutboxQueries: the event outbox's claims, leases and outcomes (its
                   `add_events` is called by the writes above, in their transactions)
- sender_turns.py  SenderTurns: one sender's movements in turn
- service_accounts.py  ServiceAccountQueries: internal callers and their secrets
- statements.py, rows.py: prebuilt statements and row mapping, shared by the parts
What each method locks, until when, and what it returns when nothing matches is stated
once, on the contract.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy import Engine

from wallet_service.store.audit import LedgerAudit
from wallet_service.store.balances import BalanceQueries
from wallet_service.store.db import Db
from wallet_service.store.movements import MovementWrites
from wallet_service.store.outbox import OutboxQueries
from wallet_service.store.sender_turns import SenderTurns
from wallet_service.store.service_accounts import ServiceAccountQueries
from wallet_service.store.transactions import TransactionQueries
from wallet_service.store.users import UserQueries


class SqlStore(
    UserQueries,
    BalanceQueries,
    MovementWrites,
    TransactionQueries,
    LedgerAudit,
    OutboxQueries,
    ServiceAccountQueries,
):
    """`WalletStore` on SQLAlchemy Core: the parts share nothing but `_db`, and no part
    overrides another's method."""

    def __init__(self, engine: Engine, *, sender_turn_connections: int = 8) -> None:
        """`sender_turn_connections`: how many pooled connections PostgreSQL sender turns
        may hold at once; keep it below the pool's capacity so reads and writes always
        find a connection."""
        self._db = Db(engine)
        self.sender_turns = SenderTurns(engine, max_connections=sender_turn_connections)

    @property
    def engine(self) -> Engine:
        return self._db.engine

    def sender_turn(self, user_id: str) -> AbstractContextManager[None]:
        return self.sender_turns.turn(user_id)
