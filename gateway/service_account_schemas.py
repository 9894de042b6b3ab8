"""REST shapes of service accounts and the OAuth 2.0 client-credentials grant."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field
from wallet.v1 import wallet_pb2

from gateway.schemas import ProtoOut, StrictRequestBody

MAX_GRACE_SECONDS = 30 * 24 * 3600  # the wallet's bound, stated here so OpenAPI says it
MAX_CREDENTIAL_CHARS = 256


class ServiceAccountIn(StrictRequestBody):
    name: str = Field(min_length=1, max_length=64)
    scopes: list[str] = Field(min_length=1, max_length=16)


class RotateIn(StrictRequestBody):
    grace_seconds: int = Field(default=86400, ge=0, le=MAX_GRACE_SECONDS)


class TokenIn(BaseModel):
    """RFC 6749 section 4.4: client_credentials, client authentication in the body."""

    grant_type: str = Field(max_length=64)
    client_id: str = Field(max_length=MAX_CREDENTIAL_CHARS)
    client_secret: str = Field(max_length=MAX_CREDENTIAL_CHARS)
    scope: str = Field(default="", max_length=512)  # accepted; the account's scopes are granted


class ServiceAccountOut(ProtoOut):
    id: str
    name: str
    scopes: list[str]
    created_at: str
    created_by: str
    disabled: bool
    disabled_at: str
    previous_secret_valid_until: str


class ServiceAccountSecretOut(BaseModel):
    msg: str
    account: ServiceAccountOut
    client_secret: str  # shown once

    @classmethod
    def from_proto(cls, msg: str, reply: wallet_pb2.ServiceAccountSecret) -> Self:
        return cls(
            msg=msg,
            account=ServiceAccountOut.from_proto(reply.account),
            client_secret=reply.client_secret,
        )


class ServiceAccountListOut(BaseModel):
    accounts: list[ServiceAccountOut]


class TokenOut(ProtoOut):
    access_token: str
    token_type: str
    expires_in: int
    scope: str
