"""Reads the whole ledger after a run and checks money conservation and the client's view.

Violation kinds (each must be 0):
- ledger_invariant: anything `wallet_service.ledger.verify_ledger` reports (entries of a
  transaction sum to 0, balance == sum of entries, no negative user balance, per-currency
  sum 0, two entries per completed transaction);
- currency_not_conserved, balance_not_entry_sum, negative_balance_now,
  negative_balance_ever (running sum of each user account's entries in commit order);
- acked_missing, acked_mismatch (tx id/type/amount/currency/parties differ from the request),
  acked_duplicated (more than one transaction for the key);
- unknown_duplicated (an unknown-outcome operation present more than once);
- failed_but_present (the client was told the operation failed, yet it is in the ledger);
- phantom_transaction (a transaction no client asked for);
- flagged_not_queued (flagged or unscored movement missing from the pending admin queue),
  unscored_not_flagged (REVIEW/UNSCORED decision without the flag, or no fraud decision).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy import select
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from chaos.workload import Op
from wallet_service.database import create_db_engine
from wallet_service.ledger import verify_ledger
from wallet_service.money import ISO_4217_EXPONENTS, format_minor
from wallet_service.schema import accounts, ledger_entries, transactions, users
from wallet_service.store import SqlStore

MAX_EXAMPLES = 5


@dataclass
class CheckReport:
    violations: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    stats: dict[str, Any] = field(default_factory=dict)

    def add(self, kind: str, example: str) -> None:
        self.violations[kind] += 1
        if len(self.examples[kind]) < MAX_EXAMPLES:
            self.examples[kind].append(example)

    def as_dict(self) -> dict[str, Any]:
        return {
            "violations_total": sum(self.violations.values()),
            "violations": dict(self.violations),
            "examples": dict(self.examples),
            "stats": self.stats,
        }


def admin_queue(addr: str, admin_user: str, admin_password: str) -> set[str]:
    """Every pending flagged transaction id, read through ListFlaggedTransactions."""
    with grpc.insecure_channel(addr) as channel:
        stub = wallet_pb2_grpc.WalletServiceStub(channel)
        token = stub.Login(
            wallet_pb2.LoginRequest(username=admin_user, password=admin_password), timeout=10
        ).access_token
        metadata = (("authorization", f"Bearer {token}"),)
        ids: set[str] = set()
        cursor = ""
        while True:
            page = stub.ListFlaggedTransactions(
                wallet_pb2.ListFlaggedTransactionsRequest(
                    limit=200, cursor=cursor, review_status="pending", include_deleted=True
                ),
                metadata=metadata,
                timeout=30,
            )
            ids.update(t.id for t in page.transactions)
            if not page.next_cursor:
                return ids
            cursor = page.next_cursor


def check(database_url: str, ops: list[Op], queue: set[str] | None) -> CheckReport:
    report = CheckReport()
    engine = create_db_engine(database_url, pool_size=2)
    try:
        for problem in verify_ledger(SqlStore(engine)):
            report.add("ledger_invariant", problem)
        with engine.connect() as conn:
            account_rows = conn.execute(select(accounts)).all()
            entry_rows = conn.execute(
                select(
                    ledger_entries.c.id,
                    ledger_entries.c.account_id,
                    ledger_entries.c.amount_minor,
                    ledger_entries.c.transaction_id,
                ).order_by(ledger_entries.c.account_id, ledger_entries.c.id)
            ).all()
            tx_rows = conn.execute(select(transactions)).all()
            user_rows = conn.execute(select(users.c.id, users.c.username)).all()
    finally:
        engine.dispose()

    username_of = {r.id: r.username for r in user_rows}
    account_by_id = {r.id: r for r in account_rows}
    _check_balances(report, account_rows, entry_rows)
    _check_client_view(report, ops, tx_rows, account_by_id, username_of)
    _check_flags(report, tx_rows, queue)
    return report


def _check_balances(
    report: CheckReport, account_rows: Sequence[Any], entry_rows: Sequence[Any]
) -> None:
    per_currency: Counter[str] = Counter()
    for account in account_rows:
        per_currency[account.currency] += int(account.balance_minor)
        if account.kind == "user" and account.balance_minor < 0:
            report.add("negative_balance_now", f"account {account.id}: {account.balance_minor}")
    for currency, total in per_currency.items():
        if total != 0:
            report.add("currency_not_conserved", f"{currency} sums to {total}")
    report.stats["currency_totals"] = dict(per_currency)
    report.stats["accounts"] = len(account_rows)
    report.stats["ledger_entries"] = len(entry_rows)
    money_held: dict[str, str] = {}
    for account in account_rows:
        if account.kind == "external":
            money_held[account.currency] = format_minor(
                -int(account.balance_minor), ISO_4217_EXPONENTS.get(account.currency, 0)
            )
    report.stats["money_in_user_accounts"] = money_held

    running: dict[int, int] = defaultdict(int)
    lowest: dict[int, int] = {}
    for entry in entry_rows:  # per account, entry ids follow the commit order
        running[entry.account_id] += int(entry.amount_minor)
        lowest[entry.account_id] = min(lowest.get(entry.account_id, 0), running[entry.account_id])
    for account in account_rows:
        if running[account.id] != account.balance_minor:
            report.add(
                "balance_not_entry_sum",
                f"account {account.id}: balance {account.balance_minor} != {running[account.id]}",
            )
        if account.kind == "user" and lowest.get(account.id, 0) < 0:
            report.add(
                "negative_balance_ever", f"account {account.id} reached {lowest[account.id]}"
            )


def _check_client_view(
    report: CheckReport,
    ops: list[Op],
    tx_rows: Sequence[Any],
    account_by_id: dict[int, Any],
    username_of: dict[str, str],
) -> None:
    by_key: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for tx in tx_rows:
        if tx.idempotency_key is not None:
            by_key[(username_of.get(tx.initiated_by, "?"), tx.idempotency_key)].append(tx)
    known_keys = {(op.username, op.key) for op in ops}
    outcome_present: Counter[str] = Counter()
    for op in ops:
        found = by_key.get((op.username, op.key), [])
        completed = [t for t in found if t.status == "completed"]
        if op.outcome == "acked":
            if not found:
                report.add("acked_missing", f"{op.kind} {op.key} tx {op.tx_id}")
                continue
            if len(found) > 1:
                report.add("acked_duplicated", f"{op.key}: {len(found)} rows")
            # Compare the row the client was told about (rows come in no particular order).
            acked = next((t for t in found if t.id == op.tx_id), found[0])
            problem = _mismatch(op, acked, account_by_id, username_of)
            if problem:
                report.add("acked_mismatch", f"{op.key}: {problem}")
        elif op.outcome == "unknown":
            outcome_present["unknown_present" if completed else "unknown_absent"] += 1
            if len(found) > 1:
                report.add("unknown_duplicated", f"{op.key}: {len(found)} rows")
        elif op.outcome == "failed" and completed:
            report.add("failed_but_present", f"{op.key} ({op.final_reason}, codes {op.codes})")
        if len(op.tx_ids_seen) > 1:
            report.add("acked_duplicated", f"{op.key}: client saw ids {sorted(op.tx_ids_seen)}")
    report.stats["unknown_outcomes"] = dict(outcome_present)
    for (username, key), found in by_key.items():
        if (username, key) not in known_keys:
            report.add("phantom_transaction", f"{username} key {key}: {[t.id for t in found]}")
    for tx in tx_rows:
        if tx.idempotency_key is None:
            report.add("phantom_transaction", f"{tx.id} has no idempotency key")
    report.stats["transactions"] = len(tx_rows)
    report.stats["transactions_by_status"] = dict(Counter(t.status for t in tx_rows))


def _mismatch(op: Op, tx: Any, account_by_id: dict[int, Any], username_of: dict[str, str]) -> str:
    if tx.id != op.tx_id:
        return f"client got id {op.tx_id}, ledger holds {tx.id}"
    if tx.status != "completed":
        return f"status {tx.status}"
    if tx.type != op.kind or tx.currency != op.currency:
        return f"type/currency {tx.type}/{tx.currency}"
    if format_minor(int(tx.amount_minor), ISO_4217_EXPONENTS[tx.currency]) != op.amount:
        return f"amount {tx.amount_minor} for {op.amount}"

    def owner(account_id: int | None) -> str:
        if account_id is None:
            return "?"
        account = account_by_id.get(account_id)
        if account is None or account.owner_user_id is None:
            return ""
        return username_of.get(account.owner_user_id, "?")

    expected = {
        "deposit": ("", op.username),
        "withdrawal": (op.username, ""),
        "transfer": (op.username, op.to_username),
    }[op.kind]
    actual = (owner(tx.from_account_id), owner(tx.to_account_id))
    if actual != expected:
        return f"parties {actual} != {expected}"
    return ""


def _check_flags(report: CheckReport, tx_rows: Sequence[Any], queue: set[str] | None) -> None:
    decisions: Counter[str] = Counter()
    flagged = 0
    for tx in tx_rows:
        decisions[tx.fraud_decision or "none"] += 1
        needs_review = tx.fraud_decision in ("REVIEW", "UNSCORED")
        if tx.status == "completed" and tx.type != "reversal" and tx.fraud_decision is None:
            report.add("unscored_not_flagged", f"{tx.id} completed with no fraud decision")
        if needs_review and not (tx.flagged and tx.review_status == "pending"):
            report.add(
                "unscored_not_flagged",
                f"{tx.id} {tx.fraud_decision} flagged={tx.flagged} review={tx.review_status}",
            )
        if tx.flagged:
            flagged += 1
            if queue is not None and tx.id not in queue:
                report.add("flagged_not_queued", f"{tx.id} ({tx.fraud_decision})")
    report.stats["fraud_decisions"] = dict(decisions)
    report.stats["flagged"] = flagged
    report.stats["admin_queue_size"] = None if queue is None else len(queue)
