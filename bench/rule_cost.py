"""CPU cost of judging one movement by a live rule set of 5 and of 50 rules (issue 13's
speed bound: "scoring stays within the wallet's 200 ms deadline with a live set of 50").

Pure rule evaluation (`fraud_service.rules.evaluate_rule_set`), in this process, measured as
thread CPU time (`time.thread_time`), so other load on the machine does not inflate it. The
worst case the wallet can send: a withdrawal on a new account after a full day of 200
recent amounts (the features query's cap), so that every rule of every kind hits and
builds its reason. The RPC around it (server,
interceptors, generation check) is the fraud row of `python -m bench.budget`.

    python -m bench.rule_cost [--calls 5000]
"""

from __future__ import annotations

import argparse
import time

from fraud_service.rules import (
    Features,
    Movement,
    MovementType,
    RuleSet,
    evaluate_rule_set,
)
from fraud_service.rulesets import parse_rule_set

# kind: (parameter, value of the first tier); ten tiers of each kind make 50 rules.
TIERED_KINDS = {
    "large_amount": ("threshold", 1),
    "structuring": ("threshold", 1000),
    "velocity": ("max_movements_per_hour", 100),
    "new_account": ("threshold", 1000),
    "balance_share": ("threshold", 1000),
}
WORST_MOVEMENT = Movement(
    type=MovementType.WITHDRAWAL, amount_minor=950_000, currency="USD", currency_exponent=2
)
WORST_FEATURES = Features(
    account_age_seconds=10,
    count_last_hour=150,
    sum_last_hour_minor=150 * 95_000,
    count_last_day=200,
    sum_last_day_minor=200 * 95_000,
    recent_day_amounts_minor=(95_000,) * 200,  # 950 USD: inside every structuring band
    distinct_counterparties_last_day=50,
    balance_minor=1_000_000,
)


def tiered_rules(tiers: int) -> list[dict[str, object]]:
    """`tiers` rules of each of the five kinds, as a rule-set document's `rules` (what POST
    /admin/fraud/rulesets takes): the set measured here is the one the gateway test makes live."""
    return [
        {"id": f"{kind}_{n}", "kind": kind, "params": {param: str(first + n)}}
        for n in range(tiers)
        for kind, (param, first) in TIERED_KINDS.items()
    ]


def tiered_rule_set(tiers: int) -> RuleSet:
    rules = tiered_rules(tiers)
    return RuleSet(version=f"{len(rules)} rules", rules=parse_rule_set({"rules": rules}))


def cpu_us_per_judgement(rule_set: RuleSet, calls: int) -> float:
    evaluate_rule_set(WORST_MOVEMENT, WORST_FEATURES, rule_set)  # warm caches
    started = time.thread_time()
    for _ in range(calls):
        evaluate_rule_set(WORST_MOVEMENT, WORST_FEATURES, rule_set)
    return (time.thread_time() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args(argv)
    print("| live rules | CPU us per judgement | share of a 200 ms deadline |")
    print("|---:|---:|---:|")
    for tiers in (1, 10):
        rule_set = tiered_rule_set(tiers)
        cost = cpu_us_per_judgement(rule_set, args.calls)
        print(f"| {len(rule_set.rules)} | {cost:,.0f} | {cost / 200_000:.2%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
