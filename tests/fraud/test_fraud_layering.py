"""The fraud service's layering, on what Python really imports: the rules, the rule-set
validation, the store contract, the use cases and the live rule set import no SQL and no
gRPC; only the store, the database module, the servicers and the server do."""

from __future__ import annotations

from tests.support.layering import forbidden_imports

PURE = [
    "fraud_service.rules",
    "fraud_service.rulesets",
    "fraud_service.store_contract",
    "fraud_service.admin",
    "fraud_service.live",
]
FORBIDDEN = {"sqlalchemy", "alembic", "grpc", "grpc_status", "google"}


def test_rules_use_cases_and_the_store_contract_import_no_sql_and_no_grpc() -> None:
    assert forbidden_imports(PURE, FORBIDDEN) == {}
