"""gRPC adapter of fraud.v1.FraudAdmin: proto <-> fraud_service.admin, errors mapped here.

The caller is trusted to have authorised the call: this port is internal, and the wallet
forwards only its admins' calls (wallet_service/fraud_admin_proxy.py), naming the admin
in the `x-actor` metadata, which is recorded as who created or activated what.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn

import grpc
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from common.records import build
from fraud_service.admin import AdminError, FraudAdmin
from fraud_service.backtest import Report, ScoredMovement
from fraud_service.rules import InvalidInput
from fraud_service.servicer import features_from_proto, movement_from_proto
from fraud_service.store_contract import ListEntryRecord, RuleSetRecord, SnoozeRecord

ERROR_DOMAIN = "fraud.v1"
ACTOR_HEADER = "x-actor"
_CODES = {"invalid_argument": code_pb2.INVALID_ARGUMENT, "not_found": code_pb2.NOT_FOUND}


def _abort(context: grpc.ServicerContext, error: AdminError) -> NoReturn:
    info = any_pb2.Any()
    metadata = {"field": error.field} if error.field else {}
    info.Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=metadata)
    )
    status = status_pb2.Status(code=_CODES[error.kind], message=error.message, details=[info])
    context.abort_with_status(rpc_status.to_status(status))


def _actor(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == ACTOR_HEADER and isinstance(value, str) and value:
            return value[:64]
    return "unknown"


def _time(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ""


def rule_to_document(rule: fraud_pb2.Rule) -> dict[str, Any]:
    """Only what the caller set, so the validator's defaults apply to the rest."""
    raw: dict[str, Any] = {"kind": rule.kind}
    if rule.id:
        raw["id"] = rule.id
    if rule.decision:
        raw["decision"] = rule.decision
    if rule.HasField("score"):
        raw["score"] = rule.score
    if rule.reason:
        raw["reason"] = rule.reason
    params: dict[str, Any] = dict(rule.params)
    if rule.currency_thresholds:
        params["currency_thresholds"] = dict(rule.currency_thresholds)
    raw["params"] = params
    return raw


def rule_from_document(raw: Mapping[str, Any]) -> fraud_pb2.Rule:
    params = dict(raw["params"])
    currencies = params.pop("currency_thresholds", {})
    return fraud_pb2.Rule(
        id=raw["id"],
        kind=raw["kind"],
        decision=raw["decision"],
        score=raw["score"],
        reason=raw["reason"],
        params={name: str(value) for name, value in params.items()},
        currency_thresholds={code: str(value) for code, value in currencies.items()},
    )


def rule_set_to_proto(record: RuleSetRecord) -> fraud_pb2.RuleSet:
    return fraud_pb2.RuleSet(
        version=record.version,
        status=record.status,
        rules=[rule_from_document(rule) for rule in record.document["rules"]],
        description=record.description,
        created_by=record.created_by,
        created_at=_time(record.created_at),
        activated_by=record.activated_by or "",
        activated_at=_time(record.activated_at),
    )


def entry_to_proto(entry: ListEntryRecord) -> fraud_pb2.ListEntry:
    return build(
        fraud_pb2.ListEntry, entry, list=entry.list_name, created_at=_time(entry.created_at)
    )


def snooze_to_proto(snooze: SnoozeRecord) -> fraud_pb2.Snooze:
    return build(
        fraud_pb2.Snooze,
        snooze,
        until=_time(snooze.until),
        created_at=_time(snooze.created_at),
    )


def scored_movement(item: fraud_pb2.BacktestItem) -> ScoredMovement:
    return ScoredMovement(
        movement=movement_from_proto(item.request.movement),
        features=features_from_proto(item.request.features),
        live_decision=item.live_decision,
        live_rule_ids=tuple(item.live_rule_ids),
        review_status=item.review_status,
    )


