"""The rule-set pages over real HTTP (gateway -> wallet -> fraud on loopback): an admin
drafts a rule set from a copy of the live one, backtests it (the same counts as
POST /admin/fraud/backtest), activates it, and the next deposit is decided by it; a bad
set is refused with the API's own message and creates nothing; users and forms without a
CSRF token are refused.

Page hooks used (gateway/web/__init__.py): #ruleset-form (textarea#ruleset-rules),
table#ruleset-rules tr[data-rule-id], #backtest-form (#backtest-since #backtest-until),
dd#backtest-<total>, table#backtest-rules tr[data-rule-id], form.activate-form, #form-error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    Browser,
    alert_text,
    all_forms,
    forms_in,
    text_of,
)


@contextmanager
def admin_api(base_url: str) -> Iterator[httpx.Client]:
    """A JSON API client logged in as the admin."""
    credentials = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    with httpx.Client(base_url=base_url, timeout=15) as client:
        response = client.post("/login", json=credentials)
        assert response.status_code == 200, response.text
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield client


def versions(html: str) -> list[int]:
    return [int(v) for v in re.findall(r'<tr data-version="(\d+)"', html)]


def with_threshold(rules: list[dict[str, Any]], threshold: str) -> list[dict[str, Any]]:
    """The live rules with large_amount's threshold (every currency's) set to `threshold`."""
    large = next(rule for rule in rules if rule["kind"] == "large_amount")
    large["params"]["threshold"] = threshold
    large["params"]["currency_thresholds"] = {}
    return rules


def test_an_admin_drafts_backtests_and_activates_a_rule_set_from_the_pages(
    own_gateway_url: str,
) -> None:
    with ExitStack() as stack:
        user, admin = Browser(own_gateway_url), Browser(own_gateway_url)
        stack.callback(user.close)
        stack.callback(admin.close)
        api = stack.enter_context(admin_api(own_gateway_url))
        user.register_and_login("drafted")
        admin.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        paths = []
        for amount in ("100.00", "600.00", "12000.00"):
            done = user.submit("/app/deposit", "deposit-form", amount=amount, currency="USD")
            assert done.status_code == 303, done.text
            paths.append(done.headers["location"].split("?")[0])
        reviewed = admin.submit(
            paths[2], "review-form", resolution="confirmed_fraud", note="stolen card"
        )
        assert reviewed.status_code == 303

        # The draft form holds a copy of the live set: lower large_amount to 500.
        listing = admin.page("/app/admin/rulesets")
        draft_form = forms_in(listing)["ruleset-form"]
        live_rules = json.loads(draft_form.fields["rules"])
        live = api.get("/admin/fraud/rulesets").json()["rule_sets"]
        live_ids = [r["id"] for r in next(rs for rs in live if rs["status"] == "live")["rules"]]
        assert [rule["id"] for rule in live_rules] == live_ids
        rules = json.dumps(with_threshold(live_rules, "500"))
        created = admin.post(
            draft_form.action, {**draft_form.fields, "rules": rules, "description": "500 USD"}
        )
        assert created.status_code == 303, created.text
        detail_path, _, notice = created.headers["location"].partition("?")
        assert notice == "notice=draft_created"
        version = int(detail_path.rsplit("/", 1)[1])
        detail = admin.page(created.headers["location"])
        assert text_of(detail, "ruleset-status") == "draft"
        assert text_of(detail, "ruleset-description") == "500 USD"
        large_row = re.search(r'<tr data-rule-id="large_amount">(.*?)</tr>', detail, re.S)
        assert large_row and "threshold: 500" in large_row.group(1)

        # Backtest over the form's default range (the last day): the API's counts.
        backtest = forms_in(detail)["backtest-form"]
        since, until = backtest.fields["since"], backtest.fields["until"]
        assert datetime.fromisoformat(until) - datetime.fromisoformat(since) == timedelta(days=1)
        result = admin.post(backtest.action, backtest.fields)
        assert result.status_code == 200, result.text
        expected = api.post(
            "/admin/fraud/backtest", json={"version": version, "since": since, "until": until}
        ).json()
        assert (expected["movements"], expected["flagged"]) == (3, 2)
        assert expected["confirmed_fraud_caught"] == 1
        for name, value in expected.items():
            if name not in ("since", "until", "rules", "version"):
                assert text_of(result.text, f"backtest-{name}") == str(value), name
        shown = re.findall(
            r'<tr data-rule-id="([^"]+)">.*?class="num hits">(\d+)<.*?class="num live-hits">(\d+)<'
            r'.*?class="num confirmed-fraud-hits">(\d+)<.*?class="num cleared-hits">(\d+)<',
            result.text.split('id="backtest-rules"')[1],
            re.S,
        )
        assert shown == [
            (
                r["rule_id"],
                str(r["hits"]),
                str(r["live_hits"]),
                str(r["confirmed_fraud_hits"]),
                str(r["cleared_hits"]),
            )
            for r in expected["rules"]
        ]
        assert ("large_amount", "2", "1", "1", "0") in shown

        # A range the API refuses: its message beside the form, the input pointing at it.
        too_long = (datetime.fromisoformat(until) - timedelta(days=8)).isoformat()
        refused = admin.post(backtest.action, {**backtest.fields, "since": too_long})
        assert refused.status_code == 400
        api_refusal = api.post(
            "/admin/fraud/backtest", json={"version": version, "since": too_long, "until": until}
        ).json()
        assert api_refusal["error"]["code"] == "backtest_range_too_long"
        assert alert_text(refused.text) == api_refusal["msg"]
        assert re.search(r'id="backtest-since"[^>]*aria-describedby="form-error"', refused.text)

        # Activate from the draft's page; the next 600 USD deposit is flagged by it.
        activate = next(f for f in all_forms(detail) if f.action.endswith(f"/{version}/activate"))
        activated = admin.post(activate.action, activate.fields)
        assert activated.status_code == 303
        assert text_of(admin.page(detail_path), "ruleset-status") == "Live"
        done = user.submit("/app/deposit", "deposit-form", amount="600.00", currency="USD")
        assert done.status_code == 303
        after = admin.page(done.headers["location"])
        assert text_of(after, "tx-flagged").startswith("Yes")
        assert text_of(after, "tx-rules-version") == str(version)


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        ('[{"kind": "eval"}]', "rules[0].kind"),
        ('[{"kind": "large_amount", "params": {"threshold": "-1"}}]', "rules[0].params.threshold"),
        ('[{"kind": "large_amount", "colour": "red"}]', "rules.0.colour"),
        ("[]", "rules must not be empty"),
    ],
)
def test_a_bad_rule_set_shows_the_api_message_and_creates_nothing(
    admin_browser: Browser, gateway_url: str, rules: str, named: str
) -> None:
    before = versions(admin_browser.page("/app/admin/rulesets"))
    refused = admin_browser.submit("/app/admin/rulesets", "ruleset-form", rules=rules)
    assert refused.status_code == 400
    message = alert_text(refused.text)
    assert named in message
    with admin_api(gateway_url) as api:
        same = api.post("/admin/fraud/rulesets", json={"rules": json.loads(rules)})
    assert same.status_code == 400 and same.json()["msg"] == message
    # The input keeps what was typed and points at the alert.
    assert re.search(r'id="ruleset-rules"[^>]*aria-describedby="[^"]*form-error', refused.text)
    assert forms_in(refused.text)["ruleset-form"].fields["rules"].strip() == rules
    assert versions(admin_browser.page("/app/admin/rulesets")) == before


def test_rules_that_are_not_json_are_refused_inline(admin_browser: Browser) -> None:
    before = versions(admin_browser.page("/app/admin/rulesets"))
    refused = admin_browser.submit("/app/admin/rulesets", "ruleset-form", rules="[{kind: 1")
    assert refused.status_code == 400
    assert "not valid JSON" in alert_text(refused.text)
    assert versions(admin_browser.page("/app/admin/rulesets")) == before


def test_users_and_forms_without_a_csrf_token_are_refused(
    browser: Browser, admin_browser: Browser
) -> None:
    listing = admin_browser.page("/app/admin/rulesets")
    before = versions(listing)
    draft = forms_in(listing)["ruleset-form"]
    no_token = {k: v for k, v in draft.fields.items() if k != "csrf_token"}
    assert admin_browser.post(draft.action, no_token).status_code == 403
    forged = admin_browser.post(draft.action, {**draft.fields, "csrf_token": "forged"})
    assert forged.status_code == 403
    backtest = forms_in(admin_browser.page("/app/admin/rulesets/1"))["backtest-form"]
    assert admin_browser.post(backtest.action, {"since": "x", "until": "y"}).status_code == 403

    browser.register_and_login("notadmin")
    token = forms_in(browser.page("/"))["logout-form"].csrf_token
    for path in ("/app/admin/rulesets", "/app/admin/rulesets/1"):
        assert browser.get(path).status_code == 403, path
    as_user = browser.post(draft.action, {**draft.fields, "csrf_token": token})
    assert as_user.status_code == 403 and 'role="alert"' in as_user.text
    as_user = browser.post(backtest.action, {**backtest.fields, "csrf_token": token})
    assert as_user.status_code == 403
    assert versions(admin_browser.page("/app/admin/rulesets")) == before
