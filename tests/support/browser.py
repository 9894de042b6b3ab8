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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from tests.support.database import IN_CI

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_PATH", "/usr/bin/chromedriver")
# Installed by `make axe` (npm ci from the committed package-lock.json); not committed.
AXE_JS = Path(__file__).resolve().parents[2] / "tools/axe/node_modules/axe-core/axe.min.js"
# Where tests save their screenshots (unset: none are taken), e.g. docs/screenshots.
SCREENSHOTS_ENV = "WALLET_SCREENSHOTS"
# Hang guard only: every wait returns as soon as its condition holds.
WAIT_SECONDS = 30.0
# axe-core impacts that fail a page.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})

T = TypeVar("T")
# What the fixtures hand out: Chromium's driver (it has get_log, the remote one does not).
Chromium = webdriver.Chrome


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


def start_browser(width: int = 1280, height: int = 900) -> Chromium:
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


def wait_until(driver: Chromium, condition: Callable[[Chromium], T], message: str = "") -> T:
    """Poll `condition` until it returns something truthy (the timeout is a hang guard)."""
    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(condition, message)


@contextmanager
def slow_network(driver: Chromium, latency_ms: int) -> Iterator[None]:
    """Every request of the browser waits `latency_ms` more (chromedriver's network emulation),
    so that a test can act while a request is in flight."""
    fast = 100 * 1024 * 1024  # bytes/s: only the latency matters
    driver.set_network_conditions(
        latency=latency_ms, download_throughput=fast, upload_throughput=fast
    )
    try:
        yield
    finally:
        driver.delete_network_conditions()


def requested_urls(driver: Chromium) -> list[str]:
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


def console_messages(driver: Chromium) -> list[str]:
    """The console's warnings and errors since the last call (CSP violations land here)."""
    return [
        str(entry["message"])
        for entry in driver.get_log("browser")
        if entry["level"] in {"WARNING", "SEVERE"}
    ]


def axe_violations(driver: Chromium, axe_source: str) -> list[dict[str, Any]]:
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


def screenshot(driver: Chromium, name: str) -> Path | None:
    """Save `<name>.png` under $WALLET_SCREENSHOTS when it is set (the README's pictures
    are made so); otherwise nothing."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if not folder:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path


class WebApp:
    """The web pages driven through a real browser, by the element ids the pages promise
    (gateway/web/__init__.py lists them). Every action that submits a form waits until the
    next page has loaded."""

    def __init__(self, driver: Chromium, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def go(self, path: str) -> None:
        self.driver.get(f"{self.base_url}{path}")

    @property
    def path(self) -> str:
        """The current page's path and query (after any redirects)."""
        parts = urlsplit(self.driver.current_url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def text(self, element_id: str) -> str:
        """The element's visible text, non-breaking spaces as spaces."""
        return self.driver.find_element(By.ID, element_id).text.replace("\xa0", " ").strip()

    def exists(self, css: str) -> bool:
        return bool(self.driver.find_elements(By.CSS_SELECTOR, css))

    def fill(self, **values: str) -> None:
        """Type into the inputs with these ids (what was there is cleared first)."""
        for element_id, value in values.items():
            element = self.driver.find_element(By.ID, element_id)
            element.clear()
            element.send_keys(value)

    def submit(self, button_id: str, **values: str) -> None:
        """Fill, click the button (or link) and wait for the page it leads to."""
        self.fill(**values)
        old_page = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.find_element(By.ID, button_id).click()
        wait_until(self.driver, _replaced(old_page), f"#{button_id} led to no new page")
        wait_until(self.driver, _loaded, "the page did not finish loading")

    def register(self, username: str, password: str) -> None:
        self.go("/app/register")
        self.submit("register-submit", username=username, password=password)

    def login(self, username: str, password: str) -> None:
        self.go("/app/login")
        self.submit("login-submit", username=username, password=password)
        assert self.path == "/", (self.path, self.driver.page_source[:2000])

    def logout(self) -> None:
        self.submit("logout-submit")

    def move(self, kind: str, **values: str) -> None:
        """Fill and send the deposit, withdraw or transfer form."""
        self.go(f"/app/{kind}")
        self.submit(f"{kind}-submit", **values)


def _replaced(old_page: WebElement) -> Callable[[Chromium], bool]:
    """staleness_of, also when chromedriver asks about the old node while the new document
    is being built ("Node with given id does not belong to the document"): it is gone."""
    stale = staleness_of(old_page)

    def check(driver: Chromium) -> bool:
        try:
            return bool(stale(driver))
        except WebDriverException as exc:
            if "does not belong to the document" in (exc.msg or ""):
                return True
            raise

    return check


def _loaded(driver: Chromium) -> bool:
    return bool(driver.execute_script("return document.readyState === 'complete'"))