def report_to_proto(version: int, report: Report) -> fraud_pb2.BacktestReport:
    rules = [build(fraud_pb2.RuleBacktest, r) for r in report.rules]
    return build(fraud_pb2.BacktestReport, report, version=version, rules=rules)


class FraudAdminServicer(fraud_pb2_grpc.FraudAdminServicer):
    def __init__(self, admin: FraudAdmin) -> None:
        self._admin = admin

    def ListRuleSets(
        self, request: fraud_pb2.ListRuleSetsRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.ListRuleSetsResponse:
        records = self._admin.list_rule_sets()
        return fraud_pb2.ListRuleSetsResponse(rule_sets=[rule_set_to_proto(r) for r in records])

    def GetRuleSet(
        self, request: fraud_pb2.GetRuleSetRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.RuleSet:
        try:
            return rule_set_to_proto(self._admin.get_rule_set(request.version))
        except AdminError as exc:
            _abort(context, exc)

    def CreateRuleSet(
        self, request: fraud_pb2.CreateRuleSetRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.RuleSet:
        document = {"rules": [rule_to_document(rule) for rule in request.rules]}
        try:
            record = self._admin.create_rule_set(
                document, description=request.description, actor=_actor(context)
            )
        except AdminError as exc:
            _abort(context, exc)
        return rule_set_to_proto(record)

    def ActivateRuleSet(
        self, request: fraud_pb2.ActivateRuleSetRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.RuleSet:
        try:
            return rule_set_to_proto(self._admin.activate(request.version, actor=_actor(context)))
        except AdminError as exc:
            _abort(context, exc)

    def AddListEntry(
        self, request: fraud_pb2.AddListEntryRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.ListEntry:
        try:
            entry = self._admin.add_list_entry(
                list_name=request.list,
                username=request.username,
                rules=list(request.rules),
                note=request.note,
                actor=_actor(context),
            )
        except AdminError as exc:
            _abort(context, exc)
        return entry_to_proto(entry)

    def RemoveListEntry(
        self, request: fraud_pb2.RemoveListEntryRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.RemoveListEntryResponse:
        try:
            self._admin.remove_list_entry(list_name=request.list, username=request.username)
        except AdminError as exc:
            _abort(context, exc)
        return fraud_pb2.RemoveListEntryResponse()

    def ListEntries(
        self, request: fraud_pb2.ListEntriesRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.ListEntriesResponse:
        try:
            entries = self._admin.list_entries(list_name=request.list)
        except AdminError as exc:
            _abort(context, exc)
        return fraud_pb2.ListEntriesResponse(entries=[entry_to_proto(e) for e in entries])

    def SnoozeRules(
        self, request: fraud_pb2.SnoozeRulesRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.SnoozeRulesResponse:
        try:
            records = self._admin.snooze(
                username=request.username,
                rules=list(request.rules),
                days=request.days,
                transaction_id=request.transaction_id,
                note=request.note,
                actor=_actor(context),
            )
        except AdminError as exc:
            _abort(context, exc)
        return fraud_pb2.SnoozeRulesResponse(snoozes=[snooze_to_proto(r) for r in records])

    def ListSnoozes(
        self, request: fraud_pb2.ListSnoozesRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.ListSnoozesResponse:
        try:
            records = self._admin.list_snoozes(
                username=request.username, include_expired=request.include_expired
            )
        except AdminError as exc:
            _abort(context, exc)
        return fraud_pb2.ListSnoozesResponse(snoozes=[snooze_to_proto(r) for r in records])

    def Backtest(
        self, request: fraud_pb2.BacktestRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.BacktestReport:
        try:
            items = []
            for index, item in enumerate(request.items):
                try:
                    items.append(scored_movement(item))
                except InvalidInput as exc:
                    raise AdminError(
                        "invalid_argument", "invalid_argument", f"items[{index}]: {exc}"
                    ) from None
            report = self._admin.backtest(request.version, items)
        except AdminError as exc:
            _abort(context, exc)
        return report_to_proto(request.version, report)
