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


def _or_none(text: str | None) -> str | None:
    return text or None


# A proto string where "" means "none": null on the REST side.
OptionalText = Annotated[str | None, BeforeValidator(_or_none)]


class ProtoOut(BaseModel):
    """A response shape read from a wallet or fraud reply field by field, by name (pydantic's
    `from_attributes`): a field the proto names otherwise says so with `validation_alias`,
    an empty proto string meaning "none" is `OptionalText`, nested shapes read their own
    messages. What the reply does not carry (a message, a computed part) comes as keywords."""

    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)

    @classmethod
    def from_proto(cls, message: Any, /, **values: object) -> Self:
        return cls.model_validate(_Overlay(message, values) if values else message)


class _Overlay:
    """`message`'s attributes, except those given in `values`."""

    def __init__(self, message: object, values: dict[str, object]) -> None:
        self._message = message
        self._values = values

    def __getattr__(self, name: str) -> object:
        if name in self._values:
            return self._values[name]
        return getattr(self._message, name)


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


class UserOut(ProtoOut):
    id: str
    username: str
    created_at: str


class AdminUserOut(UserOut):
    """A user as admins see it: with the freeze (who, when, why)."""

    deleted: bool
    frozen: bool
    frozen_at: OptionalText
    frozen_by: OptionalText
    frozen_reason: OptionalText


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

    email: OptionalText


class OwnUserResultOut(BaseModel):
    msg: str
    user: OwnUserOut


def _bearer_by_default(token_type: str) -> str:
    return token_type or "Bearer"


class LoginOut(ProtoOut):
    access_token: str
    token_type: Annotated[str, BeforeValidator(_bearer_by_default)]
    expires_in: int


class BalanceOut(ProtoOut):
    username: str
    currency: str
    balance: str


class CurrencyBalanceOut(ProtoOut):
    currency: str
    balance: str


class BalancesOut(ProtoOut):
    username: str
    balances: list[CurrencyBalanceOut]


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
        """The movement when the item succeeded, else the error (a blocked item's error still
        names its rejected transaction)."""
        moved = None if result.error_code else result.movement
        error = None
        if moved is None:
            error = BatchItemError(
                status=http_status, code=result.error_code, message=result.error_message
            )
        return cls(
            index=result.index,
            ok=moved is not None,
            transaction_id=moved.transaction.id if moved else result.transaction_id or None,
            flagged=moved.transaction.flagged if moved else None,
            balance=moved.balance if moved else None,
            replayed=moved.replayed if moved else None,
            error=error,
        )


class TransferBatchOut(BaseModel):
    msg: str
    succeeded: int
    failed: int
    results: list[BatchItemOut]


class TransactionOut(ProtoOut):
    tx_id: str = Field(validation_alias="id")
    from_user: OptionalText
    to_user: OptionalText
    amount: str
    currency: str
    tx_type: str = Field(validation_alias="type")
    status: str
    timestamp: str = Field(validation_alias="created_at")
    flagged: bool
    deleted: bool


class FraudReasonOut(ProtoOut):
    rule_id: str
    description: str


class AdminTransactionOut(TransactionOut):
    """A transaction as admins see it: with its fraud assessment and review."""

    fraud_score: int
    fraud_decision: OptionalText
    fraud_reasons: list[FraudReasonOut]
    # The fraud rule-set version that decided ("3"), so a decision can be audited.
    fraud_rules_version: OptionalText
    review_status: OptionalText
    reviewed_by: OptionalText
    reviewed_at: OptionalText
    review_note: OptionalText


class TransactionListOut(ProtoOut):
    transactions: list[TransactionOut]
    next_cursor: OptionalText


class FlaggedListOut(ProtoOut):
    transactions: list[AdminTransactionOut]
    next_cursor: OptionalText


class AdminTransactionResultOut(BaseModel):
    msg: str
    transaction: AdminTransactionOut
