"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine.

The compose file is parsed and interpolated the way `docker compose` does (`${VAR}`,
`${VAR:-default}`, `${VAR:?error}`, `$$`); each service's environment is then fed to that
service's own settings class, so a renamed or invalid variable fails here. The health
checks are run against real fraud and wallet servers on loopback.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from common.processes import grpc_serving
from fraud_service.settings import FraudSettings
from gateway.settings import GatewaySettings
from tests.support import (
    RunningWallet,
    clean_environ,
    start_fraud,
    start_wallet,
    top_level_imports,
    wallet_settings,
)
from wallet_service.settings import WalletSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
WALLETS = ("wallet-1", "wallet-2")
DOTENV = {
    "POSTGRES_PASSWORD": "pg-password-for-the-test",
    "JWT_SECRET_KEY": "k" * 48,
    "ADMIN_PASSWORD": "admin-password-123",
    "GRAFANA_ADMIN_PASSWORD": "grafana-password-123",
}

_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\})")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose-style interpolation of every string in a parsed compose document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        escaped, name, operator, argument = match.groups()
        if escaped:
            return "$"
        current = env.get(name)
        unset_or_empty = not current if operator and operator.startswith(":") else current is None
        if operator and operator.endswith("-") and unset_or_empty:
            return argument
        if operator and operator.endswith("?") and unset_or_empty:
            raise MissingVariable(f"{name}: {argument}")
        return current or ""

    return _VARIABLE.sub(substitute, value)


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def compose(certs: Path) -> dict[str, Any]:
    return load_compose(DOTENV | {"TLS_CERTS_DIR": str(certs)})


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's variables as its process reads them here: a value naming a file the
    service bind-mounts (a TLS certificate) becomes that file's path on this machine."""
    env = service.get("environment", {})
    if isinstance(env, list):  # the `- KEY=value` form
        env = dict(item.split("=", 1) for item in env)
    mounted = {mount["target"]: mount["source"] for mount in bind_mounts(service)}
    return {k: "" if v is None else mounted.get(str(v), str(v)) for k, v in env.items()}


