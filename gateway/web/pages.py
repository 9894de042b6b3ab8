"""What every web route shares: the templates, the page context (session, wallet caller),
form reading with the CSRF check, the security headers, and the one place where a failed
wallet call becomes an HTML answer (the status and message come from gateway.errors, the
same mapping the JSON API uses).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

import grpc
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from wallet.v1 import wallet_pb2_grpc

from gateway.deps import Services, client_ip
from gateway.errors import INTERNAL_MESSAGE, ApiError, from_rpc_error
from gateway.wallet_client import Caller, is_valid_metadata_value
from gateway.web.session import (
    CSRF_FIELD,
    CsrfRejected,
    WebSession,
    check_presession_csrf,
    end_session,
    session_of,
)

log = logging.getLogger("gateway.web")

T = TypeVar("T")
RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")

WEB_PREFIX = "/app"
LOGIN_PATH = f"{WEB_PREFIX}/login"
_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"

# --- security headers -----------------------------------------------------------------------------

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def is_web_path(path: str) -> bool:
    return path == "/" or path == WEB_PREFIX or path.startswith(f"{WEB_PREFIX}/")


class WebHeadersMiddleware:
    """Every answer on a web path (pages, redirects, static files, errors) carries the CSP
    and friends; pages are not cached. The JSON API and /docs are left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_web_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        is_static = scope.get("path", "").startswith(f"{WEB_PREFIX}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not is_static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- templates ------------------------------------------------------------------------------------


def utc_text(timestamp: str) -> str:
    """'2026-11-29T22:58:11.123Z' -> '2026-11-29 22:58:11 UTC' (the raw text if unparsable)."""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def time_tag(timestamp: str | None) -> Markup:
    """A <time> the page script rewrites into the reader's locale (UTC stays in `title`)."""
    if not timestamp:
        return Markup("")
    text = utc_text(timestamp)
    return Markup('<time datetime="{0}" title="{1}">{1}</time>').format(timestamp, text)


def money_tag(amount: str, currency: str) -> Markup:
    """An amount as the wallet formatted it (the currency's decimals) with its code."""
    return Markup('<span class="money">{0}&nbsp;{1}</span>').format(amount, currency)


templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["time"] = time_tag
templates.globals["money"] = money_tag


# --- the page context -----------------------------------------------------------------------------


class LoginRequired(Exception):
    """No session, or the wallet no longer accepts it: off to the login page."""


@dataclass(frozen=True)
class Page:
    """One web request: who is calling the wallet, and how to answer in HTML."""

    request: Request
    svc: Services
    session: WebSession | None
    caller: Caller

    @property
    def stub(self) -> wallet_pb2_grpc.WalletServiceAsyncStub:
        return self.svc.wallet.stub

    @property
    def user(self) -> WebSession:
        if self.session is None:
            raise LoginRequired
        return self.session

    async def call(
        self, rpc: grpc.aio.UnaryUnaryMultiCallable[RequestT, ResponseT], message: RequestT
    ) -> ResponseT:
        return await self.svc.wallet.call(rpc, message, self.caller)

    def render(self, template: str, status_code: int = 200, /, **context: Any) -> HTMLResponse:
        return render(self.request, self.session, template, status_code, **context)

    async def form(self) -> dict[str, str]:
        """The posted fields of a logged-in form, after the CSRF check (403 and nothing
        done when it fails)."""
        fields = await read_form(self.request)
        self.user.check_csrf(fields.get(CSRF_FIELD, ""))
        return fields

    async def public_form(self) -> dict[str, str]:
        """The posted fields of the login or register form, checked against the
        pre-session cookie."""
        fields = await read_form(self.request)
        check_presession_csrf(self.request, fields.get(CSRF_FIELD, ""))
        return fields


def render(
    request: Request,
    session: WebSession | None,
    template: str,
    status_code: int = 200,
    /,
    **context: Any,
) -> HTMLResponse:
    notice_key = request.query_params.get("notice", "")
    body = templates.get_template(template).render(
        session=session,
        csrf_field=CSRF_FIELD,
        csrf_token=session.csrf_token if session else "",
        request_id=str(getattr(request.state, "request_id", "")),
        notice=NOTICES.get(notice_key, ""),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(body, status_code=status_code)


# Fixed texts for ?notice=... after a redirect (never echoed from the URL).
NOTICES = {
    "registered": "Account created: log in.",
    "logged_out": "You are logged out.",
    "session_expired": "Your session ended: log in again.",
    "password_changed": "Password changed. Every other session was logged out.",
    "account_deleted": "Your account is closed.",
    "deposit": "Deposit successful.",
    "withdraw": "Withdrawal successful.",
    "transfer": "Transfer successful.",
    "reviewed": "Review recorded.",
    "reversed": "Transaction reversed.",
    "frozen": "User frozen.",
    "unfrozen": "User unfrozen.",
    "activated": "Rule set activated.",
    "draft_created": "Draft rule set created.",
    "list_added": "List entry saved.",
    "list_removed": "List entry removed.",
    "retried": "Event queued for delivery.",
}


async def page_of(request: Request) -> Page:
    services = request.app.state.services
    assert isinstance(services, Services)
    session = session_of(request)
    if session is not None and not is_valid_metadata_value(session.authorization):
        session = None
    caller = Caller(
        request_id=str(request.state.request_id),
        authorization=session.authorization if session else None,
        client_ip=client_ip(request),
    )
    return Page(request=request, svc=services, session=session, caller=caller)


async def user_page_of(request: Request) -> Page:
    page = await page_of(request)
    if page.session is None:
        raise LoginRequired
    return page


AnyPage = Annotated[Page, Depends(page_of)]
UserPage = Annotated[Page, Depends(user_page_of)]


# --- forms ----------------------------------------------------------------------------------------

_FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 50


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded body as {name: last value}. Any other body cannot carry the CSRF
    token: refused as one without it."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM_TYPE:
        raise CsrfRejected
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "invalid_body", "The form could not be read") from exc
    return {name: _encodable(value) for name, value in pairs}


def _encodable(value: str) -> str:
    # Percent-escapes may decode to lone surrogates, which protobuf cannot carry.
    return value.encode("utf-8", "replace").decode("utf-8")


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def redirect(url: str) -> RedirectResponse:
    """303 See Other: after a POST the browser GETs the result (reload does not resubmit)."""
    return RedirectResponse(url, status_code=303)


# --- errors ---------------------------------------------------------------------------------------

# Which input an error code is about (the alert is tied to it with aria-describedby).
FIELD_OF_CODE = {
    "invalid_amount": "amount",
    "amount_too_large": "amount",
    "insufficient_funds": "amount",
    "invalid_currency": "currency",
    "unsupported_currency": "currency",
    "invalid_recipient": "to_username",
    "recipient_not_found": "to_username",
    "self_transfer": "to_username",
    "invalid_username": "username",
    "username_taken": "username",
    "invalid_password": "password",
    "weak_password": "password",
    "invalid_email": "email",
    "invalid_time": "since",
    "invalid_note": "note",
    "note_too_long": "note",
    "reason_required": "reason",
}


def field_of(error: ApiError | None) -> str:
    return FIELD_OF_CODE.get(error.code, "") if error else ""


# The wallet's answer may have been lost (unavailable, timed out): the form keeps its
# idempotency key, so sending it again cannot move money twice. Any other error is an
# answer: the next attempt is a new request with a new key.
_RETRY_SAME_KEY = frozenset({503, 504})


def key_after(error: ApiError, key: str) -> str:
    """The idempotency key the re-rendered form carries ("" for a fresh one)."""
    return key if error.status in _RETRY_SAME_KEY else ""


def inline_error(exc: grpc.aio.AioRpcError, *, expired_session: bool = True) -> ApiError:
    """The API's own status, code and message for a failed wallet call, to show beside the
    form. A session the wallet refuses (401) leads to the login page instead."""
    error = from_rpc_error(exc)
    if error is None:
        log.error("unexpected wallet status %s: %s", exc.code().name, exc.details())
        return ApiError(500, "internal", INTERNAL_MESSAGE)
    if error.status == 401 and expired_session:
        raise LoginRequired from exc
    return error


async def attempt(call: Awaitable[T], *, expired_session: bool = True) -> T | ApiError:
    """The call's result, or the error to show inline (a rate limit, or the wallet's)."""
    try:
        return await call
    except ApiError as error:
        return error
    except grpc.aio.AioRpcError as exc:
        return inline_error(exc, expired_session=expired_session)


def _login_redirect(request: Request, notice: str) -> Response:
    response = redirect(f"{LOGIN_PATH}?notice={notice}")
    if request.cookies:
        end_session(response)
    return response


class WebRoute(APIRoute):
    """A page route: whatever goes wrong is answered as an HTML page (or the login page),
    never as the JSON API's error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def web_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                has_session = session_of(request) is not None
                return _login_redirect(request, "session_expired" if has_session else "")
            except CsrfRejected:
                error = ApiError(403, "csrf_failed", "The form expired or did not come from us")
                return _error_page(request, error)
            except grpc.aio.AioRpcError as exc:
                try:
                    return _error_page(request, inline_error(exc))
                except LoginRequired:
                    return _login_redirect(request, "session_expired")
            except ApiError as exc:
                return _error_page(request, exc)
            except RequestValidationError:
                return _error_page(request, ApiError(400, "bad_request", "Invalid request"))

        return web_handler


def _error_page(request: Request, error: ApiError) -> HTMLResponse:
    return render(request, session_of(request), "error.html", error.status, error=error)
