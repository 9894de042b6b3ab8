"""The web app: server-rendered pages (Jinja2) for users and admins, served by the gateway
at `/` and under `/app/...`; the JSON API keeps its paths. Pages call the wallet through
the gateway's one client (gateway.deps.Services) and show the API's own error messages
(gateway.errors). No money logic here: amounts are shown as the wallet formats them.

Security: the session is the wallet's JWT in an HttpOnly, SameSite=Strict cookie
(gateway.web.session); every POST carries a CSRF token; every web answer has a strict
Content-Security-Policy (gateway.web.pages.WebHeadersMiddleware); Jinja2 autoescapes.
Progressive enhancement only (static/app.js): every page works without scripts.

Stable hooks for tests (ids unless said otherwise):
- every page: #skip-link, #main, #site-nav, #notice (role=status, after a redirect),
  #form-error (role=alert; the input it is about has aria-describedby="form-error"),
  hidden inputs name=csrf_token (every POST form) and name=idempotency_key (money forms);
  logged in: #nav-home #nav-deposit #nav-withdraw #nav-transfer #nav-history #nav-account,
  #logout-form / #logout-submit; admins also #nav-admin and #admin-nav (#nav-admin-*).
- /app/login: #login-form #username #password #login-submit #register-link
- /app/register: #register-form #username #password #email #register-submit
- / (balances): table#balances, td#balance-<CUR> (e.g. #balance-USD), #no-balances
- /app/deposit, /app/withdraw, /app/transfer: #<kind>-form, #amount, #currency,
  #to_username (transfer), #<kind>-submit (kind = deposit | withdraw | transfer)
- /app/transactions: #history-filter (#filter-currency #filter-type #filter-since
  #filter-until #filter-submit; admins also #filter-username), table#transactions with
  tr.tx-row / a.tx-link, #next-page, #first-page, #no-transactions
- /app/transactions/<id>: #transaction (dd #tx-id #tx-type #tx-status #tx-amount
  #tx-flagged #tx-from #tx-to #tx-time); admins: #fraud (#tx-score #tx-decision
  #tx-rules-version, ul#fraud-reasons, #tx-review-status), #review-form
  (#resolution-cleared #resolution-confirmed_fraud #note #snooze_days #freeze
  #review-submit), #reverse-form (#reason #reverse-submit)
- /app/account: #password-form (#current_password #new_password #password-submit),
  #delete-form (#delete-rule #delete-submit)
- /app/admin/flagged (?status=pending|all): #flagged-filter (#filter-pending #filter-all),
  table#flagged with tr.tx-row / a.tx-link, #next-page; and the user freeze forms:
  #freeze-form (#freeze-username #freeze-reason #freeze-submit), #unfreeze-form
  (#unfreeze-username #unfreeze-submit)
- /app/admin/rulesets: table#rulesets, tr[data-version] (a.ruleset-link to its page),
  .live-marker, form.activate-form with button#activate-<version>; the draft form
  #ruleset-form (#ruleset-description, textarea#ruleset-rules pre-filled with the live
  set's rules as JSON, #ruleset-submit)
- /app/admin/rulesets/<version>: #ruleset (dd #ruleset-version #ruleset-status
  #ruleset-description #ruleset-created), table#ruleset-rules with tr[data-rule-id],
  form.activate-form / button#activate-<version> (not live), #backtest-form
  (#backtest-since #backtest-until, RFC 3339, default the last day; #backtest-submit);
  after a backtest #backtest-summary (dd#backtest-<field> for every total of
  POST /admin/fraud/backtest, e.g. #backtest-flagged) and table#backtest-rules with
  tr[data-rule-id] (td.hits .live-hits .confirmed-fraud-hits .cleared-hits)
- /app/admin/lists: table#list-entries, #list-add-form (#list-name #list-username
  #list-rules #list-note #list-add-submit), form.remove-form
- /app/admin/notifications: #count-pending #count-sent #count-dead, table#events,
  form.retry-form
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gateway.web import (
    account_pages,
    admin_pages,
    auth_pages,
    fallback,
    money_pages,
    rule_pages,
)
from gateway.web.pages import STATIC_DIR, WEB_PREFIX, WebHeadersMiddleware


def install_web(app: FastAPI) -> None:
    """The page routers, the static files and the pages' security headers."""
    # The static files first: the last router answers every other /app path (a 404 page).
    app.mount(f"{WEB_PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="web-static")
    for module in (auth_pages, money_pages, account_pages, admin_pages, rule_pages, fallback):
        app.include_router(module.router)
    app.add_middleware(WebHeadersMiddleware)