def bind_mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The long-syntax bind mounts (the short `src:dst[:ro]` strings are left out)."""
    return [v for v in service.get("volumes", []) if isinstance(v, dict) and v["type"] == "bind"]


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.removeprefix("dns:///"), int(port)


def depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def aliases(service: dict[str, Any]) -> set[str]:
    networks = service.get("networks") or {}
    if isinstance(networks, list):
        return set()
    return {alias for net in networks.values() for alias in (net or {}).get("aliases", [])}


def test_services_and_the_shared_image(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert set(svc) == {
        "redis", "postgres", "fraud", *WALLETS, "gateway", "prometheus", "grafana", "mailpit",
    }  # fmt: skip
    modules = {"fraud": "fraud_service", "gateway": "gateway"} | dict.fromkeys(
        WALLETS, "wallet_service"
    )
    for name, module in modules.items():
        assert svc[name]["build"] in (".", {"context": "."}), name
        assert svc[name]["command"] == ["python", "-m", module], name
        assert (REPO / module / "__main__.py").exists()
    assert (REPO / "Dockerfile").exists()


def test_postgres_has_a_volume_a_health_check_and_matches_the_wallet_url(
    compose: dict[str, Any],
) -> None:
    pg = services(compose)["postgres"]
    assert pg["image"].startswith("postgres:")
    volume, _, target = pg["volumes"][0].partition(":")
    assert target == "/var/lib/postgresql/data"
    assert volume in compose["volumes"], "a named volume, so data outlives the container"
    check = pg["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and "pg_isready" in check["test"][1]
    assert "$POSTGRES_USER" in check["test"][1], "$$ must reach the container as $"
    assert check["retries"] >= 3
    env = environment(pg)
    url = make_url(environment(services(compose)["wallet-1"])["WALLET_DATABASE_URL"])
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port) == ("postgres", 5432)
    assert url.username == env["POSTGRES_USER"]
    assert url.password == env["POSTGRES_PASSWORD"] == DOTENV["POSTGRES_PASSWORD"]
    assert url.database == env["POSTGRES_DB"]


def test_wallet_replicas_are_identical_production_configs(compose: dict[str, Any]) -> None:
    svc = services(compose)
    first, second = (svc[name] for name in WALLETS)
    assert environment(first) == environment(second), "one JWT secret, one database"
    for name in WALLETS:
        settings = WalletSettings.from_env(environment(svc[name]))
        assert settings.environment == "production"
        assert settings.jwt_secret == DOTENV["JWT_SECRET_KEY"]
        assert host_port(settings.address) == ("0.0.0.0", 50051)
        assert settings.fraud_address == "fraud:50052"
        assert 1 <= settings.db_pool_size <= 20  # x2 (overflow) x2 replicas < max_connections
        assert settings.admin_username and settings.admin_password == DOTENV["ADMIN_PASSWORD"]
        assert depends(svc[name]) == {
            "postgres": "service_healthy",
            "fraud": "service_healthy",
            "redis": "service_healthy",
        }
        assert settings.redis_url == "redis://redis:6379/0"  # limits shared by the replicas
        assert "healthcheck" in svc[name]
        assert "wallet" in aliases(svc[name])
        assert "ports" not in svc[name], "only the gateway is published"


def test_fraud_listens_where_the_wallets_dial(compose: dict[str, Any]) -> None:
    svc = services(compose)
    fraud = FraudSettings.from_env(environment(svc["fraud"]))
    assert host_port(fraud.addr) == ("0.0.0.0", 50052)
    wallet = WalletSettings.from_env(environment(svc["wallet-1"]))
    assert host_port(wallet.fraud_address) == ("fraud", host_port(fraud.addr)[1])
    assert "healthcheck" in svc["fraud"]
    # the fraud store: the wallet's PostgreSQL database (its tables are fraud_*)
    assert make_url(fraud.database_url) == make_url(wallet.database_url)
    assert depends(svc["fraud"]) == {"postgres": "service_healthy"}


def test_the_wallets_mail_through_mailpit_whose_ui_stays_on_loopback(
    compose: dict[str, Any], certs: Path
) -> None:
    svc = services(compose)
    mailpit = svc["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit:")
    assert mailpit["expose"] == ["1025"]
    assert mailpit["ports"] == ["127.0.0.1:8025:8025"], "the mail UI is not for the network"
    assert "readyz" in " ".join(mailpit["healthcheck"]["test"])
    for name in WALLETS:
        notify = WalletSettings.from_env(environment(svc[name])).notify
        smtp = urlsplit(notify.smtp_url)
        assert (smtp.scheme, smtp.hostname, smtp.port) == ("smtp", "mailpit", 1025)
        assert notify.enabled and notify.fraud_alert_emails == ("fraud-alerts@localhost",)
        assert notify.webhook_urls == ()  # none unless configured
    relay = load_compose(
        DOTENV | {"TLS_CERTS_DIR": str(certs), "SMTP_URL": "smtps://user:pw@relay.example:465"}
    )
    notify = WalletSettings.from_env(environment(services(relay)["wallet-1"])).notify
    assert notify.smtp_url == "smtps://user:pw@relay.example:465"


def test_gateway_is_published_and_reaches_both_replicas(compose: dict[str, Any]) -> None:
    svc = services(compose)
    gateway = svc["gateway"]
    settings = GatewaySettings.from_env(environment(gateway))
    assert (settings.host, settings.port) == ("0.0.0.0", 5000)
    assert gateway["ports"] == [f"5000:{settings.port}"]
    target, port = host_port(settings.wallet_addr)
    assert port == 50051
    # The target is either a replica's name or the alias every replica answers to.
    answering = [n for n in WALLETS if target == n or target in aliases(svc[n])]
    assert answering == list(WALLETS), f"{settings.wallet_addr} does not reach both replicas"
    assert depends(gateway) == dict.fromkeys(WALLETS, "service_healthy")
    assert "/healthz" in " ".join(gateway["healthcheck"]["test"])


def test_required_secrets_are_enforced_and_never_defaulted() -> None:
    for name in ("POSTGRES_PASSWORD", "JWT_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD"):
        with pytest.raises(MissingVariable, match=name):
            load_compose({k: v for k, v in DOTENV.items() if k != name})
    raw = COMPOSE.read_text()
    assert "JWT_SECRET_KEY: ${JWT_SECRET_KEY:?" in raw
    assert "APP_ENV: production" in raw  # so a weak JWT_SECRET_KEY refuses to start


def test_publish_port_can_be_moved(compose: dict[str, Any]) -> None:
    moved = load_compose(DOTENV | {"GATEWAY_PUBLISH_PORT": "8080"})
    assert services(moved)["gateway"]["ports"] == ["8080:5000"]


# -- health checks, run for real ---------------------------------------------------------------


def run_check(
    test: list[str], default_addr: str, real_addr: str, env: Mapping[str, str] | None = None
) -> int:
    """Run a compose health check here, against `real_addr`, with the service's `env`
    (its TLS variables; by default none: plaintext)."""
    assert test[0] == "CMD" and test[1] == "python", test
    command = [sys.executable, *(arg.replace(default_addr, real_addr) for arg in test[2:])]
    run_env = clean_environ() | dict(env or {})
    return subprocess.run(
        command, timeout=30, capture_output=True, check=False, env=run_env
    ).returncode


def test_grpc_health_checks_pass_on_live_servers_and_fail_on_dead_ones(
    compose: dict[str, Any], fraud_addr: str, sqlite_wallet: RunningWallet
) -> None:
    svc = services(compose)
    fraud_test = svc["fraud"]["healthcheck"]["test"]
    wallet_test = svc["wallet-1"]["healthcheck"]["test"]
    assert run_check(fraud_test, "127.0.0.1:50052", fraud_addr) == 0
    assert run_check(wallet_test, "127.0.0.1:50051", sqlite_wallet.addr) == 0
    assert run_check(wallet_test, "127.0.0.1:50051", "127.0.0.1:1") != 0


# -- mutual TLS on every gRPC hop -----------------------------------------------------------------

# The identity each service presents and the variables it reads it from.
IDENTITIES = {"fraud": "FRAUD", "wallet-1": "WALLET", "wallet-2": "WALLET", "gateway": "GATEWAY"}


def tls_variables(service: dict[str, Any], prefix: str) -> dict[str, str]:
    return {k: v for k, v in environment(service).items() if k.startswith(f"{prefix}_TLS_")}


def test_every_grpc_hop_is_mutual_tls_with_the_certs_of_make_certs(
    compose: dict[str, Any], certs: Path
) -> None:
    svc = services(compose)
    for name, prefix in IDENTITIES.items():
        identity = name.split("-")[0]  # wallet-1 and wallet-2 are both `wallet`
        raw = svc[name]["environment"]
        assert {k: raw[k] for k in raw if k.startswith(f"{prefix}_TLS_")} == {
            f"{prefix}_TLS_CERT": f"/certs/{identity}.crt",
            f"{prefix}_TLS_KEY": f"/certs/{identity}.key",
            f"{prefix}_TLS_CA": "/certs/ca.crt",
        }, name
        # Mounted read-only, never created when missing; the CA's key is not mounted.
        mounts = bind_mounts(svc[name])
        assert {m["target"]: m["source"] for m in mounts} == {
            "/certs/ca.crt": f"{certs}/ca.crt",
            f"/certs/{identity}.crt": f"{certs}/{identity}.crt",
            f"/certs/{identity}.key": f"{certs}/{identity}.key",
        }, name
        for mount in mounts:
            assert mount["read_only"] is True, (name, mount)
            assert mount["bind"]["create_host_path"] is False, (name, mount)
    tls = {
        "fraud": FraudSettings.from_env(environment(svc["fraud"])).tls,
        "wallet": WalletSettings.from_env(environment(svc["wallet-1"])).tls,
        "gateway": GatewaySettings.from_env(environment(svc["gateway"])).tls,
    }
    for name, settings in tls.items():
        assert settings.mutual, f"{name}: a server with a CA demands client certificates"
        assert (settings.cert, settings.key, settings.ca) == (
            certs / f"{name}.crt",
            certs / f"{name}.key",
            certs / "ca.crt",
        )
    # Without TLS_CERTS_DIR: what `make certs` writes, data/certs of the checkout.
    default = services(load_compose(DOTENV))
    sources = {m["source"] for name in IDENTITIES for m in bind_mounts(default[name])}
    assert sources and all(source.startswith("./data/certs/") for source in sources), sources
    assert "./data/certs/ca.key" not in sources


@pytest.fixture(scope="module")
def tls_servers(
    compose: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A fraud server and a wallet with the compose files' TLS settings: (fraud, wallet)."""
    svc = services(compose)
    fraud = start_fraud(**tls_variables(svc["fraud"], "FRAUD"))
    fraud_addr = f"127.0.0.1:{fraud.port}"
    url = f"sqlite:///{tmp_path_factory.mktemp('compose-tls') / 'wallet.db'}"
    wallet_tls = tls_variables(svc["wallet-1"], "WALLET")
    wallet = start_wallet(wallet_settings(url, fraud_addr, **wallet_tls), "sqlite")
    yield fraud_addr, wallet.addr
    wallet.server.stop(0)
    fraud.stop(0)


