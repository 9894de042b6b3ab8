"""What the fraud service needs from its store, without SQL: the records it reads and
the calls it makes, with what each locks and returns. `fraud_service.store.FraudStore`
implements it over SQLite or PostgreSQL; the use cases (admin.py) and the live rule set
(live.py) depend on this module only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

RULE_SET_STATUSES = ("draft", "live", "archived")
LIST_NAMES = ("block", "allow")


class RuleSetNotFound(LookupError):
    pass


class RuleSetNotActivatable(ValueError):
    """Only a draft or an archived version can become live."""


class ListEntryNotFound(LookupError):
    pass


@dataclass(frozen=True, kw_only=True)
class RuleSetRecord:
    version: int
    status: str
    document: Mapping[str, Any]
    description: str
    created_by: str
    created_at: datetime
    activated_by: str | None
    activated_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class ListEntryRecord:
    list_name: str
    username: str
    rules: tuple[str, ...]
    note: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class SnoozeRecord:
    username: str
    rule_id: str
    until: datetime
    transaction_id: str
    note: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class LiveSnapshot:
    """What one score needs, as of `generation`."""

    generation: int
    rule_set: RuleSetRecord
    entries: tuple[ListEntryRecord, ...]
    snoozes: tuple[SnoozeRecord, ...] = ()


class FraudStoreContract(Protocol):
    def generation(self) -> int | None:
        """The current generation (None before the seed); one primary-key read, no lock."""

    def live_snapshot(self) -> LiveSnapshot | None:
        """The live rule set, every list entry and the running snoozes, read in one
        transaction; None before the seed."""

    def list_rule_sets(self) -> list[RuleSetRecord]:
        """Every version, newest first."""

    def get_rule_set(self, *, version: int) -> RuleSetRecord | None: ...

    def list_entries(self, *, list_name: str | None = None) -> list[ListEntryRecord]: ...

    def list_snoozes(
        self, *, username: str | None, active_at: datetime | None
    ) -> list[SnoozeRecord]: ...

    def create_rule_set(
        self, *, document: Mapping[str, Any], description: str, actor: str
    ) -> RuleSetRecord:
        """A new draft with the next version number (an already validated document)."""

    def activate(self, *, version: int, actor: str) -> RuleSetRecord:
        """Atomically live, the previous live one archived, under the state row's lock (so
        activations on all replicas run one after another). Raises RuleSetNotFound."""

    def add_list_entry(
        self, *, list_name: str, username: str, rules: Sequence[str], note: str, actor: str
    ) -> ListEntryRecord: ...

    def remove_list_entry(self, *, list_name: str, username: str) -> None:
        """Raises ListEntryNotFound."""

    def snooze(
        self,
        *,
        username: str,
        rule_ids: Sequence[str],
        until: datetime,
        transaction_id: str,
        note: str,
        actor: str,
    ) -> list[SnoozeRecord]: ...
