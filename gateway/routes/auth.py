"""Register, log in, change the password, log out everywhere."""

from __future__ import annotations

from wallet.v1 import wallet_pb2

from gateway import schemas as s
from gateway.deps import AuthCaller, PublicCaller, ServicesDep, limit_login, limit_register
from gateway.routes import wallet_router

router = wallet_router("auth")


@router.post("/register", status_code=201)
async def register(body: s.RegisterIn, caller: PublicCaller, svc: ServicesDep) -> s.RegisterOut:
    await limit_register(svc, caller)
    request = wallet_pb2.RegisterRequest(
        username=body.username, password=body.password, email=body.email or ""
    )
    reply = await svc.wallet.call(svc.wallet.stub.Register, request, caller)
    return s.RegisterOut(msg="User registered", user=s.UserOut.from_proto(reply.user))


@router.post("/login")
async def login(body: s.CredentialsIn, caller: PublicCaller, svc: ServicesDep) -> s.LoginOut:
    await limit_login(svc, caller, body.username)
    request = wallet_pb2.LoginRequest(username=body.username, password=body.password)
    reply = await svc.wallet.call(svc.wallet.stub.Login, request, caller)
    return s.LoginOut.from_proto(reply)


@router.post("/me/password")
async def change_password(
    body: s.PasswordChangeIn, caller: AuthCaller, svc: ServicesDep
) -> s.LoginOut:
    """Needs the current password; every older token stops working, the new one answered
    here keeps the caller logged in."""
    request = wallet_pb2.ChangePasswordRequest(
        current_password=body.current_password, new_password=body.new_password
    )
    reply = await svc.wallet.call(svc.wallet.stub.ChangePassword, request, caller)
    return s.LoginOut.from_proto(reply)


@router.post("/logout")
async def logout(caller: AuthCaller, svc: ServicesDep) -> s.MessageOut:
    """Log out everywhere: every token of the caller, this one included, stops working."""
    await svc.wallet.call(svc.wallet.stub.LogoutAll, wallet_pb2.LogoutAllRequest(), caller)
    return s.MessageOut(msg="Logged out everywhere")
