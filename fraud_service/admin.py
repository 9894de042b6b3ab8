"""Administration use cases of rules as data: validate, then store. No gRPC, no SQL.

Errors are AdminError with a stable `reason` and, for a bad rule set, the `field`; the
servicer maps them to gRPC statuses in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fraud_service.backtest import Report, ScoredMovement, backtest
from fraud_service.rules import BLOCK_LIST, RuleSet
from fraud_service.rulesets import RuleSetError, parse_rule_set, to_document
from fraud_service.store_contract import (
    LIST_NAMES,
    FraudStoreContract,
    ListEntryNotFound,
    ListEntryRecord,
    RuleSetNotFound,
    RuleSetRecord,
    SnoozeRecord,
)
from wallet_service.identity import canonical_if_valid

MAX_DESCRIPTION = 500
MAX_LIST_RULES = 50
MAX_SNOOZE_DAYS = 365
# Per Backtest call: bounds the request (about 2 MB at worst) and the call's time.
MAX_BACKTEST_ITEMS = 1000
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}|\*")


@dataclass
class AdminError(Exception):
    kind: str  # invalid_argument | not_found
    reason: str
    message: str
    field: str = ""

    def __str__(self) -> str:
        return self.message


def _invalid(field: str, message: str) -> AdminError:
    return AdminError("invalid_argument", "invalid_argument", message, field)


class FraudAdmin:
    def __init__(self, store: FraudStoreContract) -> None:
        self.store = store

    def list_rule_sets(self) -> list[RuleSetRecord]:
        return self.store.list_rule_sets()

    def get_rule_set(self, version: int) -> RuleSetRecord:
        record = self.store.get_rule_set(version=version)
        if record is None:
            raise AdminError(
                "not_found", "rule_set_not_found", f"rule set version {version} does not exist"
            )
        return record

    def create_rule_set(
        self, document: Mapping[str, Any], *, description: str, actor: str
    ) -> RuleSetRecord:
        try:
            instances = parse_rule_set(document)
        except RuleSetError as exc:
            raise AdminError("invalid_argument", "invalid_rule_set", str(exc), exc.field) from None
        if len(description) > MAX_DESCRIPTION:
            raise _invalid("description", f"description is longer than {MAX_DESCRIPTION}")
        return self.store.create_rule_set(
            document=to_document(instances), description=description, actor=actor
        )

    def activate(self, version: int, *, actor: str) -> RuleSetRecord:
        try:
            return self.store.activate(version=version, actor=actor)
        except RuleSetNotFound as exc:
            raise AdminError("not_found", "rule_set_not_found", str(exc)) from None

    def backtest(self, version: int, items: Sequence[ScoredMovement]) -> Report:
        """`version`'s rules over `items` (any status: usually a draft). Nothing stored."""
        if len(items) > MAX_BACKTEST_ITEMS:
            raise _invalid(
                "items", f"at most {MAX_BACKTEST_ITEMS} items per Backtest call, got {len(items)}"
            )
        record = self.get_rule_set(version)
        rule_set = RuleSet(version=str(record.version), rules=parse_rule_set(record.document))
        return backtest(rule_set, items)

    def add_list_entry(
        self, *, list_name: str, username: str, rules: Sequence[str], note: str, actor: str
    ) -> ListEntryRecord:
        name = _list_name(list_name)
        if name == "block" and rules:
            raise _invalid("rules", "rules only apply to the allow list")
        if len(rules) > MAX_LIST_RULES or not all(_RULE_NAME.fullmatch(r) for r in rules):
            raise _invalid("rules", "rules must be rule ids or kinds (a-z, 0-9, _) or *")
        if len(note) > MAX_DESCRIPTION:
            raise _invalid("note", f"note is longer than {MAX_DESCRIPTION}")
        return self.store.add_list_entry(
            list_name=name,
            username=_username(username),
            rules=sorted(set(rules)),
            note=note,
            actor=actor,
        )

    def remove_list_entry(self, *, list_name: str, username: str) -> None:
        try:
            self.store.remove_list_entry(
                list_name=_list_name(list_name), username=_username(username)
            )
        except ListEntryNotFound as exc:
            raise AdminError("not_found", "list_entry_not_found", str(exc)) from None

    def list_entries(self, *, list_name: str) -> list[ListEntryRecord]:
        return self.store.list_entries(list_name=_list_name(list_name) if list_name else None)

    def snooze(
        self,
        *,
        username: str,
        rules: Sequence[str],
        days: int,
        transaction_id: str,
        note: str,
        actor: str,
    ) -> list[SnoozeRecord]:
        if not 1 <= days <= MAX_SNOOZE_DAYS:
            raise _invalid("days", f"days must be between 1 and {MAX_SNOOZE_DAYS}, got {days}")
        if not rules or len(rules) > MAX_LIST_RULES:
            raise _invalid("rules", f"rules must name 1 to {MAX_LIST_RULES} rule ids")
        if BLOCK_LIST in rules:
            raise _invalid("rules", "block_list cannot be snoozed: remove the block entry")
        if not all(_RULE_NAME.fullmatch(r) and r != "*" for r in rules):
            raise _invalid("rules", "rules must be rule ids (a-z, 0-9, _)")
        if len(note) > MAX_DESCRIPTION or len(transaction_id) > 64:
            raise _invalid("note", f"note is longer than {MAX_DESCRIPTION}")
        return self.store.snooze(
            username=_username(username),
            rule_ids=sorted(set(rules)),
            until=datetime.now(UTC) + timedelta(days=days),
            transaction_id=transaction_id,
            note=note,
            actor=actor,
        )

    def list_snoozes(self, *, username: str, include_expired: bool) -> list[SnoozeRecord]:
        return self.store.list_snoozes(
            username=_username(username) if username else None,
            active_at=None if include_expired else datetime.now(UTC),
        )


def _list_name(raw: str) -> str:
    if raw not in LIST_NAMES:
        raise _invalid("list", f"list must be one of {', '.join(LIST_NAMES)}, got {raw!r}")
    return raw


def _username(raw: str) -> str:
    """The wallet's canonical form, so `Bob` and `bob` are one entry, as they are one user."""
    canonical = canonical_if_valid(raw)
    if canonical is None:
        raise _invalid("username", f"username {raw!r} is not a valid username")
    return canonical
