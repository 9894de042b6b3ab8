"""Count the database round trips of one wallet Transfer, in-process, on PostgreSQL or SQLite.

    python -m bench.roundtrips [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
                               [--transfers 200]

Builds the wallet's own service (the same code the gRPC servicer calls: `authenticate_user`
as the auth interceptor does, then `transfer`) on a fresh database, scores with the
in-process threshold rule (so the fraud gRPC hop is not counted), and counts per transfer:
pool checkouts (each costs a `SELECT 1` round trip with pool_pre_ping), BEGINs, statements
and COMMITs, from SQLAlchemy's engine and pool events. Prints one line per kind and the
serial wall time per transfer.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url

from bench.inprocess import funded_users
from common.pg_databases import scratch_database
from wallet_service.server import build_service
from wallet_service.settings import WalletSettings


def _statement_kind(statement: str) -> str:
    words = statement.split()
    head = words[0].upper() if words else "?"
    if head == "SELECT" and "FOR SHARE" in statement.upper():
        return "SELECT ... FOR SHARE"
    if head == "SELECT" and "JOIN" in statement.upper():
        return "SELECT (5-way join: transaction row)"
    return head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--transfers", type=int, default=200)
    args = parser.parse_args(argv)
    if make_url(args.url).get_backend_name() == "postgresql":
        with scratch_database(args.url, "bench_rt") as url:
            _count(url, args.transfers)
    else:
        _count(f"sqlite:////tmp/bench_rt_{uuid.uuid4().hex[:10]}.db", args.transfers)
    return 0


def _count(url: str, transfers: int) -> None:
    """Prints the round trips per transfer of `transfers` serial transfers on `url`."""
    settings = WalletSettings.from_env(
        {
            "APP_ENV": "test",
            "WALLET_DATABASE_URL": url,
            "JWT_SECRET_KEY": "roundtrips-" + "x" * 40,
            "FRAUD_ADDR": "",
            "MONEY_RATE_LIMIT_PER_USER": "0",
        }
    )
    service = build_service(settings)
    engine = service.store.engine  # type: ignore[attr-defined]
    names, tokens = funded_users(service, "rt", "5000.00")

    counts: Counter[str] = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(*a: Any) -> None:
        counts[_statement_kind(a[2])] += 1

    event.listen(engine, "begin", lambda *_: counts.update(["BEGIN"]))
    event.listen(engine, "commit", lambda *_: counts.update(["COMMIT"]))
    event.listen(engine, "rollback", lambda *_: counts.update(["ROLLBACK"]))
    event.listen(engine.pool, "checkout", lambda *_: counts.update(["checkout (+ping)"]))

    started = time.perf_counter()
    for i in range(transfers):
        sender = service.authenticate_user(tokens[i % 2])
        service.transfer(
            sender,
            to_username=names[(i + 1) % 2],
            amount="0.01",
            currency="USD",
            key=uuid.uuid4().hex,
        )
    elapsed = time.perf_counter() - started
    engine.dispose()
    n = transfers
    backend = make_url(url).get_backend_name()
    print(f"{n} serial transfers on {backend}: {elapsed / n * 1000:.2f} ms each")
    total = 0.0
    for kind, count in counts.most_common():
        print(f"  {count / n:5.2f} per transfer  {kind}")
        total += count / n
    print(f"  {total:5.2f} per transfer  total (each one a client-server round trip on PG)")


if __name__ == "__main__":
    raise SystemExit(main())
