"""REST request and response shapes, so /openapi.json says exactly what goes over the wire.

Request bodies are parsed by `gateway.deps.ExactJSONRoute`: JSON numbers become `Decimal`,
never float, so `10.10` reaches the wallet as the string "10.10". The gateway checks types
(and the contract's lengths, common.limits); the wallet decides whether an amount or
currency is acceptable.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator
from wallet.v1 import wallet_pb2

from common.limits import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_NOTE_LENGTH

# --- amounts -------------------------------------------------------------------------------------

# Longest amount text forwarded; also keeps `1e999999999` from expanding into a huge string.
MAX_AMOUNT_CHARS = 64


def _amount_text(value: object) -> str:
    """A JSON string passes as is; a JSON number becomes its exact fixed-point text."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, Decimal | int) and not isinstance(value, bool):
        text = _fixed_point(Decimal(value))
    else:
        raise ValueError("must be a decimal string or a JSON number")
    if len(text) > MAX_AMOUNT_CHARS:
        raise ValueError(f"must be at most {MAX_AMOUNT_CHARS} characters")
    return text


def _fixed_point(number: Decimal) -> str:
    if not number.is_finite():
        raise ValueError("must be a finite number")
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    if len(digits) + abs(exponent) > MAX_AMOUNT_CHARS:  # check before expanding
        raise ValueError(f"must be at most {MAX_AMOUNT_CHARS} characters")
    return format(number, "f")


Amount = Annotated[
    str,
    BeforeValidator(_amount_text),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "number"}],
            "description": 'Decimal amount, e.g. "12.50" (a JSON number is read exactly).',
            "examples": ["12.50"],
        }
    ),
]

# --- requests -----------------------------------------------------------------------------------


class RequestBody(BaseModel):
    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        # JSON may carry lone surrogates ("\ud800") that protobuf cannot encode.
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError("text must be valid Unicode") from exc
        return value


class StrictRequestBody(RequestBody):
    """Money and admin bodies: an unknown field is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class CredentialsIn(RequestBody):
    username: str
    password: str


class RegisterIn(CredentialsIn):
    email: str | None = Field(
        default=None,
        description="Optional: your own notification address (transfer.received is mailed "
        "there); never shown to other users",
    )


class PasswordChangeIn(StrictRequestBody):
    current_password: str
    new_password: str


class MovementIn(StrictRequestBody):
    amount: Amount
    currency: str = "USD"


class TransferIn(MovementIn):
    to_username: str


class BatchItemIn(StrictRequestBody):
    to_username: str
    amount: Amount
    currency: str = "USD"
    idempotency_key: str = Field(max_length=MAX_IDEMPOTENCY_KEY_LENGTH)


class TransferBatchIn(StrictRequestBody):
    """Up to 1,000 transfers (the wallet refuses more, an empty list and repeated keys)."""

    mode: Literal["independent", "atomic"]
    items: list[BatchItemIn]


class ReviewIn(StrictRequestBody):
    resolution: Literal["cleared", "confirmed_fraud"]
    note: str = ""
    freeze: bool = Field(
        default=False,
        description="confirmed_fraud only: also freeze the user who initiated the transaction",
    )
    snooze_days: int = Field(
        default=0,
        ge=0,
        le=365,
        description="cleared only: snooze the rules that hit for the initiator, N days",
    )


class FreezeIn(StrictRequestBody):
    reason: str = Field(min_length=1, max_length=MAX_NOTE_LENGTH)


class ReverseIn(StrictRequestBody):
    reason: str = ""


# --- responses ----------------------------------------------------------------------------------


def _or_none(text: str) -> str | None:
    return text or None


class ErrorDetail(BaseModel):
    code: str = Field(examples=["insufficient_funds"])
    message: str = Field(examples=["Insufficient funds"])
    request_id: str


class ErrorOut(BaseModel):
    msg: str
    error: ErrorDetail


class MessageOut(BaseModel):
    msg: str


class StatusOut(BaseModel):
    status: str


class UserOut(BaseModel):
    id: str
    username: str
    created_at: str

    @classmethod
    def from_proto(cls, user: wallet_pb2.User) -> Self:
        return cls(id=user.id, username=user.username, created_at=user.created_at)


class AdminUserOut(UserOut):
    """A user as admins see it: with the freeze (who, when, why)."""

    deleted: bool
    frozen: bool
    frozen_at: str | None
    frozen_by: str | None
    frozen_reason: str | None

    @classmethod
    def from_proto(cls, user: wallet_pb2.User) -> Self:
        return cls(
            id=user.id,
            username=user.username,
            created_at=user.created_at,
            deleted=user.deleted,
            frozen=user.frozen,
            frozen_at=_or_none(user.frozen_at),
            frozen_by=_or_none(user.frozen_by),
            frozen_reason=_or_none(user.frozen_reason),
        )


class AdminUserResultOut(BaseModel):
    msg: str
    user: AdminUserOut


class RegisterOut(BaseModel):
    msg: str
    user: UserOut


class UserResultOut(BaseModel):
    msg: str
    user: UserOut


class EmailIn(StrictRequestBody):
    email: str = Field(max_length=254, description='Where your notifications go; "" clears it')


class OwnUserOut(UserOut):
    """The caller's own record: with the email only they (and admins) see."""

    email: str | None

    @classmethod
    def from_proto(cls, user: wallet_pb2.User) -> Self:
        return cls(
            id=user.id,
            username=user.username,
            created_at=user.created_at,
            email=_or_none(user.email),
        )


class OwnUserResultOut(BaseModel):
    msg: str
    user: OwnUserOut


class LoginOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int

    @classmethod
    def from_proto(cls, reply: wallet_pb2.LoginResponse) -> Self:
        return cls(
            access_token=reply.access_token,
            token_type=reply.token_type or "Bearer",
            expires_in=reply.expires_in,
        )


class BalanceOut(BaseModel):
    username: str
    currency: str
    balance: str

    @classmethod
    def from_proto(cls, balance: wallet_pb2.Balance) -> Self:
        return cls(username=balance.username, currency=balance.currency, balance=balance.balance)


class CurrencyBalanceOut(BaseModel):
    currency: str
    balance: str


class BalancesOut(BaseModel):
    username: str
    balances: list[CurrencyBalanceOut]

    @classmethod
    def from_proto(cls, reply: wallet_pb2.ListBalancesResponse) -> Self:
        items = [CurrencyBalanceOut(currency=b.currency, balance=b.balance) for b in reply.balances]
        return cls(username=reply.username, balances=items)


class MovementOut(BaseModel):
    msg: str
    transaction_id: str
    flagged: bool
    balance: str
    replayed: bool

    @classmethod
    def from_proto(cls, msg: str, reply: wallet_pb2.MovementResponse) -> Self:
        return cls(
            msg=msg,
            transaction_id=reply.transaction.id,
            flagged=reply.transaction.flagged,
            balance=reply.balance,
            replayed=reply.replayed,
        )


class BatchItemError(BaseModel):
    status: int = Field(examples=[422])  # the HTTP status POST /transfer would have answered
    code: str = Field(examples=["insufficient_funds"])
    message: str


class BatchItemOut(BaseModel):
    index: int
    ok: bool
    transaction_id: str | None  # also a blocked item's rejected transaction
    flagged: bool | None
    balance: str | None
    replayed: bool | None
    error: BatchItemError | None

    @classmethod
    def from_proto(cls, result: wallet_pb2.TransferItemResult, http_status: int) -> Self:
        if result.error_code:
            error = BatchItemError(
                status=http_status, code=result.error_code, message=result.error_message
            )
            tx_id = result.transaction_id or None
            return cls(
                index=result.index,
                ok=False,
                transaction_id=tx_id,
                flagged=None,
                balance=None,
                replayed=None,
                error=error,
            )
        movement = result.movement
        return cls(
            index=result.index,
            ok=True,
            transaction_id=movement.transaction.id,
            flagged=movement.transaction.flagged,
            balance=movement.balance,
            replayed=movement.replayed,
            error=None,
        )


class TransferBatchOut(BaseModel):
    msg: str
    succeeded: int
    failed: int
    results: list[BatchItemOut]


class TransactionOut(BaseModel):
    tx_id: str
    from_user: str | None
    to_user: str | None
    amount: str
    currency: str
    tx_type: str
    status: str
    timestamp: str
    flagged: bool
    deleted: bool

    @classmethod
    def from_proto(cls, tx: wallet_pb2.Transaction) -> Self:
        return cls(**_transaction_fields(tx))


def _transaction_fields(tx: wallet_pb2.Transaction) -> dict[str, Any]:
    return {
        "tx_id": tx.id,
        "from_user": _or_none(tx.from_user),
        "to_user": _or_none(tx.to_user),
        "amount": tx.amount,
        "currency": tx.currency,
        "tx_type": tx.type,
        "status": tx.status,
        "timestamp": tx.created_at,
        "flagged": tx.flagged,
        "deleted": tx.deleted,
    }


class FraudReasonOut(BaseModel):
    rule_id: str
    description: str


class AdminTransactionOut(TransactionOut):
    """A transaction as admins see it: with its fraud assessment and review."""

    fraud_score: int
    fraud_decision: str | None
    fraud_reasons: list[FraudReasonOut]
    # The fraud rule-set version that decided ("3"), so a decision can be audited.
    fraud_rules_version: str | None
    review_status: str | None
    reviewed_by: str | None
    reviewed_at: str | None
    review_note: str | None

    @classmethod
    def from_proto(cls, tx: wallet_pb2.Transaction) -> Self:
        reasons = [
            FraudReasonOut(rule_id=r.rule_id, description=r.description) for r in tx.fraud_reasons
        ]
        return cls(
            **_transaction_fields(tx),
            fraud_score=tx.fraud_score,
            fraud_decision=_or_none(tx.fraud_decision),
            fraud_reasons=reasons,
            fraud_rules_version=_or_none(tx.fraud_rules_version),
            review_status=_or_none(tx.review_status),
            reviewed_by=_or_none(tx.reviewed_by),
            reviewed_at=_or_none(tx.reviewed_at),
            review_note=_or_none(tx.review_note),
        )


class TransactionListOut(BaseModel):
    transactions: list[TransactionOut]
    next_cursor: str | None

    @classmethod
    def from_proto(cls, reply: wallet_pb2.ListTransactionsResponse) -> Self:
        items = [TransactionOut.from_proto(tx) for tx in reply.transactions]
        return cls(transactions=items, next_cursor=_or_none(reply.next_cursor))


class FlaggedListOut(BaseModel):
    transactions: list[AdminTransactionOut]
    next_cursor: str | None

    @classmethod
    def from_proto(cls, reply: wallet_pb2.ListTransactionsResponse) -> Self:
        items = [AdminTransactionOut.from_proto(tx) for tx in reply.transactions]
        return cls(transactions=items, next_cursor=_or_none(reply.next_cursor))


class AdminTransactionResultOut(BaseModel):
    msg: str
    transaction: AdminTransactionOut
