"""Driving the web pages over HTTP: an HTML form reader (csrf token, idempotency key and
every other field of a form by its id) and a browser-like client that keeps cookies and
submits forms as a browser would (urlencoded, hidden fields included)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from typing import Any

import httpx

from tests.support.grpc_clients import PASSWORD, unique_name

# Every admin page of the web app (each refuses a normal user with 403).
ADMIN_PAGES = (
    "/app/admin/flagged",
    "/app/admin/flagged?status=all",
    "/app/admin/rulesets",
    "/app/admin/rulesets/1",
    "/app/admin/lists",
    "/app/admin/notifications",
)


@dataclass
class Form:
    id: str
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def csrf_token(self) -> str:
        return self.fields["csrf_token"]

    @property
    def idempotency_key(self) -> str:
        return self.fields["idempotency_key"]


class _FormParser(HTMLParser):
    """Collects every <form> with its inputs' current values (checked radios/boxes only),
    textareas and selects (the selected option, else the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = Form(a.get("id", ""), a.get("action", ""), a.get("method", "get"))
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form.fields[a["name"]] = a.get("value", "on" if kind == "checkbox" else "")
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self._form.fields[a["name"]] = ""
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
        elif tag == "option" and self._select is not None:
            name = self._select
            if name not in self._form.fields or "selected" in a:
                self._form.fields[name] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea is not None:
            self._form.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def all_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def forms_in(html: str) -> dict[str, Form]:
    """The page's forms that have an id, by id."""
    return {form.id: form for form in all_forms(html) if form.id}


class Browser:
    """An httpx client with a cookie jar that fills and posts the pages' forms."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=15, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params or None)

    def page(self, path: str) -> str:
        """GET a page that must answer 200; its HTML."""
        response = self.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return response.text

    def form(self, path: str, form_id: str) -> Form:
        forms = forms_in(self.page(path))
        assert form_id in forms, (path, form_id, sorted(forms))
        return forms[form_id]

    def post(self, action: str, fields: dict[str, str]) -> httpx.Response:
        return self.http.post(action, data=fields)

    def submit(self, path: str, form_id: str, **values: str) -> httpx.Response:
        """Load `path`, fill `form_id` with `values` (over its current ones) and post it."""
        form = self.form(path, form_id)
        assert form.method == "post", form
        return self.post(form.action, {**form.fields, **values})

    def follow(self, response: httpx.Response) -> httpx.Response:
        """The GET a browser makes after a 303."""
        assert response.status_code == 303, (response.status_code, response.text[:500])
        return self.get(response.headers["location"])

    def register_and_login(self, prefix: str = "web") -> str:
        username = unique_name(prefix)
        registered = self.submit(
            "/app/register", "register-form", username=username, password=PASSWORD
        )
        assert registered.status_code == 303, registered.text
        self.login(username)
        return username

    def login(self, username: str, password: str = PASSWORD) -> None:
        response = self.submit("/app/login", "login-form", username=username, password=password)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/"


def alert_text(html: str) -> str:
    """The text of the page's role=alert element (the form's error)."""
    start = html.index('role="alert">') + len('role="alert">')
    return unescape(html[start : html.index("<", start)])


def text_of(html: str, element_id: str) -> str:
    """The text inside the element with that id (tags dropped, entities decoded)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(dd|td|p|ul|h1)>', html, re.S)
    assert match, f"no element #{element_id}"
    return unescape(re.sub(r"<[^>]+>", "", match.group(1))).replace("\xa0", " ").strip()


def link_href(html: str, element_id: str) -> str:
    """The href of the link with that id, entities decoded."""
    match = re.search(rf'id="{element_id}" href="([^"]+)"', html)
    assert match, f"no link #{element_id}"
    return unescape(match.group(1))
