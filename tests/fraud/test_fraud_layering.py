"""The fraud service's layering, on what Python really imports: the rules, the rule-set
validation, the store contract, the use cases and the live rule set import no SQL and no
gRPC; only the store, the database module, the servicers and the server do."""

from __future__ import annotations

import json
import subprocess
import sys

PURE = [
    "fraud_service.rules",
    "fraud_service.rulesets",
    "fraud_service.store_contract",
    "fraud_service.admin",
    "fraud_service.live",
]
FORBIDDEN = {"sqlalchemy", "alembic", "grpc", "grpc_status", "google"}

_PROBE = """
import importlib, json, sys
forbidden = set(sys.argv[1].split(","))
found = {}
for name in sys.argv[2:]:
    importlib.import_module(name)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & forbidden)
    if loaded:
        found[name] = loaded
        break
print(json.dumps(found))
"""


def test_rules_use_cases_and_the_store_contract_import_no_sql_and_no_grpc() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(sorted(FORBIDDEN)), *PURE],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(run.stdout) == {}
