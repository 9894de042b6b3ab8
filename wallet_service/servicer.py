"""gRPC adapter: requests in, one service call, replies out. No rules, no SQL."""

from __future__ import annotations

import json
from typing import Protocol, TypedDict

import grpc
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from common.records import build
from wallet_service.auth_interceptor import current_service, current_user
from wallet_service.bulk import BatchMode, ItemResult, TransferItem
from wallet_service.errors import InvalidArgument, WalletError
from wallet_service.events import OutboxEntry, OutboxStatus
from wallet_service.grpc_errors import status_name
from wallet_service.models import MovementOutcome, Transaction, User, iso_utc
from wallet_service.on_behalf import OnBehalf
from wallet_service.outbox_admin import OutboxAdmin
from wallet_service.service import ListFilters, Page, WalletService
from wallet_service.service_account_servicer import ServiceAccountMethods

Context = grpc.ServicerContext


class WalletServicer(ServiceAccountMethods, wallet_pb2_grpc.WalletServiceServicer):
    def __init__(self, service: WalletService) -> None:
        self._service = service
        self._accounts = service.service_accounts
        self._for = OnBehalf(service)
        self._money = service.currencies
        self._outbox = OutboxAdmin(service.store)

    def Register(
        self, request: wallet_pb2.RegisterRequest, context: Context
    ) -> wallet_pb2.RegisterResponse:
        user = self._service.register(
            username=request.username, password=request.password, email=request.email
        )
        return wallet_pb2.RegisterResponse(user=_user(user))

    def Login(self, request: wallet_pb2.LoginRequest, context: Context) -> wallet_pb2.LoginResponse:
        token, ttl = self._service.login(username=request.username, password=request.password)
        return wallet_pb2.LoginResponse(access_token=token, token_type="Bearer", expires_in=ttl)

    def GetBalance(
        self, request: wallet_pb2.GetBalanceRequest, context: Context
    ) -> wallet_pb2.Balance:
        caller = current_user()
        currency = request.currency or "USD"
        minor = self._service.balance(caller, currency)
        return wallet_pb2.Balance(
            username=caller.username,
            currency=currency,
            balance=self._money.format_minor(minor, currency),
        )

    def ListBalances(
        self, request: wallet_pb2.ListBalancesRequest, context: Context
    ) -> wallet_pb2.ListBalancesResponse:
        caller = current_user()
        balances = [
            wallet_pb2.Balance(
                username=caller.username, currency=currency, balance=self._format(minor, currency)
            )
            for currency, minor in self._service.balances(caller)
        ]
        return wallet_pb2.ListBalancesResponse(username=caller.username, balances=balances)

    def Deposit(
        self, request: wallet_pb2.DepositRequest, context: Context
    ) -> wallet_pb2.MovementResponse:
        return self._movement(self._service.deposit(current_user(), **_money(request)))

    def Withdraw(
        self, request: wallet_pb2.WithdrawRequest, context: Context
    ) -> wallet_pb2.MovementResponse:
        return self._movement(self._service.withdraw(current_user(), **_money(request)))

    def Transfer(
        self, request: wallet_pb2.TransferRequest, context: Context
    ) -> wallet_pb2.MovementResponse:
        outcome = self._service.transfer(
            current_user(), to_username=request.to_username, **_money(request)
        )
        return self._movement(outcome)

    def ListTransactions(
        self, request: wallet_pb2.ListTransactionsRequest, context: Context
    ) -> wallet_pb2.ListTransactionsResponse:
        filters = build(ListFilters, request)
        return self._page(self._service.list_transactions(current_user(), filters))

    def GetTransaction(
        self, request: wallet_pb2.GetTransactionRequest, context: Context
    ) -> wallet_pb2.Transaction:
        return self._tx(self._service.get_transaction(current_user(), request.transaction_id))

    def DeleteAccount(
        self, request: wallet_pb2.DeleteAccountRequest, context: Context
    ) -> wallet_pb2.User:
        return _user(self._service.delete_account(current_user()))

    def ListFlaggedTransactions(
        self, request: wallet_pb2.ListFlaggedTransactionsRequest, context: Context
    ) -> wallet_pb2.ListTransactionsResponse:
        return self._page(
            self._service.list_flagged(
                current_user(),
                limit=request.limit,
                cursor=request.cursor,
                review_status=request.review_status,
                include_deleted=request.include_deleted,
            )
        )

    def ReviewTransaction(
        self, request: wallet_pb2.ReviewTransactionRequest, context: Context
    ) -> wallet_pb2.Transaction:
        return self._tx(
            self._service.review(
                current_user(),
                tx_id=request.transaction_id,
                resolution=request.resolution,
                note=request.note,
                freeze=request.freeze,
                snooze_days=request.snooze_days,
            )
        )

    def ReverseTransaction(
        self, request: wallet_pb2.ReverseTransactionRequest, context: Context
    ) -> wallet_pb2.MovementResponse:
        return self._movement(
            self._service.reverse(
                current_user(),
                tx_id=request.transaction_id,
                reason=request.reason,
                key=request.idempotency_key,
            )
        )

    def DeleteTransaction(
        self, request: wallet_pb2.DeleteTransactionRequest, context: Context
    ) -> wallet_pb2.Transaction:
        return self._tx(self._service.delete_transaction(current_user(), request.transaction_id))

    def DeleteUser(
        self, request: wallet_pb2.DeleteUserRequest, context: Context
    ) -> wallet_pb2.User:
        return _user(self._service.delete_user(current_user(), request.username))

    def ChangePassword(
        self, request: wallet_pb2.ChangePasswordRequest, context: Context
    ) -> wallet_pb2.LoginResponse:
        token, ttl = self._service.change_password(
            current_user(),
            current_password=request.current_password,
            new_password=request.new_password,
        )
        return wallet_pb2.LoginResponse(access_token=token, token_type="Bearer", expires_in=ttl)

    def LogoutAll(
        self, request: wallet_pb2.LogoutAllRequest, context: Context
    ) -> wallet_pb2.LogoutAllResponse:
        self._service.logout_all(current_user())
        return wallet_pb2.LogoutAllResponse()

    def FreezeUser(
        self, request: wallet_pb2.FreezeUserRequest, context: Context
    ) -> wallet_pb2.User:
        user = self._service.freeze_user(
            current_user(), username=request.username, reason=request.reason
        )
        return _user(user)

    def UnfreezeUser(
        self, request: wallet_pb2.UnfreezeUserRequest, context: Context
    ) -> wallet_pb2.User:
        return _user(self._service.unfreeze_user(current_user(), username=request.username))

    def BacktestRuleSet(
        self, request: wallet_pb2.BacktestRuleSetRequest, context: Context
    ) -> wallet_pb2.BacktestRuleSetResponse:
        report = self._service.backtest_rule_set(
            current_user(),
            version=request.version,
            since=request.since,
            until=request.until,
            timeout_seconds=context.time_remaining(),
        )
        rules = [build(wallet_pb2.BacktestRuleCounts, r) for r in report.rules]
        return build(
            wallet_pb2.BacktestRuleSetResponse,
            report,
            since=request.since,
            until=request.until,
            rules=rules,
        )

    # -- the event outbox (admin) --------------------------------------------------------

    def ListOutboxEvents(
        self, request: wallet_pb2.ListOutboxEventsRequest, context: Context
    ) -> wallet_pb2.ListOutboxEventsResponse:
        page = self._outbox.list_events(
            current_user(), status=request.status, limit=request.limit, cursor=request.cursor
        )
        return wallet_pb2.ListOutboxEventsResponse(
            events=[_outbox_event(e) for e in page.events], next_cursor=page.next_cursor
        )

    def OutboxCounts(
        self, request: wallet_pb2.OutboxCountsRequest, context: Context
    ) -> wallet_pb2.OutboxCountsResponse:
        counts = self._outbox.counts(current_user())
        return wallet_pb2.OutboxCountsResponse(
            pending=counts[OutboxStatus.PENDING],
            sent=counts[OutboxStatus.SENT],
            dead=counts[OutboxStatus.DEAD],
        )

    def RetryDeadEvent(
        self, request: wallet_pb2.RetryDeadEventRequest, context: Context
    ) -> wallet_pb2.OutboxEvent:
        return _outbox_event(self._outbox.retry_dead(current_user(), request.event_id))

    def SetEmail(self, request: wallet_pb2.SetEmailRequest, context: Context) -> wallet_pb2.User:
        return _user(self._service.set_email(current_user(), request.email))

    # -- on behalf of a user (service tokens only; the scope is checked by OnBehalf) -------

    def DepositFor(
        self, request: wallet_pb2.DepositForRequest, context: Context
    ) -> wallet_pb2.MovementResponse:
        outcome = self._for.deposit(current_service(), username=request.username, **_money(request))
        return self._movement(outcome)

    def WithdrawFor(
        self, request: wallet_pb2.WithdrawForRequest, context: Context
    ) -> wallet_pb2.MovementResponse:
        outcome = self._for.withdraw(
            current_service(), username=request.username, **_money(request)
        )
        return self._movement(outcome)

    def TransferFor(
        self, request: wallet_pb2.TransferForRequest, context: Context
    ) -> wallet_pb2.MovementResponse:
        outcome = self._for.transfer(
            current_service(),
            username=request.username,
            to_username=request.to_username,
            **_money(request),
        )
        return self._movement(outcome)

    def GetBalanceFor(
        self, request: wallet_pb2.GetBalanceForRequest, context: Context
    ) -> wallet_pb2.Balance:
        currency = request.currency or "USD"
        user, minor = self._for.balance(
            current_service(), username=request.username, currency=currency
        )
        return wallet_pb2.Balance(
            username=user.username, currency=currency, balance=self._format(minor, currency)
        )

    def ListTransactionsFor(
        self, request: wallet_pb2.ListTransactionsForRequest, context: Context
    ) -> wallet_pb2.ListTransactionsResponse:
        # A service sees the user's own live history: no deleted rows, no other user.
        filters = build(ListFilters, request, include_deleted=False, username="")
        page = self._for.transactions(current_service(), username=request.username, filters=filters)
        return self._page(page)

    # -- reply builders -------------------------------------------------------------------

    def _format(self, minor: int, currency: str) -> str:
        return self._money.format_minor(minor, currency)

    def CreateTransfers(
        self, request: wallet_pb2.CreateTransfersRequest, context: Context
    ) -> wallet_pb2.CreateTransfersResponse:
        results = self._service.create_transfers(
            current_user(),
            items=[
                TransferItem(
                    to_username=i.to_username,
                    amount=i.amount,
                    currency=i.currency,
                    key=i.idempotency_key,
                )
                for i in request.items
            ],
            mode=_batch_mode(request.mode),
        )
        replies = [self._item_result(index, r) for index, r in enumerate(results)]
        failed = sum(1 for r in results if isinstance(r, WalletError))
        return wallet_pb2.CreateTransfersResponse(
            results=replies, succeeded=len(results) - failed, failed=failed
        )

    def _item_result(self, index: int, result: ItemResult) -> wallet_pb2.TransferItemResult:
        if isinstance(result, WalletError):
            return wallet_pb2.TransferItemResult(
                index=index,
                error_status=status_name(result),
                error_code=result.code,
                error_message=result.message,
                transaction_id=result.details.get("transaction_id", ""),
            )
        return wallet_pb2.TransferItemResult(
            index=index,
            movement=self._movement(result),
            transaction_id=result.transaction.id,
        )

    def _movement(self, outcome: MovementOutcome) -> wallet_pb2.MovementResponse:
        tx = outcome.transaction
        return wallet_pb2.MovementResponse(
            transaction=self._tx(tx),
            balance=self._format(outcome.balance_after_minor, tx.currency),
            replayed=outcome.replayed,
        )

    def _page(self, page: Page) -> wallet_pb2.ListTransactionsResponse:
        return wallet_pb2.ListTransactionsResponse(
            transactions=[self._tx(t) for t in page.transactions], next_cursor=page.next_cursor
        )

    def _tx(self, tx: Transaction) -> wallet_pb2.Transaction:
        verdict = tx.verdict
        return wallet_pb2.Transaction(
            id=tx.id,
            type=tx.type.value,
            status=tx.status.value,
            from_user=tx.from_username or "",
            to_user=tx.to_username or "",
            amount=self._format(tx.amount_minor, tx.currency),
            currency=tx.currency,
            created_at=iso_utc(tx.created_at),
            flagged=tx.flagged,
            deleted=tx.deleted_at is not None,
            fraud_score=verdict.score if verdict else 0,
            fraud_decision=verdict.decision.value if verdict else "",
            fraud_reasons=[
                wallet_pb2.FraudReason(rule_id=r.rule_id, description=r.description)
                for r in (verdict.reasons if verdict else ())
            ],
            fraud_rules_version=verdict.rules_version if verdict else "",
            review_status=tx.review_status.value if tx.review_status else "",
            reviewed_by=tx.reviewed_by or "",
            reviewed_at=iso_utc(tx.reviewed_at),
            review_note=tx.review_note or "",
            reverses_transaction_id=tx.reverses_transaction_id or "",
            reversed_by_transaction_id=tx.reversed_by_transaction_id or "",
            note=tx.note or "",
            initiated_by_service=tx.initiated_by_service or "",
        )


