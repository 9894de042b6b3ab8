"""The store's prebuilt statements. The hot ones are built once at import: building and
cache-keying them per call cost more CPU than running them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update

from wallet_service.models import TxStatus, TxType
from wallet_service.schema import accounts, ledger_entries, transactions, users
from wallet_service.scoring import FEATURE_WINDOW

# -- a transaction with its parties' names and its reversal -----------------------------

FROM_ACCOUNT = accounts.alias("from_account")
TO_ACCOUNT = accounts.alias("to_account")
_FROM_USER = users.alias("from_user")
_TO_USER = users.alias("to_user")
_REVERSAL = transactions.alias("reversal")


def _build_transaction_select() -> Any:
    t = transactions
    return select(
        t,
        _FROM_USER.c.id.label("from_user_id"),
        _FROM_USER.c.username.label("from_username"),
        _TO_USER.c.id.label("to_user_id"),
        _TO_USER.c.username.label("to_username"),
        _REVERSAL.c.id.label("reversed_by_id"),
    ).select_from(
        t.outerjoin(FROM_ACCOUNT, FROM_ACCOUNT.c.id == t.c.from_account_id)
        .outerjoin(_FROM_USER, _FROM_USER.c.id == FROM_ACCOUNT.c.owner_user_id)
        .outerjoin(TO_ACCOUNT, TO_ACCOUNT.c.id == t.c.to_account_id)
        .outerjoin(_TO_USER, _TO_USER.c.id == TO_ACCOUNT.c.owner_user_id)
        .outerjoin(_REVERSAL, _REVERSAL.c.reverses_transaction_id == t.c.id)
    )


# Rows of this shape are mapped by rows.transaction_from_row.
TRANSACTION_SELECT = _build_transaction_select()

# -- lookups --------------------------------------------------------------------------------

USER_BY_ID = select(users).where(users.c.id == bindparam("user_id"))
LIVE_USER_BY_NAME = select(users).where(
    users.c.username_canonical == bindparam("canonical"), users.c.deleted_at.is_(None)
)
PRIOR_BY_KEYS = TRANSACTION_SELECT.where(
    transactions.c.initiated_by.in_(bindparam("callers", expanding=True)),
    transactions.c.idempotency_key.in_(bindparam("keys", expanding=True)),
)
KEY_PROBE = select(transactions.c.id).where(
    transactions.c.initiated_by == bindparam("caller"),
    transactions.c.idempotency_key == bindparam("key"),
)

# -- fraud features -------------------------------------------------------------------------

# Fraud features, with bounded work however busy the user: over the newest
# FEATURE_WINDOW_LIMIT movements of the day (counts saturate there, far above what any rule
# looks at); the user's age and the source balance ride along as scalar subqueries.
FEATURE_WINDOW_LIMIT = FEATURE_WINDOW  # one number: scoring.with_earlier folds the same window
_MY_MOVEMENTS_TODAY = and_(
    transactions.c.initiated_by == bindparam("user_id"),
    transactions.c.currency == bindparam("currency"),
    transactions.c.status == TxStatus.COMPLETED.value,
    transactions.c.type != TxType.REVERSAL.value,
    transactions.c.created_at >= bindparam("since"),
)
_FEATURE_WINDOW = (
    select(
        transactions.c.amount_minor,
        transactions.c.created_at,
        case((transactions.c.type == TxType.TRANSFER.value, transactions.c.to_account_id)).label(
            "counterparty"
        ),
    )
    .where(_MY_MOVEMENTS_TODAY)
    .order_by(transactions.c.created_at.desc())
    .limit(FEATURE_WINDOW_LIMIT)
    .subquery()
)
_IN_LAST_HOUR = _FEATURE_WINDOW.c.created_at >= bindparam("hour_ago")
# The counterparty's account in the currency; NULL (no row matches) without a counterparty.
_TO_COUNTERPARTY = _FEATURE_WINDOW.c.counterparty == (
    select(accounts.c.id)
    .where(
        accounts.c.owner_user_id == bindparam("counterparty_user_id"),
        accounts.c.currency == bindparam("currency"),
    )
    .scalar_subquery()
)
_TO_COUNTERPARTY_IN_LAST_HOUR = and_(_TO_COUNTERPARTY, _IN_LAST_HOUR)


def _count_where(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _sum_where(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, _FEATURE_WINDOW.c.amount_minor), else_=0)), 0)


FEATURE_TOTALS = select(
    func.count().label("count_day"),
    func.coalesce(func.sum(_FEATURE_WINDOW.c.amount_minor), 0).label("sum_day"),
    func.coalesce(func.sum(case((_IN_LAST_HOUR, 1), else_=0)), 0).label("count_hour"),
    func.coalesce(
        func.sum(case((_IN_LAST_HOUR, _FEATURE_WINDOW.c.amount_minor), else_=0)), 0
    ).label("sum_hour"),
    func.count(func.distinct(_FEATURE_WINDOW.c.counterparty)).label("counterparties"),
    _count_where(_TO_COUNTERPARTY_IN_LAST_HOUR).label("count_to_counterparty_hour"),
    _sum_where(_TO_COUNTERPARTY_IN_LAST_HOUR).label("sum_to_counterparty_hour"),
    _count_where(_TO_COUNTERPARTY).label("count_to_counterparty_day"),
    _sum_where(_TO_COUNTERPARTY).label("sum_to_counterparty_day"),
    select(users.c.created_at)
    .where(users.c.id == bindparam("user_id"))
    .scalar_subquery()
    .label("created_at"),
    select(accounts.c.balance_minor)
    .where(
        accounts.c.owner_user_id == bindparam("debit_user_id"),
        accounts.c.currency == bindparam("currency"),
    )
    .scalar_subquery()
    .label("balance"),
).select_from(_FEATURE_WINDOW)
FEATURE_RECENT_AMOUNTS = (
    select(transactions.c.amount_minor)
    .where(_MY_MOVEMENTS_TODAY)
    .order_by(transactions.c.created_at.desc())
    .limit(FEATURE_WINDOW_LIMIT)
)

# -- the movement write path (wallet_service.store.movements) -----------------------------

LOCK_LIVE_USERS = (
    select(users.c.id, users.c.frozen_at)
    .where(users.c.id.in_(bindparam("ids", expanding=True)), users.c.deleted_at.is_(None))
    .order_by(users.c.id)
    .with_for_update(read=True)
)


def _build_lock_accounts(external: bool) -> Any:
    owner = accounts.c.owner_user_id.in_(bindparam("owners", expanding=True))
    return (
        select(
            accounts.c.id,
            accounts.c.owner_user_id,
            accounts.c.currency,
            accounts.c.kind,
            accounts.c.balance_minor,
        )
        .where(
            accounts.c.currency.in_(bindparam("currencies", expanding=True)),
            or_(owner, accounts.c.kind == "external") if external else owner,
        )
        .order_by(accounts.c.id)
        .with_for_update()
    )


# Keyed by "an external account is among those wanted".
LOCK_ACCOUNTS = {False: _build_lock_accounts(False), True: _build_lock_accounts(True)}
SET_BALANCE = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"))
    .values(balance_minor=bindparam("new_balance"))
)
INSERT_TRANSACTIONS = insert(transactions)
INSERT_ENTRIES = insert(ledger_entries)
