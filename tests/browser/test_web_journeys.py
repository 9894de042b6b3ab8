"""The web app in a real Chromium (scripts on, as a person uses it), against a real gateway,
wallet and fraud service: the whole journey of two users, a double click that must pay once,
a state-changing request without the CSRF token, and an admin clearing a flagged deposit.

What the pages show is checked in the browser; what happened to the money is checked through
the JSON API, as a script would see it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By

from tests.support import ADMIN_PASSWORD, ADMIN_USERNAME, PASSWORD, unique_name
from tests.support.browser import (
    Chromium,
    WebApp,
    requested_urls,
    screenshot,
    slow_network,
    wait_until,
)

pytestmark = pytest.mark.browser

# Latency added to every request while a test double-clicks, and the gap between the two
# clicks: the second falls while the first request is in flight (neither bounds anything).
SLOW_MS = 1500
SECOND_CLICK_MS = 300


@pytest.fixture
def web(browser: Chromium, web_url: str) -> WebApp:
    return WebApp(browser, web_url)


@pytest.fixture
def api(web_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web_url, timeout=30) as client:
        yield client


def _auth(api: httpx.Client, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = api.post("/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _usd(api: httpx.Client, username: str) -> str:
    response = api.get("/balance", params={"currency": "USD"}, headers=_auth(api, username))
    assert response.status_code == 200, response.text
    return str(response.json()["balance"])


def _history(api: httpx.Client, username: str) -> list[dict[str, str]]:
    response = api.get("/transactions", headers=_auth(api, username))
    assert response.status_code == 200, response.text
    rows: list[dict[str, str]] = response.json()["transactions"]
    return rows


def _history_rows(web: WebApp) -> list[str]:
    """The history page's rows as text (type, from, to, amount, status), newest first."""
    web.go("/app/transactions")
    rows = web.driver.find_elements(By.CSS_SELECTOR, "table#transactions tr.tx-row")
    return [
        " | ".join(
            cell.text.replace("\xa0", " ") for cell in row.find_elements(By.TAG_NAME, "td")[1:6]
        )
        for row in rows
    ]


def _new_user(web: WebApp, prefix: str) -> str:
    """Register in the browser; the page sends us to the login form."""
    username = unique_name(prefix)
    web.register(username, PASSWORD)
    assert web.path.startswith("/app/login"), web.path
    return username


def _transfer_form_filled(web: WebApp, prefix: str, amount: str) -> tuple[str, str]:
    """A sender (logged in, 50.00 USD deposited) and a recipient; the sender's transfer form
    filled in with `amount` USD to the recipient, not sent yet."""
    sender, recipient = _new_user(web, prefix), _new_user(web, f"{prefix}to")
    web.login(sender, PASSWORD)
    web.move("deposit", amount="50.00", currency="USD")
    web.go("/app/transfer")
    web.fill(to_username=recipient, amount=amount, currency="USD")
    return sender, recipient


def _paid_once(api: httpx.Client, sender: str, recipient: str) -> None:
    """The 20.00 of `_transfer_form_filled` moved once."""
    assert (_usd(api, sender), _usd(api, recipient)) == ("30.00", "20.00")
    assert [tx["tx_type"] for tx in _history(api, recipient)] == ["transfer"]


