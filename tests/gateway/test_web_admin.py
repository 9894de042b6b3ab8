"""Admin pages and the account page over real HTTP (gateway -> wallet -> fraud on
loopback): the flagged queue, resolving a flagged 10,000 deposit, reversing, freezing,
the fraud rule sets, lists and notifications, a normal user refused everywhere; changing
the password and closing the account.

Page hooks used (gateway/web/__init__.py): #nav-admin, table#flagged, #review-form
(resolution, note), #reverse-form, #fraud-reasons, #tx-rules-version, #tx-review-status,
#freeze-form, #unfreeze-form, table#rulesets / .live-marker / form.activate-form,
#list-add-form / form.remove-form, #count-dead, #password-form, #delete-form.
"""

from __future__ import annotations

from tests.support import (
    ADMIN_PAGES,
    ADMIN_USERNAME,
    PASSWORD,
    Browser,
    alert_text,
    all_forms,
    forms_in,
    text_of,
)


def test_a_normal_user_gets_403_on_every_admin_page(browser: Browser) -> None:
    browser.register_and_login()
    assert 'id="nav-admin"' not in browser.page("/")
    for path in (*ADMIN_PAGES, f"/app/transactions?username={ADMIN_USERNAME}"):
        response = browser.get(path)
        assert response.status_code == 403, path
        assert 'role="alert"' in response.text
    # Their own deposit, then an attempt to review it: refused by the wallet, nothing changed.
    done = browser.submit("/app/deposit", "deposit-form", amount="10000.00", currency="USD")
    tx_path = done.headers["location"].split("?")[0]
    token = forms_in(browser.page("/"))["logout-form"].csrf_token
    refused = browser.post(
        f"{tx_path.replace('/app/', '/app/admin/')}/review",
        {"csrf_token": token, "resolution": "cleared", "note": "mine"},
    )
    assert refused.status_code == 403
    assert "review-form" not in browser.page(tx_path)


def test_admin_resolves_a_flagged_10000_deposit(browser: Browser, admin_browser: Browser) -> None:
    browser.register_and_login("big")
    done = browser.submit("/app/deposit", "deposit-form", amount="10000.00", currency="USD")
    assert done.status_code == 303
    tx_path = done.headers["location"].split("?")[0]
    assert text_of(browser.page(done.headers["location"]), "tx-flagged").startswith("Yes")

    assert 'id="nav-admin"' in admin_browser.page("/")
    queue = admin_browser.page("/app/admin/flagged")
    assert f'href="{tx_path}"' in queue
    detail = admin_browser.page(tx_path)
    assert text_of(detail, "tx-review-status") == "pending"
    assert "large_amount" in text_of(detail, "fraud-reasons")
    assert text_of(detail, "tx-rules-version") not in ("", "none")

    hostile = "<script>alert('x')</script> looks fine"
    review = forms_in(detail)["review-form"]
    resolved = admin_browser.post(
        review.action, {**review.fields, "resolution": "cleared", "note": hostile}
    )
    assert resolved.status_code == 303
    assert resolved.headers["location"] == f"{tx_path}?notice=reviewed"
    after = admin_browser.page(resolved.headers["location"])
    assert text_of(after, "tx-review-status").startswith("cleared by")
    assert hostile not in after
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; looks fine" in after
    assert f'href="{tx_path}"' not in admin_browser.page("/app/admin/flagged")
    assert f'href="{tx_path}"' in admin_browser.page("/app/admin/flagged?status=all")

    # Resolved: no review form any more, and the old one is refused with the API's message.
    assert 'id="review-form"' not in after
    again = admin_browser.post(review.action, {**review.fields, "resolution": "confirmed_fraud"})
    assert again.status_code == 422
    assert alert_text(again.text)


