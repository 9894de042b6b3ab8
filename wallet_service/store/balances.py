"""What a user holds and has moved lately: balances and the fraud features.
Contracts: wallet_service.store_contract.WalletStore."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from wallet_service.models import MovementFeatures, as_utc
from wallet_service.schema import accounts
from wallet_service.store.db import Db
from wallet_service.store.statements import FEATURE_RECENT_AMOUNTS, FEATURE_TOTALS


class BalanceQueries:
    """Balances and the fraud features, over the store's `Db`."""

    _db: Db

    def balance(self, *, user_id: str, currency: str) -> int:
        with self._db.read() as conn:
            value = conn.execute(
                select(accounts.c.balance_minor).where(
                    accounts.c.owner_user_id == user_id, accounts.c.currency == currency
                )
            ).scalar_one_or_none()
        return int(value or 0)

    def balances(self, *, user_id: str) -> list[tuple[str, int]]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(accounts.c.currency, accounts.c.balance_minor)
                .where(accounts.c.owner_user_id == user_id)
                .order_by(accounts.c.currency)
            ).all()
        return [(str(r.currency), int(r.balance_minor)) for r in rows]

    def movement_features(
        self,
        *,
        user_id: str,
        currency: str,
        debit_user_id: str | None,
        now: datetime,
        counterparty_user_id: str | None = None,
    ) -> MovementFeatures:
        params = {
            "user_id": user_id,
            "currency": currency,
            "since": now - timedelta(days=1),
            "hour_ago": now - timedelta(hours=1),
            "debit_user_id": debit_user_id,
            "counterparty_user_id": counterparty_user_id,
        }
        with self._db.read() as conn:
            totals = conn.execute(FEATURE_TOTALS, params).one()
            recent = conn.execute(FEATURE_RECENT_AMOUNTS, params).scalars().all()
        return MovementFeatures(
            account_age_seconds=max(0, int((now - as_utc(totals.created_at)).total_seconds())),
            count_last_day=int(totals.count_day),
            sum_last_day_minor=int(totals.sum_day),
            count_last_hour=int(totals.count_hour),
            sum_last_hour_minor=int(totals.sum_hour),
            distinct_counterparties_last_day=int(totals.counterparties),
            recent_day_amounts_minor=tuple(recent),
            balance_minor=int(totals.balance or 0) if debit_user_id else 0,
            count_to_counterparty_last_hour=int(totals.count_to_counterparty_hour),
            sum_to_counterparty_last_hour_minor=int(totals.sum_to_counterparty_hour),
            count_to_counterparty_last_day=int(totals.count_to_counterparty_day),
            sum_to_counterparty_last_day_minor=int(totals.sum_to_counterparty_day),
        )
