"""gRPC adapter of the service-account RPCs (a part of WalletServicer): requests in, one
call of wallet_service.service_accounts, replies out."""

from __future__ import annotations

import grpc
from wallet.v1 import wallet_pb2

from wallet_service.auth_interceptor import current_user
from wallet_service.models import ServiceAccount, iso_utc
from wallet_service.service_accounts import IssuedSecret, ServiceAccounts

Context = grpc.ServicerContext


class ServiceAccountMethods:
    _accounts: ServiceAccounts

    def CreateServiceAccount(
        self, request: wallet_pb2.CreateServiceAccountRequest, context: Context
    ) -> wallet_pb2.ServiceAccountSecret:
        issued = self._accounts.create(
            current_user(), name=request.name, scopes=list(request.scopes)
        )
        return _secret(issued)

    def ListServiceAccounts(
        self, request: wallet_pb2.ListServiceAccountsRequest, context: Context
    ) -> wallet_pb2.ListServiceAccountsResponse:
        accounts = self._accounts.list(current_user())
        return wallet_pb2.ListServiceAccountsResponse(accounts=[_account(a) for a in accounts])

    def RotateServiceAccountSecret(
        self, request: wallet_pb2.RotateServiceAccountSecretRequest, context: Context
    ) -> wallet_pb2.ServiceAccountSecret:
        issued = self._accounts.rotate(
            current_user(), account_id=request.id, grace_seconds=request.grace_seconds
        )
        return _secret(issued)

    def DisableServiceAccount(
        self, request: wallet_pb2.DisableServiceAccountRequest, context: Context
    ) -> wallet_pb2.ServiceAccount:
        return _account(self._accounts.disable(current_user(), account_id=request.id))

    def IssueServiceToken(
        self, request: wallet_pb2.IssueServiceTokenRequest, context: Context
    ) -> wallet_pb2.IssueServiceTokenResponse:
        token, ttl, scopes = self._accounts.issue_token(
            client_id=request.client_id, client_secret=request.client_secret
        )
        return wallet_pb2.IssueServiceTokenResponse(
            access_token=token, token_type="Bearer", expires_in=ttl, scope=" ".join(sorted(scopes))
        )


def _secret(issued: IssuedSecret) -> wallet_pb2.ServiceAccountSecret:
    return wallet_pb2.ServiceAccountSecret(
        account=_account(issued.account), client_secret=issued.secret
    )


def _account(account: ServiceAccount) -> wallet_pb2.ServiceAccount:
    return wallet_pb2.ServiceAccount(
        id=account.id,
        name=account.name,
        scopes=sorted(account.scopes),
        created_at=iso_utc(account.created_at),
        created_by=account.created_by,
        disabled=account.is_disabled,
        disabled_at=iso_utc(account.disabled_at),
        previous_secret_valid_until=iso_utc(account.previous_secret_expires_at),
    )
