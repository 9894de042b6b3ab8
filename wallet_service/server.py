"""Builds the wallet gRPC server from settings; `serve()` runs it until SIGTERM."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2
from sqlalchemy.engine import make_url
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from common.config import ConfigError, current_env, load_env_file
from common.grpc_server import add_health_and_reflection, build_server, serve_until_signal
from common.logs import log_fields, setup_logging
from common.ratelimit import ObservedRateLimiter, RateLimiter, build_rate_limiter
from common.telemetry import Telemetry, build_telemetry
from wallet_service.auth import TokenIssuer
from wallet_service.auth_interceptor import AuthInterceptor
from wallet_service.channels import (
    AlertRoute,
    EmailChannel,
    EmlDirectory,
    FraudAlerts,
    MailTransport,
    ReceivedTransfers,
    SmtpTransport,
    WebhookChannel,
)
from wallet_service.database import create_db_engine, migrate
from wallet_service.errors import WalletError
from wallet_service.events import RetryPolicy
from wallet_service.fraud_admin_proxy import FraudAdminProxy
from wallet_service.fraud_client import FraudReachabilityMonitor, GrpcFraudScorer
from wallet_service.group_commit import DirectWriter, GroupCommitWriter, MovementWriter
from wallet_service.grpc_errors import ErrorMappingInterceptor
from wallet_service.identity import UsernameCollisionError
from wallet_service.limits import Quota
from wallet_service.notifier import Channel, Notifier, NotifierConfig
from wallet_service.notify_settings import NotifySettings
from wallet_service.peer_limits import PeerLimitInterceptor
from wallet_service.scoring import Scorer, ThresholdScorer
from wallet_service.service import AdminBootstrapRefused, WalletService
from wallet_service.servicer import WalletServicer
from wallet_service.settings import WalletSettings
from wallet_service.store import SqlLoginAttempts, SqlStore
from wallet_service.store_contract import WalletStore
from wallet_service.supervisor import is_child, notify_ready, supervise
from wallet_service.telemetry import CommitTelemetry, InstrumentedWriter, WalletMetrics

log = logging.getLogger("wallet_service")

SERVICE_NAME = wallet_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name
FRAUD_HEALTH_NAME = "fraud.v1.FraudService"  # the wallet's view of whether it can score
LIMITER_PREFIX = "wallet:ratelimit:"


@dataclass
class WalletServer:
    server: grpc.Server
    port: int
    service: WalletService
    health: health.HealthServicer
    monitor: FraudReachabilityMonitor | None
    telemetry: Telemetry
    notifier: Notifier | None = None
    fraud_admin: FraudAdminProxy | None = None

    def start(self) -> None:
        self.server.start()
        if self.monitor:
            self.monitor.start()
        if self.notifier:
            self.notifier.start()

    def stop(self, grace: float | None = None) -> None:
        self.server.stop(grace).wait()
        self.close()

    def close(self) -> None:
        """Release everything but the gRPC server (stopped by `stop` or serve_until_signal)."""
        if self.monitor:
            self.monitor.stop()
        if self.notifier:
            self.notifier.stop()
        if self.fraud_admin:
            self.fraud_admin.close()
        self.service.writer.close()
        self.service.scorer.close()
        self.service.money_quota.limiter.close()
        engine = getattr(self.service.store, "engine", None)
        if engine is not None:
            engine.dispose()
        self.telemetry.close()


def build_service(
    settings: WalletSettings,
    limiter: RateLimiter | None = None,
    telemetry: Telemetry | None = None,
    metrics: WalletMetrics | None = None,
) -> WalletService:
    """The use cases over a migrated store; `limiter` is shared with the gRPC interceptors."""
    if telemetry is None:
        telemetry = build_telemetry("wallet_service", settings.telemetry)
    if metrics is None:
        metrics = WalletMetrics(telemetry.registry)
    if limiter is None:
        limiter = build_rate_limiter(settings.redis_url, prefix=LIMITER_PREFIX)
    engine = create_db_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    try:
        migrate(engine)
    except UsernameCollisionError as exc:
        engine.dispose()
        raise ConfigError(str(exc)) from exc
    scorer: Scorer
    if settings.fraud_address:
        scorer = GrpcFraudScorer(
            settings.fraud_address,
            tls=settings.tls,
            timeout_seconds=settings.fraud_timeout_ms / 1000,
            tracer_provider=telemetry.tracer_provider,
            observe=lambda outcome, seconds: metrics.fraud_calls.labels(outcome).observe(seconds),
        )
    else:
        scorer = ThresholdScorer(settings.fraud_threshold)
    # The pool holds pool_size + as many overflow connections; sender turns may hold all
    # but a reserve of them, so feature reads, the writer and other calls always get one.
    capacity = 2 * settings.db_pool_size
    store = SqlStore(engine, sender_turn_connections=max(1, capacity - max(2, capacity // 4)))
    metrics.watch_pool(engine.pool.checkedout, capacity)  # type: ignore[attr-defined]
    metrics.watch_outbox(lambda: {str(k): v for k, v in store.outbox_counts().items()})
    observer = CommitTelemetry(telemetry, metrics)
    writer: MovementWriter = (
        GroupCommitWriter(store, max_batch=settings.group_commit_max_batch, observer=observer)
        if settings.group_commit
        else DirectWriter(store, observer=observer)
    )
    service = WalletService(
        store=store,
        writer=InstrumentedWriter(writer, metrics),
        currencies=settings.currencies,
        tokens=TokenIssuer(secret=settings.jwt_secret, ttl_seconds=settings.jwt_ttl_seconds),
        scorer=scorer,
        fraud_fail_closed=settings.fraud_fail_closed,
        login_attempts=SqlLoginAttempts(
            engine,
            max_failures=settings.login_max_failures,
            window_seconds=settings.login_lockout_seconds,
        ),
        money_quota=Quota(
            limiter, settings.money_per_user, "Too many money requests, try again later"
        ),
        reserved_usernames=frozenset({settings.admin_username} - {""}),
    )
    if settings.admin_username and settings.admin_password:
        try:
            service.bootstrap_admin(
                username=settings.admin_username, password=settings.admin_password
            )
        except AdminBootstrapRefused as exc:
            engine.dispose()
            raise ConfigError(str(exc)) from exc
        except WalletError as exc:  # e.g. a name or password the policy refuses
            engine.dispose()
            raise ConfigError(f"ADMIN_USERNAME/ADMIN_PASSWORD: {exc.message}") from exc
    return service


def create_server(settings: WalletSettings, telemetry: Telemetry | None = None) -> WalletServer:
    """A ready-to-start server; bind port 0 in tests and read `.port` back. Without a
    `telemetry`, one is built from the settings and its metrics endpoint started (when
    WALLET_METRICS_PORT / METRICS_PORT asks for one)."""
    if telemetry is None:
        telemetry = build_telemetry("wallet_service", settings.telemetry)
        telemetry.serve_metrics(settings.telemetry)
    metrics = WalletMetrics(telemetry.registry)
    limiter = ObservedRateLimiter(
        build_rate_limiter(settings.redis_url, prefix=LIMITER_PREFIX), metrics.refused
    )
    service = build_service(settings, limiter, telemetry, metrics)
    server, port = build_server(
        address=settings.address,
        max_workers=settings.workers,
        reuse_port=settings.processes > 1,
        telemetry=telemetry,
        tls=settings.tls,
        interceptors=[
            ErrorMappingInterceptor(on_error=metrics.error),
            PeerLimitInterceptor.from_settings(settings, limiter),
            AuthInterceptor(service.authenticate),
        ],
    )
    wallet_pb2_grpc.add_WalletServiceServicer_to_server(WalletServicer(service), server)
    fraud_admin = FraudAdminProxy(service, settings.fraud_address, settings.tls)
    server.add_generic_rpc_handlers((fraud_admin,))
    health_servicer = add_health_and_reflection(server, [SERVICE_NAME])
    monitor = None
    if isinstance(service.scorer, GrpcFraudScorer):
        health_servicer.set(FRAUD_HEALTH_NAME, health_pb2.HealthCheckResponse.UNKNOWN)
        monitor = FraudReachabilityMonitor(
            service.scorer, _fraud_health_updater(health_servicer, settings.fraud_fail_closed)
        )
    notifier = build_notifier(settings.notify, service.store) if settings.notify.enabled else None
    return WalletServer(
        server, port, service, health_servicer, monitor, telemetry, notifier, fraud_admin
    )


def build_notifier(settings: NotifySettings, store: WalletStore) -> Notifier:
    """The outbox's delivery worker with the configured channels."""
    channels: list[Channel] = [
        WebhookChannel(url, settings.webhook_secrets) for url in settings.webhook_urls
    ]
    route = AlertRoute(settings.mail_from, settings.fraud_alert_emails, settings.admin_url)
    alerts: MailTransport
    own: MailTransport
    if settings.smtp_url:
        alerts = own = SmtpTransport(settings.smtp_url)
    else:
        alerts, own = EmlDirectory(settings.mail_dir), EmlDirectory(settings.mail_dir, ".recipient")
    channels.append(EmailChannel(FraudAlerts(route), alerts))
    channels.append(EmailChannel(ReceivedTransfers(settings.mail_from, _email_of(store)), own))
    config = NotifierConfig(
        lease_seconds=settings.lease_seconds,
        poll_seconds=settings.poll_seconds,
        policy=RetryPolicy(max_attempts=settings.max_attempts),
    )
    return Notifier(store, channels, config)