def test_the_hops_and_the_health_checks_work_over_mutual_tls(
    compose: dict[str, Any], tls_servers: tuple[str, str]
) -> None:
    svc = services(compose)
    fraud_addr, wallet_addr = tls_servers
    fraud_test = svc["fraud"]["healthcheck"]["test"]
    wallet_test = svc["wallet-1"]["healthcheck"]["test"]
    fraud_env = tls_variables(svc["fraud"], "FRAUD")
    wallet_env = tls_variables(svc["wallet-1"], "WALLET")
    # Each health check dials with its service's own identity ...
    assert run_check(fraud_test, "127.0.0.1:50052", fraud_addr, fraud_env) == 0
    assert run_check(wallet_test, "127.0.0.1:50051", wallet_addr, wallet_env) == 0
    # ... which it needs: plaintext is refused.
    assert run_check(fraud_test, "127.0.0.1:50052", fraud_addr) != 0
    assert run_check(wallet_test, "127.0.0.1:50051", wallet_addr) != 0
    # The hops: the wallets' identity reaches the fraud service, the gateway's the wallet.
    wallet_tls = WalletSettings.from_env(environment(svc["wallet-1"])).tls
    gateway_tls = GatewaySettings.from_env(environment(svc["gateway"])).tls
    assert grpc_serving(fraud_addr, "fraud.v1.FraudService", 5.0, wallet_tls)
    assert grpc_serving(wallet_addr, "wallet.v1.WalletService", 5.0, gateway_tls)
    assert not grpc_serving(wallet_addr, "wallet.v1.WalletService", 5.0)


