"""Real-browser helpers: Debian's headless Chromium driven through its own chromedriver by
Selenium, what the browser fetched and logged, axe-core run inside a page, screenshots.

Nothing here downloads a browser or a driver: the driver's path is given to Selenium's
Service (so Selenium Manager is skipped) and SE_OFFLINE forbids it anyway. Every host name
except localhost resolves to nothing, so a page that reaches for the internet (a CDN, a web
font) shows it as a failed request instead of quietly working on a connected machine.

Locally the browser tests skip when Chromium (or, for the accessibility checks, axe-core) is
missing; in CI (CI=true) they fail instead, like the PostgreSQL and Redis tests.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.wait import WebDriverWait

from tests.support.database import IN_CI

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_PATH", "/usr/bin/chromedriver")
# Installed by `make axe` (npm ci from the committed package-lock.json); not committed.
BROWSER_TESTS = Path(__file__).resolve().parents[1] / "browser"
AXE_JS = BROWSER_TESTS / "node_modules" / "axe-core" / "axe.min.js"
# Where tests save their screenshots (unset: none are taken), e.g. docs/screenshots.
SCREENSHOTS_ENV = "WALLET_SCREENSHOTS"
# Hang guard only: every wait returns as soon as its condition holds.
WAIT_SECONDS = 30.0
# axe-core impacts that fail a page.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})

T = TypeVar("T")
# What the fixtures hand out: Chromium's driver (it has get_log, the remote one does not).
Browser = webdriver.Chrome


def _missing(what: str, hint: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is missing ({hint})")
    pytest.skip(f"{what} is missing ({hint})")


def require_chromium() -> None:
    """Skip (fail under CI=true) unless Chromium and its chromedriver are installed."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            _missing(path, "apt-get install chromium chromium-driver; .ci/run does it")


def require_axe() -> str:
    """axe-core's source, to inject into a page. Skip (fail under CI=true) without it."""
    if not AXE_JS.is_file():
        hint = "npm is not installed" if shutil.which("npm") is None else "run `make axe`"
        _missing(f"axe-core ({AXE_JS})", hint)
    return AXE_JS.read_text()


def start_browser(width: int = 1280, height: int = 900) -> Browser:
    """A headless Chromium (the caller quits it). Its console and network logs are kept
    for `console_messages` and `requested_urls`."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--no-first-run",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def wait_until(driver: Browser, condition: Callable[[Browser], T], message: str = "") -> T:
    """Poll `condition` until it returns something truthy (the timeout is a hang guard)."""
    return WebDriverWait(driver, WAIT_SECONDS).until(condition, message)


def requested_urls(driver: Browser) -> list[str]:
    """Every URL the browser asked for since the last call (the log is drained)."""
    urls: list[str] = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def foreign_urls(urls: list[str], base_url: str) -> list[str]:
    """The URLs not on `base_url`'s origin (data: and blob: URLs are the page's own)."""
    origin = urlsplit(base_url)[:2]
    return [
        url
        for url in urls
        if urlsplit(url).scheme not in {"data", "blob"} and urlsplit(url)[:2] != origin
    ]


def console_messages(driver: Browser) -> list[str]:
    """The console's warnings and errors since the last call (CSP violations land here)."""
    return [
        str(entry["message"])
        for entry in driver.get_log("browser")
        if entry["level"] in {"WARNING", "SEVERE"}
    ]


def axe_violations(driver: Browser, axe_source: str) -> list[dict[str, Any]]:
    """Run axe-core in the current page; its serious and critical violations, each as
    {"id", "impact", "help", "targets"}. (WebDriver's scripts are not subject to the
    page's Content-Security-Policy.)"""
    driver.execute_script(axe_source)
    result: dict[str, Any] = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]})
          .then(r => done({violations: r.violations}), e => done({error: String(e)}));
        """
    )
    assert "error" not in result, result
    return [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "targets": [node["target"] for node in violation["nodes"]],
        }
        for violation in result["violations"]
        if violation["impact"] in BLOCKING_IMPACTS
    ]


def screenshot(driver: Browser, name: str) -> Path | None:
    """Save `<name>.png` under $WALLET_SCREENSHOTS when it is set (the README's pictures
    are made so); otherwise nothing."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if not folder:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path
