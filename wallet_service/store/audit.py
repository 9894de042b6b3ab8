"""The audit query behind `ledger.verify_ledger`: invariants 1-5 of wallet_service.ledger,
checked over the whole database. Each check is one statement (consistent on its own)."""

from __future__ import annotations

from sqlalchemy import case, func, select

from wallet_service.models import TxStatus
from wallet_service.schema import accounts, ledger_entries, transactions
from wallet_service.store.db import Db


class LedgerAudit:
    """The audit behind `ledger.verify_ledger`, over the store's `Db`."""

    _db: Db

    def ledger_violations(self) -> list[str]:
        e, a, t = ledger_entries, accounts, transactions
        problems: list[str] = []
        with self._db.read() as conn:
            for tx_id, total in conn.execute(
                select(e.c.transaction_id, func.sum(e.c.amount_minor))
                .group_by(e.c.transaction_id)
                .having(func.sum(e.c.amount_minor) != 0)
            ):
                problems.append(f"transaction {tx_id} entries sum to {total}, not 0")
            entry_sums = (
                select(e.c.account_id, func.sum(e.c.amount_minor).label("total"))
                .group_by(e.c.account_id)
                .subquery()
            )
            for account_id, balance, total in conn.execute(
                select(a.c.id, a.c.balance_minor, func.coalesce(entry_sums.c.total, 0))
                .select_from(a.outerjoin(entry_sums, entry_sums.c.account_id == a.c.id))
                .where(a.c.balance_minor != func.coalesce(entry_sums.c.total, 0))
            ):
                problems.append(f"account {account_id} balance {balance} != entries {total}")
            for account_id, balance in conn.execute(
                select(a.c.id, a.c.balance_minor).where(a.c.kind == "user", a.c.balance_minor < 0)
            ):
                problems.append(f"user account {account_id} is negative: {balance}")
            for currency, total in conn.execute(
                select(a.c.currency, func.sum(a.c.balance_minor))
                .group_by(a.c.currency)
                .having(func.sum(a.c.balance_minor) != 0)
            ):
                problems.append(f"{currency} balances sum to {total}, not 0")
            entry_count = (
                select(func.count())
                .where(e.c.transaction_id == t.c.id)
                .correlate(t)
                .scalar_subquery()
            )
            expected = case((t.c.status == TxStatus.COMPLETED.value, 2), else_=0)
            for tx_id, count in conn.execute(
                select(t.c.id, entry_count).where(entry_count != expected)
            ):
                problems.append(f"transaction {tx_id} has {count} entries")
        return problems
