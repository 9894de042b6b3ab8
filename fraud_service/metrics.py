"""The fraud service's metrics: verdicts by decision and by rule, and scoring latency."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from fraud_service.rules import Decision, Verdict

# Rules are pure functions of a few numbers: microseconds, so finer buckets than RED's.
SCORING_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


class FraudMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._verdicts = Counter(
            "fraud_verdicts_total",
            "Verdicts by decision (ALLOW, REVIEW, BLOCK)",
            ["decision"],
            registry=registry,
        )
        self._rule_hits = Counter(
            "fraud_rule_hits_total",
            "Rules that fired, by rule id and the verdict's decision",
            ["rule", "decision"],
            registry=registry,
        )
        self._scoring = Histogram(
            "fraud_scoring_seconds",
            "Time to evaluate the rules for one movement",
            buckets=SCORING_BUCKETS,
            registry=registry,
        )
        # Bound once: every decision is exposed from the start, and a score skips the lookup.
        self._by_decision = {d: self._verdicts.labels(d.name) for d in Decision}

    def verdict(self, verdict: Verdict, seconds: float) -> None:
        decision = verdict.decision.name
        self._by_decision[verdict.decision].inc()
        for hit in verdict.reasons:  # rule ids come from the validated rules file: bounded
            self._rule_hits.labels(hit.rule_id, decision).inc()
        self._scoring.observe(seconds)
