"""Chromium fixtures: one headless Chromium per test session (worker) and one wallet stack
for it (fraud service, a wallet on a fresh SQLite file with the bootstrapped admin, a
gateway in a thread). Every test module here is marked `browser`: skipped locally without
Chromium, failed under CI=true (tests/support/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import RunningWallet, running_gateway
from tests.support.browser import (
    Chromium,
    console_messages,
    requested_urls,
    require_axe,
    require_chromium,
    start_browser,
)


@pytest.fixture(scope="session")
def web_url(sqlite_wallet: RunningWallet) -> Iterator[str]:
    """The gateway's base URL (serving the web pages, the JSON API and /docs)."""
    with running_gateway(sqlite_wallet.addr) as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    require_chromium()
    driver = start_browser()
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium: Chromium) -> Chromium:
    """The session's browser, reset for this test: no cookies, no logs from earlier tests."""
    chromium.delete_all_cookies()
    chromium.get("about:blank")
    requested_urls(chromium)
    console_messages(chromium)
    return chromium


@pytest.fixture(scope="session")
def axe_source() -> str:
    return require_axe()
