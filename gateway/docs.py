"""The API documentation page, served entirely by the gateway: /docs (Swagger UI) works on a
network without internet.

FastAPI's own page loads Swagger UI from a public CDN and starts it with an inline script.
Here the assets come from the `fastapi-offline` package (pinned with hashes in
requirements.lock) under /docs/vendor/, Swagger UI is started by a file of ours
(/docs/static/swagger-init.js) with deep links off (they nest a link inside each operation's
button, which screen readers cannot use), /docs/static/docs.css darkens the colours that
fail WCAG contrast, and the page carries a Content-Security-Policy that allows
scripts and styles from this origin only (no inline script, no eval).

There is no /redoc: ReDoc's bundle always loads its logo from the vendor's CDN, so it cannot
be made offline without patching it; Swagger UI documents the same schema.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR_PATH = "/docs/vendor"
STATIC_PATH = "/docs/static"
VENDOR_DIR = Path(str(files("fastapi_offline") / "static"))
STATIC_DIR = Path(__file__).parent / "docs_assets"

# Swagger UI: scripts and styles from this origin only; data: images are its inline icons.
SWAGGER_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

_SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{vendor}/swagger-ui.css">
<link rel="stylesheet" href="{static}/docs.css">
<link rel="icon" href="{vendor}/favicon.png">
</head>
<body>
<main id="swagger-ui" data-openapi-url="{openapi}"></main>
<script src="{vendor}/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve /docs and its assets. The app must be built with `docs_url=None` and
    `redoc_url=None` (FastAPI's CDN pages)."""
    assert app.docs_url is None and app.redoc_url is None, "FastAPI's CDN pages are on"
    assert app.openapi_url is not None
    openapi_url = app.openapi_url
    app.mount(VENDOR_PATH, StaticFiles(directory=VENDOR_DIR), name="docs-vendor")
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        body = _SWAGGER_PAGE.format(
            title=escape(f"{app.title} - Swagger UI"),
            vendor=escape(root + VENDOR_PATH),
            static=escape(root + STATIC_PATH),
            openapi=escape(root + openapi_url),
        )
        return HTMLResponse(body, headers={"Content-Security-Policy": SWAGGER_CSP})
