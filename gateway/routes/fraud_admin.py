"""Admin routes for the fraud rules as data: rule sets and block/allow lists.

Each route calls `fraud.v1.FraudAdmin` on the wallet's channel: the wallet checks the
token and the admin role and forwards the call to the fraud service
(wallet_service/fraud_admin_proxy.py), so the gateway holds no fraud address and no
authorization logic of its own. Errors map like every other route (gateway/errors.py):
a bad rule set is 400 `invalid_rule_set` naming the field, a missing version 404.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import Path, Query
from fraud.v1 import fraud_pb2
from pydantic import BaseModel, BeforeValidator, Field, field_validator
from wallet.v1 import wallet_pb2

from gateway import schemas as s
from gateway.deps import AuthCaller, ServicesDep
from gateway.routes import wallet_router

router = wallet_router("admin: fraud rules")


def _param_text(value: object) -> str:
    """A JSON number (read exactly by the gateway) becomes its fixed-point text."""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        number = Decimal(value)
        if not number.is_finite() or len(number.as_tuple().digits) > 40:
            raise ValueError("must be a finite number of at most 40 digits")
        return format(number, "f")
    raise ValueError("must be a decimal string or a JSON number")


ParamValue = Annotated[str, BeforeValidator(_param_text), Field(max_length=64)]
ParamName = Annotated[str, Field(max_length=64)]
INT32 = 2**31
ListName = Literal["block", "allow"]
Version = Annotated[int, Path(ge=1, le=2**62)]


class RuleIn(s.StrictRequestBody):
    kind: str = Field(max_length=64, description="large_amount | structuring | velocity | ...")
    id: str = Field("", max_length=64, description="unique in the set (default: the kind)")
    decision: str = Field("", max_length=16, description="REVIEW | BLOCK (default REVIEW)")
    # The fraud service judges 0..100; bounded here to what the wire (int32) can carry.
    score: int | None = Field(
        None, ge=-INT32, le=INT32 - 1, description="0..100 (default: the kind's)"
    )
    reason: str = Field("", max_length=500, description="template, e.g. '{description}'")
    params: dict[ParamName, ParamValue | dict[ParamName, ParamValue]] = Field(
        default_factory=dict,
        max_length=20,
        description="decimal strings or JSON numbers (read exactly), e.g. "
        '{"threshold": "500", "currency_thresholds": {"JPY": 75000}}',
    )

    def to_proto(self) -> fraud_pb2.Rule:
        params = {k: v for k, v in self.params.items() if isinstance(v, str)}
        nested = self.params.get("currency_thresholds", {})
        currencies = dict(nested) if isinstance(nested, dict) else {}
        rule = fraud_pb2.Rule(
            id=self.id,
            kind=self.kind,
            decision=self.decision,
            reason=self.reason,
            params=params,
            currency_thresholds=currencies,
        )
        if self.score is not None:
            rule.score = self.score
        return rule


class RuleSetIn(s.StrictRequestBody):
    description: str = Field("", max_length=500)
    rules: list[RuleIn] = Field(max_length=200)

    def to_proto(self) -> fraud_pb2.CreateRuleSetRequest:
        """The draft request (the REST route and the web page send the same)."""
        return fraud_pb2.CreateRuleSetRequest(
            description=self.description, rules=[rule.to_proto() for rule in self.rules]
        )


class RuleOut(s.ProtoOut):
    id: str
    kind: str
    decision: str
    score: int
    reason: str
    params: dict[str, str | dict[str, str]]


def _rule_out(rule: fraud_pb2.Rule) -> RuleOut:
    params: dict[str, str | dict[str, str]] = dict(rule.params)
    if rule.currency_thresholds or rule.kind != "velocity":
        params["currency_thresholds"] = dict(rule.currency_thresholds)
    return RuleOut.from_proto(rule, params=params)


class RuleSetOut(s.ProtoOut):
    version: int
    status: str
    description: str
    created_by: str
    created_at: str
    activated_by: s.OptionalText
    activated_at: s.OptionalText
    rules: list[RuleOut]

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, rules: Iterable[fraud_pb2.Rule]) -> list[RuleOut]:
        return [_rule_out(r) for r in rules]


class RuleSetResultOut(BaseModel):
    msg: str
    rule_set: RuleSetOut


class RuleSetListOut(BaseModel):
    rule_sets: list[RuleSetOut]


class ListEntryIn(s.StrictRequestBody):
    username: str = Field(min_length=1, max_length=128)
    rules: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=50)
    note: str = Field("", max_length=500)


class ListEntryOut(s.ProtoOut):
    # `list` would shadow the builtin
    list_name: str = Field(validation_alias="list", serialization_alias="list")
    username: str
    rules: list[str]
    note: str
    created_by: str
    created_at: str


class ListEntryResultOut(BaseModel):
    msg: str
    entry: ListEntryOut


class ListEntriesOut(BaseModel):
    entries: list[ListEntryOut]


@router.get("/admin/fraud/rulesets")
async def list_rule_sets(caller: AuthCaller, svc: ServicesDep) -> RuleSetListOut:
    """Every rule-set version, newest first (exactly one is `live`)."""
    reply = await svc.wallet.call(
        svc.wallet.fraud_admin.ListRuleSets, fraud_pb2.ListRuleSetsRequest(), caller
    )
    return RuleSetListOut(rule_sets=[RuleSetOut.from_proto(r) for r in reply.rule_sets])


@router.post("/admin/fraud/rulesets", status_code=201)
async def create_rule_set(
    body: RuleSetIn, caller: AuthCaller, svc: ServicesDep
) -> RuleSetResultOut:
    """A new draft version; validated in full, it decides nothing until activated."""
    reply = await svc.wallet.call(svc.wallet.fraud_admin.CreateRuleSet, body.to_proto(), caller)
    return RuleSetResultOut(msg="Draft created", rule_set=RuleSetOut.from_proto(reply))


@router.get("/admin/fraud/rulesets/{version}")
async def get_rule_set(version: Version, caller: AuthCaller, svc: ServicesDep) -> RuleSetOut:
    request = fraud_pb2.GetRuleSetRequest(version=version)
    return RuleSetOut.from_proto(
        await svc.wallet.call(svc.wallet.fraud_admin.GetRuleSet, request, caller)
    )


@router.post("/admin/fraud/rulesets/{version}/activate")
async def activate_rule_set(
    version: Version, caller: AuthCaller, svc: ServicesDep
) -> RuleSetResultOut:
    """Atomically live (the previous live version archived); in force for the next score
    on every fraud replica. Activating an archived version rolls back to it."""
    request = fraud_pb2.ActivateRuleSetRequest(version=version)
    reply = await svc.wallet.call(svc.wallet.fraud_admin.ActivateRuleSet, request, caller)
    return RuleSetResultOut(msg="Rule set activated", rule_set=RuleSetOut.from_proto(reply))


@router.get("/admin/fraud/lists")
async def list_entries(
    caller: AuthCaller,
    svc: ServicesDep,
    list_name: Annotated[ListName | None, Query(alias="list")] = None,
) -> ListEntriesOut:
    request = fraud_pb2.ListEntriesRequest(list=list_name or "")
    reply = await svc.wallet.call(svc.wallet.fraud_admin.ListEntries, request, caller)
    return ListEntriesOut(entries=[ListEntryOut.from_proto(e) for e in reply.entries])


@router.post("/admin/fraud/lists/{list_name}", status_code=201)
async def add_list_entry(
    list_name: ListName, body: ListEntryIn, caller: AuthCaller, svc: ServicesDep
) -> ListEntryResultOut:
    """Block: the user's movements, as sender or recipient, are BLOCKed (`block_list`).
    Allow: the user's movements skip the named rules (ids or kinds; none named: all).
    The block list wins over the allow list."""
    request = fraud_pb2.AddListEntryRequest(
        list=list_name, username=body.username, rules=body.rules, note=body.note
    )
    reply = await svc.wallet.call(svc.wallet.fraud_admin.AddListEntry, request, caller)
    return ListEntryResultOut(msg="List entry saved", entry=ListEntryOut.from_proto(reply))


@router.delete("/admin/fraud/lists/{list_name}/{username}")
async def remove_list_entry(
    list_name: ListName,
    username: Annotated[str, Path(min_length=1, max_length=128)],
    caller: AuthCaller,
    svc: ServicesDep,
) -> s.MessageOut:
    request = fraud_pb2.RemoveListEntryRequest(list=list_name, username=username)
    await svc.wallet.call(svc.wallet.fraud_admin.RemoveListEntry, request, caller)
    return s.MessageOut(msg="List entry removed")


class SnoozeOut(s.ProtoOut):
    username: str
    rule_id: str
    until: str
    transaction_id: str
    note: str
    created_by: str
    created_at: str


class SnoozesOut(BaseModel):
    snoozes: list[SnoozeOut]


@router.get("/admin/fraud/snoozes")
async def list_snoozes(
    caller: AuthCaller,
    svc: ServicesDep,
    username: Annotated[str, Query(max_length=128)] = "",
    include_expired: bool = False,
) -> SnoozesOut:
    """Rules skipped per user until a time, recorded by cleared reviews with
    `snooze_days` (POST /admin/transactions/{id}/review); each expires by itself."""
    request = fraud_pb2.ListSnoozesRequest(username=username, include_expired=include_expired)
    reply = await svc.wallet.call(svc.wallet.fraud_admin.ListSnoozes, request, caller)
    return SnoozesOut(snoozes=[SnoozeOut.from_proto(x) for x in reply.snoozes])


class BacktestIn(s.StrictRequestBody):
    version: int = Field(ge=1, le=2**62, description="the rule-set version to replay")
    since: str = Field(min_length=1, max_length=64, description="RFC 3339, inclusive")
    until: str = Field(min_length=1, max_length=64, description="RFC 3339, exclusive")


class BacktestRuleOut(s.ProtoOut):
    rule_id: str
    hits: int
    live_hits: int
    confirmed_fraud_hits: int
    cleared_hits: int


class BacktestOut(s.ProtoOut):
    """Counts over the replayed movements; "caught" is REVIEW or BLOCK, "live" the verdict
    stored with each movement."""

    version: int
    since: str
    until: str
    movements: int
    flagged: int
    blocked: int
    live_flagged: int
    live_blocked: int
    live_unscored: int
    newly_caught: int
    no_longer_caught: int
    confirmed_fraud: int
    confirmed_fraud_caught: int
    cleared: int
    cleared_still_caught: int
    rules: list[BacktestRuleOut]


@router.post("/admin/fraud/backtest")
async def backtest_rule_set(body: BacktestIn, caller: AuthCaller, svc: ServicesDep) -> BacktestOut:
    """Replay a version (usually a draft) on the movements scored in [since, until), with
    the features stored when they were scored: what it would flag or block, per rule,
    against the live verdicts and the reviews. At most 7 days and 10,000 movements."""
    request = wallet_pb2.BacktestRuleSetRequest(
        version=body.version, since=body.since, until=body.until
    )
    reply = await svc.wallet.call(svc.wallet.stub.BacktestRuleSet, request, caller)
    return BacktestOut.from_proto(reply)
