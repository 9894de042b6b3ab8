"""The shared body of the chaos smoke tests (one short seeded run per store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.faults import BASE_KINDS
from chaos.run import run_once, text_summary

SMOKE_SECONDS = 10.0


def smoke(store: str, out: Path, seed: int) -> dict[str, Any]:
    summary = run_once(
        store,
        duration=SMOKE_SECONDS,
        seed=seed,
        out=out,
        users=8,
        clients=6,
        pg_restart=False,  # other tests share the PostgreSQL server
        fault_interval=(0.3, 1.0),
    )
    print(text_summary(summary))
    assert summary["violations_total"] == 0, text_summary(summary)
    ops = summary["operations"]
    assert ops["acknowledged"] > 100, ops
    assert ops["unknown_outcome"] == 0, ops  # everything healed, so every retry resolved
    faults = summary["faults_injected"]
    assert sum(faults.values()) >= 3, faults
    assert set(faults) <= set(BASE_KINDS), faults
    assert "wallet_kill9_restart" in faults or "fraud_stop_restart" in faults, faults
    assert not summary["fault_errors"], summary["fault_errors"]
    # Faults did bite: some client attempt saw the outage and was retried.
    assert ops["retried"] > 0, ops
    assert summary["stats"]["fraud_decisions"].get("UNSCORED", 0) > 0, summary["stats"]
    assert summary["stats"]["admin_queue_size"] == summary["stats"]["flagged"]
    return summary
