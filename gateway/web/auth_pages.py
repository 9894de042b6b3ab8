"""Log in, register, log out, and the home page (balances)."""

from __future__ import annotations

from contextlib import suppress

import grpc
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from wallet.v1 import wallet_pb2

from gateway.deps import limit_login, limit_register
from gateway.errors import ApiError
from gateway.wallet_client import Caller
from gateway.web.pages import (
    LOGIN_PATH,
    AnyPage,
    Page,
    UserPage,
    WebRoute,
    attempt,
    field_of,
    redirect,
)
from gateway.web.session import (
    end_session,
    presession_token,
    presession_value,
    set_presession,
    start_session,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _public_form(
    page: Page, template: str, status: int = 200, error: ApiError | None = None, **values: str
) -> HTMLResponse:
    """The login or register form with a pre-session CSRF token (the cookie set if new)."""
    value, is_new = presession_value(page.request)
    response = page.render(
        template,
        status,
        form_token=presession_token(value),
        error=error,
        error_field=field_of(error),
        **values,
    )
    if is_new:
        set_presession(page.request, response, value)
    return response


@router.get("/app")
async def app_root() -> Response:
    return redirect("/")


@router.get("/")
async def home(page: AnyPage) -> Response:
    if page.session is None:
        return redirect(LOGIN_PATH)
    reply = await page.call(page.stub.ListBalances, wallet_pb2.ListBalancesRequest())
    return page.render("home.html", username=reply.username, balances=list(reply.balances))


@router.get("/app/login")
async def login_form(page: AnyPage) -> Response:
    return _public_form(page, "login.html", username="")


@router.post("/app/login")
async def login(page: AnyPage) -> Response:
    fields = await page.public_form()
    username, password = fields.get("username", ""), fields.get("password", "")

    async def log_in() -> wallet_pb2.LoginResponse:
        await limit_login(page.svc, page.caller, username)
        request = wallet_pb2.LoginRequest(username=username, password=password)
        return await page.call(page.stub.Login, request)

    reply = await attempt(log_in(), expired_session=False)
    if isinstance(reply, ApiError):
        return _public_form(page, "login.html", reply.status, reply, username=username)
    is_admin = await _is_admin(page, f"Bearer {reply.access_token}")
    return logged_in(page, "/", reply, is_admin=is_admin)


def logged_in(page: Page, url: str, reply: wallet_pb2.LoginResponse, *, is_admin: bool) -> Response:
    """A redirect to `url` that starts the session on the wallet's new token."""
    response = redirect(url)
    start_session(
        page.request,
        response,
        token=reply.access_token,
        expires_in=reply.expires_in,
        is_admin=is_admin,
    )
    return response


async def _is_admin(page: Page, authorization: str) -> bool:
    """Whether to show the admin menu: the wallet answers an admin-only read (it checks the
    role on every admin call, so this only decides what the menu offers)."""
    caller = Caller(
        request_id=page.caller.request_id,
        authorization=authorization,
        client_ip=page.caller.client_ip,
    )
    probe = wallet_pb2.ListFlaggedTransactionsRequest(limit=1, review_status="pending")
    try:
        await page.svc.wallet.call(page.stub.ListFlaggedTransactions, probe, caller)
    except grpc.aio.AioRpcError:
        return False
    return True


@router.get("/app/register")
async def register_form(page: AnyPage) -> Response:
    return _public_form(page, "register.html", username="", email="")


@router.post("/app/register")
async def register(page: AnyPage) -> Response:
    fields = await page.public_form()
    username, email = fields.get("username", ""), fields.get("email", "")
    request = wallet_pb2.RegisterRequest(
        username=username, password=fields.get("password", ""), email=email
    )

    async def sign_up() -> wallet_pb2.RegisterResponse:
        await limit_register(page.svc, page.caller)
        return await page.call(page.stub.Register, request)

    reply = await attempt(sign_up(), expired_session=False)
    if isinstance(reply, ApiError):
        return _public_form(
            page, "register.html", reply.status, reply, username=username, email=email
        )
    return redirect(f"{LOGIN_PATH}?notice=registered")


@router.post("/app/logout")
async def logout(page: UserPage) -> Response:
    """Ends every session of the user at the wallet (its LogoutAll), then drops the cookie."""
    await page.form()
    # An already expired or revoked session: logged out all the same.
    with suppress(grpc.aio.AioRpcError):
        await page.call(page.stub.LogoutAll, wallet_pb2.LogoutAllRequest())
    response = redirect(f"{LOGIN_PATH}?notice=logged_out")
    end_session(response)
    return response