def test_the_whole_journey_of_two_users(web: WebApp, api: httpx.Client) -> None:
    alice = _new_user(web, "alice")
    bob = _new_user(web, "bob")

    web.login(alice, PASSWORD)
    assert web.exists("#no-balances")
    web.move("deposit", amount="100.00", currency="USD")
    assert web.text("tx-amount") == "100.00 USD"
    assert web.text("tx-flagged") == "No"
    assert web.text("tx-balance") == "100.00 USD"

    web.move("transfer", to_username=bob, amount="30.25", currency="USD")
    assert web.text("tx-type") == "transfer"
    assert web.text("tx-amount") == "30.25 USD"
    assert web.text("tx-balance") == "69.75 USD"

    assert _history_rows(web) == [
        f"transfer | {alice} | {bob} | 30.25 USD | completed",
        f"deposit | outside | {alice} | 100.00 USD | completed",
    ]
    screenshot(web.driver, "web-history")

    # More than the balance: the API's own message, next to the form, and nothing moves.
    web.move("withdraw", amount="1000.00", currency="USD")
    assert web.path == "/app/withdraw"
    refused = api.post(
        "/withdraw", json={"amount": "1000.00", "currency": "USD"}, headers=_auth(api, alice)
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "insufficient_funds"
    assert web.text("form-error") == refused.json()["msg"]
    assert web.driver.find_element(By.ID, "amount").get_attribute("aria-invalid") == "true"
    assert web.driver.find_element(By.ID, "amount").get_attribute("value") == "1000.00"
    web.go("/")
    assert web.text("balance-USD") == "69.75 USD"
    web.logout()
    assert web.path.startswith("/app/login")

    web.login(bob, PASSWORD)
    assert web.text("balance-USD") == "30.25 USD"
    assert _history_rows(web) == [f"transfer | {alice} | {bob} | 30.25 USD | completed"]

    assert (_usd(api, alice), _usd(api, bob)) == ("69.75", "30.25")
    assert len(_history(api, alice)) == 2


def test_a_double_click_on_transfer_moves_the_money_once(
    web: WebApp, api: httpx.Client, browser: Chromium
) -> None:
    """The second click lands while the first request is on its way (the network is made
    slow so that it is): the page's script has disabled the button, so it sends nothing;
    and had it sent, the form's idempotency key would still pay once (the next test)."""
    sender, recipient = _transfer_form_filled(web, "dbl", "20.00")
    requested_urls(browser)  # drained: from here on, what the clicks send

    # Two clicks on the button, the second SECOND_CLICK_MS after the first: the first
    # request is on its way then (the network is slowed), the page still the form.
    with slow_network(browser, latency_ms=SLOW_MS):
        browser.execute_script(
            """
            const button = document.getElementById("transfer-submit");
            button.click();
            setTimeout(() => button.click(), arguments[0]);
            """,
            SECOND_CLICK_MS,
        )
        wait_until(browser, lambda d: web.exists("#tx-amount"))

    posts = [url for url in requested_urls(browser) if url == f"{web.base_url}/app/transfer"]
    assert len(posts) == 1  # the page's script disabled the button at the first click
    assert web.text("tx-amount") == "20.00 USD"
    assert web.text("tx-balance") == "30.00 USD"
    _paid_once(api, sender, recipient)


def test_the_same_form_sent_twice_moves_the_money_once(
    web: WebApp, api: httpx.Client, browser: Chromium
) -> None:
    """Without the page's script (a double submit it cannot stop, a resent form): both
    requests carry the form's one idempotency key, so the wallet pays once."""
    sender, recipient = _transfer_form_filled(web, "twice", "20.00")

    statuses = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const form = document.getElementById("transfer-form");
        const send = () => fetch(form.action, {method: "POST", body: new URLSearchParams(
            new FormData(form)), redirect: "manual"}).then(r => r.type);
        Promise.all([send(), send()]).then(done, e => done(String(e)));
        """
    )
    assert statuses == ["opaqueredirect", "opaqueredirect"]  # both answered 303
    _paid_once(api, sender, recipient)


def test_a_post_without_the_csrf_token_is_refused(
    web: WebApp, api: httpx.Client, browser: Chromium
) -> None:
    sender, recipient = _transfer_form_filled(web, "csrf", "10.00")

    # A script on the page posting the form's fields but the token: the session cookie goes
    # along (same origin), the token does not.
    status = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const body = new URLSearchParams(new FormData(document.getElementById("transfer-form")));
        body.delete("csrf_token");
        fetch("/app/transfer", {method: "POST", body: body, redirect: "manual"})
          .then(r => done(r.status), e => done(String(e)));
        """
    )
    assert status == 403

    # The form itself, its token removed, submitted by a click: the refusal page.
    browser.execute_script(
        "document.querySelector('#transfer-form input[name=csrf_token]').remove()"
    )
    web.submit("transfer-submit")
    assert "expired or did not come from us" in web.text("main")

    assert (_usd(api, sender), _usd(api, recipient)) == ("50.00", "0.00")


def test_an_admin_clears_a_flagged_10000_deposit(web: WebApp, api: httpx.Client) -> None:
    user = _new_user(web, "big")
    web.login(user, PASSWORD)
    web.move("deposit", amount="10000.00", currency="USD")
    assert web.text("tx-flagged").startswith("Yes")
    tx_path = web.path.split("?")[0]
    tx_id = tx_path.rsplit("/", 1)[-1]
    web.logout()

    web.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    web.submit("nav-admin")
    queue = web.driver.find_element(By.ID, "flagged")
    queue.find_element(By.CSS_SELECTOR, f"tr[data-tx-id='{tx_id}'] a.tx-link").click()
    wait_until(web.driver, lambda d: web.exists("#review-form"))
    assert web.path == tx_path
    assert web.text("tx-review-status") == "pending"
    assert "large_amount" in web.text("fraud-reasons")

    web.driver.find_element(By.ID, "resolution-cleared").click()
    web.submit("review-submit", note="Known customer: salary")
    admin = _auth(api, ADMIN_USERNAME, ADMIN_PASSWORD)
    cleared = api.get("/admin/flagged", params={"review_status": "cleared"}, headers=admin)
    [reviewed] = [tx for tx in cleared.json()["transactions"] if tx["tx_id"] == tx_id]
    assert reviewed["review_status"] == "cleared"
    assert reviewed["review_note"] == "Known customer: salary"
    assert web.text("tx-review-status").startswith(f"cleared by {reviewed['reviewed_by']}")
    screenshot(web.driver, "web-admin-review")
    web.go("/app/admin/flagged")
    assert not web.exists(f"tr[data-tx-id='{tx_id}']")
