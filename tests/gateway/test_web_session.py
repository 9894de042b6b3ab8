"""The web pages' session over real HTTP (gateway -> wallet -> fraud on loopback): the
cookie's flags, the cookie never authenticating the JSON API, CSRF on the login, register
and logout forms, and the security headers.

Page hooks used (documented in gateway/web/__init__.py): #login-form, #register-form,
#logout-form, inputs username/password, hidden csrf_token, table#balances.
"""

from __future__ import annotations

import httpx

from tests.support import PASSWORD, Browser, alert_text, forms_in, unique_name


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name (the whole header text, lowercased)."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        found[header.split("=", 1)[0]] = header.lower()
    return found


def test_login_sets_an_httponly_samesite_strict_session_cookie(browser: Browser) -> None:
    username = unique_name("web")
    registered = browser.submit(
        "/app/register", "register-form", username=username, password=PASSWORD
    )
    assert registered.status_code == 303
    assert registered.headers["location"] == "/app/login?notice=registered"

    response = browser.submit("/app/login", "login-form", username=username, password=PASSWORD)

    assert response.status_code == 303 and response.headers["location"] == "/"
    session = _set_cookies(response)["wallet_session"]
    assert "httponly" in session and "samesite=strict" in session and "path=/" in session
    assert "secure" not in session  # plain HTTP, no WEB_COOKIE_SECURE
    home = browser.page("/")
    assert f"Balances of {username}" in home and 'id="logout-form"' in home


def test_cookie_is_secure_when_the_setting_says_so(wallet_addr: str, start_gateway: object) -> None:
    url = start_gateway(wallet_addr, web_cookie_secure=True)  # type: ignore[operator]
    browser = Browser(url)
    try:
        response = browser.get("/app/login")
        assert "secure" in _set_cookies(response)["wallet_presession"]
    finally:
        browser.close()


def test_the_session_cookie_does_not_authenticate_the_json_api(
    browser: Browser, gateway_url: str
) -> None:
    browser.register_and_login()
    token = browser.http.cookies["wallet_session"]

    with_cookie = httpx.get(
        f"{gateway_url}/balances", cookies={"wallet_session": token}, timeout=15
    )
    assert with_cookie.status_code == 401
    assert with_cookie.json()["error"]["code"] == "token_missing"
    # The same token as a bearer header is what the API accepts.
    as_bearer = httpx.get(
        f"{gateway_url}/balances", headers={"Authorization": f"Bearer {token}"}, timeout=15
    )
    assert as_bearer.status_code == 200


def test_login_without_the_csrf_token_is_refused(browser: Browser) -> None:
    username = browser.register_and_login()
    fresh = Browser(str(browser.http.base_url))
    try:
        form = fresh.form("/app/login", "login-form")
        fields = {"username": username, "password": PASSWORD}

        missing = fresh.post(form.action, fields)
        forged = fresh.post(form.action, {**fields, "csrf_token": "x" * 43})

        for response in (missing, forged):
            assert response.status_code == 403
            assert "wallet_session" not in _set_cookies(response)
        accepted = fresh.post(form.action, {**fields, "csrf_token": form.csrf_token})
        assert accepted.status_code == 303
    finally:
        fresh.close()


def test_logout_needs_the_token_then_ends_the_session(browser: Browser) -> None:
    browser.register_and_login()
    token = browser.http.cookies["wallet_session"]
    logout = forms_in(browser.page("/"))["logout-form"]

    refused = browser.post(logout.action, {})
    assert refused.status_code == 403
    assert browser.get("/").status_code == 200  # still logged in

    done = browser.post(logout.action, logout.fields)
    assert done.status_code == 303
    assert done.headers["location"] == "/app/login?notice=logged_out"
    assert browser.get("/").headers["location"] == "/app/login"
    # The wallet revoked the token: replaying the old cookie value is refused.
    replay = Browser(str(browser.http.base_url))
    try:
        replay.http.cookies.set("wallet_session", token)
        expired = replay.get("/")
        assert expired.status_code == 303
        assert expired.headers["location"] == "/app/login?notice=session_expired"
    finally:
        replay.close()


def test_wrong_password_shows_the_api_message_inline(browser: Browser) -> None:
    username = browser.register_and_login()
    fresh = Browser(str(browser.http.base_url))
    try:
        response = fresh.submit("/app/login", "login-form", username=username, password="nope")
        assert response.status_code == 401
        api = httpx.post(
            f"{browser.http.base_url}/login",
            json={"username": username, "password": "nope"},
            timeout=15,
        )
        assert alert_text(response.text) == api.json()["msg"]
    finally:
        fresh.close()


def test_pages_carry_a_strict_csp_and_the_api_does_not(browser: Browser, gateway_url: str) -> None:
    for response in (browser.get("/app/login"), browser.get("/app/static/app.js")):
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    page = browser.get("/app/login").text
    assert "<script>" not in page and "style=" not in page
    assert '<html lang="en">' in page and page.count("<h1") == 1
    api = httpx.get(f"{gateway_url}/healthz", timeout=15)
    assert "content-security-policy" not in api.headers


def test_a_script_in_a_username_is_shown_escaped(browser: Browser) -> None:
    hostile = "<script>alert(1)</script>"
    response = browser.submit("/app/login", "login-form", username=hostile, password="x")
    assert response.status_code in (400, 401)
    assert hostile not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_an_unknown_page_is_a_404_page(browser: Browser, gateway_url: str) -> None:
    response = browser.get("/app/no-such-page")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in response.text and "content-security-policy" in response.headers
    # The API's unknown paths keep the JSON error.
    api = httpx.get(f"{gateway_url}/no-such-endpoint", timeout=15)
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    assert browser.get("/app/static/app.css").headers["content-type"].startswith("text/css")
