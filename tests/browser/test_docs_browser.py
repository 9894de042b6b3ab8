"""/docs in a real Chromium that can reach nothing but the gateway: Swagger UI renders every
operation of the gateway's schema, the page fetched nothing from another origin, the
Content-Security-Policy refused nothing, and axe-core finds no serious violation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from tests.support.browser import (
    Chromium,
    axe_violations,
    console_messages,
    foreign_urls,
    requested_urls,
    wait_until,
)

pytestmark = pytest.mark.browser

METHODS = {"get", "put", "post", "delete", "patch", "options", "head"}


def _operations(web_url: str) -> int:
    schema: dict[str, Any] = httpx.get(f"{web_url}/openapi.json", timeout=30).json()
    return sum(1 for item in schema["paths"].values() for method in item if method in METHODS)


def _rendered(driver: Chromium, selector: str, expected: int) -> int:
    count = len(driver.find_elements(By.CSS_SELECTOR, selector))
    return count if count == expected else 0


def test_swagger_ui_renders_every_operation_offline(browser: Chromium, web_url: str) -> None:
    expected = _operations(web_url)
    browser.get(f"{web_url}/docs")
    wait_until(
        browser,
        lambda d: _rendered(d, "#swagger-ui .opblock", expected),
        f"Swagger UI did not render the {expected} operations",
    )
    title = browser.find_element(By.CSS_SELECTOR, "#swagger-ui .info .title").text
    assert title.startswith("Digital wallet gateway")
    urls = requested_urls(browser)
    assert f"{web_url}/openapi.json" in urls
    assert foreign_urls(urls, web_url) == []
    assert console_messages(browser) == []


def test_swagger_ui_has_no_serious_accessibility_violations(
    browser: Chromium, web_url: str, axe_source: str
) -> None:
    browser.get(f"{web_url}/docs")
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#swagger-ui .opblock"))
    assert axe_violations(browser, axe_source) == []
