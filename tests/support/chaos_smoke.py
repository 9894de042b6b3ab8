"""The shared body of the chaos smoke tests (one short seeded run per store).

The run is paced by events, not seconds: each fault is held until the workload has seen
it, and the run ends after a fixed number of acknowledged operations past the last heal,
so a slow or loaded machine takes longer but asserts the same things."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from chaos.faults import BASE_KINDS, FRAUD_RESTART, KILL_WALLET, counted_schedule
from chaos.run import Counted, run_once, text_summary

# Every base kind once: a wallet kill -9 and a fraud stop first (client retries and UNSCORED
# decisions are then certain), then SIGSTOP, delay and drop.
FAULTS = len(BASE_KINDS)
OPS_AFTER_HEAL = 60


def smoke(store: str, out: Path, seed: int) -> dict[str, Any]:
    kinds = counted_schedule(FAULTS, seed)
    assert kinds[:2] == [KILL_WALLET, FRAUD_RESTART] and sorted(kinds) == sorted(BASE_KINDS)
    summary = run_once(
        store,
        duration=0.0,
        seed=seed,
        out=out,
        users=8,
        clients=6,
        pg_restart=False,  # other tests share the PostgreSQL server
        counted=Counted(kinds, ops_after_heal=OPS_AFTER_HEAL),
    )
    print(text_summary(summary))
    assert summary["violations_total"] == 0, text_summary(summary)
    assert not summary["fault_errors"], summary["fault_errors"]
    assert summary["faults_injected"] == dict(Counter(kinds)), summary["faults_injected"]
    assert all(event["observed"] for event in summary["fault_events"]), summary["fault_events"]
    ops = summary["operations"]
    assert ops["acknowledged_after_last_heal"] >= OPS_AFTER_HEAL, ops
    assert ops["unknown_outcome"] == 0, ops  # everything healed, so every retry resolved
    # Faults did bite: some client attempt saw the outage and was retried.
    assert ops["retried"] > 0, ops
    assert summary["stats"]["fraud_decisions"].get("UNSCORED", 0) > 0, summary["stats"]
    assert summary["stats"]["admin_queue_size"] == summary["stats"]["flagged"]
    return summary
