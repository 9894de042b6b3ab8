"""The money pages over real HTTP (gateway -> wallet -> fraud on loopback): deposit,
withdraw and transfer forms, their CSRF and idempotency protection, the API's own error
messages inline, Post/Redirect/Get, and the history with its filters and pages.

Page hooks used (gateway/web/__init__.py): #deposit-form #withdraw-form #transfer-form
(amount, currency, to_username, hidden csrf_token and idempotency_key), #balance-USD,
#tx-amount #tx-flagged #tx-balance, table#transactions / a.tx-link, #next-page,
#history-filter, role=alert.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import PASSWORD, Browser, alert_text, forms_in, link_href, text_of


def _bearer(api: httpx.Client, username: str) -> dict[str, str]:
    response = api.post("/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _balance(api: httpx.Client, auth: dict[str, str]) -> str:
    return str(api.get("/balance", params={"currency": "USD"}, headers=auth).json()["balance"])


def test_deposit_redirects_to_the_transaction_with_the_exact_amount(
    browser: Browser, api: httpx.Client
) -> None:
    username = browser.register_and_login()

    posted = browser.submit("/app/deposit", "deposit-form", amount="100.10", currency="USD")

    assert posted.status_code == 303
    location = posted.headers["location"]
    assert re.fullmatch(r"/app/transactions/[^?]+\?notice=deposit", location)
    detail = browser.page(location)
    assert text_of(detail, "tx-amount") == "100.10 USD"
    assert text_of(detail, "tx-flagged") == "No"
    assert text_of(detail, "tx-balance") == "100.10 USD"
    assert 'role="status"' in detail  # "Deposit successful."
    assert text_of(browser.page("/"), "balance-USD") == "100.10 USD"
    assert _balance(api, _bearer(api, username)) == "100.10"


def test_a_post_without_the_csrf_token_moves_nothing(browser: Browser, api: httpx.Client) -> None:
    username = browser.register_and_login()
    form = browser.form("/app/deposit", "deposit-form")
    fields = {**form.fields, "amount": "50.00"}

    for bad in (
        {k: v for k, v in fields.items() if k != "csrf_token"},
        {**fields, "csrf_token": "forged"},
    ):
        response = browser.post(form.action, bad)
        assert response.status_code == 403
        assert "csrf_failed" in response.text
    # A cross-site page cannot send a urlencoded body with our token; any other body is refused.
    as_json = browser.http.post(form.action, json=fields)
    assert as_json.status_code == 403
    assert _balance(api, _bearer(api, username)) == "0.00"


def test_the_same_form_posted_twice_moves_money_once(browser: Browser, api: httpx.Client) -> None:
    username = browser.register_and_login()
    form = browser.form("/app/deposit", "deposit-form")
    fields = {**form.fields, "amount": "25.00"}

    first = browser.post(form.action, fields)
    second = browser.post(form.action, fields)  # a double click, or a re-POST

    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert _balance(api, _bearer(api, username)) == "25.00"
    # Each render carries a fresh key: a second deposit from a new form moves again.
    assert browser.form("/app/deposit", "deposit-form").idempotency_key != form.idempotency_key


def test_the_same_form_posted_concurrently_moves_money_once(
    browser: Browser, api: httpx.Client, gateway_url: str
) -> None:
    """Clicks that race (no script to disable the button): the wallet answers each with
    the one transaction."""
    username = browser.register_and_login()
    form = browser.form("/app/deposit", "deposit-form")
    fields = {**form.fields, "amount": "7.00"}

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=gateway_url, cookies=browser.http.cookies, timeout=15) as c:
            return c.post(form.action, data=fields)

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(post, range(4)))

    assert {a.status_code for a in answers} == {303}
    assert len({a.headers["location"] for a in answers}) == 1
    assert _balance(api, _bearer(api, username)) == "7.00"


@pytest.mark.parametrize("amount", ["12.345", "abc", "-5", "0"])
def test_a_bad_amount_shows_the_api_message_inline(
    browser: Browser, api: httpx.Client, amount: str
) -> None:
    username = browser.register_and_login()
    response = browser.submit("/app/deposit", "deposit-form", amount=amount, currency="USD")

    from_api = api.post(
        "/deposit", json={"amount": amount, "currency": "USD"}, headers=_bearer(api, username)
    )
    assert response.status_code == from_api.status_code == 400
    assert alert_text(response.text) == from_api.json()["msg"]
    assert 'aria-describedby="amount-hint form-error"' in response.text
    assert f'value="{amount}"' in response.text  # what was typed stays


def test_transfer_and_both_histories(browser: Browser, gateway_url: str) -> None:
    alice = browser.register_and_login("alice")
    bob_browser = Browser(gateway_url)
    try:
        bob = bob_browser.register_and_login("bob")
        browser.submit("/app/deposit", "deposit-form", amount="80.00", currency="USD")

        sent = browser.submit(
            "/app/transfer", "transfer-form", to_username=bob, amount="30.50", currency="USD"
        )
        assert sent.status_code == 303
        tx_path = sent.headers["location"].split("?")[0]
        detail = browser.page(sent.headers["location"])
        assert text_of(detail, "tx-from") == alice and text_of(detail, "tx-to") == bob
        assert text_of(detail, "tx-balance") == "49.50 USD"

        # Both see it in their history, each row linking to the detail.
        for who in (browser, bob_browser):
            history = who.page("/app/transactions")
            assert f'href="{tx_path}"' in history
            assert who.get(tx_path).status_code == 200
        assert text_of(bob_browser.page("/"), "balance-USD") == "30.50 USD"

        too_much = browser.submit("/app/withdraw", "withdraw-form", amount="1000.00")
        assert too_much.status_code == 422
        assert alert_text(too_much.text) == "Insufficient funds: not enough USD"
        assert text_of(browser.page("/"), "balance-USD") == "49.50 USD"
    finally:
        bob_browser.close()


def test_history_filters_and_pages(browser: Browser) -> None:
    browser.register_and_login()
    for amount in ("1.00", "2.00", "3.00"):
        browser.submit("/app/deposit", "deposit-form", amount=amount, currency="USD")
    browser.submit("/app/withdraw", "withdraw-form", amount="0.50", currency="USD")

    withdrawals = browser.page("/app/transactions?type=withdrawal")
    assert withdrawals.count('class="tx-row"') == 1

    first = browser.page("/app/transactions?type=deposit&limit=2")
    assert first.count('class="tx-row"') == 2
    next_url = link_href(first, "next-page")
    assert "type=deposit" in next_url and "limit=2" in next_url and "cursor=" in next_url
    second = browser.page(next_url)
    assert second.count('class="tx-row"') == 1
    assert 'id="next-page"' not in second and 'id="first-page"' in second

    today = browser.page("/app/transactions")
    filter_form = forms_in(today)["history-filter"]
    assert set(filter_form.fields) >= {"currency", "type", "since", "until"}
    future = browser.page("/app/transactions?since=2999-01-01")
    assert 'id="no-transactions"' in future

    bad = browser.get("/app/transactions", since="yesterday")
    assert bad.status_code == 400 and alert_text(bad.text)


def test_pages_need_a_session(browser: Browser) -> None:
    for path in ("/", "/app/deposit", "/app/transactions", "/app/account"):
        response = browser.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/app/login")
