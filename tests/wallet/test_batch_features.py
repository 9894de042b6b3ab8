"""`scoring.with_earlier`: the features a bulk item is scored with count the earlier items
exactly as the ledger's features query would after they had committed."""

from __future__ import annotations

from dataclasses import replace

from tests.support import to_counterparty
from wallet_service.models import MovementFeatures
from wallet_service.scoring import FEATURE_WINDOW, with_earlier

BASE = MovementFeatures(
    account_age_seconds=500,
    count_last_hour=2,
    sum_last_hour_minor=300,
    count_last_day=3,
    sum_last_day_minor=700,
    recent_day_amounts_minor=(100, 200, 400),
    distinct_counterparties_last_day=1,
    balance_minor=10_000,
)


def test_no_earlier_items_is_the_base() -> None:
    assert with_earlier(BASE, [], outgoing=True) == BASE


def test_earlier_items_count_newest_first() -> None:
    folded = with_earlier(BASE, [(10, "a"), (20, "b"), (30, "a")], outgoing=True)
    assert folded.recent_day_amounts_minor == (30, 20, 10, 100, 200, 400)
    assert (folded.count_last_hour, folded.sum_last_hour_minor) == (5, 360)
    assert (folded.count_last_day, folded.sum_last_day_minor) == (6, 760)
    assert folded.distinct_counterparties_last_day == 3
    assert folded.balance_minor == 10_000 - 60
    assert folded.account_age_seconds == 500
    assert with_earlier(BASE, [(10, None)], outgoing=False).balance_minor == 10_000


def test_the_window_saturates_like_the_query() -> None:
    full = MovementFeatures(
        account_age_seconds=1,
        count_last_hour=FEATURE_WINDOW,
        sum_last_hour_minor=FEATURE_WINDOW,
        count_last_day=FEATURE_WINDOW,
        sum_last_day_minor=FEATURE_WINDOW,
        recent_day_amounts_minor=(1,) * FEATURE_WINDOW,
        distinct_counterparties_last_day=0,
        balance_minor=0,
    )
    folded = with_earlier(full, [(5, None)], outgoing=False)
    assert folded.count_last_day == FEATURE_WINDOW
    assert folded.sum_last_day_minor == FEATURE_WINDOW - 1 + 5
    assert folded.recent_day_amounts_minor[0] == 5
    assert folded.count_last_hour == FEATURE_WINDOW


def test_earlier_items_to_this_counterparty_add_to_its_counts() -> None:
    base = replace(
        BASE,
        count_to_counterparty_last_hour=1,
        sum_to_counterparty_last_hour_minor=100,
        count_to_counterparty_last_day=2,
        sum_to_counterparty_last_day_minor=300,
    )
    folded = with_earlier(base, [(10, "a"), (20, "b"), (30, "a")], outgoing=True, counterparty="a")
    assert to_counterparty(folded) == (3, 140, 4, 340)
    to_b = with_earlier(base, [(10, "a"), (20, "b")], outgoing=True, counterparty="b")
    assert (to_b.count_to_counterparty_last_day, to_b.sum_to_counterparty_last_day_minor) == (
        3,
        320,
    )
    # Without a counterparty (deposits, withdrawals) they stay as read.
    assert with_earlier(base, [(10, None)], outgoing=False).count_to_counterparty_last_day == 2
