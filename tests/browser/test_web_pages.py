"""Every main page of the web app in a real Chromium: axe-core finds no serious or critical
violation, the page loads nothing from another origin and its Content-Security-Policy
refuses nothing, it fits a phone-width screen, login works by keyboard alone, and the page's
scripts cannot read the session."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.support import ADMIN_PAGES, ADMIN_PASSWORD, ADMIN_USERNAME, PASSWORD, unique_name
from tests.support.browser import (
    Chromium,
    WebApp,
    axe_violations,
    console_messages,
    foreign_urls,
    requested_urls,
    screenshot,
    wait_until,
)

pytestmark = pytest.mark.browser

PUBLIC_PAGES = ("/app/login", "/app/register")
USER_PAGES = (
    "/",
    "/app/deposit",
    "/app/withdraw",
    "/app/transfer",
    "/app/transactions",
    "/app/account",
)
PHONE = (390, 844)  # CSS pixels of a common phone, portrait


@pytest.fixture
def web(browser: Chromium, web_url: str) -> WebApp:
    return WebApp(browser, web_url)


def _user_with_history(web: WebApp) -> tuple[str, str]:
    """A logged-in user with a flagged deposit and a transfer; the deposit's page path."""
    username, other = unique_name("a11y"), unique_name("a11yto")
    for name in (other, username):
        web.register(name, PASSWORD)
    web.login(username, PASSWORD)
    web.move("deposit", amount="10000.00", currency="USD")
    deposit_path = web.path.split("?")[0]
    web.move("transfer", to_username=other, amount="12.50", currency="USD")
    return username, deposit_path


def _check_pages(web: WebApp, paths: list[str], axe_source: str) -> dict[str, object]:
    """Each page's problems (none: not in the result): axe's serious and critical
    violations, requests to another origin, console warnings and errors."""
    problems: dict[str, object] = {}
    console_messages(web.driver), requested_urls(web.driver)  # drained: earlier pages' own
    for path in paths:
        web.go(path)
        found = {
            "axe": axe_violations(web.driver, axe_source),
            "foreign": foreign_urls(requested_urls(web.driver), web.base_url),
            "console": console_messages(web.driver),
        }
        if any(found.values()):
            problems[path] = found
    return problems


def test_no_serious_accessibility_violations_on_the_main_pages(
    web: WebApp, axe_source: str
) -> None:
    assert _check_pages(web, list(PUBLIC_PAGES), axe_source) == {}
    _, deposit_path = _user_with_history(web)
    assert _check_pages(web, [*USER_PAGES, deposit_path], axe_source) == {}

    # A form showing the API's error (role=alert, aria-invalid) is checked too.
    web.move("withdraw", amount="999999.00", currency="USD")
    assert web.exists("#form-error")
    assert axe_violations(web.driver, axe_source) == []
    web.logout()

    web.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    assert _check_pages(web, [*ADMIN_PAGES, deposit_path], axe_source) == {}
    assert web.exists("#review-form")  # the admin's view of the flagged deposit


def test_every_page_fits_a_phone_width_screen(web: WebApp, browser: Chromium) -> None:
    _user_with_history(web)
    browser.set_window_size(*PHONE)
    try:
        overflowing = []
        for path in [*USER_PAGES, "/app/transactions?limit=5"]:
            web.go(path)
            wait_until(
                browser, lambda d: d.execute_script("return document.readyState") == "complete"
            )
            width = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]"
            )
            if width[0] > width[1]:
                overflowing.append((path, width))
        web.go("/")
        screenshot(browser, "web-phone-balances")
    finally:
        browser.set_window_size(1280, 900)
    assert overflowing == []


def test_logging_in_by_keyboard_alone(web: WebApp, browser: Chromium) -> None:
    username = unique_name("keys")
    web.register(username, PASSWORD)
    web.go("/app/login")
    visited: list[str | None] = []
    while browser.switch_to.active_element.get_attribute("id") != "username":
        assert len(visited) < 20, f"Tab never reached #username: {visited}"
        browser.switch_to.active_element.send_keys(Keys.TAB)
        visited.append(browser.switch_to.active_element.get_attribute("id"))
    browser.switch_to.active_element.send_keys(username, Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "password"
    old_page = browser.find_element(By.TAG_NAME, "html")
    browser.switch_to.active_element.send_keys(PASSWORD, Keys.ENTER)
    wait_until(
        browser,
        lambda d: web.exists("h1") and old_page.id != d.find_element(By.TAG_NAME, "html").id,
    )
    assert web.path == "/"
    assert username in web.text("main")


def test_the_pages_scripts_cannot_read_the_session(web: WebApp) -> None:
    username = unique_name("cookie")
    web.register(username, PASSWORD)
    web.login(username, PASSWORD)
    cookies = web.driver.get_cookies()
    assert cookies, "no session cookie"
    assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies), cookies
    assert web.driver.execute_script("return document.cookie") == ""
    # Nor through the page's storage: nothing was put there.
    stored = web.driver.execute_script("return [localStorage.length, sessionStorage.length]")
    assert stored == [0, 0]
    with httpx.Client(base_url=web.base_url, timeout=30) as client:
        # The cookie is not a bearer token for the JSON API's callers (scripts use /login).
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
        assert client.get("/balances", headers={"Cookie": cookie}).status_code == 401