# -- image ---------------------------------------------------------------------------------------


def test_dockerfile_generates_the_stubs_and_runs_unprivileged() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "grpc_tools.protoc" in dockerfile
    for proto in sorted((REPO / "protos").rglob("*.proto")):
        assert str(proto.relative_to(REPO / "protos")) in dockerfile, proto
    assert "requirements.lock" in dockerfile
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.MULTILINE)
    for package in ("common", "fraud_service", "wallet_service", "gateway"):
        assert f"COPY {package}/ {package}/" in dockerfile, package
    # ... and every package of this repository that those import (gen/ comes from the stage).
    for package in sorted(
        _first_party_imports(("common", "fraud_service", "wallet_service", "gateway"))
    ):
        assert f"COPY {package}/ {package}/" in dockerfile, package


def _first_party_imports(packages: tuple[str, ...]) -> set[str]:
    """Top-level packages of this repository imported by the modules of `packages`."""
    first_party = {p.parent.name for p in REPO.glob("*/__init__.py")}
    files = [path for package in packages for path in (REPO / package).rglob("*.py")]
    return top_level_imports(files) & first_party


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "gen", "data", ".env"} <= ignored


def _scrape_targets() -> dict[str, list[str]]:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }


def test_prometheus_scrapes_each_process_where_it_serves_metrics(
    compose: dict[str, Any],
) -> None:
    svc = services(compose)
    targets = _scrape_targets()
    gateway = GatewaySettings.from_env(environment(svc["gateway"]))
    assert targets["gateway"] == [f"gateway:{gateway.port}"]
    wallet_targets = []
    for name in WALLETS:
        telemetry = WalletSettings.from_env(environment(svc[name])).telemetry
        assert telemetry.metrics_host == "0.0.0.0", "reachable from the prometheus container"
        assert str(telemetry.metrics_port) in svc[name]["expose"]
        wallet_targets.append(f"{name}:{telemetry.metrics_port}")
    assert targets["wallet"] == wallet_targets, "each replica scraped on its own"
    fraud = FraudSettings.from_env(environment(svc["fraud"])).telemetry
    assert fraud.metrics_host == "0.0.0.0"
    assert targets["fraud"] == [f"fraud:{fraud.metrics_port}"]
    prometheus = svc["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert set(depends(prometheus)) == {"gateway", "fraud", *WALLETS}


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    grafana = services(compose)["grafana"]
    # container path -> repository path ("./source:target:ro")
    mounts = {target: source for source, target, _ in (v.split(":") for v in grafana["volumes"])}
    provisioning = REPO / mounts["/etc/grafana/provisioning"]
    source = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards/wallet.yml").read_text())
    dashboards_in_container = provider["providers"][0]["options"]["path"]
    assert (REPO / mounts[dashboards_in_container] / "wallet.json").exists()
    assert environment(grafana)["GF_SECURITY_ADMIN_PASSWORD"] == DOTENV["GRAFANA_ADMIN_PASSWORD"]