def test_admin_reverses_and_freezes(browser: Browser, admin_browser: Browser) -> None:
    username = browser.register_and_login("rev")
    done = browser.submit("/app/deposit", "deposit-form", amount="40.00", currency="USD")
    tx_path = done.headers["location"].split("?")[0]

    reversed_ = admin_browser.submit(tx_path, "reverse-form", reason="duplicate")
    assert reversed_.status_code == 303
    reversal = admin_browser.page(reversed_.headers["location"])
    assert text_of(reversal, "tx-type") == "reversal"
    assert text_of(browser.page("/"), "balance-USD") == "0.00 USD"
    # The detail links the user to their history, which admins may read.
    user_history = admin_browser.page(f"/app/transactions?username={username}")
    assert user_history.count('class="tx-row"') == 2
    assert f"Transaction history of {username}" in user_history

    frozen = admin_browser.submit(
        "/app/admin/flagged", "freeze-form", username=username, reason="checking"
    )
    assert frozen.status_code == 303
    refused = browser.submit("/app/deposit", "deposit-form", amount="1.00", currency="USD")
    assert refused.status_code == 422 and alert_text(refused.text)
    missing = admin_browser.submit("/app/admin/flagged", "freeze-form", username=username)
    assert missing.status_code == 400 and alert_text(missing.text)
    unfrozen = admin_browser.submit("/app/admin/flagged", "unfreeze-form", username=username)
    assert unfrozen.status_code == 303
    ok = browser.submit("/app/deposit", "deposit-form", amount="1.00", currency="USD")
    assert ok.status_code == 303


def test_admin_fraud_views(browser: Browser, admin_browser: Browser) -> None:
    rulesets = admin_browser.page("/app/admin/rulesets")
    assert rulesets.count('class="live-marker"') == 1

    target = browser.register_and_login("listed")
    added = admin_browser.submit(
        "/app/admin/lists", "list-add-form", list="allow", username=target, note="vip"
    )
    assert added.status_code == 303
    lists = admin_browser.page("/app/admin/lists")
    assert f'data-username="{target}"' in lists
    remove = next(
        form
        for form in all_forms(lists)
        if form.fields.get("username") == target and form.fields.get("list") == "allow"
    )
    removed = admin_browser.post(remove.action, remove.fields)
    assert removed.status_code == 303
    assert f'data-username="{target}"' not in admin_browser.page("/app/admin/lists")

    notifications = admin_browser.page("/app/admin/notifications")
    assert text_of(notifications, "count-dead").isdigit()

    # The action routes answer the API's refusals as pages (nothing live changes here).
    token = forms_in(rulesets)["logout-form"].csrf_token
    no_version = admin_browser.post("/app/admin/rulesets/999999/activate", {"csrf_token": token})
    assert no_version.status_code == 404 and 'role="alert"' in no_version.text
    no_event = admin_browser.post("/app/admin/notifications/nope/retry", {"csrf_token": token})
    assert no_event.status_code == 404
    forged = admin_browser.post("/app/admin/rulesets/1/activate", {"csrf_token": "forged"})
    assert forged.status_code == 403


def test_change_password_and_close_the_account(browser: Browser, gateway_url: str) -> None:
    username = browser.register_and_login("acct")
    wrong = browser.submit(
        "/app/account", "password-form", current_password="nope", new_password="x" * 20
    )
    assert wrong.status_code == 401 and alert_text(wrong.text)
    assert 'id="current_password"' in wrong.text

    new_password = PASSWORD + " changed"
    changed = browser.submit(
        "/app/account", "password-form", current_password=PASSWORD, new_password=new_password
    )
    assert changed.status_code == 303
    assert browser.get("/").status_code == 200  # the session moved to the new token

    browser.submit("/app/deposit", "deposit-form", amount="5.00", currency="USD")
    refused = browser.submit("/app/account", "delete-form")
    assert refused.status_code == 422 and alert_text(refused.text)
    assert "every balance is exactly zero" in refused.text
    browser.submit("/app/withdraw", "withdraw-form", amount="5.00", currency="USD")

    closed = browser.submit("/app/account", "delete-form")
    assert closed.status_code == 303
    assert closed.headers["location"] == "/app/login?notice=account_deleted"
    again = Browser(gateway_url)
    try:
        login = again.submit("/app/login", "login-form", username=username, password=new_password)
        assert login.status_code == 401
    finally:
        again.close()
