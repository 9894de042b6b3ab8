"""The SQL side of the wallet's storage: `SqlStore` (SQLite and PostgreSQL, SQLAlchemy
Core) implements wallet_service.store_contract.WalletStore, and `SqlLoginAttempts`
(lockout.py) implements wallet_service.limits.LoginAttempts. Only the composition root
(wallet_service.server), tools and tests import this package; the use cases import the
contracts."""

from wallet_service.store.lockout import SqlLoginAttempts
from wallet_service.store.sql_store import SqlStore

__all__ = ["SqlLoginAttempts", "SqlStore"]
