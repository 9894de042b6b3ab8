"""deploy/: the Prometheus alert rules and config pass promtool (syntax and the rules' own
unit tests), and every metric the rules and the Grafana dashboard query is one the
processes really expose (a renamed metric must not silently empty a panel or an alert)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from common.grpc_server import RpcMetricsInterceptor
from fraud_service.metrics import FraudMetrics
from gateway.metrics import GatewayMetrics
from tests.support import IN_CI
from wallet_service.telemetry import WalletMetrics

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy/prometheus"
DASHBOARD = REPO / "deploy/grafana/dashboards/wallet.json"
# Series Prometheus itself provides, and histogram/counter suffixes of ours.
_BUILTIN = {"up"}
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")
_IDENTIFIER = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[)")


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if IN_CI:
            pytest.fail("promtool is required in CI (Debian package `prometheus`)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
        ["check", "config", "prometheus.yml"],
    ],
)
def test_promtool_accepts_the_rules_their_tests_and_the_config(args: list[str]) -> None:
    run = subprocess.run(
        [_promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _exposed() -> set[str]:
    registry = CollectorRegistry()
    WalletMetrics(registry).watch_outbox(dict)
    FraudMetrics(registry)
    GatewayMetrics(registry)
    RpcMetricsInterceptor(registry)
    # Labelled series appear only once observed: name them from their families' types.
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in _SUFFIXES)
    return names


def _queried(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers followed by a selector or a range."""
    return {name for name in _IDENTIFIER.findall(expr) if name not in {"by", "without"}}


def _exprs() -> list[str]:
    import yaml

    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return exprs


def test_every_queried_metric_is_exposed_by_a_process() -> None:
    exposed = _exposed()
    assert "wallet_movements_total" in exposed  # the probe itself sees the real names
    queried = set().union(*(_queried(expr) for expr in _exprs()))
    assert {"http_server_requests_total", "wallet_fraud_fail_open_total"} <= queried
    missing = {name for name in queried - _BUILTIN if name not in exposed}
    assert missing == set()


def test_the_dashboard_has_the_panels_operators_look_at_first() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "digital-wallet"
    exprs = " ".join(target["expr"] for p in dashboard["panels"] for target in p["targets"])
    for metric in (
        "http_server_requests_total",
        "http_server_request_duration_seconds_bucket",
        "wallet_fraud_fail_open_total",
        "wallet_db_pool_connections_in_use",
        "wallet_movements_total",
    ):
        assert metric in exprs, metric