def _email_of(store: WalletStore) -> Callable[[str], str | None]:
    """A user's notification address, read when their email is sent (None: none, or the
    user is deleted)."""

    def lookup(user_id: str) -> str | None:
        user = store.get_user(user_id)
        return user.email if user is not None and not user.is_deleted else None

    return lookup


def _fraud_health_updater(
    health_servicer: health.HealthServicer, fail_closed: bool
) -> Callable[[bool], None]:
    """Report fraud reachability; in closed mode the wallet itself cannot move money."""

    def update(reachable: bool) -> None:
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        health_servicer.set(FRAUD_HEALTH_NAME, serving if reachable else not_serving)
        if fail_closed:
            health_servicer.set(SERVICE_NAME, serving if reachable else not_serving)

    return update


def serve(settings: WalletSettings) -> None:
    wallet = create_server(settings)
    if settings.jwt_secret_generated:
        log.warning(
            "JWT_SECRET_KEY not set: using a generated development secret kept in "
            "data/dev_jwt_secret (set JWT_SECRET_KEY and APP_ENV=production for real use)"
        )
    if wallet.monitor:
        wallet.monitor.start()
    if wallet.notifier:
        wallet.notifier.start()
        notify = settings.notify
        if not notify.smtp_url and notify.fraud_alert_emails:
            log.warning("SMTP_URL not set: alert emails are written under %s/", notify.mail_dir)
    log_fields(
        log,
        "wallet listening",
        address=settings.address,
        port=wallet.port,
        database=_safe_url(settings.database_url),
        fraud=settings.fraud_address or "local",
        metrics_port=wallet.telemetry.metrics_port,
    )
    serve_until_signal(
        wallet.server,
        wallet.health,
        grace_seconds=settings.grace_seconds,
        on_stop=wallet.close,
        on_started=notify_ready,
    )


def _safe_url(url: str) -> str:

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    load_env_file()
    try:
        settings = WalletSettings.from_env(current_env())
    except ConfigError as exc:
        print(f"wallet_service: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    setup_logging(settings.log_level)
    env = current_env()
    try:
        if settings.processes > 1 and not is_child(env):
            raise SystemExit(supervise(settings, env))
        serve(settings)
    except ConfigError as exc:  # found at start, e.g. an ADMIN_USERNAME that is not an admin
        print(f"wallet_service: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
