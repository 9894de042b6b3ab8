"""/docs is served by the gateway alone: every asset the page names is on the gateway's own
origin and answers, and the page forbids inline and foreign scripts and styles. (The browser
tests, tests/browser/test_docs_browser.py, render it with no network.)"""

from __future__ import annotations

from html.parser import HTMLParser

import httpx


class _Assets(HTMLParser):
    """The URLs a page makes a browser load: src of any element, href of <link>, and the
    OpenAPI document each viewer is told to fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "link" and found.get("href"):
            self.urls.append(str(found["href"]))
        for viewer_attribute in ("spec-url", "data-openapi-url"):
            if found.get(viewer_attribute):
                self.urls.append(str(found[viewer_attribute]))
        if tag == "script":
            self._in_script = not found.get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def _directives(csp: str) -> dict[str, list[str]]:
    parts = (directive.split() for directive in csp.split(";") if directive.strip())
    return {name: sources for name, *sources in parts}


def test_docs_load_only_same_origin_assets(down_client: httpx.Client) -> None:
    response = down_client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = _Assets()
    parser.feed(response.text)
    assert parser.inline_scripts == 0
    # Root-relative paths only: no scheme, no host, no protocol-relative //host.
    assert parser.urls and all(u.startswith("/") and not u.startswith("//") for u in parser.urls)
    expected = {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "docs.css",
        "swagger-init.js",
        "openapi.json",
    }
    assert expected <= {url.rsplit("/", 1)[-1] for url in parser.urls}
    for url in parser.urls:
        asset = down_client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"], url
        if url.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css"), url


def test_docs_forbid_inline_and_foreign_scripts_and_styles(down_client: httpx.Client) -> None:
    csp = _directives(down_client.get("/docs").headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]


def test_no_page_loads_from_a_cdn(down_client: httpx.Client) -> None:
    """FastAPI's CDN pages are off: /redoc (whose bundle fetches its logo from the vendor's
    CDN) is not served, and the docs are not in the API schema."""
    assert down_client.get("/redoc").status_code == 404
    assert down_client.get("/docs/oauth2-redirect").status_code == 404
    paths = down_client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]