class _MoneyRequest(Protocol):
    amount: str
    currency: str
    idempotency_key: str


class _MoneyArgs(TypedDict):
    amount: str
    currency: str
    key: str


def _money(request: _MoneyRequest) -> _MoneyArgs:
    """What every deposit, withdrawal and transfer request carries, as the use cases name it
    (the user's own and the ...For ones alike)."""
    return {"amount": request.amount, "currency": request.currency, "key": request.idempotency_key}


def _user(user: User) -> wallet_pb2.User:
    return wallet_pb2.User(
        id=user.id,
        username=user.username,
        role=user.role.value,
        created_at=iso_utc(user.created_at),
        deleted=user.is_deleted,
        frozen=user.is_frozen,
        frozen_at=iso_utc(user.frozen_at),
        frozen_by=user.frozen_by or "",
        frozen_reason=user.frozen_reason or "",
        email=user.email or "",
    )


def _outbox_event(entry: OutboxEntry) -> wallet_pb2.OutboxEvent:
    event = entry.event
    return wallet_pb2.OutboxEvent(
        id=event.id,
        type=event.type.value,
        status=entry.status.value,
        attempts=entry.attempts,
        created_at=iso_utc(event.created_at),
        next_attempt_at=iso_utc(entry.next_attempt_at),
        sent_at=iso_utc(entry.sent_at),
        last_error=entry.last_error or "",
        delivered_to=sorted(entry.delivered_to),
        data_json=json.dumps(event.data, sort_keys=True),
    )


_BATCH_MODES = {wallet_pb2.INDEPENDENT: BatchMode.INDEPENDENT, wallet_pb2.ATOMIC: BatchMode.ATOMIC}


def _batch_mode(mode: wallet_pb2.BatchMode.ValueType) -> BatchMode:
    if mode not in _BATCH_MODES:
        raise InvalidArgument("invalid_batch_mode", "mode must be INDEPENDENT or ATOMIC")
    return _BATCH_MODES[mode]
