"""The wallet's layering, checked on what Python really imports: the domain and the use
cases (money, ledger, fraud scoring interface, limits, service, group commit, the store
contract, ...) import no SQL, no gRPC and no web framework. Only the adapters listed here,
by design, do. A new wallet module is a domain module until it is added to ADAPTERS."""

from __future__ import annotations

import pkgutil

import wallet_service
from tests.support.layering import forbidden_imports

FORBIDDEN = {"sqlalchemy", "alembic", "grpc", "grpc_status", "fastapi", "starlette"}

# Modules that translate between the domain and a technology, on purpose.
ADAPTERS = {
    "__main__",  # runs the server
    "auth_interceptor",  # gRPC
    "channels",  # SMTP, .eml files and webhooks over HTTP (the notifier's adapters)
    "database",  # SQLAlchemy engine and Alembic
    "fraud_client",  # gRPC client of fraud_service
    "fraud_admin_proxy",  # forwards fraud.v1.FraudAdmin (gRPC) for admins
    "grpc_errors",  # gRPC status mapping
    "migrate",  # Alembic
    "peer_limits",  # gRPC interceptor
    "schema",  # SQLAlchemy tables
    "server",  # the composition root
    "servicer",  # gRPC
    "service_account_servicer",  # gRPC (the service-account part of the servicer)
    "store",  # the SQL implementation of store_contract (and of limits.LoginAttempts)
}


def _domain_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(wallet_service.__path__)]
    return [f"wallet_service.{n}" for n in sorted(names) if n not in ADAPTERS]


def test_the_adapter_list_names_real_modules() -> None:
    existing = {m.name for m in pkgutil.iter_modules(wallet_service.__path__)} | {"__main__"}
    assert existing >= ADAPTERS


def test_domain_and_use_case_modules_import_no_sql_grpc_or_web_framework() -> None:
    modules = _domain_modules()
    # The modules this test must cover, named so that a rename cannot empty it silently.
    assert {
        "wallet_service.service",
        "wallet_service.group_commit",
        "wallet_service.store_contract",
        "wallet_service.ledger",
        "wallet_service.money",
        "wallet_service.scoring",
        "wallet_service.limits",
        "wallet_service.models",
        "wallet_service.events",
    } <= set(modules)
    assert forbidden_imports(modules, FORBIDDEN) == {}
