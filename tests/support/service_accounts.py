"""Service-account helpers: create one as an admin, exchange its secret for a token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wallet.v1 import wallet_pb2

from tests.support.grpc_clients import Metadata, Stub, bearer, unique_name


@dataclass(frozen=True)
class ServiceClient:
    """A service account as its owner knows it: the id and the secret shown once."""

    client_id: str
    secret: str
    name: str


def create_service_account(
    stub: Stub, admin: Metadata, scopes: Iterable[str], name: str | None = None
) -> ServiceClient:
    reply = stub.CreateServiceAccount(
        wallet_pb2.CreateServiceAccountRequest(
            name=name or unique_name("svc").lower(), scopes=list(scopes)
        ),
        metadata=admin,
    )
    return ServiceClient(reply.account.id, reply.client_secret, reply.account.name)


def service_token(stub: Stub, client_id: str, secret: str) -> str:
    reply = stub.IssueServiceToken(
        wallet_pb2.IssueServiceTokenRequest(client_id=client_id, client_secret=secret)
    )
    return reply.access_token


def service_auth(stub: Stub, client: ServiceClient) -> Metadata:
    return bearer(service_token(stub, client.client_id, client.secret))
