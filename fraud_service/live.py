"""The live rule set and lists as each replica scores with them.

Before every score a replica reads the store's generation (one primary-key row; every
activation and list change bumps it), on a connection it keeps for that one statement
(`store.GenerationProbe`: no pool checkout, nothing compiled per call). When it moved, the
replica reloads the live rule set and the lists and compiles them once; otherwise it
scores with what it holds. So an activation on any replica is in force for the very next
score on every replica, with no restart and no polling interval. "Next", precisely: every
score whose generation read starts after the activating transaction committed, on any
replica; in particular every score requested after the activation call answered (it
answers after its commit). A score already past its read when the commit lands ran
concurrently with the activation and keeps the version it read. `FRAUD_STATE_CACHE_MS`
may trade that for fewer reads.

Without a store (`StaticRules`), the rules are the configuration's and never change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from fraud_service.rules import ALL_RULES, ListMatch, RuleSet
from fraud_service.rulesets import parse_rule_set
from fraud_service.store_contract import FraudStoreContract, ListEntryRecord, SnoozeRecord


@dataclass(frozen=True, kw_only=True)
class Lists:
    blocked: frozenset[str] = frozenset()
    # username -> the rule ids / kinds its allow entry skips
    allowed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # username -> (rule id, snoozed until) pairs
    snoozed: Mapping[str, tuple[tuple[str, datetime], ...]] = field(default_factory=dict)

    def match(self, *, username: str, counterparty: str, now: datetime) -> ListMatch:
        """Precedence: a blocked sender, then a blocked recipient, decide BLOCK and neither
        the allow list nor a snooze is consulted; otherwise the rules skipped are those the
        sender's allow entry names plus the sender's snoozes still running at `now` (the
        recipient's entries do not exempt the sender)."""
        if username and username in self.blocked:
            return ListMatch(blocked=f"sender {username}")
        if counterparty and counterparty in self.blocked:
            return ListMatch(blocked=f"recipient {counterparty}")
        snoozed = {rule for rule, until in self.snoozed.get(username, ()) if now < until}
        return ListMatch(skipped_rules=self.allowed.get(username, frozenset()) | snoozed)


def compile_lists(
    entries: tuple[ListEntryRecord, ...], snoozes: tuple[SnoozeRecord, ...] = ()
) -> Lists:
    by_user: dict[str, list[tuple[str, datetime]]] = {}
    for snooze in snoozes:
        by_user.setdefault(snooze.username, []).append((snooze.rule_id, snooze.until))
    return Lists(
        snoozed={user: tuple(pairs) for user, pairs in by_user.items()},
        blocked=frozenset(e.username for e in entries if e.list_name == "block"),
        allowed={
            e.username: frozenset(e.rules or (ALL_RULES,))
            for e in entries
            if e.list_name == "allow"
        },
    )


@dataclass(frozen=True, kw_only=True)
class Compiled:
    generation: int
    version: int | None
    rule_set: RuleSet
    lists: Lists


class RuleSource(Protocol):
    def current(self) -> Compiled: ...


class StaticRules:
    def __init__(self, rule_set: RuleSet) -> None:
        self._compiled = Compiled(generation=0, version=None, rule_set=rule_set, lists=Lists())

    def current(self) -> Compiled:
        return self._compiled


class StoreRules:
    def __init__(self, store: FraudStoreContract, *, cache_seconds: float = 0.0) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._compiled: Compiled | None = None
        self._checked_at = 0.0

    def current(self) -> Compiled:
        compiled = self._compiled
        now = time.monotonic()
        if compiled is not None and now - self._checked_at < self._cache_seconds:
            return compiled
        generation = self._store.generation()
        self._checked_at = now
        if compiled is not None and generation == compiled.generation:
            return compiled
        return self._reload()

    def _reload(self) -> Compiled:
        # One thread reloads; the others wait and take its result.
        with self._lock:
            generation = self._store.generation()
            if self._compiled is not None and self._compiled.generation == generation:
                return self._compiled
            snapshot = self._store.live_snapshot()
            if snapshot is None:
                raise RuntimeError("the fraud store has no live rule set (not seeded)")
            record = snapshot.rule_set
            self._compiled = Compiled(
                generation=snapshot.generation,
                version=record.version,
                rule_set=RuleSet(
                    version=str(record.version), rules=parse_rule_set(record.document)
                ),
                lists=compile_lists(snapshot.entries, snapshot.snoozes),
            )
            return self._compiled
