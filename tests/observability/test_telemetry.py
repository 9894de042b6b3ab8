"""Metrics and traces of the three processes, read back through what operators use: the
Prometheus text of each /metrics, and the spans each process exports (in memory here).

The fraud service, the wallet and the gateway run as real servers on loopback, each with its
own registry and tracer provider, so each is observed as a separate process would be; the
trace context can only cross between them over the wire (gRPC metadata, HTTP headers)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from common.processes import free_address
from common.telemetry import Telemetry, TelemetrySettings, build_telemetry
from fraud_service.server import create_server as create_fraud_server
from fraud_service.settings import FraudSettings
from gateway.settings import RateLimit
from tests.support import (
    CreateDatabase,
    GatewayThread,
    database_url,
    gateway_settings,
    wallet_settings,
)
from tests.support.logs import access_log_lines
from wallet_service.server import create_server as create_wallet_server
from wallet_service.settings import WalletSettings

PASSWORD = "correct horse battery"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Process:
    telemetry: Telemetry
    spans: InMemorySpanExporter

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.telemetry.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())


def _process(name: str, *, serve: bool) -> Process:
    spans = InMemorySpanExporter()
    telemetry = build_telemetry(name, TelemetrySettings(), span_exporters=[spans])
    if serve:
        telemetry.serve_metrics(TelemetrySettings(metrics_port=0))
    return Process(telemetry, spans)


@dataclass
class Trio:
    fraud: Process
    wallet: Process
    gateway: Process
    url: str

    def gateway_metrics_text(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text


@contextmanager
def _wallet_behind_gateway(
    settings: WalletSettings, wallet: Process, gateway: Process, **gateway_overrides: Any
) -> Iterator[tuple[str, str]]:
    """A wallet server and a gateway in front of it: (the gateway's URL, the wallet's address)."""
    wallet_server = create_wallet_server(settings, wallet.telemetry)
    wallet_server.start()
    wallet_addr = f"127.0.0.1:{wallet_server.port}"
    thread = GatewayThread(gateway_settings(wallet_addr, **gateway_overrides), gateway.telemetry)
    thread.start()
    try:
        yield thread.url, wallet_addr
    finally:
        thread.stop()
        wallet_server.stop(0)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def trio(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_database_factory: CreateDatabase,
) -> Iterator[Trio]:
    fraud, wallet, gateway = (
        _process("fraud_service", serve=True),
        _process("wallet_service", serve=True),
        _process("gateway", serve=False),
    )
    fraud_server = create_fraud_server(
        FraudSettings.from_env({"FRAUD_ADDR": "127.0.0.1:0"}), fraud.telemetry
    )
    fraud_server.start()
    fraud_port = fraud_server.port
    url = database_url(request.param, tmp_path_factory.mktemp("obs"), pg_database_factory)
    settings = wallet_settings(url, f"127.0.0.1:{fraud_port}")
    with _wallet_behind_gateway(settings, wallet, gateway) as (gateway_url, _wallet_addr):
        yield Trio(fraud, wallet, gateway, gateway_url)
    fraud_server.stop(0)
    fraud.telemetry.close()


def _samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def _eventually(check: Callable[[], bool], what: str) -> None:
    """Waits for an event the server records just after answering (hang guard only)."""
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def _user(client: httpx.Client, name: str) -> str:
    assert (
        client.post("/register", json={"username": name, "password": PASSWORD}).status_code == 201
    )
    reply = client.post("/login", json={"username": name, "password": PASSWORD})
    assert reply.status_code == 200
    return str(reply.json()["access_token"])


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def test_deposit_transfer_and_refused_withdrawal_move_the_three_processes_counters(
    trio: Trio,
) -> None:
    with httpx.Client(base_url=trio.url, timeout=30) as client:
        alice, bob = _unique("alice"), _unique("bob")
        token = _user(client, alice)
        _user(client, bob)
        auth = {"Authorization": f"Bearer {token}"}
        before_gw = _samples(trio.gateway_metrics_text())
        before_wallet = _samples(trio.wallet.metrics_text())
        before_fraud = _samples(trio.fraud.metrics_text())

        deposit = client.post(
            "/deposit", json={"amount": "100.10", "currency": "USD"}, headers=auth
        )
        assert deposit.status_code == 201, deposit.text
        transfer = client.post(
            "/transfer",
            json={"to_username": bob, "amount": "40.05", "currency": "USD"},
            headers=auth,
        )
        assert transfer.status_code == 201, transfer.text
        withdraw = client.post(
            "/withdraw", json={"amount": "1000", "currency": "USD"}, headers=auth
        )
        assert withdraw.status_code == 422, withdraw.text
        wrong = client.post("/login", json={"username": alice, "password": "not the password"})
        assert wrong.status_code == 401

    http = "http_server_requests_total"
    _eventually(
        lambda: (
            _delta(
                before_gw,
                _samples(trio.gateway_metrics_text()),
                http,
                method="POST",
                route="/login",
                status="401",
            )
            == 1
        ),
        "the gateway counted the last request",
    )
    after_gw = _samples(trio.gateway_metrics_text())
    after_wallet = _samples(trio.wallet.metrics_text())
    after_fraud = _samples(trio.fraud.metrics_text())

    # Gateway: RED by route template and status.
    for route, status in (("/deposit", "201"), ("/transfer", "201"), ("/withdraw", "422")):
        assert _delta(before_gw, after_gw, http, method="POST", route=route, status=status) == 1
        assert (
            _delta(
                before_gw,
                after_gw,
                "http_server_request_duration_seconds_count",
                method="POST",
                route=route,
            )
            == 1
        )

    # Wallet: RED per RPC, movements by outcome, amounts in minor units, batches.
    rpc = "grpc_server_handled_total"
    for method, code in (
        ("Deposit", "OK"),
        ("Transfer", "OK"),
        ("Withdraw", "FAILED_PRECONDITION"),
        ("Login", "UNAUTHENTICATED"),
    ):
        assert (
            _delta(
                before_wallet,
                after_wallet,
                rpc,
                grpc_service="wallet.v1.WalletService",
                grpc_method=method,
                grpc_code=code,
            )
            == 1
        ), method
    moves = "wallet_movements_total"
    for kind, outcome, reason in (
        ("deposit", "completed", ""),
        ("transfer", "completed", ""),
        ("withdrawal", "refused", "insufficient_funds"),
    ):
        assert (
            _delta(
                before_wallet,
                after_wallet,
                moves,
                type=kind,
                currency="USD",
                outcome=outcome,
                reason=reason,
            )
            == 1
        ), kind
    moved = "wallet_moved_minor_units_total"
    assert _delta(before_wallet, after_wallet, moved, type="deposit", currency="USD") == 10010
    assert _delta(before_wallet, after_wallet, moved, type="transfer", currency="USD") == 4005
    assert _delta(before_wallet, after_wallet, moved, type="withdrawal", currency="USD") == 0
    assert _delta(before_wallet, after_wallet, "wallet_group_commit_batch_size_count") == 3
    assert _delta(before_wallet, after_wallet, "wallet_group_commit_seconds_count") == 3
    assert _delta(before_wallet, after_wallet, "wallet_fraud_call_seconds_count", outcome="ok") == 3
    assert (
        _delta(
            before_wallet, after_wallet, "wallet_login_failures_total", reason="invalid_credentials"
        )
        == 1
    )
    assert ("wallet_db_pool_connections_in_use", frozenset()) in after_wallet
    assert after_wallet[("wallet_db_pool_connections_max", frozenset())] == 20

    # Fraud: every movement was scored once (the withdrawal of more than the balance may be
    # a REVIEW: the ledger refuses it all the same).
    assert (
        _delta(
            before_fraud,
            after_fraud,
            rpc,
            grpc_service="fraud.v1.FraudService",
            grpc_method="Score",
            grpc_code="OK",
        )
        == 3
    )
    verdicts = sum(
        _delta(before_fraud, after_fraud, "fraud_verdicts_total", decision=decision)
        for decision in ("ALLOW", "REVIEW", "BLOCK")
    )
    assert verdicts == 3
    assert _delta(before_fraud, after_fraud, "fraud_scoring_seconds_count") == 3


def test_a_traceparent_is_continued_by_the_gateway_the_wallet_and_fraud(trio: Trio) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with httpx.Client(base_url=trio.url, timeout=30) as client:
        token = _user(client, _unique("tracy"))
        for process in (trio.gateway, trio.wallet, trio.fraud):
            process.spans.clear()
        with access_log_lines() as lines:
            reply = client.post(
                "/deposit",
                json={"amount": "5.00", "currency": "USD"},
                headers={
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{trace_id}-{parent_id}-01",
                },
            )
    assert reply.status_code == 201, reply.text

    def traced(process: Process) -> list[str]:
        return [
            span.name
            for span in process.spans.get_finished_spans()
            if span.context is not None and f"{span.context.trace_id:032x}" == trace_id
        ]

    _eventually(lambda: "POST /deposit" in traced(trio.gateway), "the gateway's route span")
    assert "/wallet.v1.WalletService/Deposit" in traced(trio.gateway)  # its client span
    assert {
        "/wallet.v1.WalletService/Deposit",
        "db.write_batch",
        "/fraud.v1.FraudService/Score",
    } <= set(traced(trio.wallet))
    assert "/fraud.v1.FraudService/Score" in traced(trio.fraud)
    root = next(s for s in trio.gateway.spans.get_finished_spans() if s.name == "POST /deposit")
    assert root.parent is not None and f"{root.parent.span_id:016x}" == parent_id

    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    by_method = {entry["method"]: entry for entry in logged}
    for method in ("/wallet.v1.WalletService/Deposit", "/fraud.v1.FraudService/Score"):
        assert by_method[method]["trace_id"] == trace_id, method
        assert len(by_method[method]["span_id"]) == 16


@dataclass
class Lone:
    """A wallet whose fraud service is down, behind a gateway allowing one login per name."""

    wallet: Process
    gateway: Process
    url: str
    wallet_addr: str

    def gateway_samples(self) -> Samples:
        return _samples(httpx.get(f"{self.url}/metrics", timeout=10).text)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def lone(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_database_factory: CreateDatabase,
) -> Iterator[Lone]:
    wallet, gateway = _process("wallet_service", serve=True), _process("gateway", serve=False)
    url = database_url(request.param, tmp_path_factory.mktemp("lone"), pg_database_factory)
    settings = wallet_settings(url, free_address(), FRAUD_TIMEOUT_MS="2000")
    one_login = RateLimit(limit=1, window_seconds=3600)
    with _wallet_behind_gateway(settings, wallet, gateway, login_per_username=one_login) as (
        gateway_url,
        wallet_addr,
    ):
        yield Lone(wallet, gateway, gateway_url, wallet_addr)


def test_fraud_down_counts_a_fail_open_movement_and_the_failed_call(lone: Lone) -> None:
    with httpx.Client(base_url=lone.url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {_user(client, _unique('open'))}"}
        before = _samples(lone.wallet.metrics_text())
        reply = client.post("/deposit", json={"amount": "7.00", "currency": "EUR"}, headers=auth)
        assert reply.status_code == 201, reply.text
        assert reply.json()["flagged"] is True  # completed unscored, flagged for review
    after = _samples(lone.wallet.metrics_text())
    assert _delta(before, after, "wallet_fraud_fail_open_total", type="deposit") == 1
    assert _delta(before, after, "wallet_fraud_call_seconds_count", outcome="UNAVAILABLE") == 1
    assert _delta(before, after, "wallet_fraud_call_seconds_count", outcome="ok") == 0
    # The flag wrote one outbox event with the movement (delivered or not by now).
    outbox = sum(
        _delta(before, after, "wallet_outbox_events", status=status)
        for status in ("pending", "sent", "dead")
    )
    assert outbox == 1
    assert (
        _delta(
            before,
            after,
            "wallet_movements_total",
            type="deposit",
            currency="EUR",
            outcome="completed",
            reason="",
        )
        == 1
    )


def test_login_failures_lockouts_and_rate_limit_refusals_are_counted(lone: Lone) -> None:
    name = _unique("mallory")
    with httpx.Client(base_url=lone.url, timeout=30) as client:
        assert client.post("/register", json={"username": name, "password": PASSWORD}).is_success
        before_wallet = _samples(lone.wallet.metrics_text())
        before_gateway = lone.gateway_samples()
        # The gateway allows one login per name: the second is refused before the wallet.
        assert (
            client.post("/login", json={"username": name, "password": "wrong"}).status_code == 401
        )
        assert (
            client.post("/login", json={"username": name, "password": "wrong"}).status_code == 429
        )
    after_gateway = lone.gateway_samples()
    assert _delta(before_gateway, after_gateway, "gateway_rate_limit_refusals_total",
                  limit="login:user") == 1  # fmt: skip
    # Straight to the wallet (no gateway limit): the 5 failures allowed, then the lockout.
    with grpc.insecure_channel(lone.wallet_addr) as channel:
        stub = wallet_pb2_grpc.WalletServiceStub(channel)
        codes = []
        for _ in range(5):
            try:
                stub.Login(wallet_pb2.LoginRequest(username=name, password="wrong"), timeout=30)
            except grpc.RpcError as error:
                codes.append(error.code())
    after_wallet = _samples(lone.wallet.metrics_text())
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 4 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    failures = "wallet_login_failures_total"
    assert _delta(before_wallet, after_wallet, failures, reason="invalid_credentials") == 5
    assert _delta(before_wallet, after_wallet, failures, reason="locked") == 1
