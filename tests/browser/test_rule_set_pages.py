"""The rule-set pages in a real Chromium: an admin types a bad rule set (the API's message
in the alert, the textarea tied to it), creates a draft from the pre-filled copy of the
live set, and backtests it; axe-core finds no serious or critical violation on any of
those pages. Nothing is activated: this stack's fraud service is shared."""

from __future__ import annotations

import pytest

from tests.support import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.support.browser import Chromium, WebApp, axe_violations

pytestmark = pytest.mark.browser


def test_an_admin_drafts_and_backtests_a_rule_set_in_chromium(
    browser: Chromium, web_url: str, axe_source: str
) -> None:
    web = WebApp(browser, web_url)
    web.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    web.go("/app/admin/rulesets")
    assert axe_violations(browser, axe_source) == []
    live_copy = browser.find_element("id", "ruleset-rules").get_attribute("value") or ""
    assert '"kind": "large_amount"' in live_copy

    web.submit("ruleset-submit", **{"ruleset-rules": '[{"kind": "eval"}]'})
    assert "rules[0].kind" in web.text("form-error")
    rules = browser.find_element("id", "ruleset-rules")
    assert rules.get_attribute("aria-describedby") == "ruleset-rules-hint form-error"
    assert axe_violations(browser, axe_source) == []

    web.go("/app/admin/rulesets")
    web.submit("ruleset-submit", **{"ruleset-description": "a copy of the live set"})
    assert web.path.endswith("?notice=draft_created"), web.path
    assert web.text("ruleset-status") == "draft"
    assert web.exists("#ruleset-rules tr[data-rule-id='large_amount']")
    assert axe_violations(browser, axe_source) == []

    web.submit("backtest-submit")
    assert web.text("backtest-movements").isdigit()
    assert web.exists("#backtest-rules tr[data-rule-id='large_amount']")
    assert axe_violations(browser, axe_source) == []
