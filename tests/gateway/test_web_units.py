"""The web adapter's pure pieces, without servers: CSRF tags, the date filters, page links,
time and money markup, and which idempotency key a re-rendered form keeps."""

from __future__ import annotations

import pytest

from gateway.errors import ApiError
from gateway.web.account_pages import day_start, page_links
from gateway.web.pages import key_after, money_tag, time_tag, utc_text
from gateway.web.session import CsrfRejected, WebSession, presession_token


def test_the_session_csrf_token_is_bound_to_the_session() -> None:
    alice, bob = WebSession("token-a", is_admin=False), WebSession("token-b", is_admin=False)
    assert alice.csrf_token == WebSession("token-a", is_admin=True).csrf_token
    assert alice.csrf_token != bob.csrf_token
    assert "token-a" not in alice.csrf_token
    alice.check_csrf(alice.csrf_token)
    for wrong in (bob.csrf_token, "", alice.csrf_token[:-1], alice.csrf_token + "x", "é"):
        with pytest.raises(CsrfRejected):
            alice.check_csrf(wrong)


def test_the_presession_token_differs_from_a_session_token_of_the_same_secret() -> None:
    assert presession_token("same") != WebSession("same", is_admin=False).csrf_token
    assert presession_token("a") != presession_token("b")


def test_date_inputs_become_the_api_instants() -> None:
    assert day_start("") == ""
    assert day_start("2026-02-28") == "2026-02-28T00:00:00Z"
    # An inclusive last day ends where the next one starts (the API's `until` is exclusive).
    assert day_start("2026-02-28", next_day=True) == "2026-03-01T00:00:00Z"
    assert day_start("2024-12-31", next_day=True) == "2025-01-01T00:00:00Z"
    # Not a date: passed on as typed, for the wallet to name the problem.
    assert day_start("yesterday") == "yesterday"


def test_page_links_keep_the_filters() -> None:
    first = page_links("/app/transactions", {"type": "deposit", "since": ""}, "", "c2")
    assert first == {"next_url": "/app/transactions?type=deposit&cursor=c2", "first_url": ""}
    last = page_links("/app/transactions", {"type": "deposit"}, "c2", "")
    assert last == {"next_url": "", "first_url": "/app/transactions?type=deposit"}
    plain = page_links("/app/transactions", {}, "c1", "c2")
    assert plain["first_url"] == "/app/transactions"
    assert (
        page_links("/p", {"q": "a&b=<c>"}, "", "x")["next_url"] == "/p?q=a%26b%3D%3Cc%3E&cursor=x"
    )


def test_times_and_money_are_escaped_markup() -> None:
    assert utc_text("2026-11-29T22:58:11.123456Z") == "2026-11-29 22:58:11 UTC"
    assert utc_text("not a time") == "not a time"
    assert str(time_tag("2026-11-29T22:58:11Z")) == (
        '<time datetime="2026-11-29T22:58:11Z" title="2026-11-29 22:58:11 UTC">'
        "2026-11-29 22:58:11 UTC</time>"
    )
    assert str(time_tag("")) == ""
    assert "<b>" not in str(time_tag("<b>"))
    assert str(money_tag("12.50", "USD")) == '<span class="money">12.50&nbsp;USD</span>'
    assert "<i>" not in str(money_tag("<i>", "USD"))


@pytest.mark.parametrize(
    ("status", "kept"), [(503, True), (504, True), (400, False), (409, False), (422, False)]
)
def test_a_form_keeps_its_key_only_when_the_answer_may_have_been_lost(
    status: int, kept: bool
) -> None:
    assert key_after(ApiError(status, "x", "x"), "k1") == ("k1" if kept else "")
